#include "http/session.hpp"

#include <algorithm>
#include <atomic>
#include <exception>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "http/auth.hpp"
#include "runtime/log.hpp"

namespace engram::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

/// How long an error response before closing may take to write, and how long
/// a closing connection may still deliver bytes we discard.
constexpr std::chrono::milliseconds closing_timeout{1000};

/// Bytes read per read_some while waiting for a request or draining.
constexpr size_t read_chunk = 4096;

constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";

bool is_http_error(const beast::error_code& ec) {
  return ec.category() == make_error_code(bhttp::error::bad_target).category();
}

/// Whether `ec` means the peer went away (or we closed the socket), which is
/// routine and not worth more than a debug line.
bool is_disconnect(const beast::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset
         || ec == asio::error::broken_pipe || ec == asio::error::operation_aborted
         || ec == asio::error::bad_descriptor || ec == beast::error::timeout
         || ec == bhttp::error::end_of_stream
         || ec == bhttp::error::partial_message;
}

/// The responder's shared state: delivers at most one response and sends a
/// 500 if every copy of the responder is dropped without a response. Holds
/// the session weakly: a response for a closed connection is dropped.
class pending_response {
public:
  pending_response(std::weak_ptr<session> s, std::shared_ptr<server_state> st,
                   uint64_t id)
    : session_(std::move(s)), state_(std::move(st)), id_(id) {
    // nop
  }

  ~pending_response() {
    if (!done_.exchange(true)) {
      state_->log->error("a handler dropped its responder without responding");
      state_->deliver(session_, id_,
                      error_response(status::internal_server_error, "internal",
                                     "the request handler returned no "
                                     "response"));
    }
  }

  void respond(response res) {
    if (done_.exchange(true)) {
      state_->log->warn("a handler responded twice to one request; ignored");
      return;
    }
    state_->deliver(session_, id_, std::move(res));
  }

private:
  std::weak_ptr<session> session_;
  std::shared_ptr<server_state> state_;
  uint64_t id_;
  std::atomic<bool> done_{false};
};

std::string_view method_label(verb v) {
  return v == verb::unknown ? std::string_view{"other"}
                            : std::string_view{bhttp::to_string(v)};
}

} // namespace

// -- server_state --------------------------------------------------------------

server_state::server_state(server_options options, router rs,
                           metrics::registry& reg)
  : opts(std::move(options)),
    routes(std::move(rs)),
    metrics(reg),
    connections(reg.get_gauge("engram_http_connections",
                              "Open HTTP connections.")),
    log(log::get("http")),
    server_header("engram/" + opts.version) {
  // nop
}

void server_state::record(std::string_view route, std::string_view method,
                          unsigned status,
                          std::chrono::steady_clock::duration elapsed) {
  metrics
    .get_counter("engram_http_requests_total",
                 "HTTP responses sent, by route pattern, method and status.",
                 {{"route", std::string{route}},
                  {"method", std::string{method}},
                  {"status", std::to_string(status)}})
    .inc();
  metrics
    .get_histogram("engram_http_request_duration_seconds",
                   "Time from the first byte of a request until its response "
                   "is ready to send, by route pattern.",
                   {{"route", std::string{route}}})
    .observe(std::chrono::duration<double>(elapsed).count());
}

void server_state::deliver(const std::weak_ptr<session>& w, uint64_t id,
                           response res) {
  // Holding the gate keeps close_gate() from returning while we post.
  std::lock_guard guard{gate_mtx_};
  if (gate_closed_)
    return;
  if (auto s = w.lock())
    s->deliver(id, std::move(res));
}

void server_state::close_gate() {
  std::lock_guard guard{gate_mtx_};
  gate_closed_ = true;
}

bool server_state::add(session* s, std::weak_ptr<session> w) {
  std::lock_guard guard{mtx_};
  if (stopping_)
    return false;
  sessions_.emplace(s, std::move(w));
  return true;
}

