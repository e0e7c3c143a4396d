#include "actors/workflows/definition.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace engram::workflows;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

using engram::code_of;
using engram::errc;
using engram::message_of;

/// Where the definitions of these tests pretend to live.
const fs::path test_file = "/etc/engram/workflows/wf.toml";

const char* const one_step = R"(
[[steps]]
name = "only"
command = ["true"]
)";

caf::expected<workflow_definition> parse(const std::string& text,
                                         const std::string& name = "wf",
                                         const fs::path& file = test_file) {
  return parse_workflow(text, name, file);
}

/// The refusal's message; fails the test unless `text` is refused with
/// invalid_config.
std::string refusal(const std::string& text, const std::string& name = "wf",
                    const fs::path& file = test_file) {
  auto def = parse(text, name, file);
  if (def) {
    ADD_FAILURE() << "accepted:\n" << text;
    return {};
  }
  EXPECT_EQ(code_of(def.error()), errc::invalid_config);
  return message_of(def.error());
}

/// A step table with `extra` lines added to a valid step named "s".
std::string step_with(const std::string& extra) {
  return "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n" + extra + "\n";
}

boost::json::object json_object(const char* text) {
  return boost::json::parse(text).as_object();
}

/// A directory of its own for the running test, removed afterwards.
class temp_dir {
public:
  temp_dir() {
    auto info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path()
            / ("engram-workflow-definition-test-" + std::string{info->name()}
               + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }

  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const {
    return path_;
  }

  fs::path write(const fs::path& name, const std::string& content) const {
    auto file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream{file} << content;
    return file;
  }

private:
  fs::path path_;
};

} // namespace

// -- accepted definitions -------------------------------------------------------------

TEST(workflow_definition, a_minimal_step_gets_the_documented_defaults) {
  auto def = parse(one_step);
  ASSERT_TRUE(def) << message_of(def.error());
  EXPECT_EQ(def->name, "wf");
  EXPECT_EQ(def->file, test_file);
  EXPECT_EQ(def->description, "");
  EXPECT_EQ(def->branch_template, "");
  ASSERT_EQ(def->steps.size(), 1u);
  auto& step = def->steps[0];
  EXPECT_EQ(step.name, "only");
  EXPECT_EQ(step.command, std::vector<std::string>{"true"});
  EXPECT_FALSE(step.shell);
  EXPECT_EQ(step.timeout, 10min);
  EXPECT_EQ(step.retries, 0);
  EXPECT_EQ(step.backoff, 1s);
  EXPECT_EQ(step.backoff_max, 5min);
  EXPECT_TRUE(step.credentials.empty());
  EXPECT_TRUE(step.env.empty());
}

TEST(workflow_definition, every_key_of_a_step_is_read) {
  auto def = parse(R"(
description = "Two steps"
branch = "release/{version}"

[[steps]]
name = "build_1"
command = ["/usr/bin/make", "-C", "src", ""]
timeout = "90s"
retries = 3
backoff = 250
backoff_max = "2m"
requires_credentials = ["GH_TOKEN", "file:/etc/engram/deploy-key", "_x1"]
env = { SPEC_GLOB = "*.md", B = "" }

[[steps]]
name = "ship-it"
command = ["echo hi | tee out.txt"]
shell = true
timeout = "1h"
retries = 100
backoff = "0s"
backoff_max = 0
)");
  ASSERT_TRUE(def) << message_of(def.error());
  EXPECT_EQ(def->description, "Two steps");
  EXPECT_EQ(def->branch_template, "release/{version}");
  ASSERT_EQ(def->steps.size(), 2u);
  auto& build = def->steps[0];
  EXPECT_EQ(build.command,
            (std::vector<std::string>{"/usr/bin/make", "-C", "src", ""}));
  EXPECT_EQ(build.timeout, 90s);
  EXPECT_EQ(build.retries, 3);
  EXPECT_EQ(build.backoff, 250ms);
  EXPECT_EQ(build.backoff_max, 2min);
  EXPECT_EQ(build.credentials,
            (std::vector<credential_spec>{
              {"GH_TOKEN", "env", "GH_TOKEN"},
              {"file:/etc/engram/deploy-key", "file", "/etc/engram/deploy-key"},
              {"_x1", "env", "_x1"}}));
  // A TOML table's keys come back sorted.
  EXPECT_EQ(build.env,
            (std::vector<std::pair<std::string, std::string>>{
              {"B", ""}, {"SPEC_GLOB", "*.md"}}));
  auto& ship = def->steps[1];
  EXPECT_TRUE(ship.shell);
  EXPECT_EQ(ship.command, (std::vector<std::string>{"/bin/sh", "-c",
                                                    "echo hi | tee out.txt"}));
  EXPECT_EQ(ship.timeout, 1h);
  EXPECT_EQ(ship.retries, 100);
  EXPECT_EQ(ship.backoff, 0ms);
  EXPECT_EQ(ship.backoff_max, 0ms);
  EXPECT_EQ(def->step_names(), (std::vector<std::string>{"build_1", "ship-it"}));
  ASSERT_NE(def->find_step("ship-it"), nullptr);
  EXPECT_EQ(def->find_step("ship-it")->retries, 100);
  EXPECT_EQ(def->find_step("ship"), nullptr);
}

