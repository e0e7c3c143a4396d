// The reference workflow's scripts (conf/workflows/speckit/*.sh) run as real
// processes under the step contract the daemon implements (DESIGN §7): cwd
// and ENGRAM_WORKSPACE = the run's workspace, ENGRAM_RUN_ID, ENGRAM_STEP,
// ENGRAM_ARTIFACT_DIR = an empty folder per step, stdin = the previous
// step's stdout, stdout = one JSON value. No database, no daemon.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include "messages/errc.hpp"
#include "runtime/child_process.hpp"

using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path scripts_dir = fs::path{ENGRAM_SOURCE_DIR}
                             / "conf/workflows/speckit";

/// Not a secret: a value distinctive enough to find if a script leaked it.
const std::string publish_token = "tok-5f1d3c0e-never-print-me";

std::string read_file(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// One finished step.
struct step_run {
  engram::process_result result;
  std::string out;
  std::string err;
  /// stdout as JSON, when it is exactly one JSON value.
  std::optional<json::value> value;

  const json::object& object() const {
    return value->as_object();
  }

  std::string str(const char* key) const {
    auto* v = object().if_contains(key);
    return v && v->is_string() ? std::string{v->get_string()} : std::string{};
  }
};

/// Output of a command run for the test itself (git, sha256sum), trimmed.
std::string run_tool(std::vector<std::string> argv) {
  auto res = engram::run_and_wait(std::move(argv), 30s);
  if (!res) {
    ADD_FAILURE() << engram::describe(res.error());
    return {};
  }
  EXPECT_TRUE(res->success()) << res->describe();
  auto out = res->output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

std::string sha256_of(const fs::path& file) {
  return run_tool({"sh", "-c", "sha256sum < \"$0\" | cut -d' ' -f1",
                   file.string()});
}

bool is_hex(const std::string& text, size_t size) {
  return text.size() == size
         && std::all_of(text.begin(), text.end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            });
}

class speckit_scripts : public ::testing::Test {
protected:
  void SetUp() override {
    auto tools = engram::run_and_wait(
      {"sh", "-c", "command -v jq && command -v git && command -v bash"}, 10s);
    if (!tools || !tools->success())
      GTEST_SKIP() << "the speckit scripts need bash, jq and git; install "
                      "them with scripts/install-deps.sh";
    auto info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path()
            / ("engram-speckit-test-" + std::string{info->name()} + "-"
               + std::to_string(::getpid()));
    fs::remove_all(root_);
    workspace_ = root_ / "workspace";
    fs::create_directories(workspace_);
    fs::create_directories(root_ / "io");
    fs::create_directories(root_ / "home");
  }

  void TearDown() override {
    if (!root_.empty()) {
      std::error_code ignored;
      fs::remove_all(root_, ignored);
    }
  }

  fs::path artifact_dir(const std::string& step, int attempt = 1) const {
    return root_ / "artifacts" / (step + "-" + std::to_string(attempt));
  }

  /// Runs `<step>.sh` with `input` on stdin the way the daemon does: a clean
  /// environment with only PATH, HOME and the contract's variables.
  /// `token`: SPECKIT_PUBLISH_TOKEN's value, nothing = not set.
  step_run run_step(const std::string& step, const std::string& input,
                    const std::optional<std::string>& token = publish_token,
                    int attempt = 1) {
    auto tag = step + "-" + std::to_string(attempt);
    auto in = root_ / "io" / (tag + ".in");
    auto out = root_ / "io" / (tag + ".out");
    auto err = root_ / "io" / (tag + ".err");
    std::ofstream{in, std::ios::binary} << input;
    auto artifacts = artifact_dir(step, attempt);
    fs::create_directories(artifacts);
    engram::process_options opts;
    // The shell only wires the files to the script's stdin, stdout and
    // stderr; "$0".."$3" keep the paths out of the command text.
    opts.argv = {"/bin/sh", "-c", "exec \"$0\" < \"$1\" > \"$2\" 2> \"$3\"",
                 (scripts_dir / (step + ".sh")).string(), in.string(),
                 out.string(), err.string()};
    opts.inherit_environment = false;
    auto path = std::getenv("PATH");
    opts.env = {
      {"PATH", path ? path : "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", (root_ / "home").string()},
      {"LANG", "C.UTF-8"},
      {"ENGRAM_RUN_ID", "0190a6d2-5c8e-7e51-9a3b-2f4c6d8e0a1b"},
      {"ENGRAM_STEP", step},
      {"ENGRAM_ARTIFACT_DIR", artifacts.string()},
      {"ENGRAM_WORKSPACE", workspace_.string()},
    };
    if (token)
      opts.env.emplace_back("SPECKIT_PUBLISH_TOKEN", *token);
    opts.working_dir = workspace_;
    opts.new_process_group = true;
    step_run run;
    auto res = engram::run_and_wait(opts, 60s);
    if (!res) {
      ADD_FAILURE() << step << " did not start: " << engram::describe(res.error());
      return run;
    }
    run.result = *res;
    run.out = read_file(out);
    run.err = read_file(err);
    boost::system::error_code ec;
    auto value = json::parse(run.out, ec);
    if (!ec)
      run.value = std::move(value);
    return run;
  }

  /// Runs a step that must succeed with one JSON object on stdout.
  step_run run_ok(const std::string& step, const std::string& input,
                  int attempt = 1) {
    auto run = run_step(step, input, publish_token, attempt);
    EXPECT_TRUE(run.result.success())
      << step << ": " << run.result.status.to_string()
      << (run.result.timed_out ? " (timed out)" : "") << "\nstderr:\n"
      << run.err;
    EXPECT_TRUE(run.value && run.value->is_object())
      << step << ": stdout is not one JSON object:\n"
      << run.out;
    if (!run.value || !run.value->is_object())
      run.value = json::object{};
    EXPECT_EQ(run.out.find(publish_token), std::string::npos);
    EXPECT_EQ(run.err.find(publish_token), std::string::npos);
    return run;
  }

  fs::path root_;
  fs::path workspace_;
};

} // namespace

