#pragma once

// Workflow definitions (DESIGN §7): `conf/workflows/<name>.toml`, read and
// validated at start. Pure functions, no actors.
//
// A definition:
//
//   description = "Spec-driven change: discover, submit, apply, publish"
//   # Optional: the run's branch name, from the input's fields. A second
//   # start whose input derives the same branch returns the existing run.
//   branch = "speckit/{feature}"
//
//   [[steps]]
//   name = "discovery"                   # [a-z0-9_-]{1,64}, unique
//   command = ["speckit/discovery.sh"]   # argv; no shell
//   timeout = "2m"                       # default 10m
//   retries = 2                          # default 0 (0..100)
//   backoff = "1s"                       # first retry delay, doubling; default 1s
//   backoff_max = "1m"                   # default 5m
//   requires_credentials = ["GH_TOKEN", "file:/etc/engram/deploy-key"]
//   env = { SPEC_GLOB = "*.md" }
//   shell = false                        # true: command = ["a shell line"],
//                                        # run by /bin/sh -c
//
// A program path with a '/' that is not absolute is relative to the
// definition file's directory; a bare name is looked up in PATH.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <caf/expected.hpp>

namespace engram::workflows {

/// A credential a step requires: an environment variable ("GH_TOKEN") or a
/// file ("file:/etc/engram/deploy-key").
struct credential_spec {
  /// As written in the definition.
  std::string name;
  /// "env" or "file".
  std::string kind;
  /// The variable's name or the file's path.
  std::string target;

  bool operator==(const credential_spec&) const = default;
};

struct step_definition {
  std::string name;
  /// The argv to execute, program path resolved (see above). With `shell`,
  /// {"/bin/sh", "-c", <line>}.
  std::vector<std::string> command;
  bool shell = false;
  std::chrono::milliseconds timeout{std::chrono::minutes{10}};
  /// Tries after the first that a failed attempt gets (within one run
  /// attempt; an operator retry starts the count again).
  int32_t retries = 0;
  std::chrono::milliseconds backoff{1000};
  std::chrono::milliseconds backoff_max{std::chrono::minutes{5}};
  std::vector<credential_spec> credentials;
  /// Set in the step's environment, on top of the daemon's.
  std::vector<std::pair<std::string, std::string>> env;

  bool operator==(const step_definition&) const = default;
};

struct workflow_definition {
  /// The file's stem: `speckit` for speckit.toml ([a-z0-9_-]{1,64}).
  std::string name;
  std::string description;
  std::filesystem::path file;
  /// "{field}" placeholders name fields of the run's input; empty = none.
  std::string branch_template;
  std::vector<step_definition> steps;

  bool operator==(const workflow_definition&) const = default;

  [[nodiscard]] const step_definition* find_step(std::string_view step) const;
  [[nodiscard]] std::vector<std::string> step_names() const;
};

/// Parses one definition. `file` is used for messages and to resolve
/// relative program paths. Refusals (invalid_config) name the file, the
/// key (e.g. `steps[2].timeout`) and the reason: unknown keys, missing or
/// empty steps, duplicate step names, bad types, durations or names.
[[nodiscard]] caf::expected<workflow_definition>
parse_workflow(std::string_view toml_text, const std::string& name,
               const std::filesystem::path& file);

/// Reads every `*.toml` directly in `dir` (subdirectories are not
/// definitions; they may hold the steps' scripts), sorted by name. A
/// missing directory gives no workflows; any refused file refuses all.
[[nodiscard]] caf::expected<std::vector<workflow_definition>>
load_workflows(const std::filesystem::path& dir);

/// The run's branch name: the template with each "{field}" replaced by the
/// input field's value (a string or an integer) made safe for git: lower
/// case, runs of other characters than [a-z0-9._-] become '-', trimmed of
/// '-' and '.', at most 64 characters. Empty when the template is empty.
/// invalid_argument naming the field when it is missing, not a string or
/// integer, or gives an empty name.
[[nodiscard]] caf::expected<std::string>
derive_branch(const workflow_definition& def, const boost::json::object& input);

/// Delay before try `next_try` (2, 3, ...): backoff * 2^(next_try - 2),
/// at most backoff_max.
[[nodiscard]] std::chrono::milliseconds
retry_delay(const step_definition& step, int32_t next_try);

} // namespace engram::workflows
