#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <caf/error.hpp>

#include "http/router.hpp"
#include "runtime/metrics.hpp"

namespace engram::http {

/// Everything the server needs to know besides its routes.
struct server_options {
  /// Address to bind, e.g. 127.0.0.1 or ::1.
  std::string bind = "127.0.0.1";
  /// TCP port; 0 picks a free one (see server::port()).
  uint16_t port = 0;
  /// Bearer token required on every route but /healthz and /readyz; empty =
  /// none. Refused to be empty when binding a non-loopback address.
  std::string token;
  /// Largest accepted request header block in bytes (431 beyond).
  uint32_t max_header_bytes = 16384;
  /// Largest accepted request body in bytes (413 beyond).
  uint64_t max_body_bytes = 1048576;
  /// Time to read one whole request once its first byte arrived (408 beyond).
  std::chrono::milliseconds read_timeout{15000};
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60000};
  /// How long a handler may take to respond before the server answers 504
  /// `timeout` itself (a safety net: handlers bound their own waits).
  std::chrono::milliseconds handler_timeout{60000};
  /// Time to write one response.
  std::chrono::milliseconds write_timeout{15000};
  /// How long stop() lets requests in flight finish before closing them.
  std::chrono::milliseconds drain_timeout{5000};
  /// Sent as `Server: engram/<version>`.
  std::string version = "0.0.0";
};

struct server_state;
class listener;

/// The HTTP/1.1 admin server: accepts connections on an io_context run by
/// others (see runtime/io_threads.hpp), serves each with a session that reads
/// one request at a time, dispatches it through the router and writes the
/// response, and counts every response in `engram_http_requests_total` and
/// `engram_http_request_duration_seconds`.
class server {
public:
  server(boost::asio::io_context& ctx, server_options opts, router routes,
         metrics::registry& metrics);

  /// Calls stop().
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds, listens and starts accepting. Fails with `invalid_config` for a
  /// malformed bind address or a non-loopback one without token, with
  /// `unspecified` when the socket cannot be bound (e.g. port in use).
  [[nodiscard]] caf::error start();

  /// The bound port once started (the chosen one if options asked for 0).
  [[nodiscard]] uint16_t port() const noexcept {
    return port_;
  }

  /// Stops accepting, closes idle connections, lets requests in flight finish
  /// for up to `drain_timeout` and closes what remains; responses that
  /// handlers send afterwards are dropped. Call it before the io_context
  /// stops. Blocks; must not be called from a thread of the io_context.
  /// Idempotent.
  void stop();

private:
  boost::asio::io_context& ctx_;
  std::shared_ptr<server_state> state_;
  std::shared_ptr<listener> listener_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

} // namespace engram::http
