#include "tests/support/daemon_process.hpp"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

extern char** environ;

namespace engram::test {

namespace {

/// The daemon's environment: ours minus whatever would redirect it.
std::vector<std::pair<std::string, std::string>> clean_environment() {
  std::vector<std::pair<std::string, std::string>> result;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv{*e};
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      continue;
    auto name = kv.substr(0, eq);
    if (name == "DATABASE_URL" || name.rfind("ENGRAM_", 0) == 0)
      continue;
    result.emplace_back(name, kv.substr(eq + 1));
  }
  return result;
}

process_options engram_options(const std::vector<std::string>& args,
                               const environment_vars& env) {
  process_options opts;
  opts.argv.reserve(args.size() + 1);
  opts.argv.emplace_back(ENGRAM_BINARY);
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.inherit_environment = false;
  opts.env = clean_environment();
  opts.env.insert(opts.env.end(), env.begin(), env.end());
  return opts;
}

} // namespace

temp_dir::temp_dir(const std::string& prefix) {
  // /tmp, not TMPDIR: a private TMPDIR would be out of reach of the
  // embedded server's system user.
  auto tmpl = (std::filesystem::path{"/tmp"} / (prefix + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
  // The embedded server's system user must be able to traverse it.
  std::filesystem::permissions(path_, std::filesystem::perms{0755});
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

daemon_process::daemon_process(std::filesystem::path data_dir,
                               std::vector<std::string> extra,
                               environment_vars env)
  : data_dir_(std::move(data_dir)) {
  std::filesystem::create_directories(data_dir_);
  std::filesystem::remove(data_dir_ / "engram.port");
  // Each run's log starts empty, so a test sees only this process's lines.
  std::filesystem::remove(data_dir_ / "daemon.log");
  std::vector<std::string> args{"serve", "--data-dir", data_dir_.string(),
                                "--http.port", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto opts = engram_options(args, env);
  opts.output_file = data_dir_ / "daemon.log";
  // If the test binary dies, the daemon (and with it its PostgreSQL) stops.
  opts.parent_death_signal = SIGTERM;
  auto proc = child_process::spawn(opts);
  if (!proc)
    throw std::runtime_error("cannot start engram");
  proc_ = std::move(*proc);
}

daemon_process::~daemon_process() {
  if (proc_.pid() > 0 && proc_.running())
    terminate(std::chrono::seconds{30});
}

uint16_t daemon_process::wait_for_port(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto file = data_dir_ / "engram.port";
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::ifstream in{file}; in) {
      int port = 0;
      if (in >> port && port > 0)
        return port_ = static_cast<uint16_t>(port);
    }
    if (!proc_.running())
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return 0;
}

std::optional<process_status>
daemon_process::terminate(std::chrono::milliseconds timeout) {
  proc_.signal(SIGTERM);
  return proc_.wait_for(timeout);
}

void daemon_process::kill9() {
  proc_.signal(SIGKILL);
  proc_.wait();
}

std::optional<process_status>
daemon_process::wait_for_exit(std::chrono::milliseconds timeout) {
  return proc_.wait_for(timeout);
}

std::string daemon_process::log() const {
  std::ifstream in{data_dir_ / "daemon.log"};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t daemon_process::postgres_pid() const {
  std::ifstream in{data_dir_ / "pgdata" / "postmaster.pid"};
  pid_t pid = 0;
  in >> pid;
  return pid;
}

bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0)
    return false;
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size()
         && line[close + 2] != 'Z';
}

std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> result;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream in{entry.path() / "cmdline"};
    std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
    auto pid = static_cast<pid_t>(std::stol(name));
    if (cmdline.find(needle) != std::string::npos && pid != getpid()
        && process_alive(pid))
      result.push_back(pid);
  }
  return result;
}

std::vector<pid_t> processes_in(const std::filesystem::path& dir) {
  std::vector<pid_t> result;
  std::error_code ec;
  auto target = std::filesystem::canonical(dir, ec);
  if (ec)
    return result;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto cwd = std::filesystem::read_symlink(entry.path() / "cwd", ec);
    auto pid = static_cast<pid_t>(std::stol(name));
    if (!ec && cwd == target && process_alive(pid))
      result.push_back(pid);
  }
  return result;
}

process_result run_engram(const std::vector<std::string>& args,
                          environment_vars env,
                          std::chrono::milliseconds timeout) {
  auto res = run_and_wait(engram_options(args, env), timeout);
  if (!res)
    throw std::runtime_error("cannot run engram");
  return *res;
}

} // namespace engram::test