TEST_F(speckit_scripts, the_five_steps_chain_their_json_and_publish_the_branch) {
  // discovery: the shipped sample specs, in name order, with their titles.
  auto discovery = run_ok("discovery", R"({"feature": "Memory Export"})");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(discovery.str("feature"), "Memory Export");
  EXPECT_EQ(discovery.str("branch"), "speckit/memory-export");
  auto spec_dir = fs::canonical(scripts_dir / "specs");
  EXPECT_EQ(discovery.str("spec_dir"), spec_dir.string());
  auto& specs = discovery.object().at("specs").as_array();
  ASSERT_EQ(specs.size(), 3u);
  std::vector<std::string> titles;
  for (auto& spec : specs) {
    auto& s = spec.as_object();
    auto path = fs::path{std::string{s.at("path").as_string()}};
    EXPECT_EQ(path.parent_path(), spec_dir);
    EXPECT_EQ(std::string{s.at("sha256").as_string()}, sha256_of(path));
    titles.emplace_back(s.at("title").as_string());
  }
  EXPECT_EQ(titles, (std::vector<std::string>{"Export an agent's memories",
                                              "Import memories from an export",
                                              "Retention report"}));
  auto discovery_json = artifact_dir("discovery") / "discovery.json";
  ASSERT_TRUE(fs::is_regular_file(discovery_json));
  EXPECT_EQ(json::parse(read_file(discovery_json)), json::value(specs));

  // submit: a patch in its artifact folder, recorded with its SHA-256.
  auto submit = run_ok("submit", discovery.out);
  ASSERT_FALSE(HasFailure());
  fs::path patch = submit.str("patch");
  EXPECT_TRUE(patch.is_absolute());
  EXPECT_EQ(patch, artifact_dir("submit") / "change.patch");
  ASSERT_TRUE(fs::is_regular_file(patch));
  EXPECT_EQ(submit.str("patch_sha256"), sha256_of(patch));
  EXPECT_TRUE(is_hex(submit.str("patch_sha256"), 64));
  // Earlier fields are carried forward.
  for (auto key : {"feature", "branch", "spec_dir", "specs"})
    EXPECT_EQ(submit.object().at(key), discovery.object().at(key)) << key;
  // The patch applies to an empty repository of our own.
  auto check_repo = root_ / "check";
  run_tool({"git", "init", "-q", check_repo.string()});
  run_tool({"git", "-C", check_repo.string(), "apply", "--check",
            patch.string()});
  auto patch_text = read_file(patch);
  EXPECT_NE(patch_text.find("+++ b/docs/specs/memory-export.md"),
            std::string::npos);
  EXPECT_NE(patch_text.find("+# Retention report"), std::string::npos);

  // apply: a commit on the branch in the workspace's repository.
  auto apply = run_ok("apply", submit.out);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(apply.str("repo"), (fs::canonical(workspace_) / "repo").string());
  EXPECT_EQ(apply.str("branch"), "speckit/memory-export");
  auto commit = apply.str("commit");
  EXPECT_TRUE(is_hex(commit, 40)) << commit;
  EXPECT_EQ(apply.str("patch"), submit.str("patch"));
  EXPECT_EQ(run_tool({"git", "-C", apply.str("repo"), "rev-parse",
                      "refs/heads/speckit/memory-export"}),
            commit);
  auto plan = read_file(workspace_ / "repo/docs/specs/memory-export.md");
  EXPECT_EQ(plan.rfind("# Plan: Memory Export\n", 0), 0u) << plan;
  // A second attempt starts over and gives the same commit.
  auto again = run_ok("apply", submit.out, 2);
  EXPECT_EQ(again.str("commit"), commit);

  // publish: the branch in the local bare remote, at apply's commit.
  auto publish = run_ok("publish", apply.out);
  ASSERT_FALSE(HasFailure());
  auto remote = fs::canonical(workspace_) / "remote.git";
  EXPECT_EQ(publish.str("remote"), remote.string());
  EXPECT_EQ(publish.str("ref"), "refs/heads/speckit/memory-export");
  EXPECT_EQ(publish.str("published_commit"), commit);
  EXPECT_EQ(run_tool({"git", "--git-dir=" + remote.string(), "rev-parse",
                      "refs/heads/speckit/memory-export"}),
            commit);
  EXPECT_EQ(publish.str("commit"), commit);
  auto publish_json = artifact_dir("publish") / "publish.json";
  ASSERT_TRUE(fs::is_regular_file(publish_json));
  EXPECT_EQ(read_file(publish_json).find(publish_token), std::string::npos);

  // finalize: the summary, as stdout and as result.json / result.md.
  auto finalize = run_ok("finalize", publish.out);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(finalize.str("status"), "complete");
  EXPECT_EQ(finalize.str("feature"), "Memory Export");
  EXPECT_EQ(finalize.str("branch"), "speckit/memory-export");
  EXPECT_EQ(finalize.str("commit"), commit);
  EXPECT_EQ(finalize.str("patch_sha256"), submit.str("patch_sha256"));
  EXPECT_EQ(finalize.str("published_ref"), "refs/heads/speckit/memory-export");
  EXPECT_EQ(finalize.str("run_id"), "0190a6d2-5c8e-7e51-9a3b-2f4c6d8e0a1b");
  auto result_json = artifact_dir("finalize") / "result.json";
  ASSERT_TRUE(fs::is_regular_file(result_json));
  EXPECT_EQ(json::parse(read_file(result_json)), *finalize.value);
  auto result_md = read_file(artifact_dir("finalize") / "result.md");
  EXPECT_NE(result_md.find(commit), std::string::npos) << result_md;
  // Every step wrote into its own artifact folder only.
  for (auto [step, file] : {std::pair{"discovery", "discovery.json"},
                            std::pair{"submit", "change.patch"},
                            std::pair{"submit", "plan.md"},
                            std::pair{"publish", "publish.json"},
                            std::pair{"finalize", "result.md"}})
    EXPECT_TRUE(fs::is_regular_file(artifact_dir(step) / file)) << file;
  EXPECT_TRUE(fs::is_empty(artifact_dir("apply")));
}

