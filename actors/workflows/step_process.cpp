// A workflow step's child process and files; see step_process.hpp.
//
// Boost.Process v1 does the fork and exec, with one custom initializer
// (step_child_setup) for everything between them. Boost's own std_in/std_out
// redirections and start_dir are not used: they open files without O_TRUNC
// and O_CLOEXEC, and on a failure in the child (a file that could not be
// opened, a chdir that failed) they report an error yet go on to exec, or
// (start_dir) ignore it. Boost's search_path is not used either: it needs
// Boost.Filesystem's library, which the project does not link.

#include "actors/workflows/step_process.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <openssl/evp.h>

#include "messages/errc.hpp"
#include "runtime/fork_exec.hpp"

namespace engram::workflows {

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

} // namespace

// -- credentials ------------------------------------------------------------------

credential_audit check_credential(const credential_spec& spec) {
  credential_audit result;
  result.credential = spec.name;
  result.kind = spec.kind;
  auto verdict = [&](bool present, bool valid, const char* detail) {
    result.present = present;
    result.valid = valid;
    result.detail = detail;
    return result;
  };
  if (spec.kind == "env") {
    const char* value = std::getenv(spec.target.c_str());
    if (value == nullptr)
      return verdict(false, false, "not set");
    if (*value == '\0')
      return verdict(true, false, "empty");
    return verdict(true, true, "ok");
  }
  if (spec.kind == "file") {
    struct stat st{};
    if (spec.target.empty() || ::stat(spec.target.c_str(), &st) != 0) {
      if (spec.target.empty() || errno == ENOENT || errno == ENOTDIR)
        return verdict(false, false, "no such file");
      // EACCES on a directory on the way, ELOOP, ...: it may exist, but we
      // cannot get at it.
      return verdict(false, false, "not readable");
    }
    if (!S_ISREG(st.st_mode))
      return verdict(true, false, "not a regular file");
    // Opening (not reading) is the honest test: effective ids, groups, ACLs.
    int fd = ::open(spec.target.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
      return verdict(true, false, "not readable");
    ::close(fd);
    if (st.st_size == 0)
      return verdict(true, false, "empty file");
    return verdict(true, true, "ok");
  }
  // definition.cpp only produces "env" and "file".
  return verdict(false, false, "unknown kind");
}

// -- step_exit ----------------------------------------------------------------------

std::string step_exit::to_string() const {
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

// -- the child process --------------------------------------------------------------

namespace {

caf::error start_failed(std::string what) {
  return make_error(errc::process_failed, std::move(what));
}

step_exit decode_wait_status(int status) noexcept {
  step_exit result;
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.term_signal = WTERMSIG(status);
  return result;
}

/// What the child did last before it gave up.
enum class child_step : int {
  process_group = 1,
  redirect,
  chdir,
  pdeathsig,
  exec,
};

const char* step_name(child_step s) {
  switch (s) {
    case child_step::process_group: return "setpgid";
    case child_step::redirect: return "redirecting stdin/stdout/stderr";
    case child_step::chdir: return "changing to the working directory";
    case child_step::pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case child_step::exec: return "execve";
  }
  return "?";
}

struct child_report {
  int step;
  int err;
};

/// The Boost.Process initializer that does everything between fork and exec
/// that Boost.Process v1 does not do, or does not do safely: Boost's own
/// `std_in < path` / `std_out > path` open the files without O_TRUNC and
/// O_CLOEXEC and, like `start_dir` (which ignores a failing chdir), report a
/// failure in the child but go on to exec anyway. So the parent opens the
/// files, and this initializer installs them, changes directory and
/// reports any failure (including execve's) through a pipe of its own and
/// then _exits; the parent reads that pipe after bp::child returns and
/// always knows the pid to reap. Child side: async-signal-safe calls only.
struct step_child_setup : bp::extend::handler {
  int in_fd = -1;
  int out_fd = -1;
  int err_fd = -1;
  const char* workdir = nullptr; ///< null: stay
  pid_t parent = -1;
  int report_fd = -1; ///< write end, O_CLOEXEC
  // Parent side, filled by Boost's callbacks.
  std::error_code error;
  const char* error_what = nullptr;

  [[noreturn]] void fail(child_step step, int err) const noexcept {
    child_report r{static_cast<int>(step), err};
    [[maybe_unused]] auto n = ::write(report_fd, &r, sizeof(r));
    ::_exit(127);
  }

  template <class Executor>
  void on_exec_setup(Executor&) const noexcept {
    // The daemon may have handlers installed and blocks SIGINT/SIGTERM in
    // every thread (runtime/main.cpp); the step gets the defaults. Handlers
    // would be reset by exec anyway, but ignored signals would stay ignored.
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP)
        ::sigaction(sig, &dfl, nullptr); // fails harmlessly for reserved ones
    if (::setpgid(0, 0) != 0)
      fail(child_step::process_group, errno);
    if (!install_fd(in_fd, STDIN_FILENO) || !install_fd(out_fd, STDOUT_FILENO)
        || !install_fd(err_fd, STDERR_FILENO))
      fail(child_step::redirect, errno);
    if (workdir != nullptr && ::chdir(workdir) != 0)
      fail(child_step::chdir, errno);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
      fail(child_step::pdeathsig, errno);
    if (::getppid() != parent)
      ::_exit(128 + SIGKILL); // the daemon died before the prctl
    cloexec_from_3();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }

  template <class Executor>
  void on_exec_error(Executor&, const std::error_code& ec) const noexcept {
    // Before Boost writes to its own error pipe: the parent then sees a
    // successful start, gets the pid, and reads the reason from ours.
    fail(child_step::exec, ec.value());
  }

  template <class Executor>
  void on_error(Executor&, const std::error_code& ec) {
    error = ec;
    error_what = "starting the process";
  }

  template <class Executor>
  void on_fork_error(Executor&, const std::error_code& ec) {
    error = ec;
    error_what = "fork";
  }
};

/// A name without '/' looked up in `path_var` (as execvp would, minus the
/// shell fallback). Boost's search_path would need Boost.Filesystem's
/// library, which the project does not link.
caf::expected<std::string> resolve_program(const std::string& name,
                                           const std::string& path_var) {
  if (name.find('/') != std::string::npos)
    return name; // execve reports what is wrong with it
  std::string_view dirs = path_var.empty() ? "/usr/local/bin:/usr/bin:/bin"
                                           : std::string_view{path_var};
  int last_err = ENOENT;
  while (true) {
    auto colon = dirs.find(':');
    auto dir = dirs.substr(0, colon);
    std::string candidate = dir.empty() ? "." : std::string{dir};
    candidate += '/';
    candidate += name;
    struct stat st{};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0)
        return candidate;
      last_err = EACCES;
    }
    if (colon == std::string_view::npos)
      break;
    dirs.remove_prefix(colon + 1);
  }
  if (last_err == EACCES)
    return start_failed("cannot start '" + name
                        + "': found in PATH but not executable");
  return start_failed("cannot start '" + name + "': not found in PATH");
}

