#include "runtime/embedded_postgres.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <locale.h>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "messages/errc.hpp"
#include "runtime/child_process.hpp"
#include "runtime/log.hpp"
#include "runtime/split.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace engram {

namespace {

// -- logging ------------------------------------------------------------------

std::shared_ptr<spdlog::logger> pglog() {
  return log::get("postgres");
}

// -- small helpers ------------------------------------------------------------

constexpr std::string_view socket_name = ".s.PGSQL.5432";
constexpr size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1; // 107
constexpr const char* fallback_cluster_root = "/var/lib/engram/clusters";
constexpr off_t log_rotate_size = 16 << 20;

std::string errno_text(int err) {
  return std::strerror(err);
}

caf::error fail(std::string what) {
  return make_error(errc::process_failed, "embedded PostgreSQL: " + std::move(what));
}

std::string hash_hex(std::string_view text) {
  uint64_t h = 14695981039346656037ull; // FNV-1a 64
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string read_file(const fs::path& p, size_t max = 1 << 20) {
  std::ifstream in{p, std::ios::binary};
  if (!in)
    return {};
  std::string result;
  result.resize(max);
  in.read(result.data(), static_cast<std::streamsize>(max));
  result.resize(static_cast<size_t>(in.gcount()));
  return result;
}

std::string first_line(const std::string& text) {
  auto nl = text.find('\n');
  auto line = text.substr(0, nl);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  return line;
}

/// Writes `content` to `path` (created with `mode`, owned by uid/gid when we
/// are root), fsyncs it.
caf::error write_file(const fs::path& path, std::string_view content,
                      mode_t mode, bool append, std::optional<uid_t> uid,
                      gid_t gid) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0)
    return fail("cannot write " + path.string() + ": " + errno_text(errno));
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    auto n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail("cannot write " + path.string() + ": " + errno_text(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (!append)
    ::fchmod(fd, mode);
  if (uid && ::fchown(fd, *uid, gid) != 0) {
    int err = errno;
    ::close(fd);
    return fail("cannot chown " + path.string() + ": " + errno_text(err));
  }
  ::fsync(fd);
  ::close(fd);
  return {};
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Creates the missing components of `dir` with mode 0755 (exactly,
/// whatever the umask).
caf::error make_dirs_0755(const fs::path& dir) {
  std::vector<fs::path> missing;
  for (auto p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st{};
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return fail(p.string() + " exists and is not a directory");
      break;
    }
    missing.push_back(p);
    if (p == p.root_path())
      break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST)
      return fail("cannot create directory " + it->string() + ": "
                  + errno_text(errno));
    ::chmod(it->c_str(), 0755);
  }
  return {};
}

/// Creates `dir` (parent must exist) as a 0700 directory owned by uid/gid;
/// an existing one gets that owner and mode (we own the layout below the
/// data dir).
caf::error make_owned_dir(const fs::path& dir, bool as_root, uid_t uid,
                          gid_t gid) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail("cannot create directory " + dir.string() + ": "
                + errno_text(errno));
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0)
    return fail("cannot stat " + dir.string() + ": " + errno_text(errno));
  if (!S_ISDIR(st.st_mode))
    return fail(dir.string() + " exists and is not a directory");
  if (as_root && (st.st_uid != uid || st.st_gid != gid)
      && ::chown(dir.c_str(), uid, gid) != 0)
    return fail("cannot chown " + dir.string() + ": " + errno_text(errno));
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0)
    return fail("cannot chmod " + dir.string() + ": " + errno_text(errno));
  return {};
}

/// Creates or validates a private directory in a shared place (/tmp):
/// refuses one that is a symlink, owned by someone else or accessible to
/// group/other.
caf::error make_private_shared_dir(const fs::path& dir, bool as_root,
                                   uid_t uid, gid_t gid) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    if (as_root && ::chown(dir.c_str(), uid, gid) != 0)
      return fail("cannot chown " + dir.string() + ": " + errno_text(errno));
    ::chmod(dir.c_str(), 0700);
    return {};
  }
  if (errno != EEXIST)
    return fail("cannot create directory " + dir.string() + ": "
                + errno_text(errno));
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0)
    return fail("cannot stat " + dir.string() + ": " + errno_text(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077) != 0)
    return fail("refusing to use " + dir.string()
                + " as the socket directory: it exists and is not a "
                  "directory owned by uid "
                + std::to_string(uid) + " with mode 0700; remove it");
  return {};
}

