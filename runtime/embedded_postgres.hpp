#pragma once

// The daemon's own PostgreSQL server: a cluster in engram's data directory,
// run as a child process on a private Unix socket, stopped with the daemon.
//
// Layout (defaults):
//   <data_dir>/pgdata         the cluster (0700, owned by the server's user)
//   <data_dir>/run            the socket directory (0700, same owner)
//   <data_dir>/postgres.log   the server's stderr (0600)
//   <data_dir>/postgres.lock  flock held while a server of this directory runs
//
// When running as root the server runs as `system_user` (PostgreSQL refuses
// root). If that user cannot traverse to <data_dir> (e.g. a checkout under a
// private home), the cluster and socket move to
// /var/lib/engram/clusters/<hash of data_dir>/{pgdata,run} and a note saying
// so is left in <data_dir>/pgdata.location. If the socket path would not fit
// sockaddr_un (107 bytes), the socket directory moves to /tmp/engram-<hash>.
//
// Not thread-safe. Call start() from a long-lived thread (the main thread):
// the server gets PR_SET_PDEATHSIG=SIGINT, which Linux fires when the
// *thread* that forked it exits, so that a daemon killed with SIGKILL does not
// leave its server behind. The process must not ignore SIGCHLD (see
// child_process.hpp).

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <sys/types.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace engram {

struct embedded_postgres_options {
  /// engram's data dir; the cluster lives in <data_dir>/pgdata, socket dir
  /// <data_dir>/run, server log <data_dir>/postgres.log.
  std::filesystem::path data_dir;
  /// Empty = the /usr/lib/postgresql/<N>/bin of an existing cluster's major
  /// version, else the newest one that has initdb.
  std::string bin_dir;
  /// Used only when running as root.
  std::string system_user = "postgres";
  std::string database = "engram";
  std::chrono::milliseconds start_timeout{60000};
  std::chrono::milliseconds stop_timeout{30000};
};

class embedded_postgres {
public:
  /// The superuser role initdb creates; also the user of connection_string().
  static constexpr const char* role = "engram";
  /// The port number in the socket's name (no TCP is opened).
  static constexpr int port = 5432;

  /// Initialises the cluster on first start (initdb, superuser role
  /// "engram", auth trust on local socket only, UTF8, no TCP:
  /// listen_addresses=''), handles a stale postmaster.pid, starts the server
  /// as a child process on a private Unix socket directory (mode 0700), waits
  /// until it accepts connections, creates the database if missing. On any
  /// failure it stops what it started and returns an error naming the step,
  /// the path and the server log tail.
  static caf::expected<std::unique_ptr<embedded_postgres>>
  start(embedded_postgres_options opts);

  embedded_postgres(const embedded_postgres&) = delete;
  embedded_postgres& operator=(const embedded_postgres&) = delete;

  /// Calls stop().
  ~embedded_postgres();

  /// libpq connection string, e.g.
  /// "host=/path/run port=5432 user=engram dbname=engram".
  [[nodiscard]] std::string connection_string() const;

  /// Same, for another database of this server.
  [[nodiscard]] std::string connection_string(const std::string& dbname) const;

  /// Fast shutdown (SIGINT to the postmaster, wait up to stop_timeout, then
  /// SIGQUIT, then SIGKILL); idempotent; the destructor calls it. Fails only
  /// if the server could not be made to exit at all.
  caf::error stop();

  /// The postmaster's pid (also after stop(), for diagnostics).
  [[nodiscard]] pid_t pid() const;

  /// Whether the postmaster is still running.
  [[nodiscard]] bool running() const;

  /// The cluster's data directory (PGDATA).
  [[nodiscard]] const std::filesystem::path& cluster_dir() const;

  /// The directory holding the server's Unix socket.
  [[nodiscard]] const std::filesystem::path& socket_dir() const;

  /// The server's log file.
  [[nodiscard]] const std::filesystem::path& log_file() const;

  /// The directory of the PostgreSQL binaries in use.
  [[nodiscard]] const std::filesystem::path& bin_dir() const;

  [[nodiscard]] const embedded_postgres_options& options() const;

  struct state;

private:
  explicit embedded_postgres(std::unique_ptr<state> st);

  std::unique_ptr<state> st_;
};

/// Quotes a value for a libpq key=value connection string when needed.
[[nodiscard]] std::string conninfo_quote(const std::string& value);

} // namespace engram
