#pragma once

// What the daemon's two fork/exec paths share (runtime/child_process.cpp for
// initdb, postgres and friends; actors/workflows/step_process.cpp for
// workflow steps): an owned descriptor, signals blocked across the fork, and
// the child's descriptor set-up before execve. One copy, so that a fix to
// what a child inherits reaches both.

#include <utility>

#include <signal.h>
#include <unistd.h>

namespace engram {

/// Owns one file descriptor (-1: none) and closes it.
class unique_fd {
public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

private:
  int fd_ = -1;
};

/// Blocks every signal in the calling thread for the duration of a fork, so
/// the child never runs one of the daemon's handlers before it resets them.
class block_all_signals {
public:
  block_all_signals() noexcept;
  ~block_all_signals();
  block_all_signals(const block_all_signals&) = delete;
  block_all_signals& operator=(const block_all_signals&) = delete;

private:
  sigset_t old_;
};

// For the child between fork and execve: async-signal-safe.

/// Moves `fd` onto `target` and makes sure it survives exec.
bool install_fd(int fd, int target) noexcept;

/// Marks every descriptor >= 3 close-on-exec.
void cloexec_from_3() noexcept;

} // namespace engram
