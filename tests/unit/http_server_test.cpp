#include "http/server.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>

#include "http/admin_routes.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/metrics.hpp"

using namespace engram;
using namespace engram::http;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

/// Upper bound for anything the server should do promptly; only reached when
/// a test fails.
constexpr auto patience = 5s;

using client_response = bhttp::response<bhttp::string_body>;

/// A blocking HTTP/1.1 client over a plain socket that writes raw bytes, so
/// tests can send anything, and reads responses with Beast's parser. Every
/// operation gives up after `patience` instead of hanging the test.
class raw_client {
public:
  explicit raw_client(uint16_t port) : socket_(ioc_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
  }

  void send(std::string_view bytes) {
    boost::system::error_code result = asio::error::timed_out;
    asio::async_write(socket_, asio::buffer(bytes),
                      [&](boost::system::error_code ec, size_t) { result = ec; });
    run();
    ASSERT_FALSE(result) << result.message();
  }

  /// Reads one response; nullopt if the connection ended first.
  std::optional<client_response> read(bool head = false) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.skip(head);
    boost::system::error_code result = asio::error::timed_out;
    bhttp::async_read(socket_, buffer_, parser,
                      [&](boost::system::error_code ec, size_t) { result = ec; });
    run();
    if (result)
      return std::nullopt;
    return parser.release();
  }

  /// Sends `raw` and reads the response.
  client_response request(std::string_view raw, bool head = false) {
    send(raw);
    auto res = read(head);
    EXPECT_TRUE(res) << "no response to: " << raw;
    return res ? std::move(*res) : client_response{};
  }

  /// Waits for the server to close the connection; returns eof on a clean
  /// close, timed_out if it stays open, or what else happened.
  boost::system::error_code wait_closed() {
    boost::system::error_code result = asio::error::timed_out;
    char byte;
    socket_.async_read_some(asio::buffer(&byte, 1),
                            [&](boost::system::error_code ec, size_t n) {
                              result = n > 0 ? asio::error::message_size : ec;
                            });
    run();
    return result;
  }

private:
  void run() {
    ioc_.restart();
    ioc_.run_for(patience);
    if (!ioc_.stopped()) {
      // Timed out: cancel the operation and let its handler run.
      boost::system::error_code ignored;
      socket_.cancel(ignored);
      ioc_.restart();
      ioc_.run();
    }
  }

  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string{target} + " HTTP/1.1\r\nHost: test\r\n"
         + std::string{extra_headers} + "\r\n";
}

bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

/// Starts a real server on 127.0.0.1, port 0, with the admin routes and a few
/// test routes, on two I/O threads.
class http_server : public ::testing::Test {
protected:
  void TearDown() override {
    srv_.reset();
    for (auto& t : helpers_)
      t.join();
  }

  /// Starts the server; `adjust` may change the options first.
  void start(std::function<void(server_options&)> adjust = {}) {
    server_options opts;
    opts.bind = "127.0.0.1";
    opts.port = 0;
    opts.version = "1.2.3";
    if (adjust)
      adjust(opts);
    router r;
    admin_deps deps;
    deps.check_ready = [this](std::function<void(readiness)> done) {
      std::unique_lock guard{ready_mtx_};
      auto r = ready_;
      guard.unlock();
      done(std::move(r));
    };
    deps.metrics = &metrics_;
    deps.version = "1.2.3";
    deps.git_commit = "abc123";
    deps.build_type = "Debug";
    deps.node_name = "node-a";
    add_admin_routes(r, std::move(deps));
    r.add(verb::post, "/echo", [](request_context& ctx, responder respond) {
      respond(json_response(status::ok, ctx.req.body()));
    });
    r.add(verb::get, "/items/{id}", [](request_context& ctx, responder respond) {
      respond(json_response(status::ok, "{\"id\":\"" + ctx.params["id"] + "\"}"));
    });
    // Answers from another thread after a delay, like a handler that asks an
    // actor; the delay (in ms) comes from the query.
    r.add(verb::get, "/slow", [this](request_context& ctx, responder respond) {
      auto delay = std::chrono::milliseconds{std::stoi(std::string{ctx.query})};
      std::lock_guard guard{helpers_mtx_};
      helpers_.emplace_back([delay, respond = std::move(respond)] {
        std::this_thread::sleep_for(delay);
        respond(json_response(status::ok, R"({"slow":true})"));
      });
      slow_called_.notify_all();
    });
    // Keeps the responder for the test to call (or not).
    r.add(verb::get, "/hold", [this](request_context&, responder respond) {
      std::lock_guard guard{helpers_mtx_};
      held_ = std::move(respond);
      held_cv_.notify_all();
    });
    r.add(verb::get, "/throws", [](request_context&, responder) {
      throw std::runtime_error("boom");
    });
    r.add(verb::get, "/drops", [](request_context&, responder) {
      // Never responds.
    });
    r.add(verb::get, "/twice", [](request_context&, responder respond) {
      respond(json_response(status::ok, R"({"n":1})"));
      respond(json_response(status::ok, R"({"n":2})"));
    });
    srv_ = std::make_unique<server>(io_.context(), opts, std::move(r),
                                    metrics_);
    auto err = srv_->start();
    ASSERT_FALSE(err) << to_string(err);
    ASSERT_NE(srv_->port(), 0);
  }

