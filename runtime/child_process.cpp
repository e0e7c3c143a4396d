#include "runtime/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/errc.hpp"
#include "runtime/fork_exec.hpp"

extern char** environ;

namespace engram {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

caf::error fail(std::string what) {
  return make_error(errc::process_failed, std::move(what));
}

// -- the steps between fork and exec, reported back through a pipe ----------

enum class child_step : int {
  signals = 1,
  process_group,
  redirect,
  setgroups,
  setgid,
  setuid,
  chdir,
  pdeathsig,
  exec,
};

const char* step_name(child_step s) {
  switch (s) {
    case child_step::signals: return "resetting signals";
    case child_step::process_group: return "setpgid";
    case child_step::redirect: return "redirecting stdio";
    case child_step::setgroups: return "setgroups";
    case child_step::setgid: return "setgid";
    case child_step::setuid: return "setuid";
    case child_step::chdir: return "chdir to the working directory";
    case child_step::pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case child_step::exec: return "execve";
  }
  return "?";
}

struct child_report {
  int step;
  int err;
};

/// Only async-signal-safe calls from here on.
[[noreturn]] void child_fail(int report_fd, child_step step, int err) noexcept {
  child_report r{static_cast<int>(step), err};
  [[maybe_unused]] auto n = ::write(report_fd, &r, sizeof(r));
  ::_exit(127);
}

/// Switches to `uid`/`gid`/`groups` (async-signal-safe). Returns the failing
/// step, or 0.
int switch_user(bool as_root, uid_t uid, gid_t gid, const gid_t* groups,
                size_t ngroups) noexcept {
  if (as_root) {
    if (::setgroups(ngroups, groups) != 0)
      return static_cast<int>(child_step::setgroups);
    if (::setgid(gid) != 0)
      return static_cast<int>(child_step::setgid);
    if (::setuid(uid) != 0)
      return static_cast<int>(child_step::setuid);
    return 0;
  }
  if (gid != ::getegid() && ::setgid(gid) != 0)
    return static_cast<int>(child_step::setgid);
  if (uid != ::geteuid() && ::setuid(uid) != 0)
    return static_cast<int>(child_step::setuid);
  return 0;
}

std::string lookup_env(const std::vector<std::string>& env,
                       std::string_view key) {
  for (const auto& kv : env)
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0
        && kv[key.size()] == '=')
      return kv.substr(key.size() + 1);
  return {};
}

void set_env(std::vector<std::string>& env, const std::string& key,
             const std::string& value) {
  auto entry = key + "=" + value;
  for (auto& kv : env)
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0
        && kv[key.size()] == '=') {
      kv = std::move(entry);
      return;
    }
  env.push_back(std::move(entry));
}

caf::expected<std::string> resolve_program(const std::string& name,
                                           const std::string& path_var) {
  if (name.empty())
    return fail("cannot start a process: empty argv");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0)
      return fail("cannot execute " + name + ": " + errno_text(errno));
    return name;
  }
  std::string_view dirs = path_var.empty() ? "/usr/local/bin:/usr/bin:/bin"
                                           : std::string_view{path_var};
  while (true) {
    auto colon = dirs.find(':');
    auto dir = dirs.substr(0, colon);
    std::string candidate = dir.empty() ? "." : std::string{dir};
    candidate += '/';
    candidate += name;
    struct stat st{};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)
        && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string_view::npos)
      break;
    dirs.remove_prefix(colon + 1);
  }
  return fail("cannot find program '" + name + "' in PATH");
}

} // namespace

// -- user_identity ------------------------------------------------------------

