#pragma once

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "runtime/config.hpp"

namespace engram {

/// `engram cron next EXPR [--tz ZONE] [--from TIME] [--count N]`. The
/// values are checked when the command runs (the expression, the zone and
/// the RFC 3339 time), except the count.
struct cron_next_args {
  /// The cron expression, one argument (quoted in the shell).
  std::string expression;
  /// IANA time zone the expression is evaluated in.
  std::string zone = "UTC";
  /// Print the runs strictly after this RFC 3339 time; empty = now.
  std::string from;
  /// How many runs to print, 1 to max_count.
  size_t count = 5;

  static constexpr size_t max_count = 1000;
};

/// A parsed command line: `engram <command> [flags]`.
struct command_line {
  /// serve, migrate, version, help or cron (only `cron next` exists).
  std::string command;
  /// The config file from --config (empty = none) and the dotted-key
  /// overrides from every other flag.
  config_sources sources;
  /// The arguments of `cron next`.
  cron_next_args cron;
};

/// A command line that cannot be run, with the reason.
struct usage_error {
  std::string message;
};

/// Parses `args` (without argv[0]). Flags: `--config PATH`, `--data-dir PATH`
/// (daemon.data_dir), `--log-format text|json` (log.format), `--log-level L`
/// (log.level), and `--<section>.<key> VALUE` or `--<section>.<key>=VALUE`
/// for any option. Values are checked later by load_config; unknown keys too.
/// `cron next` takes its own flags (see cron_next_args) and no config.
[[nodiscard]] std::variant<command_line, usage_error>
parse_command_line(const std::vector<std::string>& args);

/// The text of `engram help`.
[[nodiscard]] std::string usage_text();

} // namespace engram
