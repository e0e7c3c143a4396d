#include "tests/support/fake_http_server.hpp"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace engram::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

canned_response json_response(std::string body, unsigned status) {
  canned_response result;
  result.status = status;
  result.headers = {{"Content-Type", "application/json"}};
  result.body = std::move(body);
  return result;
}

struct fake_http_server::impl {
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::thread thread;

  mutable std::mutex mtx;
  mutable std::condition_variable cv;
  handler fn;
  std::deque<canned_response> queue;
  std::vector<recorded_request> received;
  bool stopped = false;

  /// Records `req` and picks its response (server thread).
  canned_response respond(recorded_request req) {
    handler h;
    {
      std::lock_guard guard{mtx};
      received.push_back(req);
      cv.notify_all();
      h = fn;
      if (!h) {
        if (queue.empty()) {
          canned_response none;
          none.status = 404;
          none.body = "fake_http_server: no scripted response for "
                      + req.method + " " + req.target;
          return none;
        }
        auto next = std::move(queue.front());
        queue.pop_front();
        return next;
      }
    }
    try {
      return h(req);
    } catch (const std::exception& e) {
      canned_response failed;
      failed.status = 500;
      failed.body = std::string{"fake_http_server: handler threw: "} + e.what();
      return failed;
    }
  }

  void do_accept();
};

namespace {

/// One connection: read a request, record it, wait the response's delay,
/// answer (or drop), repeat while keep-alive.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, fake_http_server::impl& server)
    : stream_{std::move(socket)},
      timer_{stream_.get_executor()},
      server_{server} {
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024 * 1024);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec,
                                                 size_t) {
                       self->on_read(ec);
                     });
  }

private:
  void on_read(beast::error_code ec) {
    if (ec)
      return close();
    auto req = parser_->release();
    recorded_request rec;
    rec.method = std::string{req.method_string()};
    rec.target = std::string{req.target()};
    for (const auto& field : req)
      rec.headers.emplace_back(std::string{field.name_string()},
                               std::string{field.value()});
    rec.body = std::move(req.body());
    keep_alive_ = req.keep_alive();
    response_ = server_.respond(std::move(rec));
    timer_.expires_after(response_.delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->on_delay(ec);
    });
  }

  void on_delay(beast::error_code ec) {
    if (ec || response_.drop_connection)
      return close();
    res_ = {};
    res_.version(11);
    res_.result(response_.status);
    for (const auto& [name, value] : response_.headers)
      res_.insert(name, value);
    res_.body() = response_.body;
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    http::async_write(stream_, res_,
                      [self = shared_from_this()](beast::error_code ec,
                                                  size_t) {
                        self->on_write(ec);
                      });
  }

  void on_write(beast::error_code ec) {
    if (ec || !keep_alive_)
      return close();
    do_read();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  fake_http_server::impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  canned_response response_;
  bool keep_alive_ = false;
};

} // namespace

void fake_http_server::impl::do_accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec)
      return; // closed by stop()
    std::make_shared<session>(std::move(socket), *this)->do_read();
    do_accept();
  });
}

fake_http_server::fake_http_server() : impl_{std::make_shared<impl>()} {
  auto& s = *impl_;
  tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 0};
  s.acceptor.open(ep.protocol());
  s.acceptor.set_option(asio::socket_base::reuse_address(true));
  s.acceptor.bind(ep);
  s.acceptor.listen();
  s.port = s.acceptor.local_endpoint().port();
  s.do_accept();
  s.thread = std::thread{[&s] { s.ioc.run(); }};
}

fake_http_server::fake_http_server(handler h) : fake_http_server() {
  set_handler(std::move(h));
}

fake_http_server::~fake_http_server() {
  stop();
}

uint16_t fake_http_server::port() const noexcept {
  return impl_->port;
}

std::string fake_http_server::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void fake_http_server::enqueue(canned_response response) {
  std::lock_guard guard{impl_->mtx};
  impl_->queue.push_back(std::move(response));
}

void fake_http_server::set_handler(handler h) {
  std::lock_guard guard{impl_->mtx};
  impl_->fn = std::move(h);
}

std::vector<recorded_request> fake_http_server::requests() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->received;
}

size_t fake_http_server::request_count() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->received.size();
}

bool fake_http_server::wait_for_requests(
  size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock guard{impl_->mtx};
  return impl_->cv.wait_for(guard, timeout,
                            [&] { return impl_->received.size() >= n; });
}

void fake_http_server::stop() {
  auto& s = *impl_;
  {
    std::lock_guard guard{s.mtx};
    if (s.stopped)
      return;
    s.stopped = true;
  }
  s.ioc.stop();
  if (s.thread.joinable())
    s.thread.join();
  beast::error_code ignored;
  s.acceptor.close(ignored);
}

} // namespace engram::test