caf::expected<unique_fd> open_redirect(const fs::path& file, bool for_write,
                                       const std::string& program,
                                       const char* which) {
  const char* name = file.empty() ? "/dev/null" : file.c_str();
  int flags = O_CLOEXEC | O_NOCTTY
              | (for_write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
  unique_fd fd{::open(name, flags, 0600)};
  if (!fd)
    return start_failed("cannot start '" + program + "': cannot open " + name
                        + " for its " + which + ": " + errno_text(errno));
  return fd;
}

} // namespace

struct step_process::impl {
  pid_t pid = -1;
  bool reaped = false;
  step_exit status;

  ~impl() { kill_and_reap(); }

  void kill_and_reap() noexcept {
    if (pid <= 0 || reaped)
      return;
    ::kill(-pid, SIGKILL);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    reaped = true;
  }
};

step_process::step_process(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

step_process::step_process(step_process&&) noexcept = default;

step_process& step_process::operator=(step_process&&) noexcept = default;

step_process::~step_process() = default;

pid_t step_process::pid() const noexcept {
  return impl_ ? impl_->pid : -1;
}

void step_process::wait_exited() const {
  if (!impl_ || impl_->pid <= 0)
    return;
  const pid_t pid = impl_->pid;
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0
         && errno == EINTR) {
  }
}

