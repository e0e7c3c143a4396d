#pragma once

// Real, throwaway PostgreSQL servers for tests, on top of the daemon's own
// embedded_postgres (initdb into a temp dir, private Unix socket, no TCP).
//
// Two ways to use it:
//   - `shared_postgres().create_database("name")` (or `test_database()`):
//     one server per test binary, started on first use, and a fresh database
//     per test: fast, the usual choice;
//   - a `throwaway_postgres` of your own when a test needs to stop or
//     restart the server.
// Failures throw std::runtime_error with the server's log tail.
//
// Construct servers on the main thread (gtest's): the server is tied to the
// thread that started it (PR_SET_PDEATHSIG), so it shuts itself down if the
// test binary is killed.

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/embedded_postgres.hpp"

namespace engram::test {

/// A server in a temp data dir, removed with everything it made when the
/// object is destroyed.
class throwaway_postgres {
public:
  /// Creates /tmp/engram-pg-XXXXXX (mode 0755) and, if `start_now`,
  /// starts a server whose default database is `database`.
  explicit throwaway_postgres(std::string database = "engram",
                              bool start_now = true);
  ~throwaway_postgres();

  throwaway_postgres(const throwaway_postgres&) = delete;
  throwaway_postgres& operator=(const throwaway_postgres&) = delete;

  /// Starts the server (again) on the same data; no-op if it runs.
  void start();
  /// Stops the server; the data stays.
  void stop();
  [[nodiscard]] bool running() const;

  /// libpq connection string of the default database, or of `database`.
  [[nodiscard]] std::string connection_string() const;
  [[nodiscard]] std::string connection_string(const std::string& database) const;

  /// (Re)creates an empty database `name` ([a-z0-9_], at most 63 chars),
  /// dropping an existing one, and returns its connection string.
  std::string create_database(const std::string& name);
  void drop_database(const std::string& name);

  /// Runs `sql` with psql (ON_ERROR_STOP, unaligned, tuples only) against
  /// `database` (empty = the default) and returns its output without the
  /// trailing newline. Throws on failure.
  std::string psql(const std::string& sql, const std::string& database = {}) const;

  [[nodiscard]] const std::filesystem::path& data_dir() const { return dir_; }
  /// The running server; throws if stopped.
  [[nodiscard]] embedded_postgres& server() const;

private:
  void remove_leftovers();

  std::filesystem::path dir_;
  std::string database_;
  std::unique_ptr<embedded_postgres> server_;
  // Places outside dir_ the server used (fallback cluster or socket dirs).
  std::filesystem::path cluster_dir_;
  std::filesystem::path socket_dir_;
  mutable std::mutex mtx_;
};

/// One server for the whole test binary, started on first use (on the
/// calling thread: use it from the main thread) and removed at exit.
throwaway_postgres& shared_postgres();

/// A database name for the running gtest test: "t_<suite>_<test>",
/// lower-cased, [a-z0-9_] only, at most 63 chars.
std::string database_name_for_current_test();

/// `shared_postgres().create_database(database_name_for_current_test())`.
std::string test_database();

/// Removes the cluster and socket dirs of a server that live outside its
/// data dir (the /var/lib/engram/clusters/<hash> and /tmp/engram-<hash>
/// fallbacks), then `data_dir` itself. The server must be stopped.
void remove_postgres_dirs(const std::filesystem::path& data_dir,
                          const std::filesystem::path& cluster_dir,
                          const std::filesystem::path& socket_dir);

} // namespace engram::test
