#pragma once

// A scripted HTTP/1.1 server for tests of outbound HTTP (LLM providers,
// webhooks): listens on 127.0.0.1 on an ephemeral port, serves from its own
// thread (plain Beast/Asio, no TLS, keep-alive supported), answers every
// request from a handler or a queue of canned responses, and records what it
// received.
//
//   engram::test::fake_http_server server;
//   server.enqueue({429, {{"Retry-After", "0"}}, "slow down"});
//   server.enqueue(engram::test::json_response(R"({"ok":true})"));
//   ... point the code under test at server.url() + "/hook" ...
//   ASSERT_TRUE(server.wait_for_requests(2, 5s));
//   EXPECT_EQ(server.requests()[1].header("content-type"), "application/json");

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/outbound_http.hpp"

namespace engram::test {

/// One request as the server received it.
struct recorded_request {
  std::string method;
  /// Path and query, as sent.
  std::string target;
  /// Names as sent; look up with `header`.
  engram::http_headers headers;
  std::string body;

  /// The first header named `name` (case-insensitive), or "".
  [[nodiscard]] std::string header(std::string_view name) const {
    return engram::find_header(headers, name);
  }
};

/// What the server does with one request.
struct canned_response {
  unsigned status = 200;
  /// Sent as given; Content-Length is added.
  engram::http_headers headers;
  std::string body;
  /// Waits this long before answering (or dropping), without blocking other
  /// connections: for timeout tests.
  std::chrono::milliseconds delay{0};
  /// Closes the connection instead of answering: for connection-failure
  /// tests.
  bool drop_connection = false;
};

/// A 200 (or `status`) response with a JSON body and content type.
[[nodiscard]] canned_response json_response(std::string body,
                                            unsigned status = 200);

/// See the top of this file. Thread-safe: tests script and inspect it from
/// their thread while it serves from its own.
class fake_http_server {
public:
  /// Computes the response to a request. Runs on the server's thread: keep
  /// it quick (use `canned_response::delay` to answer late).
  using handler = std::function<canned_response(const recorded_request&)>;

  /// Starts a server that answers from the queue (`enqueue`); when the queue
  /// is empty it answers 404 with a body saying so (not a 5xx, so that a
  /// missing script does not look like a retryable failure).
  fake_http_server();

  /// Starts a server that answers every request with `h`.
  explicit fake_http_server(handler h);

  /// Stops the server.
  ~fake_http_server();

  fake_http_server(const fake_http_server&) = delete;
  fake_http_server& operator=(const fake_http_server&) = delete;

  /// The port it listens on (127.0.0.1).
  [[nodiscard]] uint16_t port() const noexcept;

  /// "http://127.0.0.1:<port>".
  [[nodiscard]] std::string url() const;

  /// Appends a response to the queue (used when no handler is set).
  void enqueue(canned_response response);

  /// Replaces the handler (nullptr: answer from the queue again).
  void set_handler(handler h);

  /// Every request received so far, in order of arrival.
  [[nodiscard]] std::vector<recorded_request> requests() const;

  /// How many requests arrived so far.
  [[nodiscard]] size_t request_count() const;

  /// Waits until at least `n` requests arrived; false on timeout.
  [[nodiscard]] bool wait_for_requests(size_t n,
                                       std::chrono::milliseconds timeout) const;

  /// Stops listening, closes every connection and joins the thread.
  /// Idempotent.
  void stop();

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace engram::test