bool step_process::signal_group(int sig) noexcept {
  if (!impl_ || impl_->pid <= 0 || impl_->reaped)
    return false;
  return ::kill(-impl_->pid, sig) == 0;
}

step_exit step_process::reap() {
  if (!impl_ || impl_->pid <= 0)
    return {};
  if (impl_->reaped)
    return impl_->status;
  // Leftovers of the group (background children of the step). The leader
  // is not reaped yet, so the group id cannot belong to anyone else.
  ::kill(-impl_->pid, SIGKILL); // ESRCH: nothing left, fine
  int st = 0;
  pid_t rc;
  while ((rc = ::waitpid(impl_->pid, &st, 0)) < 0 && errno == EINTR) {
  }
  impl_->reaped = true;
  impl_->status = rc == impl_->pid ? decode_wait_status(st) : step_exit{};
  return impl_->status;
}

caf::expected<step_process> step_process::start(const step_launch& launch) {
  if (launch.argv.empty() || launch.argv.front().empty())
    return start_failed("cannot start a step: empty command");
  const std::string& program = launch.argv.front();
  // Environment: ours plus the step's.
  bp::environment env = boost::this_process::environment();
  for (const auto& [key, value] : launch.env)
    env[key] = value;
  // The PATH the step will see decides where a bare name is looked up.
  std::string path_var;
  if (const char* p = std::getenv("PATH"))
    path_var = p;
  for (const auto& [key, value] : launch.env)
    if (key == "PATH")
      path_var = value;
  auto exe = resolve_program(program, path_var);
  if (!exe)
    return std::move(exe.error());
  // Files, opened here so that a failure names the file.
  auto in = open_redirect(launch.stdin_file, false, program, "stdin");
  if (!in)
    return std::move(in.error());
  auto out = open_redirect(launch.stdout_file, true, program, "stdout");
  if (!out)
    return std::move(out.error());
  unique_fd err_owned;
  int err_fd = out->get();
  if (launch.stderr_file.empty() || launch.stderr_file != launch.stdout_file) {
    auto err = open_redirect(launch.stderr_file, true, program, "stderr");
    if (!err)
      return std::move(err.error());
    err_owned = std::move(*err);
    err_fd = err_owned.get();
  }
  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0)
    return start_failed("cannot start '" + program
                        + "': pipe2 failed: " + errno_text(errno));
  unique_fd report_rd{report_pipe[0]};
  unique_fd report_wr{report_pipe[1]};
  const std::string workdir = launch.working_dir.string();
  step_child_setup setup;
  setup.in_fd = in->get();
  setup.out_fd = out->get();
  setup.err_fd = err_fd;
  setup.workdir = workdir.empty() ? nullptr : workdir.c_str();
  setup.parent = ::getpid();
  setup.report_fd = report_wr.get();
  std::vector<std::string> args(launch.argv.begin() + 1, launch.argv.end());
  pid_t pid = -1;
  try {
    block_all_signals guard;
    bp::child child(bp::exe = *exe, bp::args = args, env, setup);
    if (child.valid()) {
      pid = child.id();
      // The pid is ours from here on: bp::child's destructor would
      // terminate a running child and its running() would reap it.
      child.detach();
    }
  } catch (const std::exception& e) {
    // Boost throws process_error for failures before the fork (pipe(2),
    // fcntl); failures after it come through our pipe.
    return start_failed("cannot start '" + program + "': " + e.what());
  }
  if (pid <= 0) {
    std::string what = "cannot start '" + program + "': ";
    what += setup.error_what != nullptr ? setup.error_what : "bp::child";
    what += " failed";
    if (setup.error)
      what += ": " + setup.error.message();
    return start_failed(std::move(what));
  }
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
    auto step = static_cast<child_step>(report.step);
    std::string what = "cannot start '" + program + "'";
    if (*exe != program)
      what += " (" + *exe + ")";
    what += ": ";
    what += step_name(step);
    if (step == child_step::chdir)
      what += " " + workdir;
    what += " failed: " + errno_text(report.err);
    return start_failed(std::move(what));
  }
  auto result = std::make_unique<impl>();
  result->pid = pid;
  return step_process{std::move(result)};
}