bool is_empty_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec) && !ec;
}

// -- processes we did not start -------------------------------------------------

/// Whether `pid` is a live (not zombie) process.
bool process_alive(pid_t pid) {
  if (pid <= 0)
    return false;
  if (::kill(pid, 0) != 0 && errno != EPERM)
    return false;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  auto paren = stat.rfind(')');
  if (paren != std::string::npos && paren + 2 < stat.size()
      && (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X'))
    return false;
  return true;
}

std::optional<std::string> read_link(const fs::path& p) {
  std::error_code ec;
  auto target = fs::read_symlink(p, ec);
  if (ec)
    return std::nullopt;
  return target.string();
}

std::vector<std::string> proc_cmdline(pid_t pid) {
  // NUL-terminated arguments.
  return split_on(
    read_file("/proc/" + std::to_string(pid) + "/cmdline", 65536), '\0');
}

bool same_path(const std::string& a, const fs::path& b) {
  std::error_code ec;
  auto ca = fs::weakly_canonical(a, ec);
  if (ec)
    ca = a;
  auto cb = fs::weakly_canonical(b, ec);
  if (ec)
    cb = b;
  return ca == cb;
}

/// Whether `pid` is a PostgreSQL server whose data directory is `pgdata`.
bool is_postgres_for(pid_t pid, const fs::path& pgdata) {
  if (pid == ::getpid())
    return false;
  auto proc = fs::path{"/proc"} / std::to_string(pid);
  auto args = proc_cmdline(pid);
  bool is_postgres = false;
  if (auto exe = read_link(proc / "exe"))
    is_postgres = fs::path{*exe}.filename().string().starts_with("postgres");
  else if (!args.empty())
    is_postgres = fs::path{args[0]}.filename().string().starts_with("postgres");
  if (!is_postgres)
    return false;
  // The postmaster chdirs into its data directory.
  if (auto cwd = read_link(proc / "cwd")) {
    constexpr std::string_view deleted = " (deleted)";
    if (cwd->ends_with(deleted))
      cwd->resize(cwd->size() - deleted.size());
    return same_path(*cwd, pgdata);
  }
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "-D" && same_path(args[i + 1], pgdata))
      return true;
  return false;
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (process_alive(pid)) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

/// Stops a server that is not our child: SIGINT, SIGQUIT, SIGKILL.
bool stop_foreign(pid_t pid, std::chrono::milliseconds timeout) {
  ::kill(pid, SIGINT);
  if (wait_gone(pid, timeout))
    return true;
  pglog()->warn("leftover server pid {} ignored SIGINT for {} ms, "
                "sending SIGQUIT",
                pid, timeout.count());
  ::kill(pid, SIGQUIT);
  if (wait_gone(pid, 5s))
    return true;
  ::kill(pid, SIGKILL);
  return wait_gone(pid, 5s);
}

/// Handles a pid/lock file left by a server (postmaster.pid or the socket's
/// lock file): stops a live server of `pgdata` named in it, removes it if
/// the pid is dead or belongs to an unrelated process.
caf::error handle_stale_lock_file(const fs::path& file, const fs::path& pgdata,
                                  std::chrono::milliseconds timeout) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec)))
    return {};
  auto line = first_line(read_file(file, 4096));
  pid_t pid = 0;
  try {
    pid = static_cast<pid_t>(std::stol(line));
  } catch (...) {
    pid = 0;
  }
  if (pid < 0)
    pid = -pid; // postgres writes -pid for a standalone backend
  if (pid > 0 && process_alive(pid) && is_postgres_for(pid, pgdata)) {
    pglog()->warn("a leftover server (pid {}) still runs on {}; "
                  "stopping it",
                  pid, pgdata.string());
    if (!stop_foreign(pid, timeout))
      return fail("a leftover server (pid " + std::to_string(pid) + ") on "
                  + pgdata.string() + " named in " + file.string()
                  + " does not exit");
  } else if (pid > 0 && process_alive(pid)) {
    pglog()->info("removing stale {} (pid {} is an unrelated process)",
                  file.string(), pid);
  } else {
    pglog()->info("removing stale {} (pid {} is gone)",
                  file.string(), pid);
  }
  if (fs::exists(fs::symlink_status(file, ec)) && !fs::remove(file, ec) && ec)
    return fail("cannot remove stale " + file.string() + ": " + ec.message());
  return {};
}

