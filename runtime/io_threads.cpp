#include "runtime/io_threads.hpp"

#include <exception>

#include "runtime/log.hpp"

namespace engram {

io_threads::io_threads(size_t n)
  : ctx_(static_cast<int>(n == 0 ? 1 : n)), work_(ctx_.get_executor()) {
  if (n == 0)
    n = 1;
  threads_.reserve(n);
  for (size_t i = 0; i < n; ++i)
    threads_.emplace_back([this] {
      // A handler that throws must not take the whole pool down: log it and
      // keep serving the other connections.
      for (;;) {
        try {
          ctx_.run();
          return;
        } catch (const std::exception& e) {
          log::get("io")->error("unhandled exception in an I/O handler: {}",
                                e.what());
        } catch (...) {
          log::get("io")->error("unhandled non-standard exception in an I/O "
                                "handler");
        }
      }
    });
}

io_threads::~io_threads() {
  stop();
}

void io_threads::stop() {
  work_.reset();
  ctx_.stop();
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

} // namespace engram