// -- output -------------------------------------------------------------------------

caf::expected<std::string> parse_step_output(std::string_view out,
                                             size_t max_bytes) {
  if (out.size() > max_bytes)
    return make_error(errc::too_large,
                      "stdout is larger than the limit of "
                        + std::to_string(max_bytes) + " bytes ("
                        + std::to_string(out.size()) + " bytes)");
  auto is_ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  };
  if (std::all_of(out.begin(), out.end(), is_ws))
    return std::string{"{}"};
  boost::json::parse_options opts;
  opts.max_depth = 64;
  boost::json::parser parser{{}, opts};
  boost::system::error_code ec;
  size_t used = parser.write_some(out.data(), out.size(), ec);
  if (ec)
    return make_error(errc::invalid_argument,
                      "stdout is not valid JSON: " + ec.message() + " at byte "
                        + std::to_string(used));
  if (used < out.size())
    return make_error(errc::invalid_argument,
                      "stdout is not valid JSON: unexpected content after the "
                      "value at byte "
                        + std::to_string(used));
  return boost::json::serialize(parser.release());
}

// -- artifacts ----------------------------------------------------------------------

namespace {

struct file_digest {
  std::string sha256;
  int64_t size_bytes = 0;
};

/// SHA-256 and size of what was read. With `only_regular`, refuses to
/// follow a link or open anything but a regular file (the folder may have
/// changed since it was listed).
caf::expected<file_digest> digest_file(const fs::path& file, bool only_regular) {
  int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  if (only_regular)
    flags |= O_NOFOLLOW | O_NONBLOCK;
  unique_fd fd{::open(file.c_str(), flags)};
  if (!fd)
    return make_error(errno == ENOENT ? errc::not_found : errc::unspecified,
                      "cannot open " + file.string() + ": "
                        + errno_text(errno));
  if (only_regular) {
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return make_error(errc::unspecified,
                        file.string() + " is no longer a regular file");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(),
                                                              &EVP_MD_CTX_free};
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return make_error(errc::unspecified, "cannot initialise SHA-256");
  file_digest result;
  std::array<char, 65536> buf;
  while (true) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return make_error(errc::unspecified, "cannot read " + file.string() + ": "
                                             + errno_text(errno));
    }
    if (n == 0)
      break;
    if (EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n)) != 1)
      return make_error(errc::unspecified, "SHA-256 update failed");
    result.size_bytes += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1)
    return make_error(errc::unspecified, "SHA-256 final failed");
  static constexpr char hex[] = "0123456789abcdef";
  result.sha256.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    result.sha256 += hex[md[i] >> 4];
    result.sha256 += hex[md[i] & 0xf];
  }
  return result;
}

} // namespace

caf::expected<std::string> sha256_file(const fs::path& file) {
  auto digest = digest_file(file, false);
  if (!digest)
    return std::move(digest.error());
  return std::move(digest->sha256);
}

std::string content_type_for(std::string_view name) {
  auto slash = name.rfind('/');
  auto base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot == std::string_view::npos)
    return "application/octet-stream";
  std::string ext{base.substr(dot + 1)};
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  if (ext == "json")
    return "application/json";
  if (ext == "md")
    return "text/markdown";
  if (ext == "txt" || ext == "log")
    return "text/plain";
  if (ext == "patch" || ext == "diff")
    return "text/x-diff";
  if (ext == "html")
    return "text/html";
  if (ext == "csv")
    return "text/csv";
  if (ext == "yaml" || ext == "yml")
    return "application/yaml";
  return "application/octet-stream";
}