  uint16_t port() const {
    return srv_->port();
  }

  /// Waits until the /hold handler has been called and returns its responder.
  responder wait_for_held() {
    std::unique_lock guard{helpers_mtx_};
    held_cv_.wait_for(guard, patience, [this] { return held_.has_value(); });
    return held_ ? *held_ : responder{};
  }

  /// Waits until the /slow handler has been called.
  void wait_for_slow_handler() {
    std::unique_lock guard{helpers_mtx_};
    slow_called_.wait_for(guard, patience, [this] { return !helpers_.empty(); });
  }

  metrics::registry metrics_;
  io_threads io_{2};
  std::unique_ptr<server> srv_;
  std::mutex ready_mtx_;
  readiness ready_{true, ""};
  std::mutex helpers_mtx_;
  std::vector<std::thread> helpers_;
  std::condition_variable slow_called_;
  std::optional<responder> held_;
  std::condition_variable held_cv_;
};

} // namespace

TEST_F(http_server, healthz_answers_json_with_server_header) {
  start();
  raw_client c{port()};
  auto res = c.request(get("/healthz"));
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res.body(), R"({"status":"ok"})");
  EXPECT_EQ(res[bhttp::field::content_type], "application/json");
  EXPECT_EQ(res[bhttp::field::server], "engram/1.2.3");
  EXPECT_TRUE(res.keep_alive());
}

TEST_F(http_server, keep_alive_serves_two_requests_on_one_connection) {
  start();
  raw_client c{port()};
  EXPECT_EQ(c.request(get("/healthz")).result(), status::ok);
  auto res = c.request(get("/items/42"));
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res.body(), R"({"id":"42"})");
  // Only one connection was ever opened.
  EXPECT_EQ(metrics_.get_gauge("engram_http_connections", "").value(), 1);
}

TEST_F(http_server, pipelined_requests_are_answered_in_order) {
  start();
  raw_client c{port()};
  c.send(get("/items/1") + get("/items/2"));
  auto first = c.read();
  auto second = c.read();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body(), R"({"id":"1"})");
  EXPECT_EQ(second->body(), R"({"id":"2"})");
}

TEST_F(http_server, connection_close_is_honoured) {
  start();
  raw_client c{port()};
  auto res = c.request(get("/healthz", "Connection: close\r\n"));
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
}

TEST_F(http_server, unknown_path_and_wrong_method_get_json_errors) {
  start();
  raw_client c{port()};
  auto missing = c.request(get("/nope"));
  EXPECT_EQ(missing.result(), status::not_found);
  EXPECT_EQ(missing.body(),
            R"({"error":{"code":"not_found","message":"no route for /nope"}})");
  EXPECT_EQ(missing[bhttp::field::content_type], "application/json");
  auto wrong = c.request("DELETE /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(wrong.result(), status::method_not_allowed);
  EXPECT_EQ(wrong[bhttp::field::allow], "GET, HEAD");
  EXPECT_EQ(wrong.body(),
            R"({"error":{"code":"method_not_allowed","message":"method not allowed on /healthz; allowed: GET, HEAD"}})");
  // Errors keep the connection usable.
  EXPECT_EQ(c.request(get("/healthz")).result(), status::ok);
}

TEST_F(http_server, head_sends_get_headers_without_body) {
  start();
  raw_client c{port()};
  auto res = c.request("HEAD /api/version HTTP/1.1\r\nHost: test\r\n\r\n",
                       true);
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res.body(), "");
  auto full = c.request(get("/api/version"));
  EXPECT_EQ(res[bhttp::field::content_length],
            std::to_string(full.body().size()));
}

