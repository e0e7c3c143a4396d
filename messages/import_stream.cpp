#include "messages/import_stream.hpp"

namespace engram::memories {

bool import_stream::push(chunk c) {
  {
    std::lock_guard lk{mtx_};
    if (abandoned_)
      return false;
    chunks_.push_back(std::move(c));
  }
  ready_.notify_one();
  return true;
}

void import_stream::finish() {
  {
    std::lock_guard lk{mtx_};
    finished_ = true;
  }
  ready_.notify_one();
}

bool import_stream::fail(errc code, std::string message) {
  {
    std::lock_guard lk{mtx_};
    if (finished_ || failed_)
      return false;
    failed_ = true;
    code_ = code;
    message_ = std::move(message);
  }
  ready_.notify_one();
  return true;
}

import_stream::next
import_stream::pop(chunk& out, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk{mtx_};
  // A failure wins over chunks still queued: they will not be written.
  if (!ready_.wait_until(lk, deadline, [&] {
        return failed_ || !chunks_.empty() || finished_;
      }))
    return next::timed_out;
  if (failed_)
    return next::failed;
  if (!chunks_.empty()) {
    out = std::move(chunks_.front());
    chunks_.pop_front();
    return next::chunk;
  }
  return next::finished;
}

errc import_stream::failure_code() const {
  std::lock_guard lk{mtx_};
  return code_;
}

std::string import_stream::failure_message() const {
  std::lock_guard lk{mtx_};
  return message_;
}

void import_stream::abandon() {
  std::lock_guard lk{mtx_};
  abandoned_ = true;
  chunks_.clear();
}

bool import_stream::begin_commit() {
  std::lock_guard lk{mtx_};
  if (failed_)
    return false;
  committing_ = true;
  return true;
}

bool import_stream::cancel(errc code, std::string message) {
  {
    std::lock_guard lk{mtx_};
    abandoned_ = true;
    if (committing_)
      return false;
    chunks_.clear();
    if (!failed_) {
      failed_ = true;
      code_ = code;
      message_ = std::move(message);
    }
  }
  ready_.notify_one();
  return true;
}

bool import_stream::abandoned() const {
  std::lock_guard lk{mtx_};
  return abandoned_;
}

bool import_stream::stopped() const {
  std::lock_guard lk{mtx_};
  return failed_;
}

import_stream_producer::~import_stream_producer() {
  if (!done_)
    stream_->fail(errc::unspecified,
                  "the import's rows stopped before their end");
}

void import_stream_producer::finish() {
  done_ = true;
  stream_->finish();
}

bool import_stream_producer::fail(errc code, std::string message) {
  done_ = true;
  return stream_->fail(code, std::move(message));
}

} // namespace engram::memories
