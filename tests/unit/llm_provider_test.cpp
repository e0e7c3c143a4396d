#include "runtime/llm_provider.hpp"

#include <deque>
#include <mutex>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

/// An http_client that answers from a script and records the requests.
class scripted_client final : public http_client {
public:
  void push(caf::expected<http_response> x) {
    std::lock_guard guard{mtx_};
    script_.push_back(std::move(x));
  }

  caf::expected<http_response> send(const http_request& req) const override {
    std::lock_guard guard{mtx_};
    requests_.push_back(req);
    if (script_.empty())
      return make_error(errc::unspecified, "script exhausted");
    auto next = std::move(script_.front());
    script_.pop_front();
    return next;
  }

  std::vector<http_request> requests() const {
    std::lock_guard guard{mtx_};
    return requests_;
  }

private:
  mutable std::mutex mtx_;
  mutable std::deque<caf::expected<http_response>> script_;
  mutable std::vector<http_request> requests_;
};

llm_environment env_with(std::shared_ptr<scripted_client> client,
                         std::optional<std::string> key = "sk-test",
                         std::vector<std::chrono::milliseconds>* sleeps = nullptr) {
  llm_environment env;
  env.http = std::move(client);
  env.getenv = [key](const std::string&) { return key; };
  env.sleep = [sleeps](std::chrono::milliseconds d) {
    if (sleeps != nullptr)
      sleeps->push_back(d);
    return true;
  };
  return env;
}

llm_options openai_options() {
  llm_options opts;
  opts.provider = "openai";
  opts.base_url = "https://llm.example.com";
  opts.model = "test-model";
  opts.retry_base_delay = 10ms;
  return opts;
}

std::unique_ptr<llm_provider> extractive() {
  auto p = make_llm_provider(llm_options{});
  EXPECT_TRUE(p) << describe(p.error());
  return p ? std::move(*p) : nullptr;
}

const char* const article
  = "The consolidation job merges duplicate memories every night. "
    "Weather was nice yesterday. "
    "Duplicate memories waste tokens and confuse agents. "
    "The job compares memories by embedding similarity. "
    "Similar memories are merged into one summary memory. "
    "Lunch was pasta.";

} // namespace

// -- tokenizer -------------------------------------------------------------------

TEST(count_tokens, follows_the_documented_rule) {
  EXPECT_EQ(count_tokens(""), 0);
  EXPECT_EQ(count_tokens("   \n\t "), 0);
  EXPECT_EQ(count_tokens("hello   world"), 2);
  // Don ' t panic , it ' s 3 . 14 !
  EXPECT_EQ(count_tokens("Don't panic, it's 3.14!"), 12);
  EXPECT_EQ(count_tokens("snake_case_name"), 1);
  // A UTF-8 word is one token.
  EXPECT_EQ(count_tokens("caf\xC3\xA9 au lait"), 3);
  auto toks = tokenize("a+b = c");
  EXPECT_EQ(toks, (std::vector<std::string_view>{"a", "+", "b", "=", "c"}));
}

// -- sentences ---------------------------------------------------------------------

TEST(split_sentences, splits_at_end_marks_and_lines) {
  EXPECT_EQ(split_sentences("Dr. Smith arrived. He said hi! Did he?  Yes."),
            (strings{"Dr. Smith arrived.", "He said hi!", "Did he?", "Yes."}));
  EXPECT_EQ(split_sentences("Pi is 3.14 today. Visit example.com now"),
            (strings{"Pi is 3.14 today.", "Visit example.com now"}));
  EXPECT_EQ(split_sentences("Use tools, e.g. grep. Done."),
            (strings{"Use tools, e.g. grep.", "Done."}));
  EXPECT_EQ(split_sentences("He said \"stop.\" Then left."),
            (strings{"He said \"stop.\"", "Then left."}));
  EXPECT_EQ(split_sentences("Wait... what?! Ok"),
            (strings{"Wait...", "what?!", "Ok"}));
}

TEST(split_sentences, drops_list_markers_and_blank_lines) {
  EXPECT_EQ(split_sentences("Plan:\n\n- buy milk\n* call Bob\n2. pay rent\n"),
            (strings{"Plan:", "buy milk", "call Bob", "pay rent"}));
  EXPECT_TRUE(split_sentences("").empty());
  EXPECT_TRUE(split_sentences(" \n \n").empty());
}

// -- extractive summaries ---------------------------------------------------------

