#include "runtime/embedding_provider.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <utility>

#include <boost/json.hpp>

#include "messages/errc.hpp"
#include "runtime/base64.hpp"
#include "runtime/float32le.hpp"
#include "runtime/openai_api.hpp"
#include "runtime/text_words.hpp"

namespace engram {

namespace json = boost::json;

namespace {

// -- the hashing embedder ----------------------------------------------------
//
// Features of a text (words are the word tokens of `tokenize`, lower-cased):
// - every word, weight 1.0 (a stop word: 0.25, so that "the" and "is" do not
//   make unrelated texts look alike);
// - every pair of adjacent words, weight 0.5 (word order, phrases);
// - every character trigram of every non-stop word padded with '^' and '$'
//   ("word" -> "^wo", "wor", "ord", "rd$"), weight 0.5 (spelling variants
//   and inflections: "deploy" and "deploys" share three of their trigrams).
//   Trigrams are of bytes: a UTF-8 letter outside ASCII spans several.
// Each feature is hashed with FNV-1a 64 over a kind tag and its bytes, mixed
// with MurmurHash3's 64-bit finaliser (FNV's low bits alone are weak); the
// bucket is (low 32 bits x dimension) >> 32 (a range reduction without a
// division), the sign the top bit. Both are
// fixed arithmetic on bytes: the same on every platform and build. The sum
// is L2-normalised. Changing any of this changes the vectors: bump the
// version in `hashing_model_name` when you do.

constexpr float unigram_weight = 1.0f;
constexpr float stop_word_weight = 0.25f;
constexpr float bigram_weight = 0.5f;
constexpr float trigram_weight = 0.5f;

/// FNV-1a 64, fed incrementally.
struct fnv1a {
  static constexpr uint64_t offset_basis = 0xcbf29ce484222325ULL;
  static constexpr uint64_t prime = 0x100000001b3ULL;

  uint64_t state = offset_basis;

  void add(unsigned char c) noexcept {
    state ^= c;
    state *= prime;
  }

  void add(std::string_view bytes) noexcept {
    for (char c : bytes)
      add(static_cast<unsigned char>(c));
  }
};

/// MurmurHash3's fmix64: every input bit affects every output bit.
constexpr uint64_t mix(uint64_t k) noexcept {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// Kind tags keep a word, a pair and a trigram with the same bytes apart.
constexpr unsigned char unigram_tag = 'w';
constexpr unsigned char bigram_tag = 'b';
constexpr unsigned char trigram_tag = 'c';
// Between the two words of a pair; never part of a word token.
constexpr unsigned char pair_separator = ' ';

bool is_word_byte(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
         || (c >= 'A' && c <= 'Z') || c == '_';
}

char ascii_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Adds the features of `text` to `out` (`dimension` floats, zeroed) and
/// normalises. No allocation but the reused per-thread lower-case copy.
void hash_into(std::string_view text, float* out, size_t dimension) {
  if (dimension == 0)
    return;
  thread_local std::string lowered;
  lowered.resize(text.size());
  std::transform(text.begin(), text.end(), lowered.begin(), ascii_lower);
  auto dim = static_cast<uint64_t>(dimension);
  auto add = [&](uint64_t h, float weight) {
    auto m = mix(h);
    auto bucket = ((m & 0xffffffffULL) * dim) >> 32;
    out[bucket] += (m >> 63) != 0 ? -weight : weight;
  };
  std::string_view s{lowered};
  bool any_word = false;
  // FNV state after "<bigram tag><previous word><separator>", continued with
  // the current word to hash the pair without rereading the previous one.
  fnv1a pair_prefix;
  bool have_previous = false;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_word_byte(s[i])) {
      ++i;
      continue;
    }
    auto start = i;
    while (i < s.size() && is_word_byte(s[i]))
      ++i;
    auto word = s.substr(start, i - start);
    any_word = true;
    auto stop = is_stop_word(word);
    // Word.
    fnv1a unigram;
    unigram.add(unigram_tag);
    unigram.add(word);
    add(unigram.state, stop ? stop_word_weight : unigram_weight);
    // Pair with the previous word.
    if (have_previous) {
      auto pair = pair_prefix;
      pair.add(word);
      add(pair.state, bigram_weight);
    }
    pair_prefix = fnv1a{};
    pair_prefix.add(bigram_tag);
    pair_prefix.add(word);
    pair_prefix.add(pair_separator);
    have_previous = true;
    // Character trigrams of "^word$".
    if (stop)
      continue;
    auto padded_size = word.size() + 2;
    auto at = [&](size_t k) -> unsigned char {
      if (k == 0)
        return '^';
      if (k == padded_size - 1)
        return '$';
      return static_cast<unsigned char>(word[k - 1]);
    };
    for (size_t k = 0; k + 3 <= padded_size; ++k) {
      fnv1a trigram;
      trigram.add(trigram_tag);
      trigram.add(at(k));
      trigram.add(at(k + 1));
      trigram.add(at(k + 2));
      add(trigram.state, trigram_weight);
    }
  }
  if (!any_word)
    return;
  double norm = 0;
  for (size_t k = 0; k < dimension; ++k)
    norm += static_cast<double>(out[k]) * out[k];
  if (norm <= 0)
    return; // Features that cancelled out exactly: leave the zeros.
  auto scale = static_cast<float>(1.0 / std::sqrt(norm));
  for (size_t k = 0; k < dimension; ++k)
    out[k] *= scale;
}

class hashing_provider final : public embedding_provider {
public:
  explicit hashing_provider(size_t dimension)
    : dimension_{dimension}, model_{hashing_model_name(dimension)} {
  }