// -- binaries -----------------------------------------------------------------

int major_of(const std::string& version_line) {
  // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" or "15".
  for (size_t i = 0; i < version_line.size(); ++i)
    if (std::isdigit(static_cast<unsigned char>(version_line[i]))
        && (i == 0 || version_line[i - 1] == ' ')) {
      try {
        return std::stoi(version_line.substr(i));
      } catch (...) {
        return -1;
      }
    }
  return -1;
}

caf::expected<fs::path> find_bin_dir(const std::string& configured,
                                     const fs::path& pgdata) {
  const char* tools[] = {"postgres", "initdb", "pg_isready", "psql",
                         "createdb"};
  auto check = [&](const fs::path& dir) -> caf::error {
    for (auto* t : tools)
      if (::access((dir / t).c_str(), X_OK) != 0)
        return fail("PostgreSQL binary " + (dir / t).string()
                    + " is missing or not executable (install the "
                      "'postgresql' package or set the bin dir)");
    return {};
  };
  if (!configured.empty()) {
    fs::path dir{configured};
    if (auto err = check(dir))
      return err;
    return dir;
  }
  const fs::path root{"/usr/lib/postgresql"};
  // An existing cluster wants the binaries of its major version.
  auto cluster_major = major_of(first_line(read_file(pgdata / "PG_VERSION", 64)));
  if (cluster_major > 0) {
    auto dir = root / std::to_string(cluster_major) / "bin";
    if (!check(dir))
      return dir;
  }
  int best = -1;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{root, ec}) {
    auto name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        }))
      continue;
    int n = std::stoi(name);
    if (n > best && ::access((entry.path() / "bin" / "initdb").c_str(), X_OK) == 0)
      best = n;
  }
  if (best < 0)
    return fail("no PostgreSQL server found under " + root.string()
                + "/<version>/bin (install the 'postgresql' package or set "
                  "the bin dir)");
  auto dir = root / std::to_string(best) / "bin";
  if (auto err = check(dir))
    return err;
  return dir;
}

bool locale_available(const char* name) {
  locale_t loc = ::newlocale(LC_ALL_MASK, name, static_cast<locale_t>(nullptr));
  if (loc == static_cast<locale_t>(nullptr))
    return false;
  ::freelocale(loc);
  return true;
}

/// Settings written into the cluster at initdb, included from
/// postgresql.conf (ALTER SYSTEM still overrides them).
constexpr std::string_view engram_conf = R"(# Written by engram when it created this cluster. Included at the end of
# postgresql.conf; ALTER SYSTEM (postgresql.auto.conf) still overrides it.
# listen_addresses, the socket directory and its permissions are set on the
# server's command line.
cluster_name = 'engram'
max_connections = 100
# Memory and WAL sized for consolidation: a 100,000-memory project with its
# vectors is about 200 MB and should stay in shared buffers; phase commits
# write a lot of WAL at once, which should not force a checkpoint each.
shared_buffers = 1GB
work_mem = 32MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
min_wal_size = 256MB
# The WAL writer flushes every 10 ms while WAL is being written (it sleeps
# when none is): a phase commit that wrote 50 MB of WAL then finds most of
# it on disk, instead of waiting ~50 ms for its COMMIT's flush.
wal_writer_delay = 10ms
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
)";

constexpr std::string_view engram_hba = R"(# Written by engram: local (Unix socket) connections only; the server listens
# on no TCP address. The socket directory and the socket are accessible to
# the server's own user (and root) only.
# TYPE  DATABASE  USER  METHOD
local   all       all   trust
)";

} // namespace

// -- state ----------------------------------------------------------------------

struct embedded_postgres::state {
  embedded_postgres_options opts;
  fs::path data_dir;
  fs::path cluster_dir;
  fs::path socket_dir;
  fs::path log_file;
  fs::path bin_dir;
  bool as_root = false;
  std::optional<user_identity> user; // set when running as root
  uid_t uid = 0;
  gid_t gid = 0;
  int lock_fd = -1;
  off_t log_offset = 0;
  mutable child_process server;
  pid_t server_pid = -1;