TEST_F(http_server, version_reports_build_and_node) {
  start();
  raw_client c{port()};
  EXPECT_EQ(c.request(get("/api/version")).body(),
            R"({"version":"1.2.3","git_commit":"abc123","build_type":"Debug","node":"node-a"})");
}

TEST_F(http_server, readyz_reports_the_reason_when_not_ready) {
  start();
  raw_client c{port()};
  EXPECT_EQ(c.request(get("/readyz")).body(), R"({"status":"ready"})");
  {
    std::lock_guard guard{ready_mtx_};
    ready_ = readiness{false, "schema at version 3, binary needs 5"};
  }
  auto res = c.request(get("/readyz"));
  EXPECT_EQ(res.result(), status::service_unavailable);
  EXPECT_EQ(res.body(),
            R"({"error":{"code":"not_ready","message":"schema at version 3, binary needs 5"}})");
}

TEST_F(http_server, metrics_are_prometheus_text) {
  start();
  raw_client c{port()};
  auto res = c.request(get("/metrics"));
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res[bhttp::field::content_type],
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(contains(res.body(), "# TYPE engram_http_connections gauge\n"));
}

TEST_F(http_server, body_over_the_limit_is_413_and_closes) {
  start([](server_options& o) { o.max_body_bytes = 1000; });
  raw_client c{port()};
  // Content-Length alone exceeds the limit: refused before the body is read.
  auto res = c.request("POST /echo HTTP/1.1\r\nHost: test\r\n"
                       "Content-Length: 1001\r\n\r\n");
  EXPECT_EQ(res.result(), status::payload_too_large);
  EXPECT_EQ(res.body(),
            R"({"error":{"code":"payload_too_large","message":"the request body exceeds the limit of 1000 bytes"}})");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
}

TEST_F(http_server, body_within_the_limit_is_served) {
  start([](server_options& o) { o.max_body_bytes = 1000; });
  raw_client c{port()};
  std::string body(1000, 'x');
  auto res = c.request("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: "
                       "1000\r\n\r\n"
                       + body);
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res.body(), body);
}

TEST_F(http_server, expect_100_continue_gets_the_go_ahead) {
  start();
  raw_client c{port()};
  c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n"
         "Expect: 100-continue\r\n\r\n");
  auto go_ahead = c.read();
  ASSERT_TRUE(go_ahead);
  EXPECT_EQ(go_ahead->result(), status::continue_);
  c.send("hi");
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hi");
}

TEST_F(http_server, header_over_the_limit_is_431_and_closes) {
  start([](server_options& o) { o.max_header_bytes = 1024; });
  raw_client c{port()};
  auto res = c.request(get("/healthz", "X-Filler: " + std::string(2000, 'a')
                                         + "\r\n"));
  EXPECT_EQ(res.result(), status::request_header_fields_too_large);
  EXPECT_EQ(res.body(),
            R"({"error":{"code":"header_too_large","message":"the request header exceeds the limit of 1024 bytes"}})");
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
}

TEST_F(http_server, malformed_request_is_400_and_closes) {
  start();
  raw_client c{port()};
  auto res = c.request("GET /healthz HTTP/9.9 nonsense\r\n\r\n");
  EXPECT_EQ(res.result(), status::bad_request);
  EXPECT_TRUE(contains(res.body(), R"("code":"bad_request")"));
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
}

