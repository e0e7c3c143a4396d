// The embedded PostgreSQL manager and the child-process wrapper under it,
// against the real server binaries. Runs as root here and in CI (the server
// then runs as the `postgres` user); most checks also hold for a normal user.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/errc.hpp"
#include "runtime/child_process.hpp"
#include "runtime/embedded_postgres.hpp"
#include "tests/support/postgres_fixture.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using engram::embedded_postgres;
using engram::embedded_postgres_options;
using engram::process_options;
using engram::run_and_wait;

bool is_root() {
  return ::geteuid() == 0;
}

/// A temp dir under `parent` with `mode`, removed (with the server's
/// fallback dirs, if any) at the end of the test.
class temp_dir {
public:
  explicit temp_dir(mode_t mode = 0755, const fs::path& parent = "/tmp") {
    auto tmpl = (parent / "engram-pgtest-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    ::chmod(path_.c_str(), mode);
  }
  ~temp_dir() {
    engram::test::remove_postgres_dirs(path_, cluster_dir, socket_dir);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const { return path_; }

  /// Remembers where a server put things, for the clean-up.
  void track(const embedded_postgres& pg) {
    cluster_dir = pg.cluster_dir();
    socket_dir = pg.socket_dir();
  }

  fs::path cluster_dir;
  fs::path socket_dir;

private:
  fs::path path_;
};

embedded_postgres_options options_for(const fs::path& dir) {
  embedded_postgres_options opts;
  opts.data_dir = dir;
  return opts;
}

/// Runs SQL through psql with a connection string; returns the trimmed
/// output, or "ERROR: ..." so failures show in assertions.
std::string psql(const std::string& conninfo, const std::string& sql) {
  process_options p;
  p.argv = {"/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-t", "-A", "-v",
            "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql};
  if (::access(p.argv[0].c_str(), X_OK) != 0)
    p.argv[0] = "psql";
  p.inherit_environment = false;
  p.env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C"}};
  auto res = run_and_wait(p, 30s);
  if (!res)
    return "ERROR: " + engram::describe(res.error());
  if (!res->success())
    return "ERROR: " + res->describe();
  auto out = res->output;
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
bool pid_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH)
    return true;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat{std::istreambuf_iterator<char>{in}, {}};
  auto paren = stat.rfind(')');
  return paren == std::string::npos
         || (paren + 2 < stat.size() && (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X'));
}

bool wait_pid_gone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pid_gone(pid)) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

/// Pids of live processes whose working directory is `dir` (a postmaster and
/// its children all chdir into the cluster).
std::vector<pid_t> processes_in(const fs::path& dir) {
  std::vector<pid_t> result;
  std::error_code ec;
  auto want = fs::weakly_canonical(dir, ec);
  for (auto& entry : fs::directory_iterator{"/proc", ec}) {
    auto name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])))
      continue;
    std::error_code ec2;
    auto cwd = fs::read_symlink(entry.path() / "cwd", ec2);
    if (!ec2 && cwd == want && !pid_gone(std::stoi(name)))
      result.push_back(std::stoi(name));
  }
  return result;
}

uid_t uid_of_process(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Uid:", 0) == 0)
      return static_cast<uid_t>(std::stoul(line.substr(4)));
  return static_cast<uid_t>(-1);
}

uid_t expected_server_uid() {
  if (!is_root())
    return ::geteuid();
  auto u = engram::lookup_user("postgres");
  return u ? u->uid : static_cast<uid_t>(-1);
}

std::unique_ptr<embedded_postgres> start_or_fail(const fs::path& dir) {
  auto res = embedded_postgres::start(options_for(dir));
  if (!res) {
    ADD_FAILURE() << "start failed: " << engram::describe(res.error());
    return nullptr;
  }
  return std::move(*res);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out{p, std::ios::trunc};
  out << text;
}

/// A pid that certainly belonged to a process that has exited.
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0)
    ::_exit(0);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return pid;
}

} // namespace

// -- child_process --------------------------------------------------------------