TEST(workflow_definition, limits_are_inclusive) {
  // 24h is the largest timeout, 64 characters the longest name.
  auto name = std::string(64, 'a');
  auto def = parse("[[steps]]\nname = \"" + name
                   + "\"\ncommand = [\"x\"]\ntimeout = \"24h\"\n"
                     "backoff = \"5m\"\n",
                   std::string(64, 'w'));
  ASSERT_TRUE(def) << message_of(def.error());
  EXPECT_EQ(def->steps[0].name, name);
  EXPECT_EQ(def->steps[0].timeout, 24h);
  // backoff_max (default 5m) may equal backoff.
  EXPECT_EQ(def->steps[0].backoff_max, 5min);
}

TEST(workflow_definition, program_paths_are_resolved_against_the_file) {
  auto def = parse(R"(
[[steps]]
name = "a"
command = ["speckit/discovery.sh", "rel/arg"]
[[steps]]
name = "b"
command = ["../bin/./tool"]
[[steps]]
name = "c"
command = ["./here.sh"]
[[steps]]
name = "d"
command = ["git", "status"]
[[steps]]
name = "e"
command = ["/usr/bin/env", "x"]
[[steps]]
name = "f"
command = ["./not/resolved when a shell runs it"]
shell = true
)");
  ASSERT_TRUE(def) << message_of(def.error());
  auto argv = [&](size_t i) { return def->steps[i].command; };
  // Only the program is resolved, never an argument.
  EXPECT_EQ(argv(0), (std::vector<std::string>{
                       "/etc/engram/workflows/speckit/discovery.sh", "rel/arg"}));
  EXPECT_EQ(argv(1), std::vector<std::string>{"/etc/engram/bin/tool"});
  EXPECT_EQ(argv(2), std::vector<std::string>{"/etc/engram/workflows/here.sh"});
  EXPECT_EQ(argv(3), (std::vector<std::string>{"git", "status"}));
  EXPECT_EQ(argv(4), (std::vector<std::string>{"/usr/bin/env", "x"}));
  EXPECT_EQ(argv(5),
            (std::vector<std::string>{"/bin/sh", "-c",
                                      "./not/resolved when a shell runs it"}));
}

TEST(workflow_definition, a_relative_file_resolves_against_the_working_dir) {
  auto def = parse(R"(
[[steps]]
name = "a"
command = ["speckit/x.sh"]
)",
                   "wf", "conf/workflows/wf.toml");
  ASSERT_TRUE(def) << message_of(def.error());
  auto expected = (fs::current_path() / "conf/workflows/speckit/x.sh")
                    .lexically_normal()
                    .string();
  EXPECT_EQ(def->steps[0].command[0], expected);
  EXPECT_TRUE(fs::path{def->steps[0].command[0]}.is_absolute());
}

// -- refusals ------------------------------------------------------------------

