// The hashing embedder and the provider factory. The openai provider's
// exchanges with a server are in tests/integration/embedding_provider_test.cpp.

#include "runtime/embedding_provider.hpp"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

double dot(const float* a, const float* b, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

double norm(const std::vector<float>& x) {
  return std::sqrt(dot(x.data(), x.data(), x.size()));
}

/// Cosine of the hashing vectors of `a` and `b` (both unit length).
double cosine(const std::string& a, const std::string& b, size_t dim = 384) {
  auto x = hash_embedding(a, dim);
  auto y = hash_embedding(b, dim);
  return dot(x.data(), y.data(), dim);
}

bool all_zero(const std::vector<float>& x) {
  for (auto v : x)
    if (v != 0.0f)
      return false;
  return true;
}

std::unique_ptr<embedding_provider> hashing(size_t dimension = 384) {
  embedding_options opts;
  opts.dimension = dimension;
  auto p = make_embedding_provider(opts);
  EXPECT_TRUE(p) << describe(p.error());
  return p ? std::move(*p) : nullptr;
}

/// An environment whose key lookup answers `key` for every name.
llm_environment env_with_key(std::optional<std::string> key) {
  llm_environment env;
  env.getenv = [key](const std::string&) { return key; };
  return env;
}

// A 15-word sentence, the same with one word changed, and unrelated texts.
const std::string sentence = "The staging deploy on Friday failed because the "
                             "database migration locked the orders table";
const std::string one_word_changed = "The staging deploy on Friday failed "
                                     "because the database migration locked "
                                     "the invoices table";
const std::string unrelated[] = {
  "Alice prefers green tea with honey every morning before her run",
  "Quarterly revenue in Europe grew twelve percent thanks to new customers",
  "My cat sleeps all afternoon on the warm windowsill",
};

} // namespace

// -- hashing embedder -----------------------------------------------------------

TEST(hashing_embedding, is_deterministic) {
  auto a = hash_embedding(sentence, 384);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(hash_embedding(sentence, 384), a);
  // The provider gives the same rows, in input order, call after call.
  auto p = hashing();
  ASSERT_NE(p, nullptr);
  std::vector<std::string> texts{sentence, unrelated[0], sentence};
  auto first = p->embed(texts);
  auto second = p->embed(texts);
  ASSERT_TRUE(first) << describe(first.error());
  ASSERT_TRUE(second);
  EXPECT_EQ(first->values, second->values);
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ(std::vector<float>(first->row(0), first->row(0) + 384), a);
  EXPECT_EQ(std::vector<float>(first->row(2), first->row(2) + 384), a);
  EXPECT_EQ(std::vector<float>(first->row(1), first->row(1) + 384),
            hash_embedding(unrelated[0], 384));
}

TEST(hashing_embedding, is_pinned_across_builds) {
  // The features and the hash are fixed arithmetic on bytes: these values
  // (printed once by this implementation) must never change without a new
  // model name. "Hello" has 6 features in 6 distinct buckets of 16: the
  // word (weight 1) and "^he", "hel", "ell", "llo", "lo$" (.5 each), so
  // |v|^2 = 1 + 5 * .25 = 2.25 and the entries are +-1/1.5 and +-.5/1.5.
  auto v = hash_embedding("Hello", 16);
  std::vector<std::pair<size_t, float>> nonzero;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0.0f)
      nonzero.emplace_back(i, v[i]);
  const std::vector<std::pair<size_t, float>> pinned{
    {2, -2.0f / 3}, {4, -1.0f / 3}, {6, -1.0f / 3},
    {7, 1.0f / 3},  {11, -1.0f / 3}, {15, -1.0f / 3}};
  ASSERT_EQ(nonzero.size(), pinned.size());
  for (size_t i = 0; i < pinned.size(); ++i) {
    EXPECT_EQ(nonzero[i].first, pinned[i].first) << i;
    EXPECT_NEAR(nonzero[i].second, pinned[i].second, 1e-6) << i;
  }
}

TEST(hashing_embedding, has_unit_length) {
  for (const auto& text :
       {sentence, one_word_changed, unrelated[0], unrelated[1],
        std::string{"x"}, std::string{"caf\xC3\xA9 au lait"},
        std::string{"the the the"}}) {
    for (size_t dim : {8u, 384u, 1536u}) {
      auto v = hash_embedding(text, dim);
      ASSERT_EQ(v.size(), dim);
      EXPECT_NEAR(norm(v), 1.0, 1e-5) << text << " @" << dim;
    }
  }
}

TEST(hashing_embedding, near_duplicates_are_close_and_unrelated_texts_are_not) {
  // One word of 15 changed: the other 14 words, 12 of 14 pairs and every
  // trigram of the unchanged words are shared.
  auto near = cosine(sentence, one_word_changed);
  EXPECT_GT(near, 0.8);
  EXPECT_LT(near, 1.0);
  // Case and punctuation do not matter.
  EXPECT_NEAR(cosine(sentence, "THE STAGING deploy, on Friday, failed because "
                               "the database migration locked the orders "
                               "table!"),
              1.0, 1e-5);
  // An inflection shares most trigrams.
  EXPECT_GT(cosine("deploys", "deploy"), 0.4); // 5 of 6 and 7 trigrams: ~0.48
  for (const auto& other : unrelated) {
    EXPECT_LT(std::abs(cosine(sentence, other)), 0.2) << other;
    EXPECT_LT(cosine(sentence, other), near);
  }
  EXPECT_LT(std::abs(cosine(unrelated[0], unrelated[1])), 0.2);
}

