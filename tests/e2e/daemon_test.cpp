// The daemon as an operator runs it: `engram serve` as a process on port 0
// with a temporary data directory and its embedded PostgreSQL, driven over
// HTTP.

#include <csignal>
#include <string>

#include <sstream>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "storage/migration.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/postgres_fixture.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST(daemon, serves_health_readiness_metrics_and_version) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data"};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  auto health = http_get(port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  auto ready = http_get(port, "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto version = http_get(port, "/api/version");
  EXPECT_EQ(version.status, 200);
  EXPECT_TRUE(contains(version.body, R"("version":"0.1.0")")) << version.body;
  EXPECT_EQ(version.headers["content-type"], "application/json");
  auto metrics = http_get(port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_TRUE(contains(metrics.headers["content-type"], "text/plain"));
  for (auto name :
       {"engram_build_info{", "engram_uptime_seconds ",
        "engram_http_requests_total{route=\"/healthz\",method=\"GET\","
        "status=\"200\"} 1",
        "engram_http_request_duration_seconds_bucket{",
        "engram_storage_pool_connections{state=\"idle\"}",
        "engram_storage_pool_connections{state=\"in_use\"}",
        "engram_storage_errors_total{", "engram_actor_restarts_total{actor="
                                        "\"storage\"} 0"})
    EXPECT_TRUE(contains(metrics.body, name)) << name << "\n" << metrics.body;
}

TEST(daemon, answers_bad_requests_with_json_errors) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data", {"--http.max_body_bytes", "1024"}};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  auto missing = http_get(port, "/no/such/route");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(contains(missing.body, R"({"error":{"code":"not_found",)"))
    << missing.body;
  auto wrong_method = http_request(port, "POST", "/healthz", "{}");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_TRUE(contains(wrong_method.headers["allow"], "GET"));
  EXPECT_TRUE(contains(wrong_method.body, R"("code":"method_not_allowed")"))
    << wrong_method.body;
  auto too_big = http_request(port, "POST", "/api/version",
                              std::string(4096, 'x'));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_TRUE(contains(too_big.body, R"("code":"payload_too_large")"))
    << too_big.body;
}

TEST(daemon, requires_the_token_when_one_is_set) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data", {"--http.token", "s3cret"}};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  auto anonymous = http_get(port, "/metrics");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_TRUE(contains(anonymous.body, R"("code":"unauthorized")"));
  auto wrong = http_get(port, "/metrics", {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);
  auto right = http_get(port, "/metrics", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(right.status, 200);
  // Probes stay open: they reveal nothing.
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
}

TEST(daemon, sigterm_stops_it_and_its_postgres_cleanly) {
  temp_dir dir{"engram-e2e"};
  auto data = dir.path() / "data";
  daemon_process d{data};
  ASSERT_NE(d.wait_for_port(), 0) << d.log();
  auto pg = d.postgres_pid();
  ASSERT_GT(pg, 0);
  ASSERT_TRUE(process_alive(pg));
  // The postmaster and its backends, found by their working directory.
  ASSERT_GT(processes_in(data / "pgdata").size(), 1u);
  auto status = d.terminate();
  ASSERT_TRUE(status) << "did not exit within the timeout\n" << d.log();
  EXPECT_EQ(status->exit_code, 0) << status->to_string() << "\n" << d.log();
  EXPECT_FALSE(process_alive(pg));
  EXPECT_TRUE(processes_mentioning(data.string()).empty());
  EXPECT_TRUE(processes_in(data / "pgdata").empty());
  EXPECT_FALSE(std::filesystem::exists(data / "engram.port"));
  EXPECT_TRUE(contains(d.log(), "stopping node")) << d.log();
}

TEST(daemon, comes_back_on_the_same_data_after_kill_9) {
  temp_dir dir{"engram-e2e"};
  auto data = dir.path() / "data";
  std::string first_log;
  {
    daemon_process first{data};
    ASSERT_NE(first.wait_for_port(), 0) << first.log();
    ASSERT_EQ(http_get(first.port(), "/readyz").status, 200);
    first.kill9();
    first_log = first.log();
  }
  daemon_process second{data};
  ASSERT_NE(second.wait_for_port(), 0) << second.log();
  EXPECT_EQ(http_get(second.port(), "/readyz").status, 200);
  // The cluster was reused, not created again.
  EXPECT_TRUE(contains(first_log, "initialising a new cluster")) << first_log;
  EXPECT_FALSE(contains(second.log(), "initialising a new cluster"))
    << second.log();
  auto status = second.terminate();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->exit_code, 0) << second.log();
}

TEST(daemon, refuses_a_bad_configuration_with_exit_code_2) {
  auto res = run_engram({"serve", "--http.port", "70000"});
  EXPECT_EQ(res.status.exit_code, 2) << res.output;
  EXPECT_TRUE(contains(res.output, "http.port")) << res.output;
  EXPECT_TRUE(contains(res.output, "70000")) << res.output;
  auto bad_flag = run_engram({"serve", "--bogus", "1"});
  EXPECT_EQ(bad_flag.status.exit_code, 2) << bad_flag.output;
}

TEST(daemon, migrate_applies_the_schema_and_exits) {
  temp_dir dir{"engram-e2e"};
  auto data = dir.path() / "data";
  auto res = run_engram({"migrate", "--data-dir", data.string()});
  EXPECT_EQ(res.status.exit_code, 0) << res.output;
  EXPECT_TRUE(contains(res.output, "schema migrated from version 0"))
    << res.output;
  EXPECT_TRUE(processes_mentioning(data.string()).empty())
    << "migrate must stop its embedded server";
  auto again = run_engram({"migrate", "--data-dir", data.string()});
  EXPECT_EQ(again.status.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "schema is current")) << again.output;
}

TEST(daemon, uses_the_server_named_by_database_url_and_starts_none) {
  test::throwaway_postgres pg{"external"};
  temp_dir dir{"engram-e2e"};
  auto data = dir.path() / "data";
  daemon_process d{data, {}, {{"DATABASE_URL", pg.connection_string()}}};
  ASSERT_NE(d.wait_for_port(), 0) << d.log();
  EXPECT_EQ(http_get(d.port(), "/readyz").status, 200);
  EXPECT_FALSE(std::filesystem::exists(data / "pgdata"));
  EXPECT_TRUE(contains(d.log(), "no embedded server")) << d.log();
  // The schema landed in the external server, and the node registered.
  EXPECT_EQ(pg.psql("SELECT max(version) FROM engram.schema_migrations"),
            std::to_string(
              storage::latest_version(storage::embedded_migrations())));
  auto status = d.terminate();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->exit_code, 0) << d.log();
  EXPECT_TRUE(pg.running()) << "the daemon must not stop a server it did "
                               "not start";
  EXPECT_EQ(pg.psql("SELECT count(*) FROM engram.nodes "
                    "WHERE stopped_at IS NOT NULL"),
            "1");
}

TEST(daemon, writes_one_json_object_per_line_with_log_format_json) {
  temp_dir dir{"engram-e2e"};
  auto res = run_engram({"migrate", "--data-dir", (dir.path() / "data").string(),
                         "--log-format", "json"});
  ASSERT_EQ(res.status.exit_code, 0) << res.output;
  std::istringstream lines{res.output};
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    boost::system::error_code ec;
    auto value = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(value.is_object()) << line;
    const auto& obj = value.as_object();
    for (auto key : {"ts", "level", "component", "msg"})
      EXPECT_TRUE(obj.contains(key)) << key << " missing in " << line;
    ++count;
  }
  EXPECT_GE(count, 3) << res.output;
}
