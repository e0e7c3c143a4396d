// `engram cron next` as an operator runs it: no configuration, no database,
// output on stdout, refusals with exit status 2.

#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"

using namespace engram::test;

TEST(cron_command, prints_the_next_runs_in_the_zone) {
  // 02:30 does not exist in New York on 2024-03-10 (spring forward): that
  // run happens at the transition, 03:00 EDT.
  auto res
    = run_engram({"cron", "next", "30 2 * * *", "--tz", "America/New_York",
                  "--from", "2024-03-09T12:00:00Z", "--count", "3"});
  EXPECT_EQ(res.status.exit_code, 0) << res.output;
  EXPECT_EQ(res.output, "2024-03-10T03:00:00-04:00\n"
                        "2024-03-11T02:30:00-04:00\n"
                        "2024-03-12T02:30:00-04:00\n");
}

TEST(cron_command, refuses_an_invalid_expression_with_status_2) {
  auto res = run_engram({"cron", "next", "0 0 * * 8"});
  EXPECT_EQ(res.status.exit_code, 2) << res.output;
  EXPECT_EQ(
    res.output,
    "engram: invalid cron expression: day-of-week: 8 is out of range 0-7\n");
}

TEST(cron_command, refuses_an_unknown_zone_and_a_bad_count) {
  auto zone = run_engram({"cron", "next", "@daily", "--tz", "Mars/Base"});
  EXPECT_EQ(zone.status.exit_code, 2) << zone.output;
  EXPECT_NE(zone.output.find("unknown time zone 'Mars/Base'"),
            std::string::npos)
    << zone.output;
  auto count = run_engram({"cron", "next", "@daily", "--count", "0"});
  EXPECT_EQ(count.status.exit_code, 2) << count.output;
  EXPECT_NE(count.output.find("--count must be a whole number from 1 to 1000"),
            std::string::npos)
    << count.output;
}
