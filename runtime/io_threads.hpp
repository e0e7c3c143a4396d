#pragma once

#include <cstddef>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace engram {

/// An `asio::io_context` run by a fixed pool of threads: the one place outside
/// CAF that starts threads. Servers take the context by reference; `stop()`
/// (or the destructor) stops the context and joins the threads, so servers
/// must be stopped first.
class io_threads {
public:
  /// Starts `n` threads (at least one) running the context.
  explicit io_threads(size_t n);

  /// Calls stop().
  ~io_threads();

  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  [[nodiscard]] boost::asio::io_context& context() noexcept {
    return ctx_;
  }

  /// Stops the context without waiting for pending work and joins the
  /// threads. Idempotent; must not be called from one of the threads.
  void stop();

private:
  boost::asio::io_context ctx_;
  std::optional<boost::asio::executor_work_guard<
    boost::asio::io_context::executor_type>>
    work_;
  std::vector<std::thread> threads_;
};

} // namespace engram