TEST(hashing_embedding, honours_the_dimension) {
  for (size_t dim : {8u, 64u, 384u, 1000u, 8192u}) {
    auto p = hashing(dim);
    ASSERT_NE(p, nullptr);
    auto batch = p->embed({sentence, unrelated[0]});
    ASSERT_TRUE(batch);
    EXPECT_EQ(batch->dimension, dim);
    EXPECT_EQ(batch->values.size(), 2 * dim);
    EXPECT_EQ(batch->size(), 2u);
    EXPECT_EQ(p->model(), "engram-hashing-v1-" + std::to_string(dim));
  }
  EXPECT_TRUE(hash_embedding(sentence, 0).empty());
}

TEST(hashing_embedding, a_text_without_words_is_all_zeros) {
  for (const char* text : {"", "   \n\t", "!!! ... ???", "-- + --"}) {
    auto v = hash_embedding(text, 32);
    ASSERT_EQ(v.size(), 32u);
    EXPECT_TRUE(all_zero(v)) << '"' << text << '"';
  }
  auto p = hashing(32);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"", "word"});
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->size(), 2u);
  EXPECT_TRUE(all_zero(std::vector<float>(batch->row(0), batch->row(0) + 32)));
  EXPECT_NEAR(dot(batch->row(1), batch->row(1), 32), 1.0, 1e-5);
  // No texts: no rows.
  auto none = p->embed({});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->size(), 0u);
}

TEST(hashing_embedding, model_and_provider_names) {
  EXPECT_EQ(hashing_model_name(384), "engram-hashing-v1-384");
  EXPECT_EQ(hashing_model_name(8), "engram-hashing-v1-8");
  auto p = hashing();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name(), "hashing");
  EXPECT_EQ(p->model(), "engram-hashing-v1-384");
  // The defaults are the hashing provider at 384.
  EXPECT_EQ(embedding_options{}.provider, "hashing");
  EXPECT_EQ(embedding_options{}.dimension, 384u);
}

// -- factory ----------------------------------------------------------------------

TEST(make_embedding_provider, refuses_an_unknown_provider_and_dimension_0) {
  embedding_options opts;
  opts.provider = "word2vec";
  auto p = make_embedding_provider(opts);
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  EXPECT_NE(message_of(p.error()).find("word2vec"), std::string::npos);
  opts = embedding_options{};
  opts.dimension = 0;
  p = make_embedding_provider(opts);
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
}

TEST(make_embedding_provider, openai_without_a_key_names_the_variable) {
  embedding_options opts;
  opts.provider = "openai";
  opts.api_key_env = "ENGRAM_TEST_EMBEDDING_KEY";
  for (std::optional<std::string> key :
       {std::optional<std::string>{}, std::optional<std::string>{""}}) {
    auto p = make_embedding_provider(opts, env_with_key(key));
    ASSERT_FALSE(p);
    EXPECT_EQ(code_of(p.error()), errc::invalid_config);
    EXPECT_NE(message_of(p.error()).find("ENGRAM_TEST_EMBEDDING_KEY"),
              std::string::npos)
      << message_of(p.error());
  }
}

TEST(make_embedding_provider, openai_with_a_key_or_on_the_local_host) {
  embedding_options opts;
  opts.provider = "openai";
  opts.model = "text-embedding-3-large";
  std::string asked;
  auto env = env_with_key("sk-test");
  env.getenv = [&](const std::string& name) -> std::optional<std::string> {
    asked = name;
    return "sk-test";
  };
  auto p = make_embedding_provider(opts, env);
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(asked, "OPENAI_API_KEY");
  EXPECT_EQ((*p)->name(), "openai");
  // The model name is the configured one, whatever the dimension says.
  EXPECT_EQ((*p)->model(), "text-embedding-3-large");
  for (const char* base : {"http://127.0.0.1:8000", "http://localhost:11434/v1",
                           "http://[::1]:8080"}) {
    opts.base_url = base;
    EXPECT_TRUE(make_embedding_provider(opts, env_with_key(std::nullopt)))
      << base;
  }
}

TEST(make_embedding_provider, refuses_an_invalid_base_url_and_batch_size_0) {
  embedding_options opts;
  opts.provider = "openai";
  opts.base_url = "ftp://embeddings.example.com";
  auto p = make_embedding_provider(opts, env_with_key("sk-test"));
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  opts = embedding_options{};
  opts.provider = "openai";
  opts.batch_size = 0;
  p = make_embedding_provider(opts, env_with_key("sk-test"));
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  // Every vector records its model: an openai provider needs one.
  opts = embedding_options{};
  opts.provider = "openai";
  opts.model = "";
  p = make_embedding_provider(opts, env_with_key("sk-test"));
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  EXPECT_NE(message_of(p.error()).find("embedding.model"), std::string::npos);
  opts = embedding_options{};
  opts.provider = "openai";
  opts.encoding_format = "hex";
  p = make_embedding_provider(opts, env_with_key("sk-test"));
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  EXPECT_NE(message_of(p.error()).find("embedding.encoding_format"),
            std::string::npos);
}

TEST(embeddings_url, appends_the_path_once) {
  EXPECT_EQ(embeddings_url("https://api.openai.com"),
            "https://api.openai.com/v1/embeddings");
  EXPECT_EQ(embeddings_url("https://api.openai.com/"),
            "https://api.openai.com/v1/embeddings");
  EXPECT_EQ(embeddings_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1/embeddings");
  EXPECT_EQ(embeddings_url("http://127.0.0.1:8000/v1/"),
            "http://127.0.0.1:8000/v1/embeddings");
  EXPECT_EQ(embeddings_url("https://gw.example.com/openai"),
            "https://gw.example.com/openai/v1/embeddings");
}
