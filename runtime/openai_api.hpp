#pragma once

// The plumbing both OpenAI-compatible providers share (the `openai` LLM
// provider and the `openai` embedding provider): the endpoint URL rule, the
// API key rule, the request (JSON, bearer key, timeout, retries through
// `send_with_retries`) and the mapping of error statuses to `errc`. Internal
// to runtime/: other code uses the providers.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/errc.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/outbound_http.hpp"

namespace engram {

/// `base_url` without trailing slashes, then "/v1/<path>" ("/<path>" if it
/// already ends in "/v1").
[[nodiscard]] std::string openai_api_url(std::string_view base_url,
                                         std::string_view path);

/// What an OpenAI-compatible endpoint needs besides its URL.
struct openai_endpoint_options {
  /// Names the provider in configuration errors ("LLM", "embedding").
  std::string kind;
  /// Prefixes every request error, e.g. "openai completion".
  std::string operation;
  /// Name of the environment variable that holds the API key.
  std::string api_key_env;
  /// Bound on one HTTP attempt.
  std::chrono::milliseconds timeout{60000};
  /// How failed attempts are retried.
  retry_options retry;
};

/// One OpenAI-compatible endpoint with its key and environment resolved.
/// Safe to use from several threads at once.
class openai_endpoint {
public:
  /// Resolves `url` (an absolute http(s) URL) and the key in
  /// `opts.api_key_env`, and fills the unset fields of `env`. Fails with
  /// invalid_config for an invalid URL or an unset or empty key variable
  /// unless the URL points to the local host (127.0.0.0/8, ::1, localhost),
  /// which may go without a key.
  [[nodiscard]] static caf::expected<openai_endpoint>
  make(std::string url, openai_endpoint_options opts, llm_environment env);

  /// POSTs `body` (JSON) with `Authorization: Bearer <key>` when there is a
  /// key, retrying timeouts, connection failures, 429 and 5xx (honouring
  /// Retry-After). Returns a 2xx response, or an error made by `fail`:
  /// transport errors keep their code, 401/403 become unauthorized (naming
  /// the key variable, never the key), 400/404/422 invalid_argument, 413
  /// too_large, others unspecified; the server's `error.message` is quoted
  /// when it sends one.
  [[nodiscard]] caf::expected<http_response> post_json(std::string body) const;

  /// An error "<operation> (<origin>): <what>" with `code`.
  [[nodiscard]] caf::error fail(errc code, const std::string& what) const;

  /// The endpoint's URL.
  [[nodiscard]] const std::string& url() const noexcept {
    return url_;
  }

private:
  openai_endpoint() = default;

  [[nodiscard]] caf::error status_error(const http_response& res) const;

  openai_endpoint_options opts_;
  std::string url_;
  parsed_url parsed_;
  std::optional<std::string> key_;
  llm_environment env_;
};

} // namespace engram
