#pragma once

// The daemon's one outbound HTTP/1.1 client, shared by the LLM provider and
// webhook delivery: plain http:// and https:// (OpenSSL, peer verification
// against the system CA store, SNI, host-name verification), one fresh
// connection per request, the whole exchange bounded by a deadline, a bounded
// response body. Synchronous: callers run on detached (blocking) actors or
// their own threads.
//
// Errors (engram::errc) and whether `is_retryable` says yes:
// - invalid_argument (no): malformed URL, unknown method, header injection.
// - timeout (yes): the deadline passed (resolve, connect, TLS, write or read).
// - unavailable (yes): the server cannot be reached or dropped the
//   connection (DNS failure, refused, reset, EOF before a complete
//   response). errc has no generic "unavailable" code yet; this is the one
//   retryable "cannot be reached right now" code it has.
// - invalid_config (no): TLS handshake refused (certificate not trusted, host
//   name mismatch, no common protocol): retrying will not help, fixing the
//   URL or the trust store will.
// - too_large (no): the response body or header exceeds the limit.
// - unspecified (no): a malformed HTTP response.
//
// Error messages name the origin (scheme://host:port) only, never the path or
// query: webhook URLs often carry secrets there.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "runtime/clock.hpp"

namespace engram {

/// Name/value pairs in order; names compare case-insensitively.
using http_headers = std::vector<std::pair<std::string, std::string>>;

/// Returns the value of the first header named `name` (case-insensitive), or
/// an empty string.
[[nodiscard]] std::string find_header(const http_headers& headers,
                                      std::string_view name);

/// An absolute http:// or https:// URL, split for a request.
struct parsed_url {
  /// "http" or "https" (lower case).
  std::string scheme;
  /// Host name (lower case) or IP literal; IPv6 without brackets.
  std::string host;
  /// Explicit port, or 80 / 443 by scheme.
  uint16_t port = 0;
  /// Path and query ("/" at least); the fragment is dropped.
  std::string target;

  [[nodiscard]] bool tls() const noexcept { return scheme == "https"; }
  /// "scheme://host:port": what error messages and logs show of a URL.
  [[nodiscard]] std::string origin() const;
  /// The Host header: the host, bracketed if IPv6, with ":port" unless the
  /// port is the scheme's default.
  [[nodiscard]] std::string host_header() const;
};

/// Parses `url` (scheme http or https, case-insensitive; a host; optional
/// port; optional path and query). Refuses (invalid_argument) other schemes,
/// user info ("user:pass@"), an empty host, a port outside 1..65535, and
/// whitespace or control characters anywhere.
[[nodiscard]] caf::expected<parsed_url> parse_url(std::string_view url);

/// Parses a Retry-After header value relative to `now`: delta-seconds
/// ("120"; a fractional "1.5" is accepted too) or an HTTP-date in any of the
/// three formats RFC 9110 requires recipients to accept (IMF-fixdate
/// "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT",
/// asctime "Sun Nov  6 08:49:37 1994"). A date in the past yields 0.
/// Returns nullopt for anything else. Values are clamped to 30 days.
[[nodiscard]] std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, wall_time now);

/// One request.
struct http_request {
  std::string method = "POST";
  /// Absolute http:// or https:// URL.
  std::string url;
  /// Sent as given; a header named like a default (User-Agent, Connection)
  /// replaces it. Host, Content-Length and Transfer-Encoding are set by the
  /// client from `url` and `body` and refused here (invalid_argument), as are
  /// names that are not tokens and values with CR, LF or NUL.
  http_headers headers;
  std::string body;
  /// Bound on the whole exchange: resolve, connect, TLS handshake, write,
  /// read.
  std::chrono::milliseconds timeout{30000};
};

/// One response, whatever its status (a 500 is a response, not an error).
struct http_response {
  unsigned status = 0;
  http_headers headers;
  std::string body;

  /// Returns the value of the first header named `name` (case-insensitive),
  /// or an empty string.
  [[nodiscard]] std::string header(std::string_view name) const;
};

/// Anything that sends a request and returns its response: the real client,
/// or a fake in tests. Implementations are safe to use from several threads
/// at once.
class http_client {
public:
  virtual ~http_client() = default;