void server_state::remove(session* s) {
  std::lock_guard guard{mtx_};
  if (sessions_.erase(s) > 0 && sessions_.empty())
    cv_.notify_all();
}

std::vector<std::shared_ptr<session>> server_state::begin_stop() {
  {
    std::lock_guard guard{mtx_};
    stopping_ = true;
  }
  return live();
}

std::vector<std::shared_ptr<session>> server_state::live() {
  std::vector<std::shared_ptr<session>> result;
  std::lock_guard guard{mtx_};
  for (auto& [ptr, weak] : sessions_)
    if (auto s = weak.lock())
      result.push_back(std::move(s));
  return result;
}

bool server_state::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock guard{mtx_};
  return cv_.wait_for(guard, timeout, [this] { return sessions_.empty(); });
}

// -- session: lifecycle --------------------------------------------------------

session::session(tcp::socket&& socket, std::shared_ptr<server_state> state)
  : stream_(std::move(socket)),
    state_(std::move(state)),
    read_timer_(stream_.get_executor()),
    handler_timer_(stream_.get_executor()) {
  state_->connections.inc();
}

session::~session() {
  state_->remove(this);
  state_->connections.dec();
}

void session::run() {
  // Start on the strand: every later step of this session runs there too.
  asio::dispatch(stream_.get_executor(),
                 beast::bind_front_handler(&session::start, shared_from_this()));
}

void session::start() {
  if (!state_->add(this, weak_from_this())) {
    // Accepted while the server stops: do not serve.
    beast::error_code ignored;
    stream_.socket().close(ignored);
    return;
  }
  do_read();
}

void session::shutdown() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->stopping_ = true;
    // Idle connections close now, and so do those lingering after an error.
    if (self->phase_ == phase::idle || self->phase_ == phase::closing)
      self->stream_.close();
  });
}

void session::force_close() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->phase_ = phase::closing;
    self->disarm_read_timer();
    self->handler_timer_.cancel();
    self->stream_.close();
  });
}

void session::fail(beast::error_code ec, const char* what) {
  if (is_disconnect(ec))
    state_->log->debug("{}: {}", what, ec.message());
  else
    state_->log->warn("{}: {}", what, ec.message());
}

// -- session: reading ----------------------------------------------------------

void session::do_read() {
  phase_ = phase::idle;
  ctx_.reset();
  res_.reset();
  parser_.emplace();
  parser_->header_limit(state_->opts.max_header_bytes);
  parser_->body_limit(state_->opts.max_body_bytes);
  route_ = unmatched_route;
  method_ = "other";
  if (stopping_) {
    do_close(false);
    return;
  }
  // A pipelining client may have sent the next request already.
  if (buffer_.size() > 0) {
    begin_request();
    return;
  }
  // Until the first byte arrives the connection is idle: on expiry the stream
  // closes the socket, which is all we want.
  stream_.expires_after(state_->opts.idle_timeout);
  stream_.async_read_some(buffer_.prepare(read_chunk),
                          beast::bind_front_handler(&session::on_first_bytes,
                                                    shared_from_this()));
}

void session::on_first_bytes(beast::error_code ec, size_t n) {
  if (ec == beast::error::timeout) {
    state_->log->debug("closing a connection idle for {} ms",
                       state_->opts.idle_timeout.count());
    return;
  }
  if (ec)
    return fail(ec, "read");
  buffer_.commit(n);
  begin_request();
}

void session::begin_request() {
  phase_ = phase::reading;
  started_ = std::chrono::steady_clock::now();
  // The read timeout needs our own timer: the stream's timeout would close the
  // socket, and we still want to answer 408.
  stream_.expires_never();
  arm_read_timer();
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           beast::bind_front_handler(&session::on_read_header,
                                                     shared_from_this()));
}

void session::arm_read_timer() {
  timed_out_ = false;
  auto gen = ++timer_gen_;
  read_timer_.expires_at(started_ + state_->opts.read_timeout);
  read_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
    if (ec || gen != self->timer_gen_)
      return;
    self->timed_out_ = true;
    beast::error_code ignored;
    self->stream_.socket().cancel(ignored);
  });
}