TEST(workflow_definition, refusals_name_the_file_the_key_and_the_reason) {
  // The example of the brief, word for word: steps[2] is the third step.
  auto message = refusal(step_with("") + R"(
[[steps]]
name = "b"
command = ["true"]
[[steps]]
name = "c"
command = ["true"]
timeout = "soon"
)",
                         "speckit", "conf/workflows/speckit.toml");
  EXPECT_EQ(message.rfind("conf/workflows/speckit.toml: steps[2].timeout: "
                          "expected a duration such as \"30s\"",
                          0),
            0u)
    << message;
  // The value as given and the line are named too.
  EXPECT_NE(message.find("\"soon\""), std::string::npos) << message;
  EXPECT_NE(message.find("(line 12)"), std::string::npos) << message;
}

struct refusal_case {
  const char* what;
  std::string toml;
  /// Expected right after "<file>: ".
  std::string key;
  /// Expected somewhere in the message.
  std::string reason;
};

TEST(workflow_definition, every_kind_of_mistake_is_refused) {
  auto long_name = std::string(65, 'a');
  std::vector<refusal_case> cases{
    // The document.
    {"unknown top-level key", "descripton = \"x\"\n" + step_with(""),
     "descripton", "unknown key; known keys are description, branch, steps"},
    {"unknown table", step_with("") + "[extra]\na = 1\n", "extra",
     "unknown key"},
    {"description not a string", "description = 1\n" + step_with(""),
     "description", "expected a string, got an integer"},
    {"branch not a string", "branch = [\"a\"]\n" + step_with(""), "branch",
     "expected a string, got an array"},
    {"branch with an unclosed brace", "branch = \"a/{feature\"\n" + step_with(""),
     "branch", "a '{' without a '}'"},
    {"branch with a stray closing brace", "branch = \"a/feature}\"\n" + step_with(""),
     "branch", "a '}' without a '{'"},
    {"branch with an empty placeholder", "branch = \"a/{}\"\n" + step_with(""),
     "branch", "an empty placeholder"},
    {"branch with a nested placeholder", "branch = \"{a{b}}\"\n" + step_with(""),
     "branch", "a '{' inside a placeholder"},
    {"no steps", "description = \"x\"\n", "steps", "missing"},
    {"empty steps", "steps = []\n", "steps", "empty"},
    {"steps not an array", "steps = \"discovery\"\n", "steps",
     "expected an array of tables ([[steps]]), got a string"},
    {"a step not a table", "steps = [1]\n", "steps[0]",
     "expected a table ([[steps]]), got an integer"},
    // Names.
    {"unknown step key", step_with("timout = \"1s\""), "steps[0].timout",
     "unknown key; known keys are name, command"},
    {"unknown key in a later step",
     step_with("") + "[[steps]]\nname = \"t\"\ncommand = [\"x\"]\nfoo = 1\n",
     "steps[1].foo", "unknown key"},
    {"unknown key in a step's sub-table", step_with("[steps.extra]\nx = 1"),
     "steps[0].extra", "unknown key"},
    {"step without a name", "[[steps]]\ncommand = [\"true\"]\n",
     "steps[0].name", "missing"},
    {"step name not a string", "[[steps]]\nname = 5\ncommand = [\"true\"]\n",
     "steps[0].name", "expected a string, got an integer"},
    {"step name with upper case", "[[steps]]\nname = \"Build\"\ncommand = [\"x\"]\n",
     "steps[0].name", "must match [a-z0-9_-]{1,64}, got \"Build\""},
    {"step name with a dot", "[[steps]]\nname = \"a.b\"\ncommand = [\"x\"]\n",
     "steps[0].name", "must match"},
    {"empty step name", "[[steps]]\nname = \"\"\ncommand = [\"x\"]\n",
     "steps[0].name", "must match"},
    {"step name too long",
     "[[steps]]\nname = \"" + long_name + "\"\ncommand = [\"x\"]\n",
     "steps[0].name", "must match"},
    {"duplicate step names",
     step_with("") + "[[steps]]\nname = \"t\"\ncommand = [\"x\"]\n"
       + step_with(""),
     "steps[2].name", "\"s\" is already the name of steps[0]"},
    // Commands.
    {"no command", "[[steps]]\nname = \"s\"\n", "steps[0].command", "missing"},
    {"command a string", "[[steps]]\nname = \"s\"\ncommand = \"make\"\n",
     "steps[0].command", "expected an array of strings"},
    {"empty command", "[[steps]]\nname = \"s\"\ncommand = []\n",
     "steps[0].command", "empty"},
    {"command with a number", "[[steps]]\nname = \"s\"\ncommand = [\"a\", 1]\n",
     "steps[0].command[1]", "expected a string, got an integer"},
    {"empty program", "[[steps]]\nname = \"s\"\ncommand = [\"\", \"x\"]\n",
     "steps[0].command[0]", "the program must not be empty"},
    {"shell not a boolean", step_with("shell = \"yes\""), "steps[0].shell",
     "expected a boolean, got a string"},
    {"shell with two strings",
     "[[steps]]\nname = \"s\"\ncommand = [\"a\", \"b\"]\nshell = true\n",
     "steps[0].command", "with shell = true, expected exactly one string"},
    {"shell with an empty line",
     "[[steps]]\nname = \"s\"\ncommand = [\"  \"]\nshell = true\n",
     "steps[0].command", "the shell line is empty"},
    // Durations and numbers.
    {"timeout not a duration", step_with("timeout = \"10 minutes\""),
     "steps[0].timeout", "expected a duration such as \"30s\""},
    {"timeout with an unknown unit", step_with("timeout = \"3d\""),
     "steps[0].timeout", "expected a duration"},
    {"timeout a float", step_with("timeout = 1.5"), "steps[0].timeout",
     "expected a duration"},
    {"timeout a boolean", step_with("timeout = true"), "steps[0].timeout",
     "expected a duration"},
    {"zero timeout", step_with("timeout = \"0s\""), "steps[0].timeout",
     "must be greater than 0"},
    {"negative timeout", step_with("timeout = -5"), "steps[0].timeout",
     "must be greater than 0"},
    {"timeout above a day", step_with("timeout = \"25h\""), "steps[0].timeout",
     "must be at most 24h"},
    {"retries below 0", step_with("retries = -1"), "steps[0].retries",
     "must be between 0 and 100, got -1"},
    {"retries above 100", step_with("retries = 101"), "steps[0].retries",
     "must be between 0 and 100"},
    {"retries a string", step_with("retries = \"2\""), "steps[0].retries",
     "expected an integer, got a string"},
    {"backoff not a duration", step_with("backoff = \"fast\""),
     "steps[0].backoff", "expected a duration"},
    {"negative backoff", step_with("backoff = -1"), "steps[0].backoff",
     "must not be negative"},
    {"backoff_max below backoff",
     step_with("backoff = \"10s\"\nbackoff_max = \"5s\""),
     "steps[0].backoff_max", "must be at least backoff (10s), got 5s"},
    {"backoff above the default backoff_max", step_with("backoff = \"10m\""),
     "steps[0].backoff_max", "must be at least backoff (10m), got 5m (the default)"},
    // Credentials.
    {"credentials a string", step_with("requires_credentials = \"GH_TOKEN\""),
     "steps[0].requires_credentials", "expected an array of strings"},
    {"credential a number", step_with("requires_credentials = [\"A\", 2]"),
     "steps[0].requires_credentials[1]", "expected a string"},
    {"credential with a bad name", step_with("requires_credentials = [\"1TOKEN\"]"),
     "steps[0].requires_credentials[0]", "expected an environment variable name"},
    {"credential with a dash", step_with("requires_credentials = [\"GH-TOKEN\"]"),
     "steps[0].requires_credentials[0]", "expected an environment variable name"},
    {"empty credential", step_with("requires_credentials = [\"\"]"),
     "steps[0].requires_credentials[0]", "expected an environment variable name"},
    {"relative credential file",
     step_with("requires_credentials = [\"file:keys/deploy\"]"),
     "steps[0].requires_credentials[0]", "needs an absolute path"},
    {"credential file without a path",
     step_with("requires_credentials = [\"file:\"]"),
     "steps[0].requires_credentials[0]", "needs an absolute path"},
    {"credential listed twice",
     step_with("requires_credentials = [\"A\", \"B\", \"A\"]"),
     "steps[0].requires_credentials[2]", "listed twice"},
    // Environment.
    {"env an array", step_with("env = [\"A=b\"]"), "steps[0].env",
     "expected a table of strings"},
    {"env value a number", step_with("env = { A = 1 }"), "steps[0].env.A",
     "expected a string, got an integer"},
    {"env name with a digit first", step_with("env = { \"1A\" = \"x\" }"),
     "steps[0].env.1A", "not a valid environment variable name"},
    {"env name with a dash", step_with("env = { \"A-B\" = \"x\" }"),
     "steps[0].env.A-B", "not a valid environment variable name"},
    {"env name reserved", step_with("env = { ENGRAM_RUN_ID = \"x\" }"),
     "steps[0].env.ENGRAM_RUN_ID", "reserved"},
    {"env name reserved (any ENGRAM_)", step_with("[steps.env]\nENGRAM_X = \"x\""),
     "steps[0].env.ENGRAM_X", "reserved"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto message = refusal(c.toml);
    auto prefix = test_file.string() + ": " + c.key + ": ";
    EXPECT_EQ(message.rfind(prefix, 0), 0u)
      << "expected the prefix '" << prefix << "' in: " << message;
    EXPECT_NE(message.find(c.reason), std::string::npos)
      << "expected '" << c.reason << "' in: " << message;
  }
}

TEST(workflow_definition, toml_syntax_errors_name_file_line_and_column) {
  auto message = refusal("description = \"x\"\n[[steps]]\nname = \n");
  EXPECT_EQ(message.rfind(test_file.string() + ": line 3, column ", 0), 0u)
    << message;
  EXPECT_NE(message.find("malformed TOML"), std::string::npos) << message;
  // A key given twice is a TOML error too.
  message = refusal("description = \"x\"\ndescription = \"y\"\n" + step_with(""));
  EXPECT_EQ(message.rfind(test_file.string() + ": line 2, column ", 0), 0u)
    << message;
}

TEST(workflow_definition, the_workflow_name_must_be_a_valid_name) {
  for (auto name : {std::string{"Speckit"}, std::string{"spec.kit"},
                    std::string{""}, std::string{"a b"}, std::string(65, 'a')}) {
    SCOPED_TRACE(name);
    auto message = refusal(one_step, name);
    EXPECT_EQ(message.rfind(test_file.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find("must match [a-z0-9_-]{1,64}"), std::string::npos)
      << message;
  }
}

// -- branch names ----------------------------------------------------------------

TEST(workflow_definition, derive_branch_fills_and_slugs_the_fields) {
  workflow_definition def;
  def.branch_template = "speckit/{feature}";
  auto branch = [&](const char* input) {
    auto result = derive_branch(def, json_object(input));
    EXPECT_TRUE(result) << message_of(result.error());
    return result ? *result : std::string{"<error>"};
  };
  EXPECT_EQ(branch(R"({"feature": "memory-export"})"), "speckit/memory-export");
  // Lower case; runs of other characters become one '-'; trimmed.
  EXPECT_EQ(branch(R"({"feature": "  Memory Export!! (v2) "})"),
            "speckit/memory-export-v2");
  EXPECT_EQ(branch(R"({"feature": "a_b.c-d"})"), "speckit/a_b.c-d");
  EXPECT_EQ(branch(R"({"feature": "--.x.--"})"), "speckit/x");
  EXPECT_EQ(branch(R"({"feature": "Größe"})"), "speckit/gr-e");
  // Git refuses ".." anywhere and ".lock" at the end of a component.
  EXPECT_EQ(branch(R"({"feature": "a..b"})"), "speckit/a.b");
  EXPECT_EQ(branch(R"({"feature": "x.lock"})"), "speckit/x-lock");
  // Integers in decimal.
  EXPECT_EQ(branch(R"({"feature": 42})"), "speckit/42");
  EXPECT_EQ(branch(R"({"feature": 18446744073709551615})"),
            "speckit/18446744073709551615");
  EXPECT_EQ(branch(R"({"feature": -7})"), "speckit/7");
  // At most 64 characters, trimmed again after the cut.
  auto long_value = std::string(63, 'a') + "-b" + std::string(10, 'c');
  EXPECT_EQ(branch(("{\"feature\": \"" + long_value + "\"}").c_str()),
            "speckit/" + std::string(63, 'a'));
  // Other fields are ignored.
  EXPECT_EQ(branch(R"({"feature": "f", "spec_dir": "/x"})"), "speckit/f");
}

TEST(workflow_definition, derive_branch_with_several_or_no_placeholders) {
  workflow_definition def;
  def.branch_template = "{team}/{feature}-{id}";
  auto result = derive_branch(
    def, json_object(R"({"team": "Core", "feature": "X Y", "id": 7})"));
  ASSERT_TRUE(result) << message_of(result.error());
  EXPECT_EQ(*result, "core/x-y-7");
  def.branch_template = "fixed";
  result = derive_branch(def, json_object("{}"));
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, "fixed");
  def.branch_template = "";
  result = derive_branch(def, json_object(R"({"feature": "x"})"));
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, "");
}