  caf::expected<embedding_batch>
  embed(const std::vector<std::string>& texts) override {
    try {
      embedding_batch result;
      result.dimension = dimension_;
      result.values.assign(texts.size() * dimension_, 0.0f);
      for (size_t i = 0; i < texts.size(); ++i)
        hash_into(texts[i], result.values.data() + i * dimension_, dimension_);
      return result;
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"hashing embeddings: "} + e.what());
    }
  }

  std::string model() const override {
    return model_;
  }

  std::string name() const override {
    return "hashing";
  }

private:
  size_t dimension_;
  std::string model_;
};

// -- the openai provider -----------------------------------------------------

class openai_embedding_provider final : public embedding_provider {
public:
  openai_embedding_provider(embedding_options opts, openai_endpoint endpoint)
    : opts_{std::move(opts)}, endpoint_{std::move(endpoint)} {
  }

  caf::expected<embedding_batch>
  embed(const std::vector<std::string>& texts) override {
    try {
      return do_embed(texts);
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"openai embeddings: "} + e.what());
    }
  }

  std::string model() const override {
    return opts_.model;
  }

  std::string name() const override {
    return "openai";
  }

private:
  caf::expected<embedding_batch>
  do_embed(const std::vector<std::string>& texts) const {
    embedding_batch result;
    auto batch = std::max<size_t>(opts_.batch_size, 1);
    for (size_t first = 0; first < texts.size(); first += batch) {
      auto count = std::min(batch, texts.size() - first);
      json::array input;
      input.reserve(count);
      for (size_t i = first; i < first + count; ++i)
        input.emplace_back(texts[i]);
      json::object body;
      body["model"] = opts_.model;
      body["input"] = std::move(input);
      if (opts_.encoding_format == "base64")
        body["encoding_format"] = "base64";
      auto res = endpoint_.post_json(json::serialize(body));
      if (!res)
        return std::move(res.error());
      if (auto err = parse(*res, count, result))
        return err;
    }
    return result;
  }

  /// Appends the `count` rows of `res` (in the order of their `index`) to
  /// `out`, whose dimension the first row fixes.
  caf::error parse(const http_response& res, size_t count,
                   embedding_batch& out) const {
    auto malformed = [&](const std::string& what) {
      return endpoint_.fail(errc::unspecified, "malformed response: " + what);
    };
    json::error_code ec;
    auto doc = json::parse(res.body, ec);
    if (ec)
      return malformed("not JSON (" + ec.message() + ")");
    if (!doc.is_object())
      return malformed("not a JSON object");
    auto* data = doc.as_object().if_contains("data");
    if (data == nullptr || !data->is_array())
      return malformed("no data array");
    const auto& rows = data->as_array();
    if (rows.size() != count)
      return malformed("asked for " + std::to_string(count)
                       + " embeddings, got " + std::to_string(rows.size()));
    // Row k of the answer goes to slot index; the server may answer in
    // any order and says where each row belongs by its index.
    std::vector<std::vector<float>> slots(count);
    std::vector<bool> filled(count, false);
    std::vector<std::byte> bytes;
    for (size_t k = 0; k < rows.size(); ++k) {
      if (!rows[k].is_object())
        return malformed("data[" + std::to_string(k) + "] is not an object");
      const auto& row = rows[k].as_object();
      size_t index = k;
      if (auto* ix = row.if_contains("index")) {
        if (ix->is_int64() && ix->as_int64() >= 0)
          index = static_cast<size_t>(ix->as_int64());
        else if (ix->is_uint64())
          index = static_cast<size_t>(ix->as_uint64());
        else
          return malformed("data[" + std::to_string(k)
                           + "].index is not a non-negative integer");
      }
      if (index >= count || filled[index])
        return malformed("data[" + std::to_string(k) + "].index "
                         + std::to_string(index)
                         + " is out of range or repeated");
      filled[index] = true;
      auto& values = slots[index];
      auto* embedding = row.if_contains("embedding");
      if (embedding != nullptr && embedding->is_string()) {
        // encoding_format "base64": little-endian float32.
        const auto& text = embedding->as_string();
        bytes.clear();
        if (!base64_decode({text.data(), text.size()}, bytes)
            || bytes.size() % 4 != 0)
          return malformed("the embedding of input " + std::to_string(index)
                           + " is a string but not base64 of float32 "
                             "values");
        append_float32le(bytes, values);
      } else if (embedding != nullptr && embedding->is_array()) {
        for (const auto& v : embedding->as_array()) {
          double x = 0;
          if (v.is_double())
            x = v.as_double();
          else if (v.is_int64())
            x = static_cast<double>(v.as_int64());
          else if (v.is_uint64())
            x = static_cast<double>(v.as_uint64());
          else
            return malformed("the embedding of input " + std::to_string(index)
                             + " holds a value that is not a number");
          if (!std::isfinite(x))
            return malformed("the embedding of input " + std::to_string(index)
                             + " holds a non-finite value");
          values.push_back(static_cast<float>(x));
        }
      } else {
        return malformed("data[" + std::to_string(k)
                         + "].embedding is missing or neither an array of "
                           "numbers nor a base64 string");
      }
      for (float f : values)
        if (!std::isfinite(f))
          return malformed("the embedding of input " + std::to_string(index)
                           + " holds a non-finite value");
    }
    for (size_t index = 0; index < count; ++index) {
      const auto& values = slots[index];
      if (values.empty())
        return malformed("the embedding of input " + std::to_string(index)
                         + " is empty");
      if (out.dimension == 0)
        out.dimension = values.size();
      if (values.size() != out.dimension)
        return endpoint_.fail(
          errc::unspecified,
          "embeddings of different dimensions ("
            + std::to_string(out.dimension) + " and "
            + std::to_string(values.size()) + ") in one call");
      out.values.insert(out.values.end(), values.begin(), values.end());
    }
    return {};
  }

  embedding_options opts_;
  openai_endpoint endpoint_;
};

} // namespace

