// A workflow step's process and files (DESIGN §7): real child processes in
// temporary folders, no mocks. Covers redirection, environment, working
// directory, start failures, the process group (grandchildren are signalled
// and killed at reap), exit decoding, the destructor, the parent-death
// signal, stdout parsing, artifact collection and download path checks, and
// credential checks.

#include "actors/workflows/step_process.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace wf = engram::workflows;
using engram::errc;

namespace {

void write_file(const fs::path& p, std::string_view content) {
  fs::create_directories(p.parent_path());
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out << content;
}

std::string read_file(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// Dead: no such process, or a zombie waiting for whoever inherited it.
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH)
    return true;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (stat.empty() || paren == std::string::npos)
    return true;
  auto state = paren + 2 < stat.size() ? stat[paren + 2] : '?';
  return state == 'Z' || state == 'X';
}

/// The pid a script wrote to `file` ("<pid>\n"), once it is there.
pid_t read_pid(const fs::path& file) {
  std::string text;
  bool ok = wait_until([&] {
    text = read_file(file);
    return !text.empty() && text.back() == '\n';
  });
  EXPECT_TRUE(ok) << "no pid in " << file;
  return ok ? static_cast<pid_t>(std::stol(text)) : -1;
}

class step_process_test : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "engram-step-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// A launch with files in the temp folder and `argv`.
  wf::step_launch launch(std::vector<std::string> argv,
                         std::string_view stdin_text = "") {
    wf::step_launch l;
    l.argv = std::move(argv);
    l.working_dir = dir_;
    l.stdin_file = dir_ / "stdin.json";
    l.stdout_file = dir_ / "stdout.json";
    l.stderr_file = dir_ / "stderr.log";
    write_file(l.stdin_file, stdin_text);
    return l;
  }

  static wf::step_exit run(const wf::step_launch& l) {
    auto proc = wf::step_process::start(l);
    if (!proc) {
      ADD_FAILURE() << engram::describe(proc.error());
      return {};
    }
    proc->wait_exited();
    return proc->reap();
  }

  fs::path dir_;
};

// -- starting and redirection ------------------------------------------------------

TEST_F(step_process_test, stdin_reaches_the_child_and_output_lands_in_files) {
  auto l = launch({"sh", "-c", "cat; echo oops >&2"}, R"({"previous":1})");
  auto exit = run(l);
  EXPECT_TRUE(exit.success()) << exit.to_string();
  EXPECT_EQ(read_file(l.stdout_file), R"({"previous":1})");
  EXPECT_EQ(read_file(l.stderr_file), "oops\n");
}

TEST_F(step_process_test, output_files_are_truncated_and_may_be_the_same) {
  auto l = launch({"sh", "-c", "printf x"});
  write_file(l.stdout_file, "a much longer previous content");
  EXPECT_TRUE(run(l).success());
  EXPECT_EQ(read_file(l.stdout_file), "x");
  auto both = launch({"sh", "-c", "echo out; echo err >&2; echo out2"});
  both.stderr_file = both.stdout_file;
  EXPECT_TRUE(run(both).success());
  EXPECT_EQ(read_file(both.stdout_file), "out\nerr\nout2\n");
}

TEST_F(step_process_test, environment_is_ours_plus_the_steps) {
  ::setenv("ENGRAM_STEP_TEST_INHERITED", "from-daemon", 1);
  ::setenv("ENGRAM_STEP_TEST_OVERRIDDEN", "old", 1);
  auto l = launch({"sh", "-c",
                   "printf '%s|%s|%s' \"$ENGRAM_STEP_TEST_INHERITED\" "
                   "\"$ENGRAM_STEP_TEST_OVERRIDDEN\" \"$ENGRAM_RUN_ID\""});
  l.env = {{"ENGRAM_STEP_TEST_OVERRIDDEN", "new"}, {"ENGRAM_RUN_ID", "r-1"}};
  EXPECT_TRUE(run(l).success());
  EXPECT_EQ(read_file(l.stdout_file), "from-daemon|new|r-1");
  ::unsetenv("ENGRAM_STEP_TEST_INHERITED");
  ::unsetenv("ENGRAM_STEP_TEST_OVERRIDDEN");
}

