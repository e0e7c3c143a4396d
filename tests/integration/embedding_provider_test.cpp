// The openai embedding provider against a real local server
// (tests/support/fake_http_server): real sockets and HTTP parsing, a local
// base URL, injected sleeps. Needs no database.

#include "runtime/embedding_provider.hpp"

#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "messages/errc.hpp"
#include "tests/support/fake_http_server.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

namespace json = boost::json;

/// Records the delays it is asked to wait, and waits none of them.
struct recorded_sleep {
  std::vector<std::chrono::milliseconds> delays;
  sleep_function fn() {
    return [this](std::chrono::milliseconds d) {
      delays.push_back(d);
      return true;
    };
  }
};

llm_environment local_env(recorded_sleep* sleep = nullptr) {
  llm_environment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "ENGRAM_TEST_KEY")
      return "sk-local-test";
    return std::nullopt;
  };
  if (sleep != nullptr)
    env.sleep = sleep->fn();
  return env;
}

embedding_options local_embedding(const fake_http_server& server) {
  embedding_options opts;
  opts.provider = "openai";
  opts.base_url = server.url();
  opts.model = "fake-embedding";
  opts.api_key_env = "ENGRAM_TEST_KEY";
  opts.timeout = 2s;
  opts.max_attempts = 3;
  opts.retry_base_delay = 10ms;
  return opts;
}

std::unique_ptr<embedding_provider> provider_for(const embedding_options& opts,
                                                 recorded_sleep* sleep
                                                 = nullptr) {
  auto p = make_embedding_provider(opts, local_env(sleep));
  EXPECT_TRUE(p) << describe(p.error());
  return p ? std::move(*p) : nullptr;
}

/// An embeddings answer with `rows` (index, vector) in the given order.
canned_response
embeddings_answer(const std::vector<std::pair<int, std::vector<double>>>& rows) {
  json::array data;
  for (const auto& [index, values] : rows) {
    json::array embedding;
    for (auto v : values)
      embedding.emplace_back(v);
    data.push_back(json::object{{"object", "embedding"},
                                {"index", index},
                                {"embedding", std::move(embedding)}});
  }
  return json_response(json::serialize(json::object{
    {"object", "list"},
    {"data", std::move(data)},
    {"model", "fake-embedding"},
    {"usage", json::object{{"prompt_tokens", 5}, {"total_tokens", 5}}}}));
}

/// Answers every request with one row per input, {k, k + .5} for the k-th
/// text it has seen across requests (so batches can be told apart).
fake_http_server::handler echo_rows() {
  auto next = std::make_shared<int>(0);
  return [next](const recorded_request& req) {
    auto body = json::parse(req.body).as_object();
    auto n = static_cast<int>(body.at("input").as_array().size());
    std::vector<std::pair<int, std::vector<double>>> rows;
    for (int i = 0; i < n; ++i) {
      auto k = (*next)++;
      rows.push_back({i, {double(k), k + 0.5}});
    }
    return embeddings_answer(rows);
  };
}

} // namespace

TEST(openai_embedding_live, sends_the_texts_and_reads_the_rows) {
  fake_http_server server;
  server.enqueue(embeddings_answer({{0, {0.1, 0.2, 0.3}}, {1, {1, -2, 3e-3}}}));
  auto p = provider_for(local_embedding(server));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->model(), "fake-embedding");
  auto batch = p->embed({"first text", "second \"text\"\n"});
  ASSERT_TRUE(batch) << describe(batch.error());
  EXPECT_EQ(batch->dimension, 3u);
  EXPECT_EQ(batch->values,
            (std::vector<float>{0.1f, 0.2f, 0.3f, 1.0f, -2.0f, 3e-3f}));
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v1/embeddings");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer sk-local-test");
  EXPECT_EQ(seen[0].header("content-type"), "application/json");
  auto body = json::parse(seen[0].body).as_object();
  EXPECT_EQ(body.size(), 2u); // {"model", "input"} and nothing else.
  EXPECT_EQ(body.at("model").as_string(), "fake-embedding");
  EXPECT_EQ(body.at("input"), (json::array{"first text", "second \"text\"\n"}));
}