TEST(workflow_definition, derive_branch_refuses_missing_or_unusable_fields) {
  workflow_definition def;
  def.branch_template = "speckit/{feature}";
  auto refused = [&](const char* input) {
    auto result = derive_branch(def, json_object(input));
    if (result) {
      ADD_FAILURE() << input << " gave " << *result;
      return std::string{};
    }
    EXPECT_EQ(code_of(result.error()), errc::invalid_argument);
    return message_of(result.error());
  };
  EXPECT_EQ(refused(R"({"name": "x"})"),
            "input.feature is required to derive the branch name "
            "(branch = \"speckit/{feature}\")");
  EXPECT_EQ(refused(R"({"feature": null})"),
            "input.feature is required to derive the branch name "
            "(branch = \"speckit/{feature}\")");
  for (auto input : {R"({"feature": true})", R"({"feature": 1.5})",
                     R"({"feature": ["a"]})", R"({"feature": {"a": 1}})"}) {
    auto message = refused(input);
    EXPECT_NE(message.find("input.feature must be a string or an integer"),
              std::string::npos)
      << message;
  }
  for (auto input : {R"({"feature": ""})", R"({"feature": "!!!"})",
                     R"({"feature": "..."})", R"({"feature": "-"})"}) {
    auto message = refused(input);
    EXPECT_EQ(message.rfind("input.feature = ", 0), 0u) << message;
    EXPECT_NE(message.find("gives an empty branch name"), std::string::npos)
      << message;
  }
}