TEST_F(http_server, stalled_request_gets_408_after_the_read_timeout) {
  start([](server_options& o) { o.read_timeout = 300ms; });
  raw_client c{port()};
  auto t0 = std::chrono::steady_clock::now();
  c.send("GET /healthz HTTP/1.1\r\nHo");
  auto res = c.read();
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result(), status::request_timeout);
  EXPECT_EQ(res->body(),
            R"({"error":{"code":"request_timeout","message":"the request was not received completely within 300 ms"}})");
  EXPECT_GE(waited, 300ms);
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
}

TEST_F(http_server, idle_keep_alive_connection_is_closed_after_idle_timeout) {
  start([](server_options& o) {
    o.idle_timeout = 300ms;
    // Longer than the idle timeout: the first request must not be cut by it.
    o.read_timeout = 5s;
  });
  raw_client c{port()};
  EXPECT_EQ(c.request(get("/healthz")).result(), status::ok);
  auto t0 = std::chrono::steady_clock::now();
  // Closed silently: no 408, just the end of the connection.
  EXPECT_EQ(c.wait_closed(), asio::error::eof);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
}

TEST_F(http_server, token_is_required_except_on_probes) {
  start([](server_options& o) { o.token = "s3cret"; });
  raw_client c{port()};
  auto none = c.request(get("/api/version"));
  EXPECT_EQ(none.result(), status::unauthorized);
  EXPECT_EQ(none[bhttp::field::www_authenticate], "Bearer");
  EXPECT_TRUE(contains(none.body(), R"("code":"unauthorized")"));
  auto wrong = c.request(get("/api/version", "Authorization: Bearer s3cre\r\n"));
  EXPECT_EQ(wrong.result(), status::unauthorized);
  auto other_scheme = c.request(get("/api/version",
                                    "Authorization: Basic s3cret\r\n"));
  EXPECT_EQ(other_scheme.result(), status::unauthorized);
  // Unknown paths do not reveal themselves without a token.
  EXPECT_EQ(c.request(get("/nope")).result(), status::unauthorized);
  auto right = c.request(get("/api/version", "Authorization: Bearer s3cret\r\n"));
  EXPECT_EQ(right.result(), status::ok);
  auto lower = c.request(get("/api/version", "authorization: bearer s3cret\r\n"));
  EXPECT_EQ(lower.result(), status::ok);
  EXPECT_EQ(c.request(get("/healthz")).result(), status::ok);
  EXPECT_EQ(c.request(get("/readyz")).result(), status::ok);
}

TEST_F(http_server, handler_may_respond_later_from_another_thread) {
  start();
  raw_client c{port()};
  auto t0 = std::chrono::steady_clock::now();
  auto res = c.request(get("/slow?50"));
  EXPECT_EQ(res.result(), status::ok);
  EXPECT_EQ(res.body(), R"({"slow":true})");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  // The connection stays usable afterwards.
  EXPECT_EQ(c.request(get("/healthz")).result(), status::ok);
}

TEST_F(http_server, handler_failures_become_500) {
  start();
  raw_client c{port()};
  auto thrown = c.request(get("/throws"));
  EXPECT_EQ(thrown.result(), status::internal_server_error);
  EXPECT_TRUE(contains(thrown.body(), "boom"));
  auto dropped = c.request(get("/drops"));
  EXPECT_EQ(dropped.result(), status::internal_server_error);
  // A second response is ignored: the next request gets its own answer.
  EXPECT_EQ(c.request(get("/twice")).body(), R"({"n":1})");
  EXPECT_EQ(c.request(get("/items/9")).body(), R"({"id":"9"})");
}