TEST(openai_embedding_live, asks_for_base64_when_configured_and_reads_either_form) {
  // 1.0f, -2.5f and 0.125f as little-endian float32, base64.
  const char* one_two = "AACAPwAAIMAAAAA+";
  fake_http_server server;
  server.enqueue(json_response(
    std::string{R"({"data": [{"index": 1, "embedding": [4, 5, 6]}, )"}
    + R"({"index": 0, "embedding": ")" + one_two + R"("}]})"));
  server.enqueue(json_response(
    std::string{R"({"data": [{"index": 0, "embedding": ")"} + one_two
    + R"("}]})"));
  auto opts = local_embedding(server);
  opts.encoding_format = "base64";
  auto p = provider_for(opts);
  ASSERT_NE(p, nullptr);
  auto mixed = p->embed({"a", "b"});
  ASSERT_TRUE(mixed) << describe(mixed.error());
  EXPECT_EQ(mixed->dimension, 3u);
  EXPECT_EQ(mixed->values,
            (std::vector<float>{1.0f, -2.5f, 0.125f, 4, 5, 6}));
  auto body = json::parse(server.requests().at(0).body).as_object();
  EXPECT_EQ(body.at("encoding_format").as_string(), "base64");
  // "float" (the default) is the API's default: not sent, base64 answers
  // still read.
  auto plain = provider_for(local_embedding(server));
  ASSERT_NE(plain, nullptr);
  auto one = plain->embed({"c"});
  ASSERT_TRUE(one) << describe(one.error());
  EXPECT_EQ(one->values, (std::vector<float>{1.0f, -2.5f, 0.125f}));
  EXPECT_FALSE(json::parse(server.requests().at(1).body)
                 .as_object()
                 .contains("encoding_format"));
}

TEST(openai_embedding_live, orders_rows_by_index) {
  fake_http_server server;
  server.enqueue(
    embeddings_answer({{2, {2, 2}}, {0, {0, 0}}, {1, {1, 1}}}));
  auto p = provider_for(local_embedding(server));
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"a", "b", "c"});
  ASSERT_TRUE(batch) << describe(batch.error());
  EXPECT_EQ(batch->values, (std::vector<float>{0, 0, 1, 1, 2, 2}));
}

TEST(openai_embedding_live, sends_batches_of_batch_size) {
  fake_http_server server{echo_rows()};
  auto opts = local_embedding(server);
  opts.batch_size = 2;
  auto p = provider_for(opts);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"t0", "t1", "t2", "t3", "t4"});
  ASSERT_TRUE(batch) << describe(batch.error());
  // 5 texts in batches of 2: requests of 2, 2 and 1, rows in input order.
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(json::parse(seen[0].body).at("input"), (json::array{"t0", "t1"}));
  EXPECT_EQ(json::parse(seen[2].body).at("input"), (json::array{"t4"}));
  ASSERT_EQ(batch->size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(batch->row(i)[0], static_cast<float>(i)) << i;
  // No texts: no request.
  auto none = p->embed({});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->size(), 0u);
  EXPECT_EQ(server.request_count(), 3u);
}

TEST(openai_embedding_live, retries_503_and_429_then_succeeds) {
  fake_http_server server;
  server.enqueue({503, {}, "overloaded"});
  server.enqueue(json_response(R"({"error":{"message":"Rate limit"}})", 429));
  server.enqueue({429, {{"Retry-After", "2"}}, "slow down"});
  server.enqueue(embeddings_answer({{0, {1, 0}}}));
  recorded_sleep sleep;
  auto opts = local_embedding(server);
  opts.max_attempts = 4;
  auto p = provider_for(opts, &sleep);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"hello"});
  ASSERT_TRUE(batch) << describe(batch.error());
  EXPECT_EQ(batch->values, (std::vector<float>{1, 0}));
  EXPECT_EQ(server.request_count(), 4u);
  // Backoff (10ms, 20ms), then the server's Retry-After.
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{10ms, 20ms,
                                                                  2s}));
}

TEST(openai_embedding_live, a_401_is_not_retried) {
  fake_http_server server{[](const recorded_request&) {
    return json_response(R"({"error":{"message":"Incorrect API key"}})", 401);
  }};
  recorded_sleep sleep;
  auto p = provider_for(local_embedding(server), &sleep);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"hello"});
  ASSERT_FALSE(batch);
  EXPECT_EQ(code_of(batch.error()), errc::unauthorized);
  EXPECT_FALSE(is_retryable(batch.error()));
  EXPECT_NE(message_of(batch.error()).find("Incorrect API key"),
            std::string::npos);
  EXPECT_NE(message_of(batch.error()).find("ENGRAM_TEST_KEY"),
            std::string::npos);
  EXPECT_EQ(message_of(batch.error()).find("sk-local-test"), std::string::npos);
  EXPECT_EQ(server.request_count(), 1u);
  EXPECT_TRUE(sleep.delays.empty());
}

