#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/child_process.hpp"

namespace engram::test {

/// A temporary directory, removed with everything in it on destruction.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix);
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept {
    return path_;
  }

private:
  std::filesystem::path path_;
};

/// Environment variables as (name, value) pairs.
using environment_vars = std::vector<std::pair<std::string, std::string>>;

/// `engram serve` as a child process, the way an operator runs it: its own
/// data directory, HTTP on port 0 (the chosen port is read from
/// <data-dir>/engram.port), logs to <data-dir>/daemon.log.
class daemon_process {
public:
  /// Starts the daemon with `--data-dir data_dir --http.port 0` plus `extra`
  /// flags; DATABASE_URL and ENGRAM_* variables of the test's environment
  /// are not passed on, only those in `env`.
  daemon_process(std::filesystem::path data_dir,
                 std::vector<std::string> extra = {}, environment_vars env = {});

  /// Kills the daemon if it still runs.
  ~daemon_process();

  /// Waits until the port file appears (up to `timeout`); returns the port
  /// or 0 if the daemon exited or the time ran out.
  uint16_t wait_for_port(std::chrono::milliseconds timeout
                         = std::chrono::seconds{90});

  [[nodiscard]] uint16_t port() const noexcept {
    return port_;
  }

  [[nodiscard]] pid_t pid() const noexcept {
    return proc_.pid();
  }

  /// Sends SIGTERM and waits for the exit (up to `timeout`).
  std::optional<process_status>
  terminate(std::chrono::milliseconds timeout = std::chrono::seconds{60});

  /// Sends SIGKILL and reaps the process.
  void kill9();

  /// Waits for the process to exit by itself.
  std::optional<process_status> wait_for_exit(std::chrono::milliseconds timeout);

  /// The daemon's log so far.
  [[nodiscard]] std::string log() const;

  /// The pid in <data-dir>/pgdata/postmaster.pid, or 0.
  [[nodiscard]] pid_t postgres_pid() const;

private:
  std::filesystem::path data_dir_;
  child_process proc_;
  uint16_t port_ = 0;
};

/// Whether process `pid` exists (and is not a zombie).
[[nodiscard]] bool process_alive(pid_t pid);

/// Pids of live processes whose command line mentions `needle`.
[[nodiscard]] std::vector<pid_t> processes_mentioning(const std::string& needle);

/// Pids of live processes whose working directory is `dir` (PostgreSQL's
/// postmaster and every backend run in their cluster directory).
[[nodiscard]] std::vector<pid_t> processes_in(const std::filesystem::path& dir);

/// Runs `engram <args>` to completion (data dir and env as above).
[[nodiscard]] process_result run_engram(const std::vector<std::string>& args,
                                        environment_vars env = {},
                                        std::chrono::milliseconds timeout
                                        = std::chrono::seconds{90});

} // namespace engram::test
