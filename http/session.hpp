#pragma once

// Internal to the server: the state its parts share and the session that
// serves one connection.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/logger.h>

#include "http/router.hpp"
#include "http/server.hpp"
#include "runtime/metrics.hpp"

namespace engram::http {

class session;

/// What the server, its listener and its sessions share. Sessions keep it
/// alive, so it outlives a server whose sessions still wait for a handler.
struct server_state {
  server_state(server_options options, router rs, metrics::registry& reg);

  const server_options opts;
  const router routes;
  metrics::registry& metrics;
  metrics::gauge& connections;
  std::shared_ptr<spdlog::logger> log;
  /// Value of the `Server` header.
  const std::string server_header;

  /// Counts one response in the request metrics.
  void record(std::string_view route, std::string_view method,
              unsigned status, std::chrono::steady_clock::duration elapsed);

  /// Posts a handler's response to its session, unless the session is gone
  /// or the gate is closed. From any thread.
  void deliver(const std::weak_ptr<session>& w, uint64_t id, response res);

  /// Drops every later response: called when the server stopped, so that a
  /// handler answering late never touches an io_context about to go away.
  void close_gate();

  /// Registers a live session; false once the server is stopping.
  [[nodiscard]] bool add(session* s, std::weak_ptr<session> w);

  /// Forgets a session (from its destructor).
  void remove(session* s);

  /// Marks the server as stopping and returns the live sessions.
  [[nodiscard]] std::vector<std::shared_ptr<session>> begin_stop();

  /// Returns the live sessions.
  [[nodiscard]] std::vector<std::shared_ptr<session>> live();

  /// Waits until no session is left or `timeout` passed; true if none is.
  [[nodiscard]] bool wait_idle(std::chrono::milliseconds timeout);

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::map<session*, std::weak_ptr<session>> sessions_;
  bool stopping_ = false;
  std::mutex gate_mtx_;
  bool gate_closed_ = false;
};

/// Serves one connection: reads a request (idle timeout until its first byte,
/// then read timeout for the whole request), dispatches it, writes the
/// response, and repeats while the connection is kept alive. All of its
/// handlers run on the connection's strand.
class session : public std::enable_shared_from_this<session> {
public:
  session(boost::asio::ip::tcp::socket&& socket,
          std::shared_ptr<server_state> state);
  ~session();

  /// Starts serving.
  void run();

  /// Finishes the request in flight with `Connection: close`, or closes the
  /// connection now if it waits for a request or is closing. From any
  /// thread.
  void shutdown();

  /// Closes the connection now; a response still to come is dropped. From
  /// any thread.
  void force_close();

  /// Sends the response of request `id` (from any thread; handlers go
  /// through server_state::deliver); ignored if that request is no longer
  /// the one being handled.
  void deliver(uint64_t id, response res);

private:
  enum class phase { idle, reading, handling, writing, closing };

  void start();
  void do_read();
  void on_first_bytes(boost::beast::error_code ec, size_t n);
  void begin_request();
  void on_read_header(boost::beast::error_code ec, size_t n);
  void do_read_body();
  void on_read_body(boost::beast::error_code ec, size_t n);
  void on_read_error(boost::beast::error_code ec);
  void arm_read_timer();
  void disarm_read_timer();
  void handle_request();
  void on_response(uint64_t id, response res);
  void send_error_and_close(status code, std::string_view error_code,
                            std::string message);
  void do_write(response res, bool close, std::chrono::milliseconds timeout,
                bool linger = false);
  void on_write(boost::beast::error_code ec, size_t n);
  /// Closes after the last response; `linger` discards the client's input
  /// for a moment first.
  void do_close(bool linger);
  void do_drain();
  void on_drain(boost::beast::error_code ec, size_t n);
  void fail(boost::beast::error_code ec, const char* what);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<server_state> state_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>>
    parser_;
  std::optional<request_context> ctx_;
  std::optional<response> res_;
  boost::asio::steady_timer read_timer_;
  /// Bounds the wait for a handler's response.
  boost::asio::steady_timer handler_timer_;
  /// Bumped whenever the read timer is (re)armed or disarmed, so that a timer
  /// that fired late is recognized as stale.
  uint64_t timer_gen_ = 0;
  /// Whether the read timer fired and cancelled the read in progress.
  bool timed_out_ = false;
  phase phase_ = phase::idle;
  bool stopping_ = false;
  bool close_after_write_ = false;
  /// Whether the client may still be sending when we close (error replies).
  bool linger_after_write_ = false;
  /// Number of the request being served; responses for others are dropped.
  uint64_t request_id_ = 0;
  /// First byte of the current request.
  std::chrono::steady_clock::time_point started_;
  /// Metric labels of the current request.
  std::string_view route_ = unmatched_route;
  std::string_view method_ = "other";
};

} // namespace engram::http
