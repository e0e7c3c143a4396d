#include "actors/tasks/retry_policy.hpp"

#include <gtest/gtest.h>

using namespace engram::tasks;
using namespace std::chrono_literals;

TEST(retry_policy, doubles_from_the_base_up_to_the_cap) {
  retry_policy p{5, 30s, 5min};
  // Without jitter's upper half (r = 0) the delay is half the step; with
  // r -> 1 it approaches the whole step.
  EXPECT_EQ(retry_delay(p, 1, 0.0), 15s);
  EXPECT_EQ(retry_delay(p, 2, 0.0), 30s);
  EXPECT_EQ(retry_delay(p, 3, 0.0), 60s);
  EXPECT_EQ(retry_delay(p, 4, 0.0), 120s);
  // 30 s * 2^4 = 480 s is above the 300 s cap.
  EXPECT_EQ(retry_delay(p, 5, 0.0), 150s);
  EXPECT_EQ(retry_delay(p, 5, 0.5), 225s);
  EXPECT_EQ(retry_delay(p, 1, 0.999999), 29999ms);
}

TEST(retry_policy, stays_within_half_and_whole_step_for_any_draw) {
  retry_policy p{3, 1s, 1h};
  for (double r : {0.0, 0.1, 0.5, 0.9, 0.9999}) {
    auto d = retry_delay(p, 3, r);
    EXPECT_GE(d, 2s);
    EXPECT_LE(d, 4s);
  }
  // Out-of-range draws are clamped, not trusted.
  EXPECT_EQ(retry_delay(p, 1, -3.0), 500ms);
  EXPECT_EQ(retry_delay(p, 1, 7.0), 1s);
}

TEST(retry_policy, huge_attempt_numbers_do_not_overflow) {
  retry_policy p{1000, 30s, 1h};
  EXPECT_EQ(retry_delay(p, 1000, 0.0), 30min);
  EXPECT_EQ(retry_delay(p, 2147483647, 0.0), 30min);
}

TEST(retry_policy, a_base_above_the_cap_is_capped) {
  retry_policy p{3, 2h, 1h};
  EXPECT_EQ(retry_delay(p, 1, 0.0), 30min);
}
