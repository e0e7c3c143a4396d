#include "runtime/fork_exec.hpp"

#include <algorithm>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>

namespace engram {

block_all_signals::block_all_signals() noexcept {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_);
}

block_all_signals::~block_all_signals() {
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

bool install_fd(int fd, int target) noexcept {
  if (fd == target)
    return ::fcntl(target, F_SETFD, 0) == 0;
  return ::dup2(fd, target) == target;
}

void cloexec_from_3() noexcept {
#ifdef SYS_close_range
  // CLOSE_RANGE_CLOEXEC = (1U << 2), Linux 5.11+.
  if (::syscall(SYS_close_range, 3U, ~0U, 1U << 2) == 0)
    return;
#endif
  rlimit rl{};
  long max_fd = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    max_fd = std::min<long>(static_cast<long>(rl.rlim_cur), 1L << 20);
  for (int fd = 3; fd < max_fd; ++fd)
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

} // namespace engram