TEST(openai_embedding_live, a_server_that_keeps_failing_gives_a_retryable_error) {
  fake_http_server server{[](const recorded_request&) {
    return canned_response{503, {{"Retry-After", "0"}}, "overloaded"};
  }};
  recorded_sleep sleep;
  auto p = provider_for(local_embedding(server), &sleep);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"hello"});
  ASSERT_FALSE(batch);
  EXPECT_TRUE(is_retryable(batch.error()));
  EXPECT_EQ(server.request_count(), 3u);
}

TEST(openai_embedding_live, mismatched_dimensions_are_an_error) {
  // Within one answer.
  fake_http_server server;
  server.enqueue(embeddings_answer({{0, {1, 2, 3}}, {1, {1, 2}}}));
  auto p = provider_for(local_embedding(server));
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"a", "b"});
  ASSERT_FALSE(batch);
  EXPECT_FALSE(is_retryable(batch.error()));
  EXPECT_NE(message_of(batch.error()).find("different dimensions (3 and 2)"),
            std::string::npos)
    << describe(batch.error());
  // Across the batches of one call.
  server.enqueue(embeddings_answer({{0, {1, 2, 3}}}));
  server.enqueue(embeddings_answer({{0, {1, 2, 3, 4}}}));
  auto opts = local_embedding(server);
  opts.batch_size = 1;
  p = provider_for(opts);
  ASSERT_NE(p, nullptr);
  batch = p->embed({"a", "b"});
  ASSERT_FALSE(batch);
  EXPECT_NE(message_of(batch.error()).find("different dimensions (3 and 4)"),
            std::string::npos)
    << describe(batch.error());
}

TEST(openai_embedding_live, malformed_answers_are_non_retryable_errors) {
  for (const char* body : {
         "not json",
         R"({"data": {}})",
         // One row for two inputs.
         R"({"data": [{"index": 0, "embedding": [1, 2]}]})",
         // The same index twice, an index out of range.
         R"({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]})",
         R"({"data": [{"index": 0, "embedding": [1]}, {"index": 5, "embedding": [2]}]})",
         // Not numbers, empty, base64 of 3 bytes, not base64, base64 of a
         // NaN, a vector neither an array nor a string.
         R"({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": ["x"]}]})",
         R"({"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": []}]})",
         R"({"data": [{"index": 0, "embedding": "AAAA"}, {"index": 1, "embedding": "AAAA"}]})",
         R"({"data": [{"index": 0, "embedding": "AACAPw=="}, {"index": 1, "embedding": "no base64!"}]})",
         R"({"data": [{"index": 0, "embedding": "AACAPw=="}, {"index": 1, "embedding": "AADAfw=="}]})",
         R"({"data": [{"index": 0, "embedding": "AACAPw=="}, {"index": 1, "embedding": ""}]})",
         R"({"data": [{"index": 0, "embedding": "AACAPw=="}, {"index": 1, "embedding": {}}]})",
         // Beyond float range (finite as a double), and beyond double range.
         R"({"data": [{"index": 0, "embedding": [1e300]}, {"index": 1, "embedding": [1]}]})",
         R"({"data": [{"index": 0, "embedding": [1e999]}, {"index": 1, "embedding": [1]}]})",
       }) {
    fake_http_server server;
    server.enqueue(json_response(body));
    auto p = provider_for(local_embedding(server));
    ASSERT_NE(p, nullptr);
    auto batch = p->embed({"a", "b"});
    ASSERT_FALSE(batch) << body;
    EXPECT_FALSE(is_retryable(batch.error())) << body;
    EXPECT_EQ(server.request_count(), 1u) << body;
  }
}

TEST(openai_embedding_live, a_local_server_needs_no_key) {
  fake_http_server server;
  server.enqueue(embeddings_answer({{0, {0.5}}}));
  auto opts = local_embedding(server);
  opts.base_url = server.url() + "/v1/";
  opts.api_key_env = "ENGRAM_TEST_UNSET_KEY";
  auto p = provider_for(opts);
  ASSERT_NE(p, nullptr);
  auto batch = p->embed({"a"});
  ASSERT_TRUE(batch) << describe(batch.error());
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/embeddings");
  EXPECT_EQ(seen[0].header("authorization"), "");
}