void session::disarm_read_timer() {
  ++timer_gen_;
  read_timer_.cancel();
}

void session::on_read_header(beast::error_code ec, size_t) {
  if (ec)
    return on_read_error(ec);
  const auto& req = parser_->get();
  method_ = method_label(req.method());
  auto expect = req[bhttp::field::expect];
  if (!parser_->is_done() && req.version() == 11
      && beast::iequals(expect, "100-continue")) {
    // The client waits for our go-ahead before sending the body; the read
    // timer keeps running.
    asio::async_write(stream_, asio::buffer(continue_response),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec)
                          return self->on_read_error(ec);
                        self->do_read_body();
                      });
    return;
  }
  do_read_body();
}

void session::do_read_body() {
  if (parser_->is_done()) {
    on_read_body({}, 0);
    return;
  }
  bhttp::async_read(stream_, buffer_, *parser_,
                    beast::bind_front_handler(&session::on_read_body,
                                              shared_from_this()));
}

void session::on_read_body(beast::error_code ec, size_t) {
  if (ec)
    return on_read_error(ec);
  disarm_read_timer();
  handle_request();
}

void session::on_read_error(beast::error_code ec) {
  disarm_read_timer();
  if (phase_ == phase::closing)
    return; // force_close()
  // The request line may have been parsed before the error.
  method_ = method_label(parser_->get().method());
  const auto& opts = state_->opts;
  if (timed_out_) {
    send_error_and_close(status::request_timeout, "request_timeout",
                         "the request was not received completely within "
                           + std::to_string(opts.read_timeout.count())
                           + " ms");
  } else if (ec == bhttp::error::body_limit) {
    send_error_and_close(status::payload_too_large, "payload_too_large",
                         "the request body exceeds the limit of "
                           + std::to_string(opts.max_body_bytes) + " bytes");
  } else if (ec == bhttp::error::header_limit) {
    send_error_and_close(status::request_header_fields_too_large,
                         "header_too_large",
                         "the request header exceeds the limit of "
                           + std::to_string(opts.max_header_bytes)
                           + " bytes");
  } else if (is_disconnect(ec)) {
    fail(ec, "read");
  } else if (is_http_error(ec)) {
    send_error_and_close(status::bad_request, "bad_request",
                         "malformed HTTP request: " + ec.message());
  } else {
    fail(ec, "read");
  }
}

// -- session: handling ---------------------------------------------------------

void session::handle_request() {
  phase_ = phase::handling;
  const auto id = ++request_id_;
  const auto& req = parser_->get();
  auto [path, query] = split_target({req.target().data(), req.target().size()});
  auto m = state_->routes.find(req.method(), path);
  route_ = m.route;
  ctx_.emplace(request_context{req, {}, path, query, m.route});
  const auto& token = state_->opts.token;
  if (!token.empty() && !is_public_path(path) && !has_bearer_token(req, token)) {
    auto res = error_response(status::unauthorized, "unauthorized",
                              "this endpoint requires the header "
                              "'Authorization: Bearer <token>' with the "
                              "configured http.token");
    res.set(bhttp::field::www_authenticate, "Bearer");
    return on_response(id, std::move(res));
  }
  if (m.target == nullptr)
    return on_response(id, std::move(*m.error));
  ctx_->params = std::move(m.params);
  // The pending timer keeps the session alive while the handler works (the
  // responder holds it only weakly) and bounds how long it may take.
  handler_timer_.expires_after(state_->opts.handler_timeout);
  handler_timer_.async_wait([self = shared_from_this(),
                             id](beast::error_code ec) {
    if (ec || id != self->request_id_ || self->phase_ != phase::handling)
      return;
    auto timeout = self->state_->opts.handler_timeout.count();
    self->state_->log->warn("handler of {} {} did not respond within {} ms",
                            self->method_, self->route_, timeout);
    self->on_response(id, error_response(errc::timeout,
                                         "the request handler did not respond "
                                         "within "
                                           + std::to_string(timeout) + " ms"));
  });
  auto pending = std::make_shared<pending_response>(weak_from_this(), state_,
                                                    id);
  try {
    (*m.target)(*ctx_, [pending](response res) {
      pending->respond(std::move(res));
    });
  } catch (const std::exception& e) {
    state_->log->error("handler of {} {} threw: {}", method_, route_, e.what());
    pending->respond(error_response(status::internal_server_error, "internal",
                                    "the request handler failed: "
                                      + std::string{e.what()}));
  } catch (...) {
    state_->log->error("handler of {} {} threw", method_, route_);
    pending->respond(error_response(status::internal_server_error, "internal",
                                    "the request handler failed"));
  }
}

