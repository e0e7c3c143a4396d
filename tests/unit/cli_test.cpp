#include "runtime/cli.hpp"

#include <gtest/gtest.h>

using namespace engram;

namespace {

command_line parse_ok(std::vector<std::string> args) {
  auto res = parse_command_line(args);
  EXPECT_TRUE(std::holds_alternative<command_line>(res));
  if (auto* err = std::get_if<usage_error>(&res))
    ADD_FAILURE() << err->message;
  return std::get<command_line>(std::move(res));
}

std::string parse_error(std::vector<std::string> args) {
  auto res = parse_command_line(args);
  EXPECT_TRUE(std::holds_alternative<usage_error>(res));
  return std::holds_alternative<usage_error>(res)
           ? std::get<usage_error>(res).message
           : std::string{};
}

} // namespace

TEST(cli, serve_with_config_aliases_and_dotted_flags) {
  auto cl = parse_ok({"serve", "--config", "conf/engram.toml", "--data-dir",
                      "/tmp/x", "--http.port", "0", "--log-format=json",
                      "--database.pool_size=8"});
  EXPECT_EQ(cl.command, "serve");
  EXPECT_EQ(cl.sources.file, "conf/engram.toml");
  using kv = std::pair<std::string, std::string>;
  EXPECT_EQ(cl.sources.flags,
            (std::vector<kv>{{"daemon.data_dir", "/tmp/x"},
                             {"http.port", "0"},
                             {"log.format", "json"},
                             {"database.pool_size", "8"}}));
}

TEST(cli, other_commands) {
  EXPECT_EQ(parse_ok({"migrate"}).command, "migrate");
  EXPECT_EQ(parse_ok({"version"}).command, "version");
  EXPECT_EQ(parse_ok({"--version"}).command, "version");
  EXPECT_EQ(parse_ok({"--help"}).command, "help");
  EXPECT_EQ(parse_ok({"serve", "--help"}).command, "help");
}

TEST(cli, refuses_what_it_cannot_run) {
  EXPECT_EQ(parse_error({}), "missing command");
  EXPECT_EQ(parse_error({"serv"}), "unknown command 'serv'");
  EXPECT_EQ(parse_error({"serve", "--http.port"}),
            "flag --http.port needs a value");
  EXPECT_EQ(parse_error({"serve", "--verbose", "1"}), "unknown flag --verbose");
  EXPECT_EQ(parse_error({"serve", "extra"}), "unexpected argument 'extra'");
}

TEST(cli, cron_next_with_every_flag) {
  auto cl = parse_ok({"cron", "next", "30 2 * * *", "--tz", "America/New_York",
                      "--from", "2024-03-09T12:00:00Z", "--count", "3"});
  EXPECT_EQ(cl.command, "cron");
  EXPECT_EQ(cl.cron.expression, "30 2 * * *");
  EXPECT_EQ(cl.cron.zone, "America/New_York");
  EXPECT_EQ(cl.cron.from, "2024-03-09T12:00:00Z");
  EXPECT_EQ(cl.cron.count, 3u);
  EXPECT_TRUE(cl.sources.flags.empty());
}

TEST(cli, cron_next_defaults_and_equals_form) {
  auto cl = parse_ok({"cron", "next", "@daily"});
  EXPECT_EQ(cl.cron.expression, "@daily");
  EXPECT_EQ(cl.cron.zone, "UTC");
  EXPECT_EQ(cl.cron.from, "");
  EXPECT_EQ(cl.cron.count, 5u);
  // Flags may come before the expression, and in --flag=value form.
  cl = parse_ok({"cron", "next", "--count=1000", "--tz=Europe/London",
                 "--from=2024-01-01T00:00:00+01:00", "*/5 * * * *"});
  EXPECT_EQ(cl.cron.expression, "*/5 * * * *");
  EXPECT_EQ(cl.cron.zone, "Europe/London");
  EXPECT_EQ(cl.cron.from, "2024-01-01T00:00:00+01:00");
  EXPECT_EQ(cl.cron.count, 1000u);
  EXPECT_EQ(parse_ok({"cron", "next", "@daily", "--help"}).command, "help");
  EXPECT_EQ(parse_ok({"cron", "--help"}).command, "help");
}

TEST(cli, cron_refuses_what_it_cannot_run) {
  EXPECT_EQ(parse_error({"cron"}),
            "cron needs a subcommand: engram cron next '<expr>'");
  EXPECT_EQ(parse_error({"cron", "list"}),
            "unknown cron subcommand 'list' (expected: next)");
  const std::string no_expression
    = "cron next needs an expression, e.g. engram cron next '30 2 * * *'";
  EXPECT_EQ(parse_error({"cron", "next"}), no_expression);
  EXPECT_EQ(parse_error({"cron", "next", "--tz", "UTC"}), no_expression);
  // An unquoted expression arrives as several arguments.
  EXPECT_EQ(parse_error({"cron", "next", "30", "2"}),
            "unexpected argument '2' (quote the whole expression: engram cron "
            "next '30 2 * * *')");
  EXPECT_EQ(parse_error({"cron", "next", "@daily", "--tz"}),
            "flag --tz needs a value");
  EXPECT_EQ(parse_error({"cron", "next", "@daily", "--config", "x.toml"}),
            "unknown flag --config for cron next (expected --tz, --from, "
            "--count)");
  EXPECT_EQ(parse_error({"cron", "next", "@daily", "--zone=UTC"}),
            "unknown flag --zone for cron next (expected --tz, --from, "
            "--count)");
  for (auto bad : {"0", "1001", "abc", "-1", "", "5x", "99999999999"})
    EXPECT_EQ(parse_error({"cron", "next", "@daily", "--count", bad}),
              "--count must be a whole number from 1 to 1000, got '"
                + std::string{bad} + "'")
      << bad;
}