caf::expected<user_identity> lookup_user(const std::string& name) {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found))
         == ERANGE)
    buf.resize(buf.size() * 2);
  if (rc != 0)
    return fail("cannot look up user '" + name + "': " + errno_text(rc));
  if (found == nullptr)
    return fail("user '" + name + "' does not exist");
  user_identity result;
  result.name = pw.pw_name;
  result.uid = pw.pw_uid;
  result.gid = pw.pw_gid;
  result.home = pw.pw_dir != nullptr ? pw.pw_dir : "";
  int ngroups = 32;
  std::vector<gid_t> groups(static_cast<size_t>(ngroups));
  while (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &ngroups) < 0) {
    groups.resize(static_cast<size_t>(std::max(ngroups, 1) * 2));
    ngroups = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(ngroups));
  if (std::find(groups.begin(), groups.end(), result.gid) == groups.end())
    groups.push_back(result.gid);
  result.groups = std::move(groups);
  return result;
}

caf::expected<bool> can_access_as(const user_identity& user,
                                  const std::filesystem::path& path,
                                  int mode) {
  const bool as_root = ::geteuid() == 0;
  if (!as_root && user.uid == ::geteuid())
    return ::access(path.c_str(), mode) == 0;
  if (!as_root)
    return fail("checking access as user '" + user.name + "' needs root");
  std::string p = path.string();
  pid_t pid;
  {
    block_all_signals guard;
    pid = ::fork();
    if (pid == 0) {
      if (switch_user(true, user.uid, user.gid, user.groups.data(),
                      user.groups.size())
          != 0)
        ::_exit(2);
      ::_exit(::access(p.c_str(), mode) == 0 ? 0 : 1);
    }
  }
  if (pid < 0)
    return fail("fork failed: " + errno_text(errno));
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR)
      return fail("waitpid failed: " + errno_text(errno));
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) <= 1)
    return WEXITSTATUS(st) == 0;
  return fail("cannot switch to user '" + user.name
              + "' to check access to " + p);
}

// -- process_status -------------------------------------------------------------

std::string process_status::to_string() const {
  if (term_signal != 0) {
    std::string result = "killed by signal " + std::to_string(term_signal);
    if (const char* name = ::strsignal(term_signal))
      result += std::string{" ("} + name + ")";
    return result;
  }
  if (exit_code < 0)
    return "unknown exit status";
  return "exit code " + std::to_string(exit_code);
}

process_status process_status::from_wait_status(int status) noexcept {
  process_status result;
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.term_signal = WTERMSIG(status);
  return result;
}

std::string process_result::describe() const {
  std::string result = timed_out ? "timed out (killed)" : status.to_string();
  std::string_view out = output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.remove_suffix(1);
  constexpr size_t max_shown = 4096;
  if (out.size() > max_shown) {
    out.remove_prefix(out.size() - max_shown);
    result += ": ...";
  } else if (!out.empty()) {
    result += ": ";
  }
  result += out;
  return result;
}

// -- child_process ------------------------------------------------------------

child_process::child_process(child_process&& other) noexcept
  : pid_(std::exchange(other.pid_, -1)),
    own_group_(other.own_group_),
    status_(std::move(other.status_)) {
  other.status_.reset();
}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    own_group_ = other.own_group_;
    status_ = std::move(other.status_);
    other.status_.reset();
  }
  return *this;
}

child_process::~child_process() {
  kill_and_reap();
}

