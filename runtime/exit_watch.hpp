#pragma once

// Learning that a child process exited without blocking an actor: a
// background thread waits for the exit without reaping the child (so its
// owner can still signal its process group safely, the pid cannot be
// reused), then calls back. The owner reaps.

#include <functional>

#include <sys/types.h>

namespace engram {

/// Calls `on_exit` from a background thread once child `pid` has exited
/// (waitid with WNOWAIT: the child stays a zombie until its owner reaps it),
/// or at once there if `pid` is not a child of this process (any more).
/// `on_exit` must be cheap and thread-safe, e.g. a message to an actor.
void watch_exit(pid_t pid, std::function<void()> on_exit);

} // namespace engram