  std::optional<uid_t> chown_uid() const {
    return as_root ? std::optional<uid_t>{uid} : std::nullopt;
  }

  /// The environment of every PostgreSQL program we run: nothing from ours
  /// (no PGHOST, PGOPTIONS, ...), C messages.
  process_options tool(std::vector<std::string> argv) const {
    process_options p;
    p.argv = std::move(argv);
    p.inherit_environment = false;
    p.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
             {"LC_ALL", "C"},
             {"LANG", "C"}};
    // A tool (initdb above all) must not outlive a daemon killed with -9:
    // the next start would race it on the same directory. Its own process
    // group keeps a terminal's Ctrl-C from cutting it off half-way.
    p.parent_death_signal = SIGKILL;
    p.new_process_group = true;
    return p;
  }

  /// Same, run as the server's user.
  process_options server_tool(std::vector<std::string> argv,
                              const fs::path& workdir) const {
    auto p = tool(std::move(argv));
    p.user = user;
    p.working_dir = workdir;
    return p;
  }

  std::string bin(const char* name) const {
    return (bin_dir / name).string();
  }

  /// The last lines the server wrote during this start.
  std::string log_tail(size_t max_bytes = 4096) const {
    int fd = ::open(log_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return {};
    off_t size = ::lseek(fd, 0, SEEK_END);
    off_t from = std::max(log_offset, size - static_cast<off_t>(max_bytes));
    std::string text;
    if (size > from) {
      text.resize(static_cast<size_t>(size - from));
      auto n = ::pread(fd, text.data(), text.size(), from);
      text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    ::close(fd);
    if (from > log_offset) {
      auto nl = text.find('\n');
      if (nl != std::string::npos)
        text.erase(0, nl + 1);
    }
    while (!text.empty() && text.back() == '\n')
      text.pop_back();
    return text;
  }

  caf::error fail_with_log(std::string what) const {
    auto tail = log_tail();
    if (tail.empty())
      what += " (" + log_file.string() + " has nothing from this start)";
    else
      what += "\n--- last lines of " + log_file.string() + ":\n" + tail;
    return fail(std::move(what));
  }

  ~state() {
    if (lock_fd >= 0)
      ::close(lock_fd);
  }
};

embedded_postgres::embedded_postgres(std::unique_ptr<state> st)
  : st_(std::move(st)) {
}

embedded_postgres::~embedded_postgres() {
  if (st_) {
    if (auto err = stop())
      pglog()->error("{}", describe(err));
  }
}

// -- start ----------------------------------------------------------------------

namespace {

caf::error validate(const embedded_postgres_options& o) {
  if (o.data_dir.empty())
    return make_error(errc::invalid_config,
                      "embedded PostgreSQL: the data dir is empty");
  const auto& db = o.database;
  if (db.empty() || db.size() > 63 || db.front() == '-'
      || db.find_first_of(std::string_view{"\0\n\r", 3}) != std::string::npos)
    return make_error(errc::invalid_config,
                      "embedded PostgreSQL: invalid database name '" + db + "'");
  if (o.start_timeout <= 0ms || o.stop_timeout <= 0ms)
    return make_error(errc::invalid_config,
                      "embedded PostgreSQL: timeouts must be positive");
  return {};
}

/// Takes the data dir's lock: one server per data dir.
caf::error lock_data_dir(embedded_postgres::state& st) {
  auto path = st.data_dir / "postgres.lock";
  st.lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (st.lock_fd < 0)
    return fail("cannot open " + path.string() + ": " + errno_text(errno));
  if (::flock(st.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    auto holder = first_line(read_file(path, 64));
    if (err == EWOULDBLOCK)
      return fail("the data dir " + st.data_dir.string()
                  + " is in use by another engram process"
                  + (holder.empty() ? std::string{} : " (pid " + holder + ")")
                  + ": " + path.string() + " is locked");
    return fail("cannot lock " + path.string() + ": " + errno_text(err));
  }
  auto text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(st.lock_fd, 0) == 0)
    [[maybe_unused]] auto n = ::pwrite(st.lock_fd, text.data(), text.size(), 0);
  return {};
}

/// Rotates a large log once, then records where this start's lines begin.
void prepare_log(embedded_postgres::state& st) {
  struct stat sb{};
  if (::stat(st.log_file.c_str(), &sb) == 0 && sb.st_size > log_rotate_size) {
    auto old = st.log_file;
    old += ".1";
    ::rename(st.log_file.c_str(), old.c_str());
  }
  auto stamp = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char when[32];
  std::tm tm{};
  ::gmtime_r(&stamp, &tm);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  auto banner = std::string{"--- engram: starting the embedded server ("} + when
                + ", pid " + std::to_string(::getpid()) + ")\n";
  (void) write_file(st.log_file, banner, 0600, true, std::nullopt, 0);
  if (::stat(st.log_file.c_str(), &sb) == 0)
    st.log_offset = sb.st_size;
}

/// Picks where the cluster and the socket live.
caf::error choose_location(embedded_postgres::state& st) {
  const auto hash = hash_hex(st.data_dir.string());
  const auto default_pgdata = st.data_dir / "pgdata";
  const fs::path fallback_root = fs::path{fallback_cluster_root} / hash;
  std::error_code ec;
  auto reachable = [&](const fs::path& p) -> caf::expected<bool> {
    if (!st.as_root)
      return true;
    return can_access_as(*st.user, p, X_OK);
  };
  fs::path cluster_root;
  if (fs::exists(default_pgdata, ec)) {
    auto ok = reachable(default_pgdata);
    if (!ok)
      return ok.error();
    if (!*ok)
      return fail("the cluster " + default_pgdata.string()
                  + " is not reachable for the '" + st.user->name
                  + "' user: every directory above it must be searchable "
                    "(o+x) by that user; fix the permissions or move the "
                    "data dir");
    cluster_root = st.data_dir;
  } else if (st.as_root && fs::exists(fallback_root / "pgdata", ec)) {
    cluster_root = fallback_root;
    pglog()->info("using the cluster of {} in {} (made there by an "
                  "earlier start)",
                  st.data_dir.string(), cluster_root.string());
  } else {
    auto ok = reachable(st.data_dir);
    if (!ok)
      return ok.error();
    if (*ok) {
      cluster_root = st.data_dir;
    } else {
      cluster_root = fallback_root;
      pglog()->warn("the '{}' user cannot reach {} (a directory "
                    "above it is private), so the cluster lives in {}",
                    st.user->name, st.data_dir.string(), cluster_root.string());
      if (auto err = make_dirs_0755(fallback_root.parent_path()))
        return err;
      if (auto err = make_owned_dir(fallback_root, st.as_root, st.uid, st.gid))
        return err;
      auto ok2 = reachable(fallback_root);
      if (!ok2)
        return ok2.error();
      if (!*ok2)
        return fail("the '" + st.user->name + "' user can reach neither "
                    + st.data_dir.string() + " nor the fallback "
                    + fallback_root.string());
      (void) write_file(fallback_root / "DATA_DIR",
                        st.data_dir.string() + "\n", 0600, false, st.uid,
                        st.gid);
      (void) write_file(st.data_dir / "pgdata.location",
                        "The PostgreSQL cluster of this data directory lives in "
                          + (fallback_root / "pgdata").string()
                          + " (socket directory " + (fallback_root / "run").string()
                          + "): the '" + st.user->name + "' user cannot reach "
                          + st.data_dir.string()
                          + " because a directory above it is private.\n",
                        0644, false, std::nullopt, 0);
    }
  }
  if (cluster_root == fallback_root) {
    if (auto err = make_owned_dir(fallback_root, st.as_root, st.uid, st.gid))
      return err;
  }
  st.cluster_dir = cluster_root / "pgdata";
  st.socket_dir = cluster_root / "run";
  auto socket_path = (st.socket_dir / socket_name).string();
  if (socket_path.size() > max_socket_path) {
    auto tmp = fs::path{"/tmp"} / ("engram-" + hash);
    pglog()->info("the socket path {} is longer than {} bytes, so "
                  "the socket directory is {}",
                  socket_path, max_socket_path, tmp.string());
    st.socket_dir = tmp;
    if (auto err = make_private_shared_dir(tmp, st.as_root, st.uid, st.gid))
      return err;
  } else if (auto err = make_owned_dir(st.socket_dir, st.as_root, st.uid,
                                       st.gid)) {
    return err;
  }
  return {};
}

/// Creates the cluster if needed: initdb into pgdata.tmp, then rename, so a
/// start killed half-way leaves only a .tmp directory the next start wipes.
caf::error init_cluster(embedded_postgres::state& st) {
  std::error_code ec;
  auto tmp = st.cluster_dir;
  tmp += ".tmp";
  if (fs::exists(fs::symlink_status(tmp, ec))) {
    pglog()->warn("removing {} left by an interrupted initdb",
                  tmp.string());
    fs::remove_all(tmp, ec);
    if (ec)
      return fail("cannot remove " + tmp.string() + ": " + ec.message());
  }
  if (fs::exists(st.cluster_dir / "PG_VERSION", ec))
    return {};
  if (fs::exists(fs::symlink_status(st.cluster_dir, ec))) {
    if (!is_empty_dir(st.cluster_dir))
      return fail(st.cluster_dir.string()
                  + " exists but is not a PostgreSQL cluster (no PG_VERSION); "
                    "move it away");
    fs::remove(st.cluster_dir, ec);
  }
  if (auto err = make_owned_dir(tmp, st.as_root, st.uid, st.gid))
    return err;
  std::vector<std::string> argv{st.bin("initdb"),
                                "-D",
                                tmp.string(),
                                "-U",
                                embedded_postgres::role,
                                "--auth-local=trust",
                                "--auth-host=reject",
                                "-E",
                                "UTF8",
                                "--data-checksums",
                                "--no-instructions"};
  if (locale_available("C.UTF-8")) {
    argv.insert(argv.end(), {"--locale=C.UTF-8", "--lc-collate=C",
                             "--lc-messages=C"});
  } else {
    argv.emplace_back("--no-locale");
  }
  pglog()->info("initialising a new cluster in {}",
                st.cluster_dir.string());
  auto timeout = std::max<std::chrono::milliseconds>(st.opts.start_timeout, 120s);
  auto res = run_and_wait(st.server_tool(argv, tmp), timeout);
  if (!res || !res->success()) {
    fs::remove_all(tmp, ec);
    return fail("initdb into " + tmp.string() + " failed: "
                + (res ? res->describe() : describe(res.error())));
  }
  // Local-only access, our settings.
  if (auto err = write_file(tmp / "pg_hba.conf", engram_hba, 0600, false,
                            st.chown_uid(), st.gid))
    return err;
  if (auto err = write_file(tmp / "engram.conf", engram_conf, 0600, false,
                            st.chown_uid(), st.gid))
    return err;
  if (auto err = write_file(tmp / "postgresql.conf",
                            "\n# engram's settings (see engram.conf)\n"
                            "include = 'engram.conf'\n",
                            0600, true, std::nullopt, 0))
    return err;
  fsync_dir(tmp);
  if (::rename(tmp.c_str(), st.cluster_dir.c_str()) != 0) {
    int err = errno;
    fs::remove_all(tmp, ec);
    return fail("cannot rename " + tmp.string() + " to "
                + st.cluster_dir.string() + ": " + errno_text(err));
  }
  fsync_dir(st.cluster_dir.parent_path());
  return {};
}

caf::error check_version(embedded_postgres::state& st) {
  auto res = run_and_wait(st.tool({st.bin("postgres"), "-V"}), 30s);
  if (!res || !res->success())
    return fail(st.bin("postgres") + " -V failed: "
                + (res ? res->describe() : describe(res.error())));
  auto server_major = major_of(first_line(res->output));
  auto version_file = st.cluster_dir / "PG_VERSION";
  auto cluster_major = major_of(first_line(read_file(version_file, 64)));
  if (cluster_major > 0 && server_major > 0 && cluster_major != server_major)
    return fail("the cluster " + st.cluster_dir.string() + " is PostgreSQL "
                + std::to_string(cluster_major) + " but " + st.bin("postgres")
                + " is " + std::to_string(server_major)
                + "; use the matching bin dir or upgrade the cluster "
                  "(pg_upgrade)");
  return {};
}

caf::error spawn_server(embedded_postgres::state& st) {
  process_options p = st.server_tool({st.bin("postgres"),
                                      "-D",
                                      st.cluster_dir.string(),
                                      "-k",
                                      st.socket_dir.string(),
                                      "-p",
                                      std::to_string(embedded_postgres::port),
                                      "-c",
                                      "listen_addresses=",
                                      "-c",
                                      "unix_socket_permissions=0700",
                                      "-c",
                                      "logging_collector=off"},
                                     st.cluster_dir);
  p.parent_death_signal = SIGINT; // fast shutdown if we die
  p.new_process_group = true;     // a terminal's Ctrl-C is ours to handle
  p.output_file = st.log_file;
  auto child = child_process::spawn(p);
  if (!child)
    return fail("cannot start " + st.bin("postgres") + " on "
                + st.cluster_dir.string() + ": " + describe(child.error()));
  st.server = std::move(*child);
  st.server_pid = st.server.pid();
  return {};
}

caf::error wait_ready(embedded_postgres::state& st) {
  auto deadline = std::chrono::steady_clock::now() + st.opts.start_timeout;
  auto argv = std::vector<std::string>{
    st.bin("pg_isready"), "-q", "-h", st.socket_dir.string(), "-p",
    std::to_string(embedded_postgres::port), "-d", "postgres", "-U",
    embedded_postgres::role, "-t", "2"};
  auto pause = 20ms;
  while (true) {
    if (!st.server.running())
      return st.fail_with_log("the server on " + st.cluster_dir.string()
                              + " exited during start-up ("
                              + st.server.status()->to_string() + ")");
    auto res = run_and_wait(st.tool(argv), 10s);
    if (!res)
      return fail("cannot run pg_isready: " + describe(res.error()));
    if (res->success())
      return {};
    if (!res->timed_out && res->status.exit_code == 3)
      return fail("pg_isready refused its arguments: " + res->describe());
    if (std::chrono::steady_clock::now() >= deadline)
      return st.fail_with_log("the server on " + st.cluster_dir.string()
                              + " did not accept connections on "
                              + st.socket_dir.string() + " within "
                              + std::to_string(st.opts.start_timeout.count())
                              + " ms");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, 200ms);
  }
}

caf::error ensure_database(embedded_postgres::state& st) {
  const auto& db = st.opts.database;
  const auto sock = st.socket_dir.string();
  const auto port = std::to_string(embedded_postgres::port);
  auto list = run_and_wait(st.tool({st.bin("psql"), "-X", "-q", "-A", "-t",
                                    "-l", "-h", sock, "-p", port, "-U",
                                    embedded_postgres::role, "-d",
                                    "postgres"}),
                           30s);
  if (!list || !list->success())
    return st.fail_with_log("listing the databases failed: "
                            + (list ? list->describe()
                                    : describe(list.error())));
  std::istringstream lines{list->output};
  for (std::string line; std::getline(lines, line);)
    if (line.size() > db.size() && line.compare(0, db.size(), db) == 0
        && line[db.size()] == '|')
      return {};
  pglog()->info("creating database '{}'", db);
  auto created = run_and_wait(st.tool({st.bin("createdb"), "-h", sock, "-p",
                                       port, "-U", embedded_postgres::role,
                                       "--maintenance-db=postgres", "-O",
                                       embedded_postgres::role, db}),
                              60s);
  if (!created)
    return fail("cannot run createdb: " + describe(created.error()));
  if (!created->success()
      && created->output.find("already exists") == std::string::npos)
    return st.fail_with_log("creating database '" + db
                            + "' failed: " + created->describe());
  return {};
}

} // namespace