TEST(ChildProcess, RunAndWaitCapturesOutputAndExitCode) {
  auto res = run_and_wait({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  ASSERT_TRUE(res) << engram::describe(res.error());
  EXPECT_FALSE(res->timed_out);
  EXPECT_EQ(res->status.exit_code, 3);
  EXPECT_FALSE(res->success());
  EXPECT_NE(res->output.find("out\n"), std::string::npos) << res->output;
  EXPECT_NE(res->output.find("err\n"), std::string::npos) << res->output;
  EXPECT_NE(res->describe().find("exit code 3"), std::string::npos);
}

TEST(ChildProcess, RunAndWaitKillsOnTimeout) {
  auto t0 = std::chrono::steady_clock::now();
  process_options p;
  p.argv = {"sh", "-c", "sleep 30 & sleep 30"};
  p.new_process_group = true; // the timeout kills the grandchild too
  auto res = run_and_wait(p, 300ms);
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->timed_out);
  EXPECT_EQ(res->status.term_signal, SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(ChildProcess, SetsEnvironmentWorkingDirAndUser) {
  process_options p;
  p.argv = {"sh", "-c", "id -u; echo \"$FOO\"; pwd; echo \"${HOME_CHECK-unset}\""};
  p.env = {{"FOO", "bar baz"}};
  p.working_dir = "/";
  std::string want_uid = std::to_string(::geteuid());
  if (is_root()) {
    auto u = engram::lookup_user("postgres");
    ASSERT_TRUE(u) << engram::describe(u.error());
    EXPECT_NE(u->uid, 0u);
    p.user = *u;
    want_uid = std::to_string(u->uid);
  }
  auto res = run_and_wait(p, 10s);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->output, want_uid + "\nbar baz\n/\nunset\n");
  // Without our environment only what we pass is there.
  p.inherit_environment = false;
  p.env = {{"PATH", "/usr/bin:/bin"}};
  p.argv = {"sh", "-c", "env | grep -c . ; true"};
  p.user.reset();
  res = run_and_wait(p, 10s);
  ASSERT_TRUE(res);
  EXPECT_LE(std::stoi(res->output), 3) << res->output; // PATH, PWD, SHLVL at most
}

TEST(ChildProcess, StartsWithDefaultSignalState) {
  // The daemon blocks SIGINT/SIGTERM for sigtimedwait and may ignore SIGPIPE;
  // its children must not inherit that.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto old_pipe = ::signal(SIGPIPE, SIG_IGN);
  auto res = run_and_wait({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, 10s);
  ::signal(SIGPIPE, old_pipe);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(res);
  // Only the standard signals 1-31 count: glibc reserves 32 and 33 for itself
  // and refuses to change their disposition, so an ignore inherited from
  // whoever started the test binary stays.
  auto mask_of = [&](const std::string& field) {
    auto pos = res->output.find(field + ":\t");
    EXPECT_NE(pos, std::string::npos) << res->output;
    return std::stoull(res->output.substr(pos + field.size() + 2, 16), nullptr,
                       16)
           & 0x7fffffffULL;
  };
  EXPECT_EQ(mask_of("SigBlk"), 0u) << res->output;
  EXPECT_EQ(mask_of("SigIgn"), 0u) << res->output;
}

TEST(ChildProcess, ReportsStartFailures) {
  auto missing = run_and_wait({"/nonexistent/program"}, 5s);
  ASSERT_FALSE(missing);
  EXPECT_EQ(engram::code_of(missing.error()), engram::errc::process_failed);
  auto not_in_path = run_and_wait({"no-such-program-engram"}, 5s);
  ASSERT_FALSE(not_in_path);
  process_options p;
  p.argv = {"true"};
  p.working_dir = "/nonexistent/dir";
  auto bad_dir = engram::child_process::spawn(p);
  ASSERT_FALSE(bad_dir);
  EXPECT_NE(engram::message_of(bad_dir.error()).find("chdir"), std::string::npos)
    << engram::describe(bad_dir.error());
  EXPECT_FALSE(engram::lookup_user("no-such-user-engram"));
}

TEST(ChildProcess, AppendsToOutputFileAndWaits) {
  temp_dir dir;
  auto log = dir.path() / "out.log";
  write_text(log, "first\n");
  process_options p;
  p.argv = {"sh", "-c", "echo second; echo third >&2; kill -TERM $$"};
  p.output_file = log;
  auto child = engram::child_process::spawn(p);
  ASSERT_TRUE(child) << engram::describe(child.error());
  EXPECT_GT(child->pid(), 0);
  auto st = child->wait_for(10s);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->term_signal, SIGTERM);
  EXPECT_FALSE(child->running());
  std::ifstream in{log};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  EXPECT_EQ(text, "first\nsecond\nthird\n");
  struct stat sb{};
  ASSERT_EQ(::stat(log.c_str(), &sb), 0);
  // A still-running child: wait_for times out, signal ends it.
  p.argv = {"sleep", "30"};
  p.output_file.clear();
  auto sleeper = engram::child_process::spawn(p);
  ASSERT_TRUE(sleeper);
  EXPECT_FALSE(sleeper->wait_for(50ms));
  EXPECT_TRUE(sleeper->running());
  EXPECT_TRUE(sleeper->signal(SIGTERM));
  auto end = sleeper->wait_for(10s);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->term_signal, SIGTERM);
  EXPECT_FALSE(sleeper->signal(SIGTERM)); // reaped: no stray signal
}

TEST(ChildProcess, ParentDeathSignalReachesTheChild) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    ::close(fds[0]);
    process_options p;
    p.argv = {"sleep", "60"};
    p.parent_death_signal = SIGTERM;
    if (is_root()) {
      if (auto u = engram::lookup_user("postgres"))
        p.user = *u; // the signal must survive the credential change
    }
    auto child = engram::child_process::spawn(p);
    pid_t pid = child ? child->pid() : -1;
    [[maybe_unused]] auto n = ::write(fds[1], &pid, sizeof(pid));
    ::pause(); // until killed
    ::_exit(0);
  }
  ::close(fds[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(::read(fds[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  ::close(fds[0]);
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(pid_gone(grandchild));
  ::kill(owner, SIGKILL);
  int st = 0;
  ::waitpid(owner, &st, 0);
  EXPECT_TRUE(wait_pid_gone(grandchild, 10s));
  if (!pid_gone(grandchild))
    ::kill(grandchild, SIGKILL);
}

TEST(ChildProcess, ChecksAccessAsAnotherUser) {
  if (!is_root())
    GTEST_SKIP() << "needs root";
  auto u = engram::lookup_user("postgres");
  ASSERT_TRUE(u);
  temp_dir priv{0700};
  fs::create_directory(priv.path() / "inner");
  auto open = engram::can_access_as(*u, "/tmp", X_OK);
  ASSERT_TRUE(open);
  EXPECT_TRUE(*open);
  auto closed = engram::can_access_as(*u, priv.path() / "inner", X_OK);
  ASSERT_TRUE(closed);
  EXPECT_FALSE(*closed);
}

// -- embedded_postgres ----------------------------------------------------------

TEST(EmbeddedPostgres, StartsAnswersAndStopsCleanly) {
  temp_dir dir;
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  dir.track(*pg);
  EXPECT_TRUE(pg->running());
  EXPECT_GT(pg->pid(), 0);
  EXPECT_EQ(pg->cluster_dir(), fs::canonical(dir.path()) / "pgdata");
  EXPECT_EQ(pg->socket_dir(), fs::canonical(dir.path()) / "run");
  EXPECT_EQ(pg->connection_string(),
            "host=" + pg->socket_dir().string()
              + " port=5432 user=engram dbname=engram");
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
  EXPECT_EQ(psql(pg->connection_string(), "select current_database()"), "engram");
  EXPECT_EQ(psql(pg->connection_string(), "show listen_addresses"), "");
  EXPECT_EQ(psql(pg->connection_string(), "show server_encoding"), "UTF8");
  EXPECT_EQ(psql(pg->connection_string(), "show fsync"), "on");
  EXPECT_EQ(psql(pg->connection_string(), "show TimeZone"), "UTC");
  // The server runs as the unprivileged user; its dirs are private.
  EXPECT_EQ(uid_of_process(pg->pid()), expected_server_uid());
  struct stat sb{};
  ASSERT_EQ(::stat(pg->socket_dir().c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0700u);
  EXPECT_EQ(sb.st_uid, expected_server_uid());
  ASSERT_EQ(::stat(pg->cluster_dir().c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 077, 0u);
  for (auto& entry : fs::recursive_directory_iterator{pg->cluster_dir()}) {
    struct stat fsb{};
    if (::lstat(entry.path().c_str(), &fsb) == 0 && !S_ISSOCK(fsb.st_mode)) {
      EXPECT_EQ(fsb.st_mode & 007, 0u) << entry.path() << " is world-accessible";
    }
  }
  ASSERT_EQ(::stat(pg->log_file().c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 077, 0u);
  // pg_hba: local only.
  std::ifstream hba{pg->cluster_dir() / "pg_hba.conf"};
  std::string line;
  while (std::getline(hba, line)) {
    if (!line.empty() && line[0] != '#') {
      EXPECT_EQ(line.rfind("local", 0), 0u) << line;
    }
  }
  // Stop: the postmaster and all its children are gone.
  auto pid = pg->pid();
  EXPECT_FALSE(pg->stop());
  EXPECT_FALSE(pg->running());
  EXPECT_TRUE(pid_gone(pid));
  EXPECT_TRUE(processes_in(pg->cluster_dir()).empty());
  EXPECT_FALSE(fs::exists(pg->cluster_dir() / "postmaster.pid"));
  EXPECT_FALSE(pg->stop()); // idempotent
}

TEST(EmbeddedPostgres, RestartReusesTheData) {
  temp_dir dir;
  {
    auto pg = start_or_fail(dir.path());
    ASSERT_TRUE(pg);
    dir.track(*pg);
    ASSERT_EQ(psql(pg->connection_string(),
                   "create table kept(v text); insert into kept values ('hello')"),
              "");
  } // the destructor stops it
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  EXPECT_EQ(psql(pg->connection_string(), "select v from kept"), "hello");
}

TEST(EmbeddedPostgres, CreatesAnotherDatabaseName) {
  temp_dir dir;
  auto opts = options_for(dir.path());
  opts.database = "other_db";
  auto res = embedded_postgres::start(opts);
  ASSERT_TRUE(res) << engram::describe(res.error());
  auto& pg = *res;
  dir.track(*pg);
  EXPECT_EQ(psql(pg->connection_string(), "select current_database()"), "other_db");
}

TEST(EmbeddedPostgres, RefusesASecondServerOnTheSameDataDir) {
  temp_dir dir;
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  dir.track(*pg);
  auto second = embedded_postgres::start(options_for(dir.path()));
  ASSERT_FALSE(second);
  EXPECT_EQ(engram::code_of(second.error()), engram::errc::process_failed);
  EXPECT_NE(engram::message_of(second.error()).find("in use"), std::string::npos)
    << engram::describe(second.error());
  EXPECT_TRUE(pg->running());
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
}

TEST(EmbeddedPostgres, RemovesStaleLockFilesWithADeadPid) {
  temp_dir dir;
  fs::path cluster, sockets;
  {
    auto pg = start_or_fail(dir.path());
    ASSERT_TRUE(pg);
    dir.track(*pg);
    cluster = pg->cluster_dir();
    sockets = pg->socket_dir();
    psql(pg->connection_string(), "create table t(x int); insert into t values (7)");
  }
  auto pid = dead_pid();
  auto pidfile = cluster / "postmaster.pid";
  write_text(pidfile, std::to_string(pid) + "\n" + cluster.string()
                        + "\n1700000000\n5432\n" + sockets.string() + "\n\n"
                        + "  5432001    0\nready   \n");
  write_text(sockets / ".s.PGSQL.5432.lock",
             std::to_string(pid) + "\n" + cluster.string() + "\n");
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  EXPECT_EQ(psql(pg->connection_string(), "select x from t"), "7");
}

TEST(EmbeddedPostgres, RemovesAStalePidFileNamingAnUnrelatedProcess) {
  temp_dir dir;
  fs::path cluster;
  {
    auto pg = start_or_fail(dir.path());
    ASSERT_TRUE(pg);
    dir.track(*pg);
    cluster = pg->cluster_dir();
  }
  // A live process that is not a server (postgres itself would refuse).
  process_options sleep_opts;
  sleep_opts.argv = {"sleep", "60"};
  auto sleeper = engram::child_process::spawn(sleep_opts);
  ASSERT_TRUE(sleeper);
  write_text(cluster / "postmaster.pid",
             std::to_string(sleeper->pid()) + "\n" + cluster.string() + "\n");
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
  EXPECT_TRUE(sleeper->running()); // left alone
}

TEST(EmbeddedPostgres, StopsALeftoverServerOfItsCluster) {
  temp_dir dir;
  fs::path cluster, sockets, bin;
  {
    auto pg = start_or_fail(dir.path());
    ASSERT_TRUE(pg);
    dir.track(*pg);
    cluster = pg->cluster_dir();
    sockets = pg->socket_dir();
    bin = pg->bin_dir();
  }
  // A server on the cluster that nobody owns any more (no pdeathsig).
  process_options p;
  p.argv = {(bin / "postgres").string(), "-D", cluster.string(), "-k",
            sockets.string(), "-c", "listen_addresses="};
  if (is_root())
    p.user = *engram::lookup_user("postgres");
  p.output_file = dir.path() / "leftover.log";
  auto leftover = engram::child_process::spawn(p);
  ASSERT_TRUE(leftover) << engram::describe(leftover.error());
  // Wait until it wrote its pid file, so start() must deal with it.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!fs::exists(sockets / ".s.PGSQL.5432")
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(leftover->running());
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  auto st = leftover->wait_for(10s);
  ASSERT_TRUE(st) << "the leftover server still runs";
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
  EXPECT_NE(pg->pid(), leftover->pid());
}

namespace {

/// Forks an owner process that starts a server on `dir`, creates a table,
/// reports the server's pid and then dies as `how` says.
pid_t start_in_doomed_owner(const fs::path& dir, bool sigkill, pid_t& owner) {
  int fds[2];
  if (::pipe(fds) != 0)
    return -1;
  owner = ::fork();
  if (owner < 0)
    return -1;
  if (owner == 0) {
    ::close(fds[0]);
    pid_t pid = -1;
    auto res = embedded_postgres::start(options_for(dir));
    if (res) {
      if (psql((*res)->connection_string(),
               "create table survivor(v int); insert into survivor values (42)")
          == "")
        pid = (*res)->pid();
    }
    [[maybe_unused]] auto n = ::write(fds[1], &pid, sizeof(pid));
    if (sigkill)
      ::pause(); // until the test kills us
    ::_exit(0);  // abruptly: no destructors, no stop()
  }
  ::close(fds[1]);
  pid_t pid = -1;
  if (::read(fds[0], &pid, sizeof(pid)) != static_cast<ssize_t>(sizeof(pid)))
    pid = -1;
  ::close(fds[0]);
  if (sigkill)
    ::kill(owner, SIGKILL);
  int st = 0;
  ::waitpid(owner, &st, 0);
  return pid;
}

} // namespace

TEST(EmbeddedPostgres, ServerStopsItselfWhenItsOwnerIsKilled) {
  temp_dir dir;
  pid_t owner = -1;
  auto server = start_in_doomed_owner(dir.path(), true, owner);
  ASSERT_GT(server, 0) << "the owner could not start the server";
  EXPECT_TRUE(wait_pid_gone(server, 30s)) << "the server outlived its owner";
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  dir.track(*pg);
  EXPECT_EQ(psql(pg->connection_string(), "select v from survivor"), "42");
}

TEST(EmbeddedPostgres, RestartsRightAfterTheOwnerExitedAbruptly) {
  temp_dir dir;
  pid_t owner = -1;
  auto server = start_in_doomed_owner(dir.path(), false, owner);
  ASSERT_GT(server, 0) << "the owner could not start the server";
  // Start again at once: the old server may still be shutting down.
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  dir.track(*pg);
  EXPECT_TRUE(wait_pid_gone(server, 30s));
  EXPECT_EQ(psql(pg->connection_string(), "select v from survivor"), "42");
}

TEST(EmbeddedPostgres, RecoversFromAnInterruptedInitdb) {
  temp_dir dir;
  // What a kill -9 during the first initdb leaves, plus an empty pgdata.
  fs::create_directories(dir.path() / "pgdata.tmp" / "base");
  write_text(dir.path() / "pgdata.tmp" / "PG_VERSION", "15\n");
  fs::create_directory(dir.path() / "pgdata");
  auto pg = start_or_fail(dir.path());
  ASSERT_TRUE(pg);
  dir.track(*pg);
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
  EXPECT_FALSE(fs::exists(dir.path() / "pgdata.tmp"));
}

TEST(EmbeddedPostgres, RefusesAForeignDirectoryAsCluster) {
  temp_dir dir;
  fs::create_directory(dir.path() / "pgdata");
  write_text(dir.path() / "pgdata" / "precious.txt", "not a cluster\n");
  auto res = embedded_postgres::start(options_for(dir.path()));
  ASSERT_FALSE(res);
  EXPECT_NE(engram::message_of(res.error()).find("PG_VERSION"), std::string::npos)
    << engram::describe(res.error());
  EXPECT_TRUE(fs::exists(dir.path() / "pgdata" / "precious.txt"));
}

TEST(EmbeddedPostgres, MovesTheClusterOutOfAPrivateParentDir) {
  if (!is_root())
    GTEST_SKIP() << "the fallback is for root (the server runs as another user)";
  temp_dir parent{0700};
  auto data = parent.path() / "data";
  fs::path first_cluster;
  {
    auto pg = start_or_fail(data);
    ASSERT_TRUE(pg);
    parent.track(*pg);
    first_cluster = pg->cluster_dir();
    EXPECT_EQ(pg->cluster_dir().string().rfind("/var/lib/engram/clusters/", 0), 0u)
      << pg->cluster_dir();
    EXPECT_EQ(pg->socket_dir(), pg->cluster_dir().parent_path() / "run");
    EXPECT_EQ(psql(pg->connection_string(),
                   "create table moved(v int); insert into moved values (1)"),
              "");
    EXPECT_TRUE(fs::exists(data / "pgdata.location"));
    EXPECT_FALSE(fs::exists(data / "pgdata"));
    struct stat sb{};
    ASSERT_EQ(::stat(data.c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 07777, 0755u); // created by start()
    ASSERT_EQ(::stat(pg->cluster_dir().parent_path().c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 07777, 0700u);
    EXPECT_EQ(sb.st_uid, expected_server_uid());
  }
  // The same data dir finds the same cluster, even once it is reachable.
  ::chmod(parent.path().c_str(), 0755);
  auto pg = start_or_fail(data);
  ASSERT_TRUE(pg);
  EXPECT_EQ(pg->cluster_dir(), first_cluster);
  EXPECT_EQ(psql(pg->connection_string(), "select v from moved"), "1");
}

TEST(EmbeddedPostgres, MovesTheSocketWhenThePathIsTooLong) {
  temp_dir dir;
  auto data = dir.path() / std::string(60, 'd') / std::string(60, 'e');
  fs::path sockets;
  {
    auto pg = start_or_fail(data);
    ASSERT_TRUE(pg);
    dir.track(*pg);
    sockets = pg->socket_dir();
    EXPECT_EQ(pg->cluster_dir(), data / "pgdata");
    EXPECT_EQ(sockets.parent_path(), "/tmp");
    EXPECT_EQ(sockets.filename().string().rfind("engram-", 0), 0u) << sockets;
    struct stat sb{};
    ASSERT_EQ(::stat(sockets.c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 07777, 0700u);
    EXPECT_EQ(sb.st_uid, expected_server_uid());
    EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
  }
  // An unsafe directory in its place is refused.
  ::chmod(sockets.c_str(), 0755);
  auto res = embedded_postgres::start(options_for(data));
  ASSERT_FALSE(res);
  EXPECT_NE(engram::message_of(res.error()).find("refusing"), std::string::npos)
    << engram::describe(res.error());
  ::chmod(sockets.c_str(), 0700);
  auto pg = start_or_fail(data);
  ASSERT_TRUE(pg);
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
}

TEST(EmbeddedPostgres, HandlesSpacesInThePath) {
  temp_dir dir;
  auto data = dir.path() / "my data";
  auto pg = start_or_fail(data);
  ASSERT_TRUE(pg);
  dir.track(*pg);
  EXPECT_NE(pg->connection_string().find("host='"), std::string::npos)
    << pg->connection_string();
  EXPECT_EQ(psql(pg->connection_string(), "select 1"), "1");
}

TEST(EmbeddedPostgres, FailsWithTheLogTailWhenTheServerCannotStart) {
  temp_dir dir;
  {
    auto pg = start_or_fail(dir.path());
    ASSERT_TRUE(pg);
    dir.track(*pg);
  }
  // A setting the server rejects at start-up.
  std::ofstream{dir.path() / "pgdata" / "postgresql.auto.conf", std::ios::app}
    << "shared_buffers = 'nonsense'\n";
  auto res = embedded_postgres::start(options_for(dir.path()));
  ASSERT_FALSE(res);
  auto msg = engram::message_of(res.error());
  EXPECT_NE(msg.find("exited during start-up"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shared_buffers"), std::string::npos) << msg;
  EXPECT_TRUE(processes_in(dir.path() / "pgdata").empty());
}

TEST(EmbeddedPostgres, RejectsBadOptions) {
  embedded_postgres_options opts;
  auto res = embedded_postgres::start(opts);
  ASSERT_FALSE(res);
  EXPECT_EQ(engram::code_of(res.error()), engram::errc::invalid_config);
  opts.data_dir = "/tmp/engram-never-created";
  opts.database = "";
  EXPECT_FALSE(embedded_postgres::start(opts));
  opts.database = "x";
  opts.bin_dir = "/nonexistent/bin";
  res = embedded_postgres::start(opts);
  ASSERT_FALSE(res);
  EXPECT_NE(engram::message_of(res.error()).find("/nonexistent/bin"),
            std::string::npos);
  std::error_code ec;
  fs::remove_all("/tmp/engram-never-created", ec);
}

// -- test support ---------------------------------------------------------------

TEST(ThrowawayPostgres, RestartsOnTheSameDataAndCleansUp) {
  fs::path data;
  pid_t pid = -1;
  {
    engram::test::throwaway_postgres pg;
    data = pg.data_dir();
    pg.psql("create table t(v int); insert into t values (5)");
    pid = pg.server().pid();
    pg.stop();
    EXPECT_FALSE(pg.running());
    EXPECT_TRUE(pid_gone(pid));
    pg.start();
    EXPECT_EQ(pg.psql("select v from t"), "5");
    pid = pg.server().pid();
    EXPECT_THROW(pg.psql("select nonsense from nowhere"), std::runtime_error);
  }
  EXPECT_TRUE(pid_gone(pid));
  EXPECT_FALSE(fs::exists(data));
}

TEST(SharedPostgres, GivesEachTestItsOwnDatabase) {
  auto conn = engram::test::test_database();
  EXPECT_NE(conn.find("dbname=t_sharedpostgres_giveseachtestitsowndatabase"),
            std::string::npos)
    << conn;
  EXPECT_EQ(psql(conn, "create table mine(v int); insert into mine values (1)"), "");
  auto other = engram::test::shared_postgres().create_database("t_other_db");
  EXPECT_NE(psql(other, "select v from mine").find("ERROR"), std::string::npos);
  // Re-creating gives an empty database.
  conn = engram::test::test_database();
  EXPECT_NE(psql(conn, "select v from mine").find("ERROR"), std::string::npos);
  engram::test::shared_postgres().drop_database("t_other_db");
}