// -- public interface ----------------------------------------------------------

std::vector<float> hash_embedding(std::string_view text, size_t dimension) {
  std::vector<float> result(dimension, 0.0f);
  hash_into(text, result.data(), dimension);
  return result;
}

std::string hashing_model_name(size_t dimension) {
  return "engram-hashing-v1-" + std::to_string(dimension);
}

std::string embeddings_url(std::string_view base_url) {
  return openai_api_url(base_url, "embeddings");
}

caf::expected<std::unique_ptr<embedding_provider>>
make_embedding_provider(const embedding_options& opts, llm_environment env) {
  if (opts.provider == "hashing") {
    if (opts.dimension == 0)
      return make_error(errc::invalid_config,
                        "the hashing embedding provider needs a dimension of "
                        "at least 1 (embedding.dimension = 0)");
    return std::unique_ptr<embedding_provider>{
      new hashing_provider{opts.dimension}};
  }
  if (opts.provider != "openai")
    return make_error(errc::invalid_config,
                      "unknown embedding provider '" + opts.provider
                        + "' (known: hashing, openai)");
  if (opts.batch_size == 0)
    return make_error(errc::invalid_config,
                      "the openai embedding provider needs a batch size of at "
                      "least 1 (embedding.batch_size = 0)");
  if (opts.encoding_format != "float" && opts.encoding_format != "base64")
    return make_error(errc::invalid_config,
                      "embedding.encoding_format must be float or base64, got '"
                        + opts.encoding_format + "'");
  if (opts.model.empty())
    return make_error(errc::invalid_config,
                      "the openai embedding provider needs a model "
                      "(embedding.model is empty): every vector records it");
  openai_endpoint_options endpoint_opts;
  endpoint_opts.kind = "embedding";
  endpoint_opts.operation = "openai embeddings";
  endpoint_opts.api_key_env = opts.api_key_env;
  endpoint_opts.timeout = opts.timeout;
  endpoint_opts.retry = retry_options{opts.max_attempts, opts.retry_base_delay,
                                      opts.retry_max_delay};
  auto endpoint = openai_endpoint::make(embeddings_url(opts.base_url),
                                        std::move(endpoint_opts),
                                        std::move(env));
  if (!endpoint)
    return std::move(endpoint.error());
  return std::unique_ptr<embedding_provider>{
    new openai_embedding_provider{opts, std::move(*endpoint)}};
}

} // namespace engram
