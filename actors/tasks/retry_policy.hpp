#pragma once

#include <chrono>
#include <cstdint>

namespace engram::tasks {

/// Exponential backoff with jitter for one task name.
struct retry_policy {
  /// Retries after the first attempt; 0 = never retried.
  int32_t max_retries = 3;
  /// Delay after the first failed attempt (the platform's memory tasks use
  /// 30 s).
  std::chrono::milliseconds base{30000};
  /// Largest delay, whatever the attempt.
  std::chrono::milliseconds cap{std::chrono::hours{1}};
};

/// The delay before retrying after failed attempt `attempt` (1 for the
/// first): the exponential step d = min(cap, base * 2^(attempt-1)), jittered
/// to d/2 + unit_random * d/2 ("equal jitter": retries of many tasks that
/// failed together spread out, yet none comes back sooner than half the
/// step). `unit_random` is in [0, 1); callers pass a random draw, tests a
/// fixed value.
[[nodiscard]] std::chrono::milliseconds
retry_delay(const retry_policy& policy, int32_t attempt, double unit_random);

} // namespace engram::tasks
