#pragma once

// A small fork/execve wrapper for the external programs the daemon runs
// (initdb, postgres, pg_isready, psql, ...): optional user switch, parent-death
// signal, output to a file or /dev/null, own process group, bounded waits.
//
// Linux only (prctl, memfd_create, /proc). Not thread-safe per object.
// Children are reaped with waitpid on their pid: the process must not set
// SIGCHLD to SIG_IGN (exit statuses would be lost) nor reap with waitpid(-1).

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace engram {

/// A Unix account resolved ahead of time (getpwnam_r + getgrouplist), so that
/// a forked child can switch to it with async-signal-safe calls only.
struct user_identity {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  /// Supplementary groups, including `gid`.
  std::vector<gid_t> groups;
  std::filesystem::path home;
};

/// Looks `name` up in the user database.
[[nodiscard]] caf::expected<user_identity> lookup_user(const std::string& name);

/// Returns whether `user` may access `path` with `mode` (R_OK, W_OK, X_OK as
/// for access(2)), checked in a forked child that switches to the user, so
/// every ancestor's permissions, ACLs and the user's groups count. Requires
/// root when `user` is not the current user.
[[nodiscard]] caf::expected<bool>
can_access_as(const user_identity& user, const std::filesystem::path& path,
              int mode);

/// How to start a child process.
struct process_options {
  /// Program and arguments. A program without a '/' is looked up in PATH.
  std::vector<std::string> argv;
  /// Whether the child starts from our environment; `env` is applied on top.
  bool inherit_environment = true;
  /// Variables to set (or override) in the child's environment.
  std::vector<std::pair<std::string, std::string>> env;
  /// Working directory of the child; empty = ours.
  std::filesystem::path working_dir;
  /// Account to switch to before exec (setgroups, setgid, setuid). Requires
  /// root unless it is the current account. HOME, USER and LOGNAME are set
  /// to the account's unless `env` sets them.
  std::optional<user_identity> user;
  /// Signal the child receives when the thread that started it exits (0 =
  /// none). Linux ties PR_SET_PDEATHSIG to the forking *thread*: start such
  /// children from a long-lived thread (the main thread).
  int parent_death_signal = 0;
  /// File that receives stdout and stderr (opened O_APPEND, created 0600);
  /// empty = /dev/null. Ignored by `run_and_wait`, which captures output.
  std::filesystem::path output_file;
  /// Whether the child leads a new process group (so a terminal's Ctrl-C to
  /// our group does not reach it, and `signal_group` reaches its children).
  bool new_process_group = false;
};

/// The end of a process.
struct process_status {
  /// Exit code if it exited normally, else -1.
  int exit_code = -1;
  /// Terminating signal if killed by one, else 0.
  int term_signal = 0;

  [[nodiscard]] bool success() const noexcept {
    return exit_code == 0 && term_signal == 0;
  }
  /// "exit code 1", "killed by signal 9 (Killed)".
  [[nodiscard]] std::string to_string() const;

  [[nodiscard]] static process_status from_wait_status(int status) noexcept;
};

struct process_result;

/// A running (or finished, not yet destroyed) child process. Movable; the
/// destructor kills (SIGKILL) and reaps a child that is still running, so
/// callers that want a graceful end must stop the child themselves first.
class child_process {
public:
  child_process() noexcept = default;
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();

  /// Forks and execs. Fails (process_failed) if the program cannot be
  /// found, the output file cannot be opened, or anything between fork and
  /// exec fails (the child reports the step and errno back through a pipe).
  [[nodiscard]] static caf::expected<child_process>
  spawn(const process_options& opts);

  /// Process id, or -1 for an empty object.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Whether the child has not been reaped yet (reaps it if it has exited).
  [[nodiscard]] bool running();

  /// The exit status once reaped.
  [[nodiscard]] const std::optional<process_status>& status() const noexcept {
    return status_;
  }

  /// Waits up to `timeout` for the child to exit; returns its status, or
  /// nothing if it is still running.
  std::optional<process_status> wait_for(std::chrono::milliseconds timeout);

  /// Waits until the child exits.
  process_status wait();

  /// Sends `sig` to the child; false if it is gone or the call failed.
  bool signal(int sig) noexcept;

  /// Sends `sig` to the child's process group (only meaningful with
  /// `new_process_group`); falls back to the child alone otherwise.
  bool signal_group(int sig) noexcept;

private:
  friend caf::expected<process_result>
  run_and_wait(const process_options& opts, std::chrono::milliseconds timeout);

  /// Starts a child; `out_fd` >= 0 overrides `opts.output_file`.
  static caf::expected<child_process> spawn_impl(const process_options& opts,
                                                 int out_fd);

  bool try_reap() noexcept;
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  bool own_group_ = false;
  std::optional<process_status> status_;
};

/// What `run_and_wait` saw.
struct process_result {
  process_status status;
  /// True if the timeout passed and the child was killed.
  bool timed_out = false;
  /// stdout and stderr, interleaved (capped at the last 1 MiB).
  std::string output;

  [[nodiscard]] bool success() const noexcept {
    return !timed_out && status.success();
  }
  /// "exit code 1: <output>" for error messages.
  [[nodiscard]] std::string describe() const;
};

/// Runs a program to completion, capturing its output. On timeout the child
/// (and its group, with `new_process_group`) is killed with SIGKILL. Fails
/// only if the program could not be started.
[[nodiscard]] caf::expected<process_result>
run_and_wait(const process_options& opts, std::chrono::milliseconds timeout);

/// Shorthand: `argv` with our environment, no user switch.
[[nodiscard]] caf::expected<process_result>
run_and_wait(std::vector<std::string> argv, std::chrono::milliseconds timeout);

} // namespace engram