TEST(summarize_extractive, keeps_the_salient_sentences_in_order) {
  auto summary = summarize_extractive(article);
  // 6 sentences -> (6 + 2) / 3 = 2 kept: the two that share the most
  // frequent terms (memories x4, job x2, duplicate x2) score highest
  // (12/sqrt(7) and 10/sqrt(6)); small talk is left out.
  EXPECT_EQ(summary,
            "The consolidation job merges duplicate memories every night. "
            "Duplicate memories waste tokens and confuse agents.");
  EXPECT_EQ(summary.find("Weather"), std::string::npos);
  EXPECT_EQ(summary.find("pasta"), std::string::npos);
}

TEST(summarize_extractive, is_deterministic) {
  auto a = summarize_extractive(article);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(summarize_extractive(article), a);
}

TEST(summarize_extractive, respects_the_token_budget) {
  auto summary = summarize_extractive(article, 12);
  EXPECT_LE(count_tokens(summary), 12);
  EXPECT_FALSE(summary.empty());
  // One sentence above the budget is cut and marked.
  std::string long_sentence = "Memory";
  for (int i = 0; i < 50; ++i)
    long_sentence += " consolidation";
  long_sentence += ".";
  auto cut = summarize_extractive(long_sentence, 5);
  EXPECT_EQ(cut, "Memory consolidation consolidation consolidation "
                 "consolidation\u2026");
  EXPECT_LE(count_tokens(cut), 5);
}

TEST(summarize_extractive, short_inputs_come_back_whole) {
  EXPECT_EQ(summarize_extractive("Just one sentence here."),
            "Just one sentence here.");
  EXPECT_EQ(summarize_extractive("   "), "");
}

// -- extractive provider -----------------------------------------------------------

TEST(extractive_provider, answers_from_the_last_user_message) {
  auto p = extractive();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name(), "extractive");
  std::vector<chat_message> msgs{
    {"system", "You summarize memories."},
    {"user", "Ignore this older message entirely."},
    {"assistant", "Ok."},
    {"user", article},
  };
  auto c = p->complete(msgs, {});
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->content, summarize_extractive(article));
  EXPECT_EQ(c->model, "extractive");
  EXPECT_EQ(c->completion_tokens, count_tokens(c->content));
  EXPECT_EQ(c->prompt_tokens,
            count_tokens("You summarize memories.")
              + count_tokens("Ignore this older message entirely.")
              + count_tokens("Ok.") + count_tokens(article));
  // Same input, same output.
  auto again = p->complete(msgs, {});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->content, c->content);
  EXPECT_EQ(again->prompt_tokens, c->prompt_tokens);
}

TEST(extractive_provider, honours_max_tokens_and_refuses_no_messages) {
  auto p = extractive();
  ASSERT_NE(p, nullptr);
  completion_options opts;
  opts.max_tokens = 12;
  auto c = p->complete({{"user", article}}, opts);
  ASSERT_TRUE(c);
  EXPECT_LE(c->completion_tokens, 12);
  auto none = p->complete({}, {});
  ASSERT_FALSE(none);
  EXPECT_EQ(code_of(none.error()), errc::invalid_argument);
}

// -- extract_facts --------------------------------------------------------------------

TEST(extract_facts, keeps_standalone_statements_of_user_and_assistant) {
  std::vector<chat_message> msgs{
    {"system", "You are a helpful assistant with a long prompt here."},
    {"user", "Hi there! My name is Alice and I live in Berlin. "
             "Can you help me plan a trip?"},
    {"assistant", "Sure, Berlin has great museums to visit. Thanks!"},
    {"user", "hello\nI prefer trains over planes\nok"},
    {"user", "my name is alice and I live in Berlin!"},
    {"assistant", "Thank you so much for the details. Have a nice day."},
  };
  EXPECT_EQ(extract_facts(msgs),
            (strings{"My name is Alice and I live in Berlin.",
                     "Berlin has great museums to visit.",
                     "I prefer trains over planes."}));
}

TEST(extract_facts, skips_questions_short_sentences_and_duplicates) {
  std::vector<chat_message> msgs{
    {"user", "What time is it now?"},
    {"user", "Yes."},
    {"user", "Sounds good to me."},
    {"user", "The deploy runs   at 5 pm daily."},
    {"user", "the deploy runs at 5 PM daily"},
    {"tool", "The tool output has many words in it."},
  };
  EXPECT_EQ(extract_facts(msgs),
            (strings{"Sounds good to me.", "The deploy runs   at 5 pm daily."}));
  EXPECT_TRUE(extract_facts({}).empty());
}

TEST(extract_facts, is_deterministic) {
  std::vector<chat_message> msgs{{"user", article}, {"assistant", article}};
  auto a = extract_facts(msgs);
  // Six sentences, "Lunch was pasta." is too short, the copy is a duplicate.
  EXPECT_EQ(a.size(), 5u);
  EXPECT_EQ(extract_facts(msgs), a);
}

