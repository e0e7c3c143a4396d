#include "runtime/exit_watch.hpp"

#include <cerrno>
#include <thread>

#include <sys/wait.h>

namespace engram {

void watch_exit(pid_t pid, std::function<void()> on_exit) {
  std::thread([pid, on_exit = std::move(on_exit)] {
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT)
             != 0
           && errno == EINTR) {
    }
    on_exit();
  }).detach();
}

} // namespace engram