// -- retries ---------------------------------------------------------------------

TEST(workflow_definition, retry_delay_doubles_up_to_the_cap) {
  step_definition step; // 1 s, at most 5 min
  EXPECT_EQ(retry_delay(step, 2), 1s);
  EXPECT_EQ(retry_delay(step, 3), 2s);
  EXPECT_EQ(retry_delay(step, 4), 4s);
  // 1 s * 2^8 = 256 s, then 512 s is above the 300 s cap.
  EXPECT_EQ(retry_delay(step, 10), 256s);
  EXPECT_EQ(retry_delay(step, 11), 5min);
  EXPECT_EQ(retry_delay(step, 101), 5min);
  EXPECT_EQ(retry_delay(step, std::numeric_limits<int32_t>::max()), 5min);
  // Before the second try there is no earlier delay to double.
  EXPECT_EQ(retry_delay(step, 1), 1s);
  EXPECT_EQ(retry_delay(step, 0), 1s);
}

TEST(workflow_definition, retry_delay_with_odd_settings) {
  step_definition step;
  step.backoff = 0ms;
  step.backoff_max = 0ms;
  EXPECT_EQ(retry_delay(step, std::numeric_limits<int32_t>::max()), 0ms);
  step.backoff = 0ms;
  step.backoff_max = 1min;
  EXPECT_EQ(retry_delay(step, 5), 0ms);
  step.backoff = 24h;
  step.backoff_max = 24h;
  EXPECT_EQ(retry_delay(step, 2), 24h);
  EXPECT_EQ(retry_delay(step, 50), 24h);
  step.backoff = 700ms;
  step.backoff_max = 2s;
  EXPECT_EQ(retry_delay(step, 3), 1400ms);
  EXPECT_EQ(retry_delay(step, 4), 2s);
}