TEST_F(http_server, handler_that_never_responds_gets_504_after_handler_timeout) {
  start([](server_options& o) { o.handler_timeout = 200ms; });
  raw_client c{port()};
  auto t0 = std::chrono::steady_clock::now();
  auto res = c.request(get("/hold"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(res.result(), status::gateway_timeout);
  EXPECT_EQ(res.body(),
            R"({"error":{"code":"timeout","message":"the request handler did not respond within 200 ms"}})");
  // The late answer is dropped; the connection serves the next request.
  auto late = wait_for_held();
  late(json_response(status::ok, R"({"late":true})"));
  EXPECT_EQ(c.request(get("/items/5")).body(), R"({"id":"5"})");
}

TEST_F(http_server, responder_called_after_stop_is_dropped) {
  start([](server_options& o) { o.drain_timeout = 100ms; });
  raw_client c{port()};
  c.send(get("/hold"));
  auto held = wait_for_held();
  ASSERT_TRUE(held);
  auto t0 = std::chrono::steady_clock::now();
  srv_->stop();
  // stop() waited for the drain timeout, then closed the connection.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_FALSE(c.read());
  // Neither answering now nor dropping the responder touches the server.
  held(json_response(status::ok, "{}"));
  held = nullptr;
}

TEST_F(http_server, requests_are_counted_per_route_method_and_status) {
  start([](server_options& o) { o.token = "t"; });
  raw_client c{port()};
  c.request(get("/healthz"));
  c.request(get("/healthz"));
  c.request(get("/items/1", "Authorization: Bearer t\r\n"));
  c.request(get("/items/2", "Authorization: Bearer t\r\n"));
  c.request(get("/nope", "Authorization: Bearer t\r\n"));
  c.request(get("/items/3"));
  c.request("POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
  auto text = metrics_.render();
  auto counted = [&](std::string_view labels, int n) {
    return contains(text, "engram_http_requests_total{" + std::string{labels}
                            + "} " + std::to_string(n) + "\n");
  };
  EXPECT_TRUE(counted(R"(route="/healthz",method="GET",status="200")", 2))
    << text;
  EXPECT_TRUE(counted(R"(route="/items/{id}",method="GET",status="200")", 2));
  EXPECT_TRUE(counted(R"(route="unmatched",method="GET",status="404")", 1));
  EXPECT_TRUE(counted(R"(route="/items/{id}",method="GET",status="401")", 1));
  EXPECT_TRUE(counted(R"(route="/healthz",method="POST",status="405")", 1));
  EXPECT_TRUE(contains(
    text,
    R"(engram_http_request_duration_seconds_count{route="/items/{id}"} 3)"));
}

TEST_F(http_server, limit_errors_are_counted_as_unmatched) {
  start([](server_options& o) {
    o.max_body_bytes = 10;
    o.max_header_bytes = 1024;
  });
  {
    raw_client c{port()};
    c.request("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n");
  }
  {
    raw_client c{port()};
    c.request(get("/healthz", "X-Filler: " + std::string(2000, 'a') + "\r\n"));
  }
  auto text = metrics_.render();
  EXPECT_TRUE(contains(
    text,
    R"(engram_http_requests_total{route="unmatched",method="POST",status="413"} 1)"))
    << text;
  EXPECT_TRUE(contains(
    text,
    R"(engram_http_requests_total{route="unmatched",method="GET",status="431"} 1)"))
    << text;
}

TEST_F(http_server, stop_closes_idle_connections_and_finishes_requests_in_flight) {
  start();
  raw_client idle{port()};
  EXPECT_EQ(idle.request(get("/healthz")).result(), status::ok);
  raw_client busy{port()};
  busy.send(get("/slow?200"));
  // Stop while the slow request waits for its handler.
  wait_for_slow_handler();
  srv_->stop();
  auto res = busy.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result(), status::ok);
  EXPECT_FALSE(res->keep_alive());
  EXPECT_EQ(idle.wait_closed(), asio::error::eof);
  // No longer accepting.
  tcp::socket s{io_.context()};
  boost::system::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port()}, ec);
  EXPECT_EQ(ec, asio::error::connection_refused);
}

TEST_F(http_server, start_fails_for_bad_address_and_missing_token) {
  server_options opts;
  opts.bind = "not-an-ip";
  server bad{io_.context(), opts, router{}, metrics_};
  EXPECT_TRUE(bad.start());
  opts.bind = "0.0.0.0";
  server open{io_.context(), opts, router{}, metrics_};
  EXPECT_TRUE(open.start());
}

TEST_F(http_server, start_fails_when_the_port_is_taken) {
  start();
  server_options opts;
  opts.port = port();
  server second{io_.context(), opts, router{}, metrics_};
  auto err = second.start();
  ASSERT_TRUE(err);
  EXPECT_TRUE(contains(to_string(err), "cannot listen on 127.0.0.1:"));
}