caf::expected<std::unique_ptr<embedded_postgres>>
embedded_postgres::start(embedded_postgres_options opts) {
  if (auto err = validate(opts))
    return err;
  auto st = std::make_unique<state>();
  st->opts = std::move(opts);
  std::error_code ec;
  auto abs = fs::absolute(st->opts.data_dir, ec);
  if (ec)
    return fail("invalid data dir " + st->opts.data_dir.string() + ": "
                + ec.message());
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_parent_path() && abs != abs.root_path())
    abs = abs.parent_path(); // drop a trailing '/'
  // Identity.
  st->as_root = ::geteuid() == 0;
  if (st->as_root) {
    auto u = lookup_user(st->opts.system_user);
    if (!u)
      return fail("cannot run the server as '" + st->opts.system_user
                  + "' (PostgreSQL refuses root): " + describe(u.error()));
    if (u->uid == 0)
      return fail("the system user '" + st->opts.system_user
                  + "' is root; PostgreSQL refuses to run as root");
    st->uid = u->uid;
    st->gid = u->gid;
    st->user = std::move(*u);
  } else {
    st->uid = ::geteuid();
    st->gid = ::getegid();
  }
  // The data dir (0755 if we create it, so the server's user can traverse).
  if (auto err = make_dirs_0755(abs))
    return err;
  st->data_dir = fs::canonical(abs, ec);
  if (ec)
    return fail("cannot resolve the data dir " + abs.string() + ": "
                + ec.message());
  st->log_file = st->data_dir / "postgres.log";
  if (auto err = lock_data_dir(*st))
    return err;
  if (auto err = choose_location(*st))
    return err;
  auto bin = find_bin_dir(st->opts.bin_dir, st->cluster_dir);
  if (!bin)
    return bin.error();
  st->bin_dir = std::move(*bin);
  // Leftovers of a server whose owner was killed.
  if (auto err = handle_stale_lock_file(st->cluster_dir / "postmaster.pid",
                                        st->cluster_dir, st->opts.stop_timeout))
    return err;
  auto socket_lock = st->socket_dir / socket_name;
  socket_lock += ".lock";
  if (auto err = handle_stale_lock_file(socket_lock, st->cluster_dir,
                                        st->opts.stop_timeout))
    return err;
  if (auto err = init_cluster(*st))
    return err;
  if (auto err = check_version(*st))
    return err;
  prepare_log(*st);
  if (auto err = spawn_server(*st))
    return err;
  // From here on the object stops the server on failure.
  std::unique_ptr<embedded_postgres> self{new embedded_postgres(std::move(st))};
  auto& s = *self->st_;
  if (auto err = wait_ready(s))
    return err;
  if (auto err = ensure_database(s))
    return err;
  pglog()->info("server pid {} ready: cluster {}, socket {}, log {}",
                s.server_pid, s.cluster_dir.string(), s.socket_dir.string(),
                s.log_file.string());
  return self;
}

