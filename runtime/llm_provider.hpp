#pragma once

// Large-language-model providers behind one interface: `openai` (any
// OpenAI-compatible chat-completions endpoint, over `outbound_http`) and
// `extractive` (built in, offline, deterministic: picks salient sentences of
// the input). Plus the deterministic text helpers the extractive provider
// and memory extraction share: a tokenizer, a sentence splitter and
// `extract_facts`.
//
// Token counting rule (`count_tokens`): a token is a maximal run of word
// characters (ASCII letters and digits, '_', and every byte >= 0x80, so that
// a UTF-8 word counts once), or a single other non-whitespace character
// (punctuation, symbols). "Don't panic, it's 3.14!" is 12 tokens:
// Don ' t panic , it ' s 3 . 14 !  It is an estimate for budgets and
// metrics, not any model's tokenizer.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "runtime/clock.hpp"
#include "runtime/outbound_http.hpp"

namespace engram {

/// One message of a conversation ("system", "user", "assistant", ...).
struct chat_message {
  std::string role;
  std::string content;
};

/// What a provider returns.
struct completion {
  std::string content;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  /// The model that answered (as the provider reports it).
  std::string model;
};

/// Per-call settings; unset fields take the provider's defaults.
struct completion_options {
  /// Model name; empty: the provider's configured model.
  std::string model;
  /// Sampling temperature (openai only).
  std::optional<double> temperature;
  /// Upper bound on the answer's length in tokens.
  std::optional<int64_t> max_tokens;
};

/// A source of completions. Implementations are safe to call from several
/// threads at once; `complete` blocks (network I/O for remote providers), so
/// call it from a detached actor or a worker thread.
class llm_provider {
public:
  virtual ~llm_provider() = default;

  /// Answers the conversation `messages`. Never throws.
  [[nodiscard]] virtual caf::expected<completion>
  complete(const std::vector<chat_message>& messages,
           const completion_options& opts)
    = 0;

  /// The provider's name as configured ("openai", "extractive").
  [[nodiscard]] virtual std::string name() const = 0;
};

/// Configuration of the LLM provider (the `[llm]` section).
struct llm_options {
  /// "extractive" (built in, offline) or "openai" (OpenAI-compatible API).
  std::string provider = "extractive";
  /// Base URL of the OpenAI-compatible API; "/v1/chat/completions" is
  /// appended ("/chat/completions" if it already ends in "/v1").
  std::string base_url = "https://api.openai.com";
  /// Default model.
  std::string model = "gpt-4o-mini";
  /// Name of the environment variable that holds the API key (the key itself
  /// never appears in configuration or logs).
  std::string api_key_env = "OPENAI_API_KEY";
  /// Bound on one HTTP attempt.
  std::chrono::milliseconds timeout{60000};
  /// Attempts per completion (first included) on timeouts, connection
  /// failures, 429 and 5xx.
  int max_attempts = 3;
  /// Backoff after the first failed attempt (doubling), unless the server
  /// sends Retry-After.
  std::chrono::milliseconds retry_base_delay{1000};
  /// Cap on the backoff and on a server's Retry-After.
  std::chrono::milliseconds retry_max_delay{30000};
};

/// What a provider needs from the process; every field has a default, tests
/// replace them.
struct llm_environment {
  /// The HTTP client; null: a new `outbound_http` with default options.
  std::shared_ptr<const http_client> http;
  /// Looks up an environment variable; null: std::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  /// Waits between attempts; null: `blocking_sleep()`.
  sleep_function sleep;
  /// The clock Retry-After dates are measured against; null: `real_clock()`.
  const clock* clk = nullptr;
};

/// Creates the provider named in `opts.provider`. Fails with
/// invalid_config for an unknown name, an invalid base URL, or (openai) an
/// API key variable that is unset or empty, unless the base URL points to
/// the local host (127.0.0.1, ::1, localhost), which may go without a key.
[[nodiscard]] caf::expected<std::unique_ptr<llm_provider>>
make_llm_provider(const llm_options& opts, llm_environment env = {});

/// The chat-completions URL for `base_url` (see `llm_options::base_url`).
[[nodiscard]] std::string chat_completions_url(std::string_view base_url);

// -- deterministic text helpers ----------------------------------------------

/// Splits `text` into tokens by the rule at the top of this file.
[[nodiscard]] std::vector<std::string_view> tokenize(std::string_view text);

/// The number of tokens of `text` (`tokenize(text).size()`).
[[nodiscard]] int64_t count_tokens(std::string_view text);

/// Splits `text` into trimmed sentences, in order: a sentence ends after
/// '.', '!' or '?' (and any closing quotes or brackets) followed by
/// whitespace or the end, or at a line break; a period after a single
/// letter or a common abbreviation (e.g., i.e., Mr., Dr., vs.) does not end
/// one. List markers at the start of a line ("- ", "* ", "1. ") are dropped.
[[nodiscard]] std::vector<std::string> split_sentences(std::string_view text);

/// The answer of the extractive provider: the most salient sentences of
/// `text`, in their original order, joined by spaces. Salience is the sum,
/// over a sentence's content words (lower-cased word tokens, English stop
/// words excluded, no stemming), of how often each occurs in the whole
/// text, divided by the square root of their number; ties go to the earlier
/// sentence. Keeps
/// clamp((n + 2) / 3, 1, 5) of n sentences and at most `max_tokens` tokens
/// (a single sentence longer than that is cut and ends in "…").
[[nodiscard]] std::string summarize_extractive(std::string_view text,
                                               int64_t max_tokens = 200);

/// Standalone fact sentences of the user and assistant messages (other
/// roles are ignored), in order: sentences by `split_sentences`, a leading
/// interjection ("Hi,", "Thanks!", "Ok,", ...) removed, questions skipped,
/// sentences of fewer than 4 words skipped, pleasantries ("thank you so
/// much", "have a nice day", ...) skipped, the first letter capitalized, a
/// final '.' added when the sentence has no end mark, duplicates (case, whitespace and end
/// punctuation ignored) dropped after their first occurrence.
[[nodiscard]] std::vector<std::string>
extract_facts(const std::vector<chat_message>& messages);

} // namespace engram