  /// Sends `req` and reads the response. Never throws.
  [[nodiscard]] virtual caf::expected<http_response>
  send(const http_request& req) const = 0;
};

/// Settings of an `outbound_http` client.
struct outbound_http_options {
  /// Largest response body accepted (larger: too_large).
  std::size_t body_limit = 8 * 1024 * 1024;
  /// Largest response header block accepted (larger: too_large).
  std::size_t header_limit = 64 * 1024;
  /// Extra PEM file of trusted CAs, in addition to the system store (empty:
  /// none).
  std::string ca_file;
  /// Sent unless the request sets its own User-Agent.
  std::string user_agent = "engram";
};

/// The real client: Beast over Asio, OpenSSL for https. Holds one TLS
/// context (trusted CAs loaded once); every `send` uses its own io_context
/// and connection, so one instance serves any number of threads at once.
/// Redirects are not followed (a 3xx is returned as is).
class outbound_http final : public http_client {
public:
  /// Creates a client; fails (invalid_config) if the TLS context or the CA
  /// file cannot be set up.
  [[nodiscard]] static caf::expected<std::shared_ptr<outbound_http>>
  make(outbound_http_options opts = {});

  ~outbound_http() override;

  [[nodiscard]] caf::expected<http_response>
  send(const http_request& req) const override;

  [[nodiscard]] const outbound_http_options& options() const noexcept {
    return opts_;
  }

  struct impl;

private:
  outbound_http(outbound_http_options opts, std::unique_ptr<impl> pimpl);

  outbound_http_options opts_;
  std::unique_ptr<impl> impl_;
};

/// How `send_with_retries` retries.
struct retry_options {
  /// Attempts in total, the first included (values below 1 count as 1).
  int max_attempts = 3;
  /// Delay after the first failed attempt; doubles after each further one.
  std::chrono::milliseconds base_delay{500};
  /// Largest delay between attempts, also the cap on a server's Retry-After.
  std::chrono::milliseconds max_delay{30000};
};

/// Waits `delay` between two attempts; returns false to give up instead
/// (e.g. the daemon is stopping). The default sleeps and returns true.
using sleep_function = std::function<bool(std::chrono::milliseconds)>;

/// Returns a `sleep_function` that blocks the calling thread.
[[nodiscard]] sleep_function blocking_sleep();

/// Returns whether a response with `status` is worth retrying: 408, 429 and
/// every 5xx.
[[nodiscard]] bool is_retryable_status(unsigned status) noexcept;

/// The backoff before attempt `attempt + 1` after failed attempt `attempt`
/// (1 for the first): min(max_delay, base_delay * 2^(attempt-1)).
/// Deterministic (no jitter).
[[nodiscard]] std::chrono::milliseconds
backoff_delay(const retry_options& opts, int attempt) noexcept;

/// The delay a retryable response asks for: its `retry-after-ms` header
/// (milliseconds, as OpenAI sends it) or else its `Retry-After` header,
/// capped at `max_delay`; nullopt if it has neither (or they do not parse).
[[nodiscard]] std::optional<std::chrono::milliseconds>
requested_delay(const http_response& res, const retry_options& opts,
                wall_time now);

/// Sends `req` through `client` up to `opts.max_attempts` times. Retries on
/// retryable errors (timeouts, connection failures: `is_retryable`) and on
/// retryable statuses (`is_retryable_status`), waiting the server's
/// Retry-After (capped at `max_delay`) if it gave one and `backoff_delay`
/// otherwise, through `sleep`. Returns the first response with another
/// status (2xx, 3xx, 4xx other than 408/429), the first non-retryable
/// error, or, when the attempts are used up, the last error (for a
/// retryable status: unavailable naming the status and the start
/// of the body, so that `is_retryable` stays true for a later retry by the
/// task queue). If `sleep` returns false: shutting_down. Requests are
/// retried whatever their method: callers must be idempotent or accept
/// at-least-once delivery.
[[nodiscard]] caf::expected<http_response>
send_with_retries(const http_client& client, const http_request& req,
                  const retry_options& opts,
                  const sleep_function& sleep = blocking_sleep(),
                  const clock& clk = real_clock());

} // namespace engram
