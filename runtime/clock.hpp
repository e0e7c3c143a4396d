#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace engram {

/// Wall-clock time as the daemon sees it: every timestamp the daemon writes
/// (run_at, lease_until, next_run_at, …) comes from a `clock`, so tests can
/// move time instead of sleeping.
using wall_time = std::chrono::system_clock::time_point;

/// Where time comes from. Thread-safe; shared read-only by the actors that
/// receive it (like the logger).
class clock {
public:
  virtual ~clock() = default;
  [[nodiscard]] virtual wall_time now() const = 0;
};

/// The real wall clock.
class system_clock final : public clock {
public:
  [[nodiscard]] wall_time now() const override {
    return std::chrono::system_clock::now();
  }
};

/// The process-wide real clock.
[[nodiscard]] inline const clock& real_clock() {
  static const system_clock instance;
  return instance;
}

/// A clock that moves only when told to (tests).
class manual_clock final : public clock {
public:
  explicit manual_clock(wall_time start = std::chrono::system_clock::now())
    : us_{to_us(start)} {}

  [[nodiscard]] wall_time now() const override {
    return wall_time{std::chrono::microseconds{us_.load()}};
  }
  void set(wall_time t) { us_.store(to_us(t)); }
  void advance(std::chrono::microseconds d) { us_.fetch_add(d.count()); }

private:
  static int64_t to_us(wall_time t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(
             t.time_since_epoch())
      .count();
  }
  std::atomic<int64_t> us_;
};

/// Microseconds since the Unix epoch: how a `wall_time` travels as an SQL
/// parameter (`engram.from_us($n)` turns it into a timestamptz) and in
/// messages.
[[nodiscard]] inline int64_t to_epoch_us(wall_time t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           t.time_since_epoch())
    .count();
}

[[nodiscard]] inline wall_time from_epoch_us(int64_t us) {
  return wall_time{std::chrono::microseconds{us}};
}

/// `t` as RFC 3339 in UTC with microseconds, e.g.
/// "2024-03-10T08:00:00.000000Z" (the form the API writes times in).
[[nodiscard]] inline std::string format_utc(wall_time t) {
  auto us = to_epoch_us(t);
  auto secs = us >= 0 ? us / 1'000'000 : (us - 999'999) / 1'000'000;
  auto frac = us - secs * 1'000'000;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
  return buf;
}

} // namespace engram
