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
  return x == "serve" || x == "migrate" || x == "version" || x == "help";
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