void child_process::kill_and_reap() noexcept {
  if (pid_ > 0 && !status_) {
    signal_group(SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  status_.reset();
}

bool child_process::try_reap() noexcept {
  if (pid_ <= 0 || status_)
    return true;
  int st = 0;
  auto rc = ::waitpid(pid_, &st, WNOHANG);
  if (rc == pid_) {
    status_ = process_status::from_wait_status(st);
    return true;
  }
  if (rc < 0 && errno == ECHILD) {
    // Someone else reaped it (SIGCHLD ignored?): the status is lost.
    status_ = process_status{};
    return true;
  }
  return false;
}

bool child_process::running() {
  return pid_ > 0 && !try_reap();
}

std::optional<process_status>
child_process::wait_for(std::chrono::milliseconds timeout) {
  if (pid_ <= 0)
    return process_status{};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds{1};
  while (!try_reap()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline
                                                                     - now);
    std::this_thread::sleep_for(std::min(pause, left + std::chrono::milliseconds{1}));
    pause = std::min(pause * 2, std::chrono::milliseconds{50});
  }
  return status_;
}

process_status child_process::wait() {
  if (pid_ <= 0)
    return process_status{};
  if (status_)
    return *status_;
  int st = 0;
  while (true) {
    auto rc = ::waitpid(pid_, &st, 0);
    if (rc == pid_) {
      status_ = process_status::from_wait_status(st);
      break;
    }
    if (rc < 0 && errno != EINTR) {
      status_ = process_status{};
      break;
    }
  }
  return *status_;
}

bool child_process::signal(int sig) noexcept {
  if (pid_ <= 0 || status_)
    return false;
  return ::kill(pid_, sig) == 0;
}

bool child_process::signal_group(int sig) noexcept {
  if (pid_ <= 0 || status_)
    return false;
  if (own_group_ && ::kill(-pid_, sig) == 0)
    return true;
  return ::kill(pid_, sig) == 0;
}

caf::expected<child_process> child_process::spawn(const process_options& opts) {
  return spawn_impl(opts, -1);
}

caf::expected<child_process>
child_process::spawn_impl(const process_options& opts, int out_fd_override) {
  if (opts.argv.empty())
    return fail("cannot start a process: empty argv");
  // Environment.
  std::vector<std::string> env;
  if (opts.inherit_environment)
    for (char** e = environ; e != nullptr && *e != nullptr; ++e)
      env.emplace_back(*e);
  if (opts.user) {
    bool has_home = false, has_user = false, has_logname = false;
    for (const auto& [k, v] : opts.env) {
      has_home |= k == "HOME";
      has_user |= k == "USER";
      has_logname |= k == "LOGNAME";
    }
    if (!has_home && !opts.user->home.empty())
      set_env(env, "HOME", opts.user->home.string());
    if (!has_user)
      set_env(env, "USER", opts.user->name);
    if (!has_logname)
      set_env(env, "LOGNAME", opts.user->name);
  }
  for (const auto& [k, v] : opts.env)
    set_env(env, k, v);
  auto program = resolve_program(opts.argv.front(), lookup_env(env, "PATH"));
  if (!program)
    return std::move(program.error());
  std::vector<char*> argv_ptrs;
  for (const auto& a : opts.argv)
    argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (const auto& e : env)
    env_ptrs.push_back(const_cast<char*>(e.c_str()));
  env_ptrs.push_back(nullptr);
  // Descriptors.
  unique_fd in_fd{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (!in_fd)
    return fail("cannot open /dev/null: " + errno_text(errno));
  unique_fd out_owned;
  int out_fd = out_fd_override;
  if (out_fd < 0) {
    if (opts.output_file.empty())
      out_owned.reset(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    else
      out_owned.reset(::open(opts.output_file.c_str(),
                             O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!out_owned)
      return fail("cannot open " + (opts.output_file.empty()
                                      ? std::string{"/dev/null"}
                                      : opts.output_file.string())
                  + " for the output of " + opts.argv.front() + ": "
                  + errno_text(errno));
    out_fd = out_owned.get();
  }
  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0)
    return fail("pipe2 failed: " + errno_text(errno));
  unique_fd report_rd{report_pipe[0]};
  unique_fd report_wr{report_pipe[1]};
  // Everything the child needs, computed before fork.
  const bool as_root = ::geteuid() == 0;
  const bool switch_uid = opts.user.has_value();
  const uid_t uid = switch_uid ? opts.user->uid : 0;
  const gid_t gid = switch_uid ? opts.user->gid : 0;
  const gid_t* groups = switch_uid ? opts.user->groups.data() : nullptr;
  const size_t ngroups = switch_uid ? opts.user->groups.size() : 0;
  const std::string workdir = opts.working_dir.string();
  const int pdeathsig = opts.parent_death_signal;
  const bool new_group = opts.new_process_group;
  const pid_t parent = ::getpid();
  const char* path = program->c_str();
  const int in = in_fd.get();
  const int wr = report_wr.get();
  pid_t pid;
  {
    block_all_signals guard;
    pid = ::fork();
    if (pid == 0) {
      // Child: async-signal-safe calls only.
      struct sigaction dfl{};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP)
          ::sigaction(sig, &dfl, nullptr); // fails harmlessly for reserved ones
      if (new_group && ::setpgid(0, 0) != 0)
        child_fail(wr, child_step::process_group, errno);
      if (!install_fd(in, 0) || !install_fd(out_fd, 1)
          || !install_fd(out_fd, 2))
        child_fail(wr, child_step::redirect, errno);
      if (switch_uid) {
        if (int step = switch_user(as_root, uid, gid, groups, ngroups))
          child_fail(wr, static_cast<child_step>(step), errno);
      }
      if (!workdir.empty() && ::chdir(workdir.c_str()) != 0)
        child_fail(wr, child_step::chdir, errno);
      // After the credential change, which clears the parent-death signal.
      if (pdeathsig != 0) {
        if (::prctl(PR_SET_PDEATHSIG, pdeathsig) != 0)
          child_fail(wr, child_step::pdeathsig, errno);
        if (::getppid() != parent)
          ::_exit(128 + pdeathsig); // the parent already died
      }
      cloexec_from_3();
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(path, argv_ptrs.data(), env_ptrs.data());
      child_fail(wr, child_step::exec, errno);
    }
  }
  if (pid < 0)
    return fail("fork failed for " + opts.argv.front() + ": "
                + errno_text(errno));
  if (new_group)
    ::setpgid(pid, pid); // closes the race with an early signal_group
  report_wr.reset();
  child_report report{};
  ssize_t n;
  do {
    n = ::read(report_rd.get(), &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(report))) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    std::string what = "cannot start " + *program;
    if (switch_uid)
      what += " as user '" + opts.user->name + "'";
    what += ": ";
    what += step_name(static_cast<child_step>(report.step));
    if (static_cast<child_step>(report.step) == child_step::chdir)
      what += " " + workdir;
    what += " failed: " + errno_text(report.err);
    return fail(std::move(what));
  }
  child_process result;
  result.pid_ = pid;
  result.own_group_ = new_group;
  return result;
}

caf::expected<process_result> run_and_wait(const process_options& opts,
                                           std::chrono::milliseconds timeout) {
  unique_fd capture{::memfd_create("engram-child-output", MFD_CLOEXEC)};
  if (!capture) {
    char tmpl[] = "/tmp/engram-output-XXXXXX";
    capture.reset(::mkostemp(tmpl, O_CLOEXEC));
    if (!capture)
      return fail("cannot create a file for the output of "
                  + (opts.argv.empty() ? std::string{"?"} : opts.argv.front())
                  + ": " + errno_text(errno));
    ::unlink(tmpl);
  }
  auto child = child_process::spawn_impl(opts, capture.get());
  if (!child)
    return std::move(child.error());
  process_result result;
  if (auto st = child->wait_for(timeout)) {
    result.status = *st;
  } else {
    result.timed_out = true;
    child->signal_group(SIGKILL);
    result.status = child->wait();
  }
  constexpr off_t cap = 1 << 20;
  off_t size = ::lseek(capture.get(), 0, SEEK_END);
  if (size > 0) {
    off_t from = size > cap ? size - cap : 0;
    result.output.resize(static_cast<size_t>(size - from));
    ssize_t got = ::pread(capture.get(), result.output.data(),
                          result.output.size(), from);
    result.output.resize(got > 0 ? static_cast<size_t>(got) : 0);
  }
  return result;
}

caf::expected<process_result> run_and_wait(std::vector<std::string> argv,
                                           std::chrono::milliseconds timeout) {
  process_options opts;
  opts.argv = std::move(argv);
  return run_and_wait(opts, timeout);
}

} // namespace engram
