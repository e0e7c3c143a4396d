#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include <caf/expected.hpp>

#include "runtime/metrics.hpp"

namespace engram {

struct statsd_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8125;
  /// Prepended to every metric name ("engram" → "engram.tasks_total").
  std::string prefix = "engram";
  std::chrono::milliseconds interval{10000};
};

/// Sends the metrics registry's counters and gauges to a StatsD server over
/// UDP: counters as the increase since the last flush (`|c`), gauges as
/// their value (`|g`); labels travel as DogStatsD tags (`|#name:value,...`),
/// which Datadog, Telegraf and the StatsD exporter accept. A datagram holds
/// as many lines as fit in 1,400 bytes. Send errors are ignored (UDP is
/// fire-and-forget).
class statsd_emitter {
public:
  /// Resolves the host and opens the socket; does not start flushing.
  [[nodiscard]] static caf::expected<std::unique_ptr<statsd_emitter>>
  make(const metrics::registry& registry, statsd_options options);

  ~statsd_emitter();
  statsd_emitter(const statsd_emitter&) = delete;
  statsd_emitter& operator=(const statsd_emitter&) = delete;

  /// Flushes every `interval` on a thread of its own until destroyed.
  void start();

  /// Sends one round now; returns the lines sent (for tests).
  std::vector<std::string> flush();

private:
  statsd_emitter(const metrics::registry& registry, statsd_options options,
                 int fd);

  const metrics::registry& registry_;
  statsd_options options_;
  int fd_;
  /// Last value sent per counter line key.
  std::map<std::string, double> last_;
  std::jthread thread_;
};

/// One StatsD line for a sample: "prefix.name:value|c|#k:v,k2:v2".
[[nodiscard]] std::string statsd_line(const std::string& prefix,
                                      const std::string& name,
                                      const metrics::labels& ls, double value,
                                      bool counter);

} // namespace engram
