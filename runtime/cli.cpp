#include "runtime/cli.hpp"

#include <map>

namespace engram {

namespace {

/// Short flags and the option each stands for.
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> result{
    {"data-dir", "daemon.data_dir"},
    {"log-format", "log.format"},
    {"log-level", "log.level"},
  };
  return result;
}

bool is_command(const std::string& x) {
  return x == "serve" || x == "migrate" || x == "version" || x == "help"
         || x == "cron";
}

/// `args[1..]` of `engram cron next ...` (args[0] is "cron").
std::variant<command_line, usage_error>
parse_cron(const std::vector<std::string>& args) {
  command_line result;
  result.command = "cron";
  if (args.size() < 2)
    return usage_error{"cron needs a subcommand: engram cron next '<expr>'"};
  if (args[1] == "--help" || args[1] == "-h") {
    result.command = "help";
    return result;
  }
  if (args[1] != "next")
    return usage_error{"unknown cron subcommand '" + args[1]
                       + "' (expected: next)"};
  auto& cron = result.cron;
  bool have_expression = false;
  size_t i = 2;
  while (i < args.size()) {
    const auto& arg = args[i++];
    if (arg == "--help" || arg == "-h") {
      result.command = "help";
      return result;
    }
    if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      auto name = arg.substr(2);
      std::string value;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.erase(eq);
      }
      // Checked before taking the next argument as the value.
      if (name != "tz" && name != "from" && name != "count")
        return usage_error{"unknown flag --" + name
                           + " for cron next (expected --tz, --from, "
                             "--count)"};
      if (eq == std::string::npos) {
        if (i == args.size())
          return usage_error{"flag --" + name + " needs a value"};
        value = args[i++];
      }
      if (name == "tz") {
        cron.zone = value;
      } else if (name == "from") {
        cron.from = value;
      } else {
        auto digits = !value.empty() && value.size() <= 4
                      && value.find_first_not_of("0123456789")
                           == std::string::npos;
        auto n = digits ? std::stoul(value) : 0;
        if (n < 1 || n > cron_next_args::max_count)
          return usage_error{"--count must be a whole number from 1 to "
                             + std::to_string(cron_next_args::max_count)
                             + ", got '" + value + "'"};
        cron.count = n;
      }
      continue;
    }
    if (have_expression)
      return usage_error{"unexpected argument '" + arg
                         + "' (quote the whole expression: engram cron next "
                           "'30 2 * * *')"};
    cron.expression = arg;
    have_expression = true;
  }
  if (!have_expression)
    return usage_error{"cron next needs an expression, e.g. engram cron next "
                       "'30 2 * * *'"};
  return result;
}

} // namespace

std::variant<command_line, usage_error>
parse_command_line(const std::vector<std::string>& args) {
  command_line result;
  size_t i = 0;
  if (args.empty())
    return usage_error{"missing command"};
  if (args[0] == "--help" || args[0] == "-h") {
    result.command = "help";
    return result;
  }
  if (args[0] == "--version") {
    result.command = "version";
    return result;
  }
  if (!is_command(args[0]))
    return usage_error{"unknown command '" + args[0] + "'"};
  if (args[0] == "cron")
    return parse_cron(args);
  result.command = args[i++];
  while (i < args.size()) {
    const auto& arg = args[i++];
    if (arg == "--help" || arg == "-h") {
      result.command = "help";
      return result;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2)
      return usage_error{"unexpected argument '" + arg + "'"};
    auto name = arg.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.erase(eq);
    } else {
      if (i == args.size())
        return usage_error{"flag --" + name + " needs a value"};
      value = args[i++];
    }
    if (name == "config") {
      result.sources.file = value;
      continue;
    }
    if (auto alias = aliases().find(name); alias != aliases().end())
      name = alias->second;
    else if (name.find('.') == std::string::npos)
      return usage_error{"unknown flag --" + name};
    result.sources.flags.emplace_back(name, value);
  }
  return result;
}

std::string usage_text() {
  return R"(usage: engram <command> [flags]

commands:
  serve     run the daemon (starts its embedded PostgreSQL unless
            database.url / DATABASE_URL names a server)
  migrate   apply pending database migrations and exit
  version   print the version and exit
  help      print this text
  cron next '<expr>' [--tz ZONE] [--from TIME] [--count N]
            print the next N (default 5, at most 1000) runs of a cron
            expression strictly after TIME (RFC 3339, default now) on the
            wall clock of ZONE (IANA name, default UTC); needs no config

flags:
  --config PATH           TOML configuration file (see conf/engram.toml)
  --data-dir PATH         daemon.data_dir (default ./var/engram, or ENGRAM_HOME)
  --log-format text|json  log.format
  --log-level LEVEL       log.level (trace, debug, info, warn, error, critical, off)
  --<section>.<key> VALUE any option of conf/engram.toml, e.g. --http.port 0

Precedence: defaults < config file < environment (DATABASE_URL, ENGRAM_HOME,
ENGRAM_<SECTION>__<KEY>) < flags. A refused value exits with status 2.
)";
}

} // namespace engram
