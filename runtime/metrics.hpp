#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace engram::metrics {

/// Label pairs of one time series, e.g. {{"route", "/healthz"}, {"status", "200"}}.
using labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing value. Thread-safe (lock-free).
class counter {
public:
  /// Adds `delta`; negative deltas are ignored (counters never go down).
  void inc(double delta = 1.0) noexcept;
  [[nodiscard]] double value() const noexcept;

private:
  std::atomic<double> value_{0.0};
};

/// A value that goes up and down. Thread-safe (lock-free).
class gauge {
public:
  void set(double x) noexcept;
  void inc(double delta = 1.0) noexcept;
  void dec(double delta = 1.0) noexcept;
  [[nodiscard]] double value() const noexcept;

private:
  std::atomic<double> value_{0.0};
};

/// A cumulative histogram over fixed upper bounds (Prometheus semantics:
/// bucket `le` counts observations <= bound; +Inf is implied). Thread-safe.
class histogram {
public:
  /// Throws std::logic_error unless `upper_bounds` are finite and strictly
  /// increasing.
  explicit histogram(std::vector<double> upper_bounds);

  /// Records `x`; NaN is ignored so that `_sum` stays usable.
  void observe(double x) noexcept;

  struct snapshot {
    std::vector<double> upper_bounds;
    /// Cumulative counts, one per bound, then one for +Inf.
    std::vector<uint64_t> cumulative_counts;
    double sum = 0;
    /// Always equal to the +Inf count.
    uint64_t count = 0;
  };

  [[nodiscard]] snapshot read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_; // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

/// Default latency buckets in seconds (0.5 ms .. 10 s).
[[nodiscard]] std::vector<double> default_latency_buckets();

/// Owns every metric of the process and renders them in the Prometheus text
/// exposition format (version 0.0.4). Registering returns a reference that
/// stays valid for the registry's lifetime; registering the same name and
/// labels again returns the same object. Registering a name again with another
/// type, or with an invalid metric or label name, throws std::logic_error.
/// Thread-safe.
class registry {
public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  counter& get_counter(std::string_view name, std::string_view help,
                       labels ls = {});
  gauge& get_gauge(std::string_view name, std::string_view help,
                   labels ls = {});
  /// The bounds of the first registration of `name` and `ls` win.
  histogram& get_histogram(std::string_view name, std::string_view help,
                           labels ls = {},
                           std::vector<double> upper_bounds
                           = default_latency_buckets());

  /// Registers a gauge whose value is computed at render time, without the
  /// registry's lock held. Registering the same name and labels again
  /// replaces the function.
  void add_callback_gauge(std::string_view name, std::string_view help,
                          labels ls, std::function<double()> fn);

  /// One value of the registry, for emitters other than /metrics.
  struct sample {
    std::string name;
    labels ls;
    /// Counters (and a histogram's _count and _sum) only grow.
    bool cumulative = false;
    double value = 0;
  };

  /// Every counter and gauge, and each histogram's _count and _sum.
  [[nodiscard]] std::vector<sample> collect() const;

  /// Renders all families, sorted by name, with HELP and TYPE lines; series
  /// of a family in registration order.
  [[nodiscard]] std::string render() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Escapes a label value for the text format (backslash, quote, newline).
[[nodiscard]] std::string escape_label_value(std::string_view x);

/// Formats a sample value: integers without a fraction, +Inf/-Inf/NaN as
/// Prometheus spells them, otherwise shortest round-trip representation.
[[nodiscard]] std::string format_value(double x);

} // namespace engram::metrics