void session::deliver(uint64_t id, response res) {
  asio::post(stream_.get_executor(),
             [self = shared_from_this(), id, res = std::move(res)]() mutable {
               self->on_response(id, std::move(res));
             });
}

void session::on_response(uint64_t id, response res) {
  if (id != request_id_ || phase_ != phase::handling)
    return; // stale, or the connection is closed
  handler_timer_.cancel();
  const auto& req = parser_->get();
  bool keep_alive = req.keep_alive() && !stopping_;
  res.version(11);
  res.set(bhttp::field::server, state_->server_header);
  if (res.find(bhttp::field::content_type) == res.end())
    res.set(bhttp::field::content_type, json_content_type);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (req.method() == verb::head) {
    // Same headers as GET, Content-Length included, but no body.
    res.body().clear();
  }
  do_write(std::move(res), !keep_alive, state_->opts.write_timeout);
}

// -- session: writing and closing ----------------------------------------------

void session::send_error_and_close(status code, std::string_view error_code,
                                   std::string message) {
  auto res = error_response(code, error_code, message);
  res.set(bhttp::field::server, state_->server_header);
  res.keep_alive(false);
  res.prepare_payload();
  state_->log->debug("{} {}: {}", static_cast<unsigned>(code), error_code,
                     message);
  do_write(std::move(res), true,
           std::min(state_->opts.write_timeout, closing_timeout), true);
}

void session::do_write(response res, bool close,
                       std::chrono::milliseconds timeout, bool linger) {
  phase_ = phase::writing;
  close_after_write_ = close;
  linger_after_write_ = linger;
  res_ = std::move(res);
  // Count the response before sending it, so that a client that got it also
  // finds it in /metrics.
  auto elapsed = std::chrono::steady_clock::now() - started_;
  auto code = res_->result_int();
  state_->record(route_, method_, code, elapsed);
  state_->log->debug("{} {} {} {:.3f} ms", method_, route_, code,
                     std::chrono::duration<double, std::milli>(elapsed).count());
  stream_.expires_after(timeout);
  bhttp::async_write(stream_, *res_,
                     beast::bind_front_handler(&session::on_write,
                                               shared_from_this()));
}

void session::on_write(beast::error_code ec, size_t) {
  if (ec)
    return fail(ec, "write");
  if (close_after_write_)
    return do_close(linger_after_write_);
  do_read();
}

void session::do_close(bool linger) {
  phase_ = phase::closing;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  // Closing with unread input resets the connection, which can destroy the
  // response before the client read it. So when the client may still be
  // sending (after an error, or with bytes already waiting), half-close and
  // discard its input for a moment first.
  if (!linger)
    linger = buffer_.size() > 0 || stream_.socket().available(ec) > 0;
  if (ec || !linger) {
    stream_.close();
    return;
  }
  buffer_.clear();
  stream_.expires_after(closing_timeout);
  do_drain();
}

void session::do_drain() {
  stream_.async_read_some(buffer_.prepare(read_chunk),
                          beast::bind_front_handler(&session::on_drain,
                                                    shared_from_this()));
}

void session::on_drain(beast::error_code ec, size_t) {
  if (ec) {
    stream_.close();
    return;
  }
  do_drain();
}

} // namespace engram::http