// -- the running server -------------------------------------------------------

caf::error embedded_postgres::stop() {
  auto& s = *st_;
  caf::error result;
  if (s.server.pid() > 0 && s.server.running()) {
    s.server.signal(SIGINT);
    if (!s.server.wait_for(s.opts.stop_timeout)) {
      pglog()->warn("server pid {} did not finish a fast shutdown "
                    "in {} ms; sending SIGQUIT",
                    s.server_pid, s.opts.stop_timeout.count());
      s.server.signal(SIGQUIT);
      if (!s.server.wait_for(5s)) {
        pglog()->error("server pid {} ignores SIGQUIT; killing it",
                       s.server_pid);
        s.server.signal_group(SIGKILL);
        s.server.wait();
      }
      // Backends of a server that did not shut down cleanly.
      ::kill(-s.server_pid, SIGKILL);
    }
    if (auto status = s.server.status(); status && !status->success())
      pglog()->info("server pid {} ended: {}", s.server_pid,
                    status->to_string());
    else
      pglog()->info("server pid {} stopped", s.server_pid);
  }
  if (s.lock_fd >= 0) {
    ::close(s.lock_fd);
    s.lock_fd = -1;
  }
  return result;
}

std::string conninfo_quote(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value)
    if (c == ' ' || c == '\'' || c == '\\' || c == '\t' || c == '\n')
      plain = false;
  if (plain)
    return value;
  std::string result = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\')
      result += '\\';
    result += c;
  }
  result += '\'';
  return result;
}

std::string embedded_postgres::connection_string() const {
  return connection_string(st_->opts.database);
}

std::string embedded_postgres::connection_string(const std::string& dbname) const {
  return "host=" + conninfo_quote(st_->socket_dir.string())
         + " port=" + std::to_string(port) + " user=" + role
         + " dbname=" + conninfo_quote(dbname);
}

pid_t embedded_postgres::pid() const {
  return st_->server_pid;
}

bool embedded_postgres::running() const {
  return st_->server.running();
}

const fs::path& embedded_postgres::cluster_dir() const {
  return st_->cluster_dir;
}

const fs::path& embedded_postgres::socket_dir() const {
  return st_->socket_dir;
}

const fs::path& embedded_postgres::log_file() const {
  return st_->log_file;
}

const fs::path& embedded_postgres::bin_dir() const {
  return st_->bin_dir;
}

const embedded_postgres_options& embedded_postgres::options() const {
  return st_->opts;
}

} // namespace engram