caf::expected<std::vector<artifact_file>>
collect_artifacts(const fs::path& dir) {
  std::error_code ec;
  auto st = fs::symlink_status(dir, ec);
  if (ec || !fs::is_directory(st))
    return make_error(errc::not_found,
                      "artifact folder " + dir.string() + " does not exist");
  std::vector<artifact_file> result;
  // directory_options::none: symbolic links to directories are not entered.
  fs::recursive_directory_iterator it{dir, fs::directory_options::none, ec};
  if (ec)
    return make_error(errc::unspecified, "cannot list " + dir.string() + ": "
                                           + ec.message());
  for (; it != fs::recursive_directory_iterator{}; it.increment(ec)) {
    if (ec)
      break;
    auto entry_st = it->symlink_status(ec);
    if (ec)
      return make_error(errc::unspecified, "cannot stat "
                                             + it->path().string() + ": "
                                             + ec.message());
    if (!fs::is_regular_file(entry_st))
      continue; // symlinks, fifos, sockets, devices; directories are entered
    artifact_file file;
    file.name = it->path().lexically_relative(dir).generic_string();
    // Size and digest of the same bytes.
    auto digest = digest_file(it->path(), true);
    if (!digest)
      return std::move(digest.error());
    file.size_bytes = digest->size_bytes;
    file.sha256 = std::move(digest->sha256);
    file.content_type = content_type_for(file.name);
    result.push_back(std::move(file));
  }
  if (ec)
    return make_error(errc::unspecified, "cannot list " + dir.string() + ": "
                                           + ec.message());
  std::sort(result.begin(), result.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return result;
}

caf::expected<fs::path> resolve_artifact(const fs::path& root,
                                         const std::string& run_id,
                                         const std::string& relative_path) {
  auto refuse = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "artifact path '" + relative_path + "' " + why);
  };
  auto missing = [&] {
    return make_error(errc::not_found,
                      "artifact '" + relative_path + "' does not exist");
  };
  if (run_id.empty() || run_id == "." || run_id == ".."
      || run_id.find('/') != std::string::npos
      || run_id.find('\0') != std::string::npos)
    return make_error(errc::invalid_argument, "invalid run id");
  if (relative_path.empty())
    return make_error(errc::invalid_argument, "empty artifact path");
  if (relative_path.find('\0') != std::string::npos)
    return refuse("contains a NUL byte");
  if (relative_path.front() == '/')
    return refuse("is absolute");
  std::vector<std::string_view> parts;
  std::string_view rest{relative_path};
  while (true) {
    auto slash = rest.find('/');
    auto part = rest.substr(0, slash);
    if (part.empty())
      return refuse("has an empty component");
    if (part == "..")
      return refuse("has a '..' component");
    if (part == ".")
      return refuse("has a '.' component");
    parts.push_back(part);
    if (slash == std::string_view::npos)
      break;
    rest.remove_prefix(slash + 1);
  }
  if (parts.front() != run_id)
    return refuse("is not in run " + run_id);
  if (parts.size() < 2)
    return refuse("names the run's folder, not a file");
  // Walk it: no component (the run's folder included) may be a link.
  fs::path current = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    current /= fs::path{std::string{parts[i]}};
    struct stat st{};
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        return missing();
      return make_error(errc::unspecified, "cannot read artifact '"
                                             + relative_path + "': "
                                             + errno_text(errno));
    }
    if (S_ISLNK(st.st_mode))
      return refuse("passes through a symbolic link");
    const bool last = i + 1 == parts.size();
    if (!last && !S_ISDIR(st.st_mode))
      return missing();
    if (last && !S_ISREG(st.st_mode))
      return refuse("is not a regular file");
  }
  // Belt and braces: where it really ends after resolving everything.
  std::error_code ec;
  auto run_dir = fs::canonical(root / run_id, ec);
  if (ec)
    return missing();
  auto real = fs::canonical(current, ec);
  if (ec)
    return missing();
  auto [run_end, real_it] = std::mismatch(run_dir.begin(), run_dir.end(),
                                          real.begin(), real.end());
  if (run_end != run_dir.end() || real_it == real.end())
    return refuse("leaves the run's folder");
  if (!fs::is_regular_file(fs::symlink_status(real, ec)) || ec)
    return refuse("is not a regular file");
  return real;
}

} // namespace engram::workflows
