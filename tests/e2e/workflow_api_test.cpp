// Workflow chains as an operator uses them (DESIGN §7): the daemon as a
// process with its own definitions, steps as real child processes, driven
// over HTTP. Runs go through, fail, retry, time out, lack a credential and
// resume once it is there, are started twice under one key, are cancelled
// mid-step, and survive a SIGKILL of the daemon in the middle of a step
// without re-running the steps that had finished. Every bad input gets its
// 4xx.

#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "actors/workflows/step_process.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/http_client.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

json::value parse(const http_reply& r) {
  return json::parse(r.body);
}

std::string str(const json::value& v) {
  return std::string{v.as_string()};
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Lines in a file (0 when missing): how often a step ran.
int runs_of(const fs::path& p) {
  auto text = read_file(p);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

/// The test's workflows, each a shell line per step. `counts` collects
/// evidence of every execution.
void write_definitions(const fs::path& dir, const fs::path& counts) {
  fs::create_directories(dir);
  fs::create_directories(counts);
  auto c = counts.string();
  write_file(dir / "pipeline.toml", R"(
description = "three steps, the middle one may sleep"
[[steps]]
name = "first"
shell = true
command = ["cat > /dev/null; echo x >> \"$COUNTS/first\"; printf '{\"n\": 1}'"]
env = { COUNTS = ")" + c + R"(" }

[[steps]]
name = "second"
shell = true
timeout = "60s"
command = ["echo $$ > \"$COUNTS/second.pid\"; echo x >> \"$COUNTS/second\"; echo hello > \"$ENGRAM_ARTIFACT_DIR/hello.txt\"; mkdir -p \"$ENGRAM_ARTIFACT_DIR/notes\"; echo deep > \"$ENGRAM_ARTIFACT_DIR/notes/deep.md\"; ln -s /etc/passwd \"$ENGRAM_ARTIFACT_DIR/passwd\"; sleep \"$(cat \"$COUNTS/sleep\" 2>/dev/null || echo 0)\"; cat"]
env = { COUNTS = ")" + c + R"(" }

[[steps]]
name = "third"
shell = true
command = ["echo x >> \"$COUNTS/third\"; cat"]
env = { COUNTS = ")" + c + R"(" }
)");
  write_file(dir / "flaky.toml", R"(
[[steps]]
name = "wobble"
shell = true
retries = 2
backoff = "100ms"
command = ["n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -ge 3 ]; then echo \"{\\\"tries\\\": $n}\"; else echo \"try $n failed\" >&2; exit 1; fi"]
)");
  write_file(dir / "broken.toml", R"(
[[steps]]
name = "explode"
shell = true
command = ["echo 'bad things happened' >&2; exit 3"]
)");
  write_file(dir / "garbage.toml", R"(
[[steps]]
name = "chatter"
shell = true
command = ["echo 'done: 3 files'"]
)");
  write_file(dir / "slow.toml", R"(
[[steps]]
name = "hang"
shell = true
timeout = "1s"
command = ["sleep 60 & echo $! > \"$ENGRAM_ARTIFACT_DIR/child.pid\"; sleep 60"]
)");
  write_file(dir / "guarded.toml", R"(
branch = "guarded/{name}"
[[steps]]
name = "prepare"
shell = true
command = ["echo x >> \"$COUNTS/prepare\"; cat"]
env = { COUNTS = ")" + c + R"(" }
[[steps]]
name = "deploy"
requires_credentials = ["file:)" + c + R"(/token"]
shell = true
command = ["cat"]
)");
}

class workflow_api : public ::testing::Test {
protected:
  void start(std::vector<std::string> extra = {}, environment_vars env = {}) {
    std::vector<std::string> flags{"--workflows.definitions_dir",
                                   defs().string(), "--tasks.lease", "3s",
                                   "--tasks.heartbeat_interval", "500ms",
                                   "--tasks.reclaim_interval", "500ms"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    daemon.emplace(dir.path() / "data", flags, env);
    port = daemon->wait_for_port();
    ASSERT_NE(port, 0) << daemon->log();
  }

  fs::path defs() const { return dir.path() / "workflows"; }
  fs::path counts() const { return dir.path() / "counts"; }
  fs::path artifacts() const { return dir.path() / "data" / "artifacts"; }

  http_reply post(const std::string& target, const std::string& body = {},
                  std::map<std::string, std::string> headers = {}) {
    return http_request(port, "POST", target, body, headers);
  }

  /// Starts a run; returns its id.
  std::string start_run(const std::string& workflow,
                        const std::string& input = "{}") {
    auto r = post("/api/workflows/" + workflow + "/runs", input);
    EXPECT_EQ(r.status, 202) << r.body;
    return str(parse(r).at("id"));
  }

  json::object run(const std::string& id) {
    auto r = http_get(port, "/api/workflows/runs/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    return parse(r).as_object();
  }

  /// Waits until the run's status is `status` (or the time runs out).
  json::object wait_status(const std::string& id, const std::string& status,
                           std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    json::object r;
    while (std::chrono::steady_clock::now() < deadline) {
      r = run(id);
      if (str(r.at("status")) == status)
        return r;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "run " << id << " is " << json::serialize(r)
                  << ", not " << status << "\n"
                  << daemon->log();
    return r;
  }

  /// The attempts of step `name` in a run detail.
  static std::vector<json::object> attempts(const json::object& detail,
                                            const std::string& name) {
    std::vector<json::object> out;
    for (const auto& s : detail.at("steps").as_array())
      if (str(s.at("step")) == name)
        out.push_back(s.as_object());
    return out;
  }

  temp_dir dir{"engram-e2e-wf"};
  std::optional<daemon_process> daemon;
  uint16_t port = 0;
};

} // namespace

TEST_F(workflow_api, runs_go_through_retry_fail_and_time_out) {
  write_definitions(defs(), counts());
  start();

  // Definitions are listed.
  auto defs_reply = http_get(port, "/api/workflows");
  ASSERT_EQ(defs_reply.status, 200);
  EXPECT_EQ(parse(defs_reply).at("workflows").as_array().size(), 6u);

  // The happy path: every step succeeded once, outputs chain through.
  auto id = start_run("pipeline", R"({"ticket": 7})");
  auto done = wait_status(id, "succeeded");
  EXPECT_EQ(done.at("output").at("n").as_int64(), 1);
  ASSERT_EQ(done.at("steps").as_array().size(), 3u);
  for (const auto& s : done.at("steps").as_array()) {
    EXPECT_EQ(str(s.at("status")), "succeeded");
    EXPECT_EQ(s.at("exit_code").as_int64(), 0);
  }
  auto second = attempts(done, "second").at(0);
  EXPECT_EQ(second.at("payload").at("n").as_int64(), 1);

  // Artifacts: stdin, stdout, stderr and the step's files, each with the
  // SHA-256 of what the download serves; the symlink is not one.
  auto list = http_get(port, "/api/workflows/runs/" + id + "/artifacts");
  ASSERT_EQ(list.status, 200);
  std::set<std::string> second_names;
  auto listed = parse(list);
  for (const auto& a : listed.at("artifacts").as_array()) {
    auto art = a.as_object();
    if (str(art.at("step")) == "second")
      second_names.insert(str(art.at("name")));
    auto file = http_get(port, "/api/workflows/runs/" + id + "/artifacts/"
                                 + std::to_string(art.at("id").as_int64()));
    ASSERT_EQ(file.status, 200) << file.body;
    auto local = dir.path() / "download";
    write_file(local, file.body);
    auto digest = workflows::sha256_file(local);
    ASSERT_TRUE(digest);
    EXPECT_EQ(*digest, str(art.at("sha256"))) << str(art.at("name"));
    EXPECT_EQ(file.headers["x-engram-sha256"], str(art.at("sha256")));
    EXPECT_EQ(static_cast<int64_t>(file.body.size()),
              art.at("size_bytes").as_int64());
    if (str(art.at("name")) == "hello.txt")
      EXPECT_EQ(file.body, "hello\n");
  }
  EXPECT_EQ(second_names,
            (std::set<std::string>{"hello.txt", "notes/deep.md", "stderr.log",
                                   "stdin.json", "stdout.json"}));

  // A step that fails twice then succeeds within its retries.
  auto flaky = wait_status(start_run("flaky"), "succeeded");
  auto tries = attempts(flaky, "wobble");
  ASSERT_EQ(tries.size(), 3u);
  EXPECT_EQ(str(tries[0].at("status")), "failed");
  EXPECT_EQ(str(tries[1].at("status")), "failed");
  EXPECT_EQ(str(tries[2].at("status")), "succeeded");
  EXPECT_EQ(flaky.at("output").at("tries").as_int64(), 3);

  // A failing exit names the code and the end of stderr.
  auto broken_id = start_run("broken");
  auto broken = wait_status(broken_id, "failed");
  EXPECT_EQ(str(broken.at("error_kind")), "exit");
  EXPECT_NE(str(broken.at("error")).find("exit code 3"), std::string::npos);
  EXPECT_NE(str(broken.at("error")).find("bad things happened"),
            std::string::npos);
  // Retrying it runs the step again (and fails again).
  auto retried = post("/api/workflows/runs/" + broken_id + "/retry",
                      R"({"note": "one more time"})");
  ASSERT_EQ(retried.status, 202) << retried.body;
  EXPECT_EQ(str(parse(retried).at("status")), "retrying");
  auto again = wait_status(broken_id, "failed");
  EXPECT_EQ(again.at("attempt").as_int64(), 2);
  EXPECT_EQ(str(again.at("note")), "one more time");
  EXPECT_EQ(attempts(again, "explode").size(), 2u);

  // stdout that is not JSON fails the step.
  auto garbage = wait_status(start_run("garbage"), "failed");
  EXPECT_EQ(str(garbage.at("error_kind")), "invalid_output");

  // A timeout kills the whole process group, grandchildren included.
  auto slow_id = start_run("slow");
  auto slow = wait_status(slow_id, "failed");
  EXPECT_EQ(str(slow.at("error_kind")), "timeout");
  auto hang = attempts(slow, "hang").at(0);
  auto child_pid = std::stoi(read_file(artifacts() / slow_id / "hang" / "1"
                                       / "child.pid"));
  for (int i = 0; i < 50 && process_alive(child_pid); ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(process_alive(child_pid));
}

TEST_F(workflow_api, a_missing_credential_fails_then_the_retry_resumes_there) {
  write_definitions(defs(), counts());
  start();
  auto id = start_run("guarded", R"({"name": "Release 1.2"})");
  auto failed = wait_status(id, "failed");
  EXPECT_EQ(str(failed.at("error_kind")), "missing_credential");
  EXPECT_EQ(str(failed.at("current_step")), "deploy");
  auto token = (counts() / "token").string();
  ASSERT_EQ(failed.at("missing_credentials").as_array().size(), 1u);
  EXPECT_EQ(str(failed.at("missing_credentials").at(0)), "file:" + token);
  EXPECT_NE(str(failed.at("error")).find(token), std::string::npos);
  EXPECT_EQ(str(failed.at("branch_name")), "guarded/release-1.2");

  // Still missing: 422 naming the file, nothing changes.
  auto refused = post("/api/workflows/runs/" + id + "/retry");
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_NE(refused.body.find(token), std::string::npos);
  EXPECT_EQ(str(run(id).at("status")), "failed");
  auto audits = parse(http_get(port, "/api/workflows/runs/" + id + "/audits"))
                  .at("audits")
                  .as_array();
  ASSERT_EQ(audits.size(), 2u); // the step's check and the retry's
  EXPECT_FALSE(audits[0].at("valid").as_bool());
  EXPECT_EQ(str(audits[0].at("detail")), "no such file");
  EXPECT_EQ(audits[0].as_object().count("secret"), 0u);

  // Provided: the retry resumes at deploy; prepare does not run again.
  write_file(token, "s3cr3t\n");
  auto retried = post("/api/workflows/runs/" + id + "/retry");
  ASSERT_EQ(retried.status, 202) << retried.body;
  auto done = wait_status(id, "succeeded");
  EXPECT_EQ(attempts(done, "prepare").size(), 1u);
  auto deploys = attempts(done, "deploy");
  ASSERT_EQ(deploys.size(), 2u);
  EXPECT_EQ(str(deploys[0].at("status")), "failed");
  EXPECT_EQ(str(deploys[1].at("status")), "succeeded");
  EXPECT_EQ(runs_of(counts() / "prepare"), 1);
  EXPECT_EQ(done.at("output").at("name").as_string(), "Release 1.2");
  auto audit_text
    = http_get(port, "/api/workflows/runs/" + id + "/audits").body;
  EXPECT_EQ(audit_text.find("s3cr3t"), std::string::npos);

  // The same branch name returns the same run; so does the same key.
  auto same = post("/api/workflows/guarded/runs", R"({"name": "release 1.2"})");
  EXPECT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(str(parse(same).at("id")), id);
  EXPECT_FALSE(parse(same).at("created").as_bool());
  auto k1 = post("/api/workflows/pipeline/runs", "{}",
                 {{"Idempotency-Key", "deploy-42"}});
  auto k2 = post("/api/workflows/pipeline/runs", "{}",
                 {{"Idempotency-Key", "deploy-42"}});
  EXPECT_EQ(k1.status, 202) << k1.body;
  EXPECT_EQ(k2.status, 200) << k2.body;
  EXPECT_EQ(str(parse(k1).at("id")), str(parse(k2).at("id")));
}

TEST_F(workflow_api, cancel_stops_the_running_step_and_bad_input_is_refused) {
  write_definitions(defs(), counts());
  write_file(counts() / "sleep", "30");
  start();
  auto id = start_run("pipeline");
  // Wait until the second step runs.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (runs_of(counts() / "second") < 1
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(200ms);
  auto pid = std::stoi(read_file(counts() / "second.pid"));
  ASSERT_TRUE(process_alive(pid));
  auto cancelled = post("/api/workflows/runs/" + id + "/cancel");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(str(parse(cancelled).at("status")), "cancelled");
  for (int i = 0; i < 100 && process_alive(pid); ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(process_alive(pid));
  // The attempt ends as cancelled and nothing runs after it.
  json::object detail;
  for (int i = 0; i < 100; ++i) {
    detail = run(id);
    auto s = attempts(detail, "second");
    if (!s.empty() && str(s.back().at("status")) == "cancelled")
      break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(str(attempts(detail, "second").back().at("status")), "cancelled");
  EXPECT_TRUE(attempts(detail, "third").empty());
  EXPECT_EQ(post("/api/workflows/runs/" + id + "/cancel").status, 409);
  EXPECT_EQ(post("/api/workflows/runs/" + id + "/retry").status, 409);

  // Bad inputs, each with its status and nothing created.
  auto count_runs = [&] {
    return parse(http_get(port, "/api/workflows/runs?limit=500"))
      .at("runs")
      .as_array()
      .size();
  };
  auto before = count_runs();
  EXPECT_EQ(post("/api/workflows/nope/runs").status, 404);
  EXPECT_EQ(post("/api/workflows/Bad..Name/runs").status, 404);
  EXPECT_EQ(post("/api/workflows/pipeline/runs", "{\"a\": ").status, 400);
  EXPECT_EQ(post("/api/workflows/pipeline/runs", "[1, 2]").status, 400);
  EXPECT_EQ(post("/api/workflows/pipeline/runs", "{}",
                 {{"Idempotency-Key", std::string(201, 'k')}})
              .status,
            400);
  EXPECT_EQ(post("/api/workflows/guarded/runs", "{}").status, 400)
    << "the branch needs input.name";
  EXPECT_EQ(count_runs(), before);
  auto unknown = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
  EXPECT_EQ(http_get(port, std::string{"/api/workflows/runs/"} + unknown)
              .status,
            404);
  EXPECT_EQ(http_get(port, "/api/workflows/runs/not-a-uuid").status, 404);
  EXPECT_EQ(post(std::string{"/api/workflows/runs/"} + unknown + "/cancel")
              .status,
            404);
  EXPECT_EQ(post(std::string{"/api/workflows/runs/"} + unknown + "/retry")
              .status,
            404);
  EXPECT_EQ(post("/api/workflows/runs/" + id + "/retry", R"({"nope": 1})")
              .status,
            400);
  EXPECT_EQ(http_get(port, "/api/workflows/runs?status=sleeping").status, 400);
  EXPECT_EQ(http_get(port, "/api/workflows/runs?cursor=abc").status, 400);
  EXPECT_EQ(http_get(port, "/api/workflows/runs?limit=0").status, 400);
  EXPECT_EQ(http_get(port, "/api/workflows/runs/" + id + "/artifacts/abc")
              .status,
            404);
  EXPECT_EQ(http_get(port, "/api/workflows/runs/" + id
                             + "/artifacts/..%2F..%2Fetc%2Fpasswd")
              .status,
            404);
  // Another run's artifact is not reachable through this run.
  auto other = start_run("garbage");
  wait_status(other, "failed");
  auto other_artifacts
    = parse(http_get(port, "/api/workflows/runs/" + other + "/artifacts"))
        .at("artifacts")
        .as_array();
  ASSERT_FALSE(other_artifacts.empty());
  auto foreign = std::to_string(other_artifacts[0].at("id").as_int64());
  EXPECT_EQ(http_get(port, "/api/workflows/runs/" + id + "/artifacts/"
                             + foreign)
              .status,
            404);
  EXPECT_EQ(http_get(port, "/api/workflows/runs/" + other + "/artifacts/"
                             + foreign)
              .status,
            200);
}

TEST_F(workflow_api, pages_of_runs_stay_stable_while_runs_are_added) {
  write_definitions(defs(), counts());
  start();
  std::set<std::string> first_ids;
  for (int i = 0; i < 12; ++i)
    first_ids.insert(start_run("garbage"));
  auto page = parse(http_get(port, "/api/workflows/runs?limit=5")).as_object();
  std::vector<std::string> seen;
  for (const auto& r : page.at("runs").as_array())
    seen.push_back(str(r.at("id")));
  // Runs added between the pages come before the cursor, not in the pages.
  for (int i = 0; i < 4; ++i)
    start_run("garbage");
  while (!page.at("next_cursor").is_null()) {
    page = parse(http_get(port, "/api/workflows/runs?limit=5&cursor="
                                  + str(page.at("next_cursor"))))
             .as_object();
    for (const auto& r : page.at("runs").as_array())
      seen.push_back(str(r.at("id")));
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), first_ids);
  // Filters.
  auto failed = parse(http_get(port, "/api/workflows/runs?workflow=garbage"
                                     "&limit=500"))
                  .at("runs")
                  .as_array();
  EXPECT_EQ(failed.size(), 16u);
  EXPECT_TRUE(parse(http_get(port, "/api/workflows/runs?workflow=pipeline"))
                .at("runs")
                .as_array()
                .empty());
}

TEST_F(workflow_api, sigkill_mid_step_then_restart_finishes_without_rerunning) {
  write_definitions(defs(), counts());
  write_file(counts() / "sleep", "3");
  start();
  auto id = start_run("pipeline");
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (runs_of(counts() / "second") < 1
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(200ms);
  auto pid = std::stoi(read_file(counts() / "second.pid"));
  daemon->kill9();
  // The step's process dies with the daemon (parent-death signal).
  for (int i = 0; i < 50 && process_alive(pid); ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(process_alive(pid));
  EXPECT_EQ(runs_of(counts() / "third"), 0);

  daemon.reset();
  start();
  auto done = wait_status(id, "succeeded", 90s);
  // first ran once, second twice (interrupted, then again), third once.
  EXPECT_EQ(runs_of(counts() / "first"), 1);
  EXPECT_EQ(runs_of(counts() / "second"), 2);
  EXPECT_EQ(runs_of(counts() / "third"), 1);
  auto seconds = attempts(done, "second");
  ASSERT_EQ(seconds.size(), 2u);
  EXPECT_EQ(str(seconds[0].at("status")), "interrupted");
  EXPECT_EQ(str(seconds[1].at("status")), "succeeded");
  EXPECT_EQ(attempts(done, "first").size(), 1u);
}