TEST_F(speckit_scripts, publish_without_the_token_fails_before_anything) {
  // Not set, and set but empty; stdin is as publish would get it.
  auto input = R"({"branch": "speckit/x", "repo": "/nowhere", "commit": "abc"})";
  int attempt = 0;
  for (auto token : {std::optional<std::string>{}, std::optional<std::string>{""}}) {
    SCOPED_TRACE(token ? "empty token" : "no token");
    auto run = run_step("publish", input, token, ++attempt);
    EXPECT_FALSE(run.result.success());
    EXPECT_EQ(run.result.status.exit_code, 3) << run.result.status.to_string();
    EXPECT_EQ(run.out, "") << "publish printed to stdout";
    EXPECT_NE(run.err.find("SPECKIT_PUBLISH_TOKEN"), std::string::npos)
      << run.err;
  }
  EXPECT_FALSE(fs::exists(workspace_ / "remote.git"));
}

TEST_F(speckit_scripts, discovery_refuses_a_run_without_a_feature) {
  for (auto input : {"{}", R"({"feature": ""})", R"({"feature": "!!"})",
                     R"({"feature": ["x"]})", "not json",
                     R"({"feature": "x", "spec_dir": "/nonexistent-speckit"})"}) {
    SCOPED_TRACE(input);
    auto run = run_step("discovery", input);
    EXPECT_FALSE(run.result.success());
    EXPECT_EQ(run.out, "");
    EXPECT_NE(run.err.find("speckit discovery: "), std::string::npos) << run.err;
  }
}

TEST_F(speckit_scripts, discovery_reads_a_given_spec_dir) {
  // Titles come from the first heading, else the file's name; other files
  // and subfolders are not specs.
  auto specs = root_ / "my specs";
  fs::create_directories(specs / "nested");
  std::ofstream{specs / "b.md"} << "intro\n\n##  Second \"quoted\" title ##\n";
  std::ofstream{specs / "a.md"} << "no heading at all";
  std::ofstream{specs / "notes.txt"} << "# not a spec\n";
  std::ofstream{specs / "nested/c.md"} << "# nested\n";
  json::object input{{"feature", 12}, {"spec_dir", specs.string()}};
  auto run = run_ok("discovery", json::serialize(input));
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(run.str("branch"), "speckit/12");
  EXPECT_EQ(run.object().at("feature"), json::value(12));
  auto& list = run.object().at("specs").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].as_object().at("title").as_string(), "a");
  EXPECT_EQ(list[1].as_object().at("title").as_string(), "Second \"quoted\" title");
  // The plan of those specs is still a patch that applies.
  auto submit = run_ok("submit", run.out);
  ASSERT_FALSE(HasFailure());
  auto check_repo = root_ / "check";
  run_tool({"git", "init", "-q", check_repo.string()});
  run_tool({"git", "-C", check_repo.string(), "apply", "--check",
            submit.str("patch")});
}