// -- factory -------------------------------------------------------------------------

TEST(make_llm_provider, refuses_an_unknown_provider) {
  llm_options opts;
  opts.provider = "gpt-magic";
  auto p = make_llm_provider(opts);
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
  EXPECT_NE(message_of(p.error()).find("gpt-magic"), std::string::npos);
}

TEST(make_llm_provider, openai_without_a_key_names_the_variable) {
  auto client = std::make_shared<scripted_client>();
  auto opts = openai_options();
  opts.api_key_env = "ENGRAM_TEST_LLM_KEY";
  for (std::optional<std::string> key : {std::optional<std::string>{},
                                         std::optional<std::string>{""}}) {
    auto p = make_llm_provider(opts, env_with(client, key));
    ASSERT_FALSE(p);
    EXPECT_EQ(code_of(p.error()), errc::invalid_config);
    EXPECT_NE(message_of(p.error()).find("ENGRAM_TEST_LLM_KEY"),
              std::string::npos)
      << message_of(p.error());
  }
  EXPECT_TRUE(client->requests().empty());
}

TEST(make_llm_provider, reads_the_key_from_the_named_variable) {
  auto client = std::make_shared<scripted_client>();
  auto opts = openai_options();
  opts.api_key_env = "MY_LLM_KEY";
  std::string asked;
  auto env = env_with(client);
  env.getenv = [&](const std::string& name) -> std::optional<std::string> {
    asked = name;
    return "sk-from-env";
  };
  auto p = make_llm_provider(opts, env);
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(asked, "MY_LLM_KEY");
  EXPECT_EQ((*p)->name(), "openai");
}

TEST(make_llm_provider, a_local_server_needs_no_key) {
  auto client = std::make_shared<scripted_client>();
  auto opts = openai_options();
  for (const char* base : {"http://127.0.0.1:8000", "http://localhost:11434/v1",
                           "http://[::1]:8080"}) {
    opts.base_url = base;
    auto p = make_llm_provider(opts, env_with(client, std::nullopt));
    EXPECT_TRUE(p) << base;
  }
}

TEST(make_llm_provider, refuses_an_invalid_base_url) {
  auto opts = openai_options();
  opts.base_url = "ftp://llm.example.com";
  auto p = make_llm_provider(opts, env_with(std::make_shared<scripted_client>()));
  ASSERT_FALSE(p);
  EXPECT_EQ(code_of(p.error()), errc::invalid_config);
}

TEST(chat_completions_url, appends_the_path_once) {
  EXPECT_EQ(chat_completions_url("https://api.openai.com"),
            "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(chat_completions_url("https://api.openai.com/"),
            "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(chat_completions_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1/chat/completions");
  EXPECT_EQ(chat_completions_url("http://127.0.0.1:8000/v1/"),
            "http://127.0.0.1:8000/v1/chat/completions");
  EXPECT_EQ(chat_completions_url("https://gw.example.com/openai"),
            "https://gw.example.com/openai/v1/chat/completions");
}

// -- openai provider against a scripted client --------------------------------------------

TEST(openai_provider, sends_a_chat_completion_request_and_parses_the_answer) {
  auto client = std::make_shared<scripted_client>();
  client->push(http_response{
    200,
    {{"Content-Type", "application/json"}},
    R"({"id":"x","model":"test-model-2024","choices":[{"index":0,"message":)"
    R"({"role":"assistant","content":"Hello there."},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":17,"completion_tokens":3,"total_tokens":20}})"});
  auto p = make_llm_provider(openai_options(), env_with(client));
  ASSERT_TRUE(p) << describe(p.error());
  completion_options opts;
  opts.temperature = 0.25;
  opts.max_tokens = 64;
  auto c = (*p)->complete({{"system", "Be brief."}, {"user", "Say hello"}}, opts);
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->content, "Hello there.");
  EXPECT_EQ(c->prompt_tokens, 17);
  EXPECT_EQ(c->completion_tokens, 3);
  EXPECT_EQ(c->model, "test-model-2024");
  auto reqs = client->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].url, "https://llm.example.com/v1/chat/completions");
  EXPECT_EQ(find_header(reqs[0].headers, "authorization"), "Bearer sk-test");
  EXPECT_EQ(find_header(reqs[0].headers, "content-type"), "application/json");
  EXPECT_EQ(reqs[0].timeout, 60s);
  auto body = boost::json::parse(reqs[0].body).as_object();
  EXPECT_EQ(body.at("model").as_string(), "test-model");
  EXPECT_DOUBLE_EQ(body.at("temperature").as_double(), 0.25);
  EXPECT_EQ(body.at("max_tokens").as_int64(), 64);
  const auto& msgs = body.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].at("role").as_string(), "user");
  EXPECT_EQ(msgs[1].at("content").as_string(), "Say hello");
}

