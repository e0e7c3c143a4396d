#pragma once

#include <string>
#include <variant>
#include <vector>

#include "runtime/config.hpp"

namespace engram {

/// A parsed command line: `engram <command> [flags]`.
struct command_line {
  /// serve, migrate, version or help.
  std::string command;
  /// The config file from --config (empty = none) and the dotted-key
  /// overrides from every other flag.
  config_sources sources;
};

/// A command line that cannot be run, with the reason.
struct usage_error {
  std::string message;
};

/// Parses `args` (without argv[0]). Flags: `--config PATH`, `--data-dir PATH`
/// (daemon.data_dir), `--log-format text|json` (log.format), `--log-level L`
/// (log.level), and `--<section>.<key> VALUE` or `--<section>.<key>=VALUE`
/// for any option. Values are checked later by load_config; unknown keys too.
[[nodiscard]] std::variant<command_line, usage_error>
parse_command_line(const std::vector<std::string>& args);

/// The text of `engram help`.
[[nodiscard]] std::string usage_text();

} // namespace engram
