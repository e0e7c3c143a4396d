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