TEST(openai_provider, a_per_call_model_overrides_the_default) {
  auto client = std::make_shared<scripted_client>();
  client->push(http_response{
    200, {}, R"({"choices":[{"message":{"content":"ok"}}]})"});
  auto p = make_llm_provider(openai_options(), env_with(client));
  ASSERT_TRUE(p);
  completion_options opts;
  opts.model = "other-model";
  auto c = (*p)->complete({{"user", "one two three"}}, opts);
  ASSERT_TRUE(c) << describe(c.error());
  auto body = boost::json::parse(client->requests().at(0).body).as_object();
  EXPECT_EQ(body.at("model").as_string(), "other-model");
  EXPECT_FALSE(body.contains("temperature"));
  // No usage in the answer: local estimates, and the requested model.
  EXPECT_EQ(c->model, "other-model");
  EXPECT_EQ(c->prompt_tokens, 3);
  EXPECT_EQ(c->completion_tokens, 1);
}

TEST(openai_provider, retries_429_and_5xx_through_the_helper) {
  auto client = std::make_shared<scripted_client>();
  client->push(http_response{429, {{"Retry-After", "2"}}, "{}"});
  client->push(http_response{503, {}, "{}"});
  client->push(http_response{
    200, {}, R"({"choices":[{"message":{"content":"done"}}]})"});
  std::vector<std::chrono::milliseconds> sleeps;
  auto p = make_llm_provider(openai_options(),
                             env_with(client, "sk-test", &sleeps));
  ASSERT_TRUE(p);
  auto c = (*p)->complete({{"user", "hi"}}, {});
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->content, "done");
  EXPECT_EQ(client->requests().size(), 3u);
  // Retry-After first, then the backoff step for attempt 2.
  EXPECT_EQ(sleeps, (std::vector<std::chrono::milliseconds>{2s, 20ms}));
}

TEST(openai_provider, malformed_answers_are_clear_non_retryable_errors) {
  for (const char* body :
       {"not json", "[]", "{}", R"({"choices":[]})",
        R"({"choices":[{"message":{"content":null}}]})",
        R"({"choices":[{"text":"legacy"}]})"}) {
    auto client = std::make_shared<scripted_client>();
    client->push(http_response{200, {}, body});
    auto p = make_llm_provider(openai_options(), env_with(client));
    ASSERT_TRUE(p);
    auto c = (*p)->complete({{"user", "hi"}}, {});
    ASSERT_FALSE(c) << body;
    EXPECT_FALSE(is_retryable(c.error())) << body;
    EXPECT_NE(message_of(c.error()).find("malformed response"),
              std::string::npos)
      << message_of(c.error());
    EXPECT_EQ(client->requests().size(), 1u);
  }
}

TEST(openai_provider, maps_error_statuses) {
  auto run = [](unsigned status, std::string body) {
    auto client = std::make_shared<scripted_client>();
    client->push(http_response{status, {}, std::move(body)});
    auto p = make_llm_provider(openai_options(), env_with(client));
    EXPECT_TRUE(p);
    auto c = (*p)->complete({{"user", "hi"}}, {});
    EXPECT_FALSE(c);
    return c ? caf::error{} : c.error();
  };
  auto unauthorized
    = run(401, R"({"error":{"message":"Incorrect API key provided"}})");
  EXPECT_EQ(code_of(unauthorized), errc::unauthorized);
  EXPECT_NE(message_of(unauthorized).find("Incorrect API key provided"),
            std::string::npos);
  EXPECT_NE(message_of(unauthorized).find("OPENAI_API_KEY"), std::string::npos);
  // The key itself is never part of an error.
  EXPECT_EQ(message_of(unauthorized).find("sk-test"), std::string::npos);
  EXPECT_EQ(code_of(run(400, "bad")), errc::invalid_argument);
  EXPECT_EQ(code_of(run(413, "big")), errc::too_large);
}

TEST(openai_provider, transport_errors_keep_their_code) {
  auto client = std::make_shared<scripted_client>();
  client->push(make_error(errc::invalid_config, "TLS certificate verification failed"));
  auto p = make_llm_provider(openai_options(), env_with(client));
  ASSERT_TRUE(p);
  auto c = (*p)->complete({{"user", "hi"}}, {});
  ASSERT_FALSE(c);
  EXPECT_EQ(code_of(c.error()), errc::invalid_config);
  EXPECT_NE(message_of(c.error()).find("TLS certificate"), std::string::npos);
}