// -- directories -------------------------------------------------------------------

TEST(workflow_definition, load_workflows_reads_the_toml_files_of_a_folder) {
  temp_dir dir;
  dir.write("b.toml", "description = \"B\"\n" + step_with(""));
  dir.write("a.toml", R"(
description = "A"
[[steps]]
name = "one"
command = ["a/run.sh"]
)");
  // Not definitions: a subdirectory (with a .toml in it), other extensions,
  // a directory named like a definition.
  dir.write("a/c.toml", "not toml at all = = =");
  dir.write("a/run.sh", "#!/bin/sh\n");
  dir.write("notes.txt", "x");
  dir.write("b.toml.bak", "x");
  fs::create_directories(dir.path() / "d.toml");
  auto defs = load_workflows(dir.path());
  ASSERT_TRUE(defs) << message_of(defs.error());
  ASSERT_EQ(defs->size(), 2u);
  EXPECT_EQ((*defs)[0].name, "a");
  EXPECT_EQ((*defs)[0].description, "A");
  EXPECT_EQ((*defs)[0].file, dir.path() / "a.toml");
  EXPECT_EQ((*defs)[0].steps[0].command[0], (dir.path() / "a/run.sh").string());
  EXPECT_EQ((*defs)[1].name, "b");
  EXPECT_EQ((*defs)[1].description, "B");
}

