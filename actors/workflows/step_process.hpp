#pragma once

// What a chain actor needs to run one step attempt, as plain functions and
// one small class (no actors):
// - check_credential: is an environment variable or file usable (never
//   reading the secret into a message);
// - step_process: the step's child process (Boost.Process), leader of its
//   own process group, stdin from a file, stdout and stderr to files, with a
//   parent-death signal so a daemon killed with -9 takes its steps along;
// - parse_step_output: stdout → one JSON value;
// - collect_artifacts: every regular file of an attempt's folder with its
//   size, SHA-256 and content type;
// - resolve_artifact: an artifact's path for download, refusing anything
//   that leaves the run's folder.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <caf/expected.hpp>

#include "actors/workflows/definition.hpp"
#include "messages/workflows.hpp"

namespace engram::workflows {

// -- credentials --------------------------------------------------------------------

/// Checks one credential now: an environment variable must be set and not
/// empty; a file must exist, be a regular file (symlinks followed), be
/// readable by this process and not be empty. Fills credential, kind,
/// present, valid and detail ("ok", "not set", "empty", "no such file",
/// "not a regular file", "not readable", "empty file"). The other fields
/// (ids, checked_at_us) are left for the caller. A kind other than "env" or
/// "file" (definitions never produce one) is invalid with "unknown kind".
[[nodiscard]] credential_audit check_credential(const credential_spec& spec);

// -- the child process ------------------------------------------------------------

struct step_launch {
  /// argv[0] is the program (a name without '/' is looked up in PATH, the
  /// step's PATH if `env` sets one; a relative path with '/' is relative to
  /// `working_dir`). The child's argv[0] is the resolved path.
  std::vector<std::string> argv;
  /// Added to (or overriding) the daemon's environment.
  std::vector<std::pair<std::string, std::string>> env;
  /// Empty: the daemon's.
  std::filesystem::path working_dir;
  /// Empty: /dev/null.
  std::filesystem::path stdin_file;
  /// Created (0600) or truncated; empty: /dev/null. stdout and stderr may
  /// name the same file (one descriptor, interleaved).
  std::filesystem::path stdout_file;
  std::filesystem::path stderr_file;
};

/// How a step's process ended.
struct step_exit {
  /// Exit code if it exited normally, else -1.
  int exit_code = -1;
  /// Terminating signal if killed by one, else 0.
  int term_signal = 0;

  [[nodiscard]] bool success() const noexcept {
    return exit_code == 0 && term_signal == 0;
  }
  /// "exit code 3", "killed by signal 9 (Killed)".
  [[nodiscard]] std::string to_string() const;
};

/// A started step. Not copyable; the destructor kills the process group
/// (SIGKILL) and reaps the leader if it was not reaped yet.
///
/// Waiting is split so that the group can be signalled safely until the
/// leader is reaped (its pid, which is the group id, cannot be reused while
/// it is a zombie): `wait_exited` blocks until the leader has exited without
/// reaping it (call it from a thread of its own), then the owner calls
/// `reap`. `signal_group` and `reap` must be called from one thread (the
/// owner's), `wait_exited` from any.
///
/// How (see step_process.cpp): Boost.Process v1 (`bp::child` with `bp::exe`,
/// `bp::args`, `bp::env`) forks and execs; a custom initializer
/// (`on_exec_setup`) resets signal dispositions and the mask (the daemon
/// blocks SIGINT/SIGTERM), calls setpgid(0, 0), installs stdin/stdout/stderr
/// (opened by the parent with O_CLOEXEC, outputs truncated), changes
/// directory, sets PR_SET_PDEATHSIG = SIGKILL (then exits if the daemon is
/// already gone) and marks every other descriptor close-on-exec
/// (`cloexec_from_3`, shared with runtime/child_process.cpp). Failures of
/// those steps and of execve come back through a pipe of its own, so start
/// always knows the pid to reap. The `bp::child` is detached at once and
/// only the pid is kept: Boost never terminates, waits for or reaps it.
///
/// Linux ties the parent-death signal to the *thread* that started the
/// child: the step is killed (SIGKILL) when that thread exits, e.g. when the
/// detached actor that started it terminates. Start steps from a thread
/// that outlives them.
///
/// Needs SIGCHLD not set to SIG_IGN and no waitpid(-1) elsewhere (as for
/// runtime/child_process.hpp).
class step_process {
public:
  step_process(step_process&&) noexcept;
  step_process& operator=(step_process&&) noexcept;
  step_process(const step_process&) = delete;
  step_process& operator=(const step_process&) = delete;
  ~step_process();

  /// Starts the child: process_failed with the reason when the program
  /// cannot be found or executed, or a file cannot be opened. Returns once
  /// the child has exec'd (or failed to).
  [[nodiscard]] static caf::expected<step_process>
  start(const step_launch& launch);

  [[nodiscard]] pid_t pid() const noexcept;

  /// Blocks until the leader has exited (does not reap it).
  void wait_exited() const;

  /// Sends `sig` to every process of the group; false once reaped or when
  /// the group is gone.
  bool signal_group(int sig) noexcept;

  /// Kills what is left of the group (SIGKILL) and reaps the leader;
  /// call after wait_exited returned. Idempotent.
  step_exit reap();

private:
  struct impl;
  explicit step_process(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// -- output ----------------------------------------------------------------------

/// A step's stdout as one JSON value text: whitespace only → "{}"; more
/// than `max_bytes`, invalid JSON or trailing content → the error message
/// ("stdout is not valid JSON: ...", with the byte offset when known).
/// Codes: too_large for the size ("... limit of N bytes ..."),
/// invalid_argument otherwise. Nesting deeper than 64 is refused. Returns
/// the value re-serialized compactly (boost::json::serialize).
[[nodiscard]] caf::expected<std::string> parse_step_output(std::string_view out,
                                                           size_t max_bytes);

// -- artifacts ----------------------------------------------------------------------

struct artifact_file {
  /// Path below the attempt's folder with '/' separators.
  std::string name;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string content_type;
};

/// Every regular file below `dir` (recursively), sorted by name. Symbolic
/// links are not followed and not recorded (they could point anywhere),
/// nor are fifos, sockets or devices. not_found when `dir` is not a
/// directory. size_bytes is the number of bytes hashed.
[[nodiscard]] caf::expected<std::vector<artifact_file>>
collect_artifacts(const std::filesystem::path& dir);

/// Lower-case hex SHA-256 of a file's content.
[[nodiscard]] caf::expected<std::string>
sha256_file(const std::filesystem::path& file);

/// The content type by extension: .json application/json, .md
/// text/markdown, .txt/.log text/plain, .patch/.diff text/x-diff, .html
/// text/html, .csv text/csv, .yaml/.yml application/yaml, else
/// application/octet-stream.
[[nodiscard]] std::string content_type_for(std::string_view name);

/// The file to serve for `relative_path` (as stored: "<run_id>/...") of run
/// `run_id` below `root`: not_found or invalid_argument when the path is
/// absolute, has a ".." or empty component, does not start with the run's
/// folder, passes through a symbolic link, or does not end at a regular
/// file inside `<root>/<run_id>` after resolving every link. not_found only
/// for a path that is well-formed but does not exist; messages name the
/// given relative path, never `root`. Returns the canonical path.
[[nodiscard]] caf::expected<std::filesystem::path>
resolve_artifact(const std::filesystem::path& root, const std::string& run_id,
                 const std::string& relative_path);

} // namespace engram::workflows
