#include "http/server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "http/session.hpp"
#include "messages/errc.hpp"

namespace engram::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

/// Pause before accepting again after a failed accept (e.g. out of file
/// descriptors), so that the failure does not spin.
constexpr std::chrono::milliseconds accept_retry_delay{100};

} // namespace

/// Accepts connections and starts a session for each.
class listener : public std::enable_shared_from_this<listener> {
public:
  listener(asio::io_context& ctx, std::shared_ptr<server_state> state)
    : ctx_(ctx),
      acceptor_(asio::make_strand(ctx)),
      retry_timer_(acceptor_.get_executor()),
      state_(std::move(state)) {
    // nop
  }

  /// Opens, binds and listens; returns the bound port or an error.
  caf::error open(const tcp::endpoint& ep, uint16_t& port) {
    beast::error_code ec;
    auto fail = [&](const char* what) {
      return make_error(errc::unspecified,
                        "cannot listen on " + state_->opts.bind + ":"
                          + std::to_string(ep.port()) + ": " + what + ": "
                          + ec.message());
    };
    if (acceptor_.open(ep.protocol(), ec); ec)
      return fail("open");
    if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec); ec)
      return fail("set_option");
    if (acceptor_.bind(ep, ec); ec)
      return fail("bind");
    if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec)
      return fail("listen");
    port = acceptor_.local_endpoint(ec).port();
    if (ec)
      return fail("local_endpoint");
    return {};
  }

  void run() {
    asio::post(acceptor_.get_executor(),
               beast::bind_front_handler(&listener::do_accept,
                                         shared_from_this()));
  }

  /// Stops accepting. From any thread.
  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
      self->retry_timer_.cancel();
    });
  }

private:
  void do_accept() {
    // Each connection gets its own strand.
    acceptor_.async_accept(asio::make_strand(ctx_),
                           beast::bind_front_handler(&listener::on_accept,
                                                     shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open())
      return; // closed by stop()
    if (ec) {
      state_->log->warn("accept: {}; retrying in {} ms", ec.message(),
                        accept_retry_delay.count());
      retry_timer_.expires_after(accept_retry_delay);
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && self->acceptor_.is_open())
          self->do_accept();
      });
      return;
    }
    std::make_shared<session>(std::move(socket), state_)->run();
    do_accept();
  }

  asio::io_context& ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::shared_ptr<server_state> state_;
};

server::server(asio::io_context& ctx, server_options opts, router routes,
               metrics::registry& metrics)
  : ctx_(ctx),
    state_(std::make_shared<server_state>(std::move(opts), std::move(routes),
                                          metrics)) {
  // nop
}

server::~server() {
  stop();
}

caf::error server::start() {
  const auto& opts = state_->opts;
  beast::error_code ec;
  auto addr = asio::ip::make_address(opts.bind, ec);
  if (ec)
    return make_error(errc::invalid_config,
                      "http.bind = " + opts.bind + ": not an IP address");
  if (!addr.is_loopback() && opts.token.empty())
    return make_error(errc::invalid_config,
                      "http.bind = " + opts.bind
                        + ": a non-loopback address requires http.token");
  listener_ = std::make_shared<listener>(ctx_, state_);
  if (auto err = listener_->open(tcp::endpoint{addr, opts.port}, port_)) {
    listener_.reset();
    return err;
  }
  listener_->run();
  started_ = true;
  state_->log->info("listening on {}:{}", opts.bind, port_);
  return {};
}

void server::stop() {
  if (!started_ || stopped_)
    return;
  stopped_ = true;
  listener_->close();
  {
    auto sessions = state_->begin_stop();
    for (auto& s : sessions)
      s->shutdown();
    // Our references must not keep the sessions alive while we wait.
  }
  if (!state_->wait_idle(state_->opts.drain_timeout)) {
    auto rest = state_->live();
    state_->log->warn("closing {} connection(s) still busy after {} ms",
                      rest.size(), state_->opts.drain_timeout.count());
    for (auto& s : rest)
      s->force_close();
  }
  state_->close_gate();
  state_->log->info("stopped listening on {}:{}", state_->opts.bind, port_);
}

} // namespace engram::http