TEST(workflow_definition, load_workflows_refuses_all_for_one_bad_file) {
  temp_dir dir;
  dir.write("a.toml", step_with(""));
  dir.write("b.toml", step_with("retries = 1000"));
  auto defs = load_workflows(dir.path());
  ASSERT_FALSE(defs);
  EXPECT_EQ(code_of(defs.error()), errc::invalid_config);
  EXPECT_EQ(message_of(defs.error())
              .rfind((dir.path() / "b.toml").string() + ": steps[0].retries: ",
                     0),
            0u)
    << message_of(defs.error());
  // The file's stem is the workflow's name.
  fs::remove(dir.path() / "b.toml");
  dir.write("Bad.toml", step_with(""));
  defs = load_workflows(dir.path());
  ASSERT_FALSE(defs);
  EXPECT_NE(message_of(defs.error()).find("Bad.toml"), std::string::npos);
}

TEST(workflow_definition, load_workflows_of_a_missing_folder_is_empty) {
  temp_dir dir;
  auto defs = load_workflows(dir.path() / "nope");
  ASSERT_TRUE(defs) << message_of(defs.error());
  EXPECT_TRUE(defs->empty());
  // An empty folder too.
  defs = load_workflows(dir.path());
  ASSERT_TRUE(defs) << message_of(defs.error());
  EXPECT_TRUE(defs->empty());
  // A file where the folder should be is a mistake.
  auto file = dir.write("plain", "x");
  defs = load_workflows(file);
  ASSERT_FALSE(defs);
  EXPECT_EQ(code_of(defs.error()), errc::invalid_config);
}

TEST(workflow_definition, the_shipped_speckit_workflow_loads) {
  auto dir = fs::path{ENGRAM_SOURCE_DIR} / "conf/workflows";
  auto defs = load_workflows(dir);
  ASSERT_TRUE(defs) << message_of(defs.error());
  auto i = std::find_if(defs->begin(), defs->end(),
                        [](auto& def) { return def.name == "speckit"; });
  ASSERT_NE(i, defs->end());
  auto& def = *i;
  EXPECT_EQ(def.branch_template, "speckit/{feature}");
  EXPECT_FALSE(def.description.empty());
  EXPECT_EQ(def.step_names(),
            (std::vector<std::string>{"discovery", "submit", "apply",
                                      "publish", "finalize"}));
  for (auto& step : def.steps) {
    SCOPED_TRACE(step.name);
    // Each step runs its own script next to the definition.
    ASSERT_EQ(step.command.size(), 1u);
    EXPECT_EQ(step.command[0],
              (dir / "speckit" / (step.name + ".sh")).lexically_normal().string());
    EXPECT_EQ(::access(step.command[0].c_str(), X_OK), 0)
      << step.command[0] << " is not executable";
    EXPECT_EQ(step.timeout, 2min);
  }
  EXPECT_EQ(def.find_step("discovery")->retries, 1);
  EXPECT_EQ(def.find_step("publish")->credentials,
            (std::vector<credential_spec>{
              {"SPECKIT_PUBLISH_TOKEN", "env", "SPECKIT_PUBLISH_TOKEN"}}));
  auto branch = derive_branch(def, json_object(R"({"feature": "Memory Export"})"));
  ASSERT_TRUE(branch) << message_of(branch.error());
  EXPECT_EQ(*branch, "speckit/memory-export");
}
