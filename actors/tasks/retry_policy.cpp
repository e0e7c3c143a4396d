#include "actors/tasks/retry_policy.hpp"

#include <algorithm>

namespace engram::tasks {

std::chrono::milliseconds retry_delay(const retry_policy& policy,
                                      int32_t attempt, double unit_random) {
  auto cap = std::max<int64_t>(policy.cap.count(), 0);
  auto step = std::clamp<int64_t>(policy.base.count(), 0, cap);
  // Double until the cap; stopping there also keeps the shift from
  // overflowing for large attempt numbers.
  for (int32_t i = 1; i < attempt && step < cap; ++i)
    step = std::min(step * 2, cap);
  auto r = std::clamp(unit_random, 0.0, 1.0);
  auto half = step / 2;
  return std::chrono::milliseconds{
    half + static_cast<int64_t>(r * static_cast<double>(step - half))};
}

} // namespace engram::tasks