TEST_F(step_process_test, working_directory_is_honoured) {
  fs::create_directories(dir_ / "work" / "here");
  auto l = launch({"sh", "-c", "pwd -P"});
  l.working_dir = dir_ / "work" / "here";
  EXPECT_TRUE(run(l).success());
  EXPECT_EQ(read_file(l.stdout_file),
            fs::canonical(dir_ / "work" / "here").string() + "\n");
}

TEST_F(step_process_test, a_bare_name_is_looked_up_in_the_steps_path) {
  write_file(dir_ / "bin" / "engram-test-tool", "#!/bin/sh\necho tool \"$@\"\n");
  fs::permissions(dir_ / "bin" / "engram-test-tool", fs::perms::owner_all);
  auto l = launch({"engram-test-tool", "a", "b c"});
  l.env = {{"PATH", (dir_ / "bin").string() + ":/usr/bin:/bin"}};
  EXPECT_TRUE(run(l).success());
  EXPECT_EQ(read_file(l.stdout_file), "tool a b c\n");
}

TEST_F(step_process_test, a_missing_program_is_process_failed_naming_it) {
  auto l = launch({"engram-no-such-program-xyz", "arg"});
  auto proc = wf::step_process::start(l);
  ASSERT_FALSE(proc);
  EXPECT_EQ(engram::code_of(proc.error()), errc::process_failed);
  auto msg = engram::message_of(proc.error());
  EXPECT_NE(msg.find("engram-no-such-program-xyz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;

  l.argv = {(dir_ / "no" / "such" / "prog").string()};
  proc = wf::step_process::start(l);
  ASSERT_FALSE(proc);
  EXPECT_EQ(engram::code_of(proc.error()), errc::process_failed);
  msg = engram::message_of(proc.error());
  EXPECT_NE(msg.find(l.argv[0]), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST_F(step_process_test, a_file_without_execute_permission_is_process_failed) {
  auto script = dir_ / "script.sh";
  write_file(script, "#!/bin/sh\necho hi\n");
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  auto proc = wf::step_process::start(launch({script.string()}));
  ASSERT_FALSE(proc);
  EXPECT_EQ(engram::code_of(proc.error()), errc::process_failed);
  auto msg = engram::message_of(proc.error());
  EXPECT_NE(msg.find(script.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
}

TEST_F(step_process_test, a_bad_working_directory_or_stdin_is_process_failed) {
  auto l = launch({"true"});
  l.working_dir = dir_ / "missing";
  auto proc = wf::step_process::start(l);
  ASSERT_FALSE(proc);
  EXPECT_EQ(engram::code_of(proc.error()), errc::process_failed);
  auto msg = engram::message_of(proc.error());
  EXPECT_NE(msg.find("working directory"), std::string::npos) << msg;
  EXPECT_NE(msg.find((dir_ / "missing").string()), std::string::npos) << msg;

  l = launch({"true"});
  l.stdin_file = dir_ / "no-input.json";
  proc = wf::step_process::start(l);
  ASSERT_FALSE(proc);
  EXPECT_EQ(engram::code_of(proc.error()), errc::process_failed);
  msg = engram::message_of(proc.error());
  EXPECT_NE(msg.find("no-input.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stdin"), std::string::npos) << msg;
}

TEST_F(step_process_test, the_child_inherits_no_other_descriptors) {
  // Opened without O_CLOEXEC, like a careless library would.
  write_file(dir_ / "held-open", "x");
  int fd = ::open((dir_ / "held-open").c_str(), O_RDONLY);
  ASSERT_GE(fd, 3);
  // `ls` would list its own directory descriptor: count with the shell.
  auto l = launch({"sh", "-c", "if [ -e /proc/self/fd/" + std::to_string(fd)
                                 + " ]; then echo open; else echo closed; fi; "
                                   "ls /proc/self/fd | wc -l"});
  EXPECT_TRUE(run(l).success());
  ::close(fd);
  // 0, 1, 2 and the one `ls` reads /proc/self/fd with.
  EXPECT_EQ(read_file(l.stdout_file), "closed\n4\n");
}

TEST_F(step_process_test, the_child_starts_with_default_signals) {
  // The daemon blocks SIGTERM in every thread and may ignore signals.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  auto old_usr1 = ::signal(SIGUSR1, SIG_IGN);
  auto a = wf::step_process::start(launch({"sleep", "100"}));
  auto b = wf::step_process::start(launch({"sleep", "100"}));
  ::signal(SIGUSR1, old_usr1);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(a) << engram::describe(a.error());
  ASSERT_TRUE(b) << engram::describe(b.error());
  EXPECT_TRUE(a->signal_group(SIGTERM));
  EXPECT_TRUE(b->signal_group(SIGUSR1));
  a->wait_exited();
  b->wait_exited();
  EXPECT_EQ(a->reap().term_signal, SIGTERM);
  EXPECT_EQ(b->reap().term_signal, SIGUSR1);
}

// -- the process group -------------------------------------------------------------

TEST_F(step_process_test, the_child_leads_its_own_process_group) {
  auto proc = wf::step_process::start(launch({"sleep", "100"}));
  ASSERT_TRUE(proc) << engram::describe(proc.error());
  EXPECT_EQ(::getpgid(proc->pid()), proc->pid());
  EXPECT_NE(::getpgid(proc->pid()), ::getpgrp());
}

TEST_F(step_process_test, signal_group_reaches_grandchildren) {
  auto l = launch({"sh", "-c", "sleep 100 & echo $! > grandchild.pid; sleep 100"});
  auto proc = wf::step_process::start(l);
  ASSERT_TRUE(proc) << engram::describe(proc.error());
  pid_t grandchild = read_pid(dir_ / "grandchild.pid");
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(process_gone(grandchild));
  EXPECT_TRUE(proc->signal_group(SIGTERM));
  proc->wait_exited();
  auto exit = proc->reap();
  EXPECT_EQ(exit.term_signal, SIGTERM) << exit.to_string();
  EXPECT_TRUE(wait_until([&] { return process_gone(grandchild); }, 5s));
  EXPECT_FALSE(proc->signal_group(SIGTERM)) << "reaped: no more signals";
}

TEST_F(step_process_test, reap_kills_what_the_leader_left_behind) {
  auto l = launch({"sh", "-c", "sleep 100 & echo $! > grandchild.pid; exit 0"});
  auto proc = wf::step_process::start(l);
  ASSERT_TRUE(proc) << engram::describe(proc.error());
  proc->wait_exited();
  pid_t grandchild = read_pid(dir_ / "grandchild.pid");
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(process_gone(grandchild)) << "the leader exited, not the group";
  auto exit = proc->reap();
  EXPECT_TRUE(exit.success()) << exit.to_string();
  EXPECT_TRUE(wait_until([&] { return process_gone(grandchild); }, 5s));
  // Idempotent.
  auto again = proc->reap();
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.term_signal, 0);
}

TEST_F(step_process_test, wait_exited_runs_on_another_thread) {
  auto proc = wf::step_process::start(launch({"sleep", "100"}));
  ASSERT_TRUE(proc) << engram::describe(proc.error());
  std::atomic<bool> exited{false};
  std::thread waiter{[&] {
    proc->wait_exited();
    exited = true;
  }};
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(exited.load());
  EXPECT_TRUE(proc->signal_group(SIGKILL));
  waiter.join();
  EXPECT_TRUE(exited.load());
  // wait_exited did not reap: the leader is a zombie, still ours to reap.
  EXPECT_EQ(::kill(proc->pid(), 0), 0);
  EXPECT_EQ(proc->reap().term_signal, SIGKILL);
}

TEST_F(step_process_test, exit_codes_and_signals_are_decoded) {
  auto ok = run(launch({"sh", "-c", "exit 0"}));
  EXPECT_TRUE(ok.success());
  EXPECT_EQ(ok.to_string(), "exit code 0");
  auto three = run(launch({"sh", "-c", "exit 3"}));
  EXPECT_FALSE(three.success());
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_EQ(three.term_signal, 0);
  EXPECT_EQ(three.to_string(), "exit code 3");
  auto killed = run(launch({"sh", "-c", "kill -9 $$"}));
  EXPECT_FALSE(killed.success());
  EXPECT_EQ(killed.exit_code, -1);
  EXPECT_EQ(killed.term_signal, SIGKILL);
  EXPECT_EQ(killed.to_string(), "killed by signal 9 (Killed)");
  EXPECT_EQ(wf::step_exit{}.to_string(), "unknown exit status");
}

TEST_F(step_process_test, the_destructor_kills_and_reaps_a_running_group) {
  pid_t leader = -1;
  pid_t grandchild = -1;
  {
    auto l = launch({"sh", "-c", "sleep 100 & echo $! > grandchild.pid; sleep 100"});
    auto proc = wf::step_process::start(l);
    ASSERT_TRUE(proc) << engram::describe(proc.error());
    leader = proc->pid();
    grandchild = read_pid(dir_ / "grandchild.pid");
    // Moving hands the pid over; the moved-from object owns nothing.
    wf::step_process moved{std::move(*proc)};
    EXPECT_EQ(moved.pid(), leader);
    EXPECT_FALSE(proc->signal_group(0));
  }
  // Reaped by the destructor: not even a zombie of ours is left.
  errno = 0;
  EXPECT_EQ(::waitpid(leader, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(process_gone(leader));
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(wait_until([&] { return process_gone(grandchild); }, 5s));
}

TEST_F(step_process_test, move_assignment_kills_the_process_it_replaces) {
  auto first = wf::step_process::start(launch({"sleep", "100"}));
  auto second = wf::step_process::start(launch({"sleep", "100"}));
  ASSERT_TRUE(first && second);
  pid_t replaced = first->pid();
  *first = std::move(*second);
  errno = 0;
  EXPECT_EQ(::waitpid(replaced, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(first->signal_group(SIGKILL));
  first->wait_exited();
  EXPECT_EQ(first->reap().term_signal, SIGKILL);
}

TEST_F(step_process_test, the_step_dies_with_the_daemon) {
  // A helper process plays the daemon: it starts a step and dies with -9
  // without running any destructor.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto l = launch({"sleep", "100"});
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(fds[0]);
    auto proc = wf::step_process::start(l);
    pid_t pid = proc ? proc->pid() : -1;
    [[maybe_unused]] auto n = ::write(fds[1], &pid, sizeof(pid));
    ::kill(::getpid(), SIGKILL);
    ::_exit(1);
  }
  ::close(fds[1]);
  pid_t step = -1;
  auto n = ::read(fds[0], &step, sizeof(step));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(helper, &st, 0);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(step)));
  ASSERT_GT(step, 0);
  EXPECT_TRUE(wait_until([&] { return process_gone(step); }, 5s));
  if (!process_gone(step))
    ::kill(-step, SIGKILL);
}

// -- output -------------------------------------------------------------------------

TEST(workflow_step_output, parses_one_json_value) {
  EXPECT_EQ(wf::parse_step_output("", 100).value(), "{}");
  EXPECT_EQ(wf::parse_step_output(" \n\t\r\n", 100).value(), "{}");
  EXPECT_EQ(wf::parse_step_output("{ \"a\" : 1, \"b\": [true, null] }\n", 100)
              .value(),
            R"({"a":1,"b":[true,null]})");
  EXPECT_EQ(wf::parse_step_output("[1, 2, \"x\"]", 100).value(), R"([1,2,"x"])");
  EXPECT_EQ(wf::parse_step_output("42\n", 100).value(), "42");
  EXPECT_EQ(wf::parse_step_output("  \"text\"  ", 100).value(), R"("text")");
}

TEST(workflow_step_output, refuses_invalid_json_with_the_offset) {
  auto bad = wf::parse_step_output(R"({"a":})", 100);
  ASSERT_FALSE(bad);
  auto msg = engram::message_of(bad.error());
  EXPECT_EQ(msg.rfind("stdout is not valid JSON: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("at byte 5"), std::string::npos) << msg;
  auto cut = wf::parse_step_output("[1, 2", 100);
  ASSERT_FALSE(cut);
  EXPECT_EQ(engram::message_of(cut.error()).rfind("stdout is not valid JSON: ", 0),
            0u);
  EXPECT_FALSE(wf::parse_step_output("hello", 100));
}

TEST(workflow_step_output, refuses_trailing_content) {
  auto two = wf::parse_step_output("{\"a\":1}\n{\"b\":2}\n", 100);
  ASSERT_FALSE(two);
  auto msg = engram::message_of(two.error());
  EXPECT_EQ(msg.rfind("stdout is not valid JSON: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("at byte 8"), std::string::npos) << msg;
  EXPECT_FALSE(wf::parse_step_output("{} x", 100));
  EXPECT_FALSE(wf::parse_step_output("1 2", 100));
}

TEST(workflow_step_output, refuses_more_than_the_limit) {
  std::string out = R"({"k":"0123456789"})"; // 18 bytes
  EXPECT_TRUE(wf::parse_step_output(out, out.size()));
  auto big = wf::parse_step_output(out, out.size() - 1);
  ASSERT_FALSE(big);
  EXPECT_EQ(engram::code_of(big.error()), errc::too_large);
  auto msg = engram::message_of(big.error());
  EXPECT_NE(msg.find("limit of 17 bytes"), std::string::npos) << msg;
  // Whitespace counts too: the limit is on what the step wrote.
  EXPECT_FALSE(wf::parse_step_output(std::string(200, ' '), 100));
}

// -- artifacts ------------------------------------------------------------------------

TEST_F(step_process_test, collect_artifacts_lists_regular_files_only) {
  auto out = dir_ / "attempt";
  write_file(out / "stdout.json", "{}");
  write_file(out / "reports" / "abc.bin", "abc");
  write_file(out / "reports" / "deep" / "summary.md", "# done\n");
  write_file(out / "empty.log", "");
  fs::create_directories(out / "empty-dir");
  fs::create_symlink("/etc/passwd", out / "passwd");
  fs::create_directory_symlink("/etc", out / "etc-link");
  fs::create_symlink(out / "stdout.json", out / "reports" / "alias.json");
  ASSERT_EQ(::mkfifo((out / "fifo").c_str(), 0600), 0);

  auto files = wf::collect_artifacts(out);
  ASSERT_TRUE(files) << engram::describe(files.error());
  std::vector<std::string> names;
  for (const auto& f : *files)
    names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"empty.log", "reports/abc.bin",
                                             "reports/deep/summary.md",
                                             "stdout.json"}));
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ((*files)[0].size_bytes, 0);
  EXPECT_EQ((*files)[0].sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ((*files)[0].content_type, "text/plain");
  EXPECT_EQ((*files)[1].size_bytes, 3);
  EXPECT_EQ((*files)[1].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ((*files)[1].content_type, "application/octet-stream");
  EXPECT_EQ((*files)[2].content_type, "text/markdown");
  EXPECT_EQ((*files)[3].size_bytes, 2);
  EXPECT_EQ((*files)[3].content_type, "application/json");

  auto missing = wf::collect_artifacts(dir_ / "nothing-here");
  ASSERT_FALSE(missing);
  EXPECT_EQ(engram::code_of(missing.error()), errc::not_found);
}

TEST_F(step_process_test, sha256_file_digests_content) {
  write_file(dir_ / "abc", "abc");
  EXPECT_EQ(wf::sha256_file(dir_ / "abc").value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // More than one read buffer.
  write_file(dir_ / "big", std::string(1'000'000, 'a'));
  EXPECT_EQ(wf::sha256_file(dir_ / "big").value(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  auto missing = wf::sha256_file(dir_ / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(engram::code_of(missing.error()), errc::not_found);
}

TEST(workflow_artifacts, content_type_by_extension) {
  EXPECT_EQ(wf::content_type_for("stdout.json"), "application/json");
  EXPECT_EQ(wf::content_type_for("a/b/README.md"), "text/markdown");
  EXPECT_EQ(wf::content_type_for("notes.TXT"), "text/plain");
  EXPECT_EQ(wf::content_type_for("stderr.log"), "text/plain");
  EXPECT_EQ(wf::content_type_for("fix.patch"), "text/x-diff");
  EXPECT_EQ(wf::content_type_for("fix.diff"), "text/x-diff");
  EXPECT_EQ(wf::content_type_for("report.html"), "text/html");
  EXPECT_EQ(wf::content_type_for("table.csv"), "text/csv");
  EXPECT_EQ(wf::content_type_for("conf.yaml"), "application/yaml");
  EXPECT_EQ(wf::content_type_for("conf.yml"), "application/yaml");
  EXPECT_EQ(wf::content_type_for("archive.tar.gz"), "application/octet-stream");
  EXPECT_EQ(wf::content_type_for("Makefile"), "application/octet-stream");
  EXPECT_EQ(wf::content_type_for("dir.json/file"), "application/octet-stream");
}

class resolve_artifact_test : public step_process_test {
protected:
  void SetUp() override {
    step_process_test::SetUp();
    root_ = dir_ / "artifacts";
    write_file(root_ / "run1" / "discovery" / "1" / "stdout.json", "{}");
    write_file(root_ / "run1" / "discovery" / "1" / "reports" / "a.md", "# a");
    write_file(root_ / "run2" / "x", "other run");
    write_file(dir_ / "secret", "outside");
    write_file(root_ / "x", "root level");
    fs::create_directory_symlink(dir_, root_ / "run1" / "discovery" / "up");
    fs::create_symlink("/etc/passwd", root_ / "run1" / "discovery" / "1" / "pw");
    fs::create_symlink(root_ / "run1" / "discovery" / "1" / "stdout.json",
                       root_ / "run1" / "discovery" / "1" / "alias.json");
    fs::create_directory_symlink(root_ / "run1", root_ / "run3");
  }

  void expect_refused(const std::string& run, const std::string& path,
                      errc code = errc::invalid_argument) {
    auto res = wf::resolve_artifact(root_, run, path);
    ASSERT_FALSE(res) << path << " resolved to " << res->string();
    EXPECT_EQ(engram::code_of(res.error()), code)
      << path << ": " << engram::describe(res.error());
    // Only what the caller gave may show up, never where the root is.
    if (path.find(dir_.string()) == std::string::npos) {
      auto msg = engram::message_of(res.error());
      EXPECT_EQ(msg.find(dir_.string()), std::string::npos)
        << "leaks the server path: " << msg;
    }
  }

  fs::path root_;
};

TEST_F(resolve_artifact_test, accepts_a_file_of_the_run) {
  auto res = wf::resolve_artifact(root_, "run1", "run1/discovery/1/reports/a.md");
  ASSERT_TRUE(res) << engram::describe(res.error());
  EXPECT_EQ(*res, fs::canonical(root_ / "run1/discovery/1/reports/a.md"));
  EXPECT_EQ(read_file(*res), "# a");
  EXPECT_TRUE(wf::resolve_artifact(root_, "run1", "run1/discovery/1/stdout.json"));
}

TEST_F(resolve_artifact_test, refuses_paths_that_leave_the_run) {
  expect_refused("run1", "");
  expect_refused("run1", "../x");
  expect_refused("run1", "/etc/passwd");
  expect_refused("run1", (root_ / "run1/discovery/1/stdout.json").string());
  expect_refused("run1", "run1/../run2/x");
  expect_refused("run1", "run1/a/../../x");
  expect_refused("run1", "run1/discovery/1/../../../x");
  expect_refused("run1", "run1/./discovery/1/stdout.json");
  expect_refused("run1", "run1//discovery/1/stdout.json");
  expect_refused("run1", "run1/discovery/1/stdout.json/");
  expect_refused("run1", "run2/x");
  expect_refused("run1", "run1");
  expect_refused("run1", "run1/discovery");
  expect_refused("run1", "run1x/discovery/1/stdout.json");
  expect_refused("run1", std::string{"run1/discovery/1/stdout.json\0x", 30});
  expect_refused("..", "../secret");
  expect_refused("", "secret");
}

TEST_F(resolve_artifact_test, refuses_symbolic_links) {
  // A directory link inside the run that points outside.
  ASSERT_TRUE(fs::exists(root_ / "run1/discovery/up/secret"));
  expect_refused("run1", "run1/discovery/up/secret");
  // File links, outside and even inside the run.
  expect_refused("run1", "run1/discovery/1/pw");
  expect_refused("run1", "run1/discovery/1/alias.json");
  // The run's folder itself being a link.
  expect_refused("run3", "run3/discovery/1/stdout.json");
}

TEST_F(resolve_artifact_test, a_missing_file_is_not_found) {
  expect_refused("run1", "run1/discovery/1/missing.json", errc::not_found);
  expect_refused("run1", "run1/nope/1/stdout.json", errc::not_found);
  expect_refused("run9", "run9/discovery/1/stdout.json", errc::not_found);
  expect_refused("run1", "run1/discovery/1/stdout.json/more", errc::not_found);
}

// -- credentials ------------------------------------------------------------------

TEST(workflow_credentials, environment_variables) {
  wf::credential_spec spec{"ENGRAM_CRED_TEST", "env", "ENGRAM_CRED_TEST"};
  ::unsetenv("ENGRAM_CRED_TEST");
  auto unset = wf::check_credential(spec);
  EXPECT_EQ(unset.credential, "ENGRAM_CRED_TEST");
  EXPECT_EQ(unset.kind, "env");
  EXPECT_FALSE(unset.present);
  EXPECT_FALSE(unset.valid);
  EXPECT_EQ(unset.detail, "not set");

  ::setenv("ENGRAM_CRED_TEST", "", 1);
  auto empty = wf::check_credential(spec);
  EXPECT_TRUE(empty.present);
  EXPECT_FALSE(empty.valid);
  EXPECT_EQ(empty.detail, "empty");

  ::setenv("ENGRAM_CRED_TEST", "s3cr3t", 1);
  auto ok = wf::check_credential(spec);
  EXPECT_TRUE(ok.present);
  EXPECT_TRUE(ok.valid);
  EXPECT_EQ(ok.detail, "ok");
  ::unsetenv("ENGRAM_CRED_TEST");
}

TEST_F(step_process_test, credential_files) {
  auto check = [](const fs::path& p) {
    return wf::check_credential({"file:" + p.string(), "file", p.string()});
  };
  write_file(dir_ / "key", "s3cr3t");
  auto ok = check(dir_ / "key");
  EXPECT_EQ(ok.credential, "file:" + (dir_ / "key").string());
  EXPECT_EQ(ok.kind, "file");
  EXPECT_TRUE(ok.present);
  EXPECT_TRUE(ok.valid);
  EXPECT_EQ(ok.detail, "ok");

  fs::create_symlink(dir_ / "key", dir_ / "key-link");
  EXPECT_EQ(check(dir_ / "key-link").detail, "ok") << "links are followed";

  auto missing = check(dir_ / "missing");
  EXPECT_FALSE(missing.present);
  EXPECT_FALSE(missing.valid);
  EXPECT_EQ(missing.detail, "no such file");

  fs::create_directories(dir_ / "a-dir");
  auto directory = check(dir_ / "a-dir");
  EXPECT_TRUE(directory.present);
  EXPECT_FALSE(directory.valid);
  EXPECT_EQ(directory.detail, "not a regular file");

  write_file(dir_ / "empty", "");
  auto empty = check(dir_ / "empty");
  EXPECT_TRUE(empty.present);
  EXPECT_FALSE(empty.valid);
  EXPECT_EQ(empty.detail, "empty file");

}

TEST_F(step_process_test, credential_file_not_readable) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file: the unreadable case cannot be shown";
  }
  auto check = [](const fs::path& p) {
    return wf::check_credential({"file:" + p.string(), "file", p.string()});
  };
  write_file(dir_ / "locked", "s3cr3t");
  fs::permissions(dir_ / "locked", fs::perms::none);
  auto locked = check(dir_ / "locked");
  EXPECT_TRUE(locked.present);
  EXPECT_FALSE(locked.valid);
  EXPECT_EQ(locked.detail, "not readable");
}

} // namespace
