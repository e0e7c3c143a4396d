#include "runtime/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

using namespace engram::metrics;

TEST(metrics, format_value_spells_integers_specials_and_fractions) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-0.0), "0");
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(-42), "-42");
  EXPECT_EQ(format_value(0.5), "0.5");
  EXPECT_EQ(format_value(0.0005), "0.0005");
  EXPECT_EQ(format_value(2.5), "2.5");
  // 0.1 + 0.2 is not 0.3 in binary; the shortest round-trip text says so.
  EXPECT_EQ(format_value(0.1 + 0.2), "0.30000000000000004");
  // 2^53 is the largest integer printed as such; beyond, shortest form.
  EXPECT_EQ(format_value(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(0.00001), "1e-05");
  EXPECT_EQ(format_value(1234567.5), "1234567.5");
  EXPECT_EQ(format_value(-0.25), "-0.25");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(metrics, escape_label_value_escapes_backslash_quote_and_newline) {
  EXPECT_EQ(escape_label_value("plain /api/x"), "plain /api/x");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(metrics, counter_renders_help_type_and_series_in_registration_order) {
  registry reg;
  reg.get_counter("requests_total", "Requests.", {{"route", "/b"}}).inc();
  reg.get_counter("requests_total", "Requests.", {{"route", "/a"}}).inc(2);
  // Registering again returns the same counter.
  reg.get_counter("requests_total", "Requests.", {{"route", "/b"}}).inc();
  EXPECT_EQ(reg.render(), "# HELP requests_total Requests.\n"
                          "# TYPE requests_total counter\n"
                          "requests_total{route=\"/b\"} 2\n"
                          "requests_total{route=\"/a\"} 2\n");
}

TEST(metrics, counter_ignores_negative_increments) {
  registry reg;
  auto& c = reg.get_counter("c_total", "C.");
  c.inc(1.5);
  c.inc(-1);
  EXPECT_EQ(c.value(), 1.5);
}

TEST(metrics, families_are_sorted_by_name_and_unlabelled_series_have_no_braces) {
  registry reg;
  reg.get_gauge("zeta", "Last.").set(-1.25);
  reg.get_gauge("alpha", "First.").set(7);
  EXPECT_EQ(reg.render(), "# HELP alpha First.\n"
                          "# TYPE alpha gauge\n"
                          "alpha 7\n"
                          "# HELP zeta Last.\n"
                          "# TYPE zeta gauge\n"
                          "zeta -1.25\n");
}

TEST(metrics, gauge_goes_up_and_down) {
  registry reg;
  auto& g = reg.get_gauge("g", "G.");
  g.inc();
  g.inc(2);
  g.dec(0.5);
  EXPECT_EQ(g.value(), 2.5);
  g.set(10);
  EXPECT_EQ(g.value(), 10);
}

TEST(metrics, label_values_and_help_are_escaped) {
  registry reg;
  reg.get_counter("odd_total", "Help with \\ and\nnewline.",
                  {{"path", "/a\"b\\c\nd"}, {"k", "v"}})
    .inc();
  EXPECT_EQ(reg.render(),
            "# HELP odd_total Help with \\\\ and\\nnewline.\n"
            "# TYPE odd_total counter\n"
            "odd_total{path=\"/a\\\"b\\\\c\\nd\",k=\"v\"} 1\n");
}

TEST(metrics, histogram_renders_cumulative_buckets_inf_sum_and_count) {
  registry reg;
  auto& h = reg.get_histogram("latency_seconds", "Latency.", {{"route", "/x"}},
                              {0.25, 0.5, 1});
  // Binary fractions, so that the sum is exact.
  h.observe(0.125); // <= 0.25
  h.observe(0.25);  // <= 0.25 (bounds are inclusive)
  h.observe(0.375); // <= 0.5
  h.observe(4);     // only +Inf
  h.observe(std::numeric_limits<double>::quiet_NaN()); // ignored
  EXPECT_EQ(reg.render(), "# HELP latency_seconds Latency.\n"
                          "# TYPE latency_seconds histogram\n"
                          "latency_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"
                          "latency_seconds_bucket{route=\"/x\",le=\"0.5\"} 3\n"
                          "latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                          "latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
                          "latency_seconds_sum{route=\"/x\"} 4.75\n"
                          "latency_seconds_count{route=\"/x\"} 4\n");
  auto snap = h.read();
  EXPECT_EQ(snap.cumulative_counts, (std::vector<uint64_t>{2, 3, 3, 4}));
  EXPECT_EQ(snap.count, 4u);
}

TEST(metrics, unlabelled_histogram_has_only_le) {
  registry reg;
  reg.get_histogram("h", "H.", {}, {1}).observe(2);
  EXPECT_EQ(reg.render(), "# HELP h H.\n"
                          "# TYPE h histogram\n"
                          "h_bucket{le=\"1\"} 0\n"
                          "h_bucket{le=\"+Inf\"} 1\n"
                          "h_sum 2\n"
                          "h_count 1\n");
}

TEST(metrics, histogram_bounds_must_be_finite_and_increasing) {
  EXPECT_THROW(histogram({1, 1}), std::logic_error);
  EXPECT_THROW(histogram({2, 1}), std::logic_error);
  EXPECT_THROW(histogram({1, std::numeric_limits<double>::infinity()}),
               std::logic_error);
  EXPECT_NO_THROW(histogram({}));
}

TEST(metrics, default_latency_buckets_span_half_a_millisecond_to_ten_seconds) {
  auto b = default_latency_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(metrics, callback_gauges_are_evaluated_at_render) {
  registry reg;
  double depth = 1;
  reg.add_callback_gauge("queue_depth", "Depth.", {{"queue", "q1"}},
                         [&] { return depth; });
  reg.get_gauge("queue_depth", "Depth.", {{"queue", "q0"}}).set(5);
  EXPECT_EQ(reg.render(), "# HELP queue_depth Depth.\n"
                          "# TYPE queue_depth gauge\n"
                          "queue_depth{queue=\"q1\"} 1\n"
                          "queue_depth{queue=\"q0\"} 5\n");
  depth = 3;
  EXPECT_NE(reg.render().find("queue_depth{queue=\"q1\"} 3\n"),
            std::string::npos);
  // Registering the same series again replaces the function.
  reg.add_callback_gauge("queue_depth", "Depth.", {{"queue", "q1"}},
                         [] { return 9.0; });
  EXPECT_NE(reg.render().find("queue_depth{queue=\"q1\"} 9\n"),
            std::string::npos);
}

TEST(metrics, callback_gauge_that_throws_renders_nan) {
  registry reg;
  reg.add_callback_gauge("broken", "Broken.", {},
                         []() -> double { throw std::runtime_error("boom"); });
  EXPECT_EQ(reg.render(), "# HELP broken Broken.\n"
                          "# TYPE broken gauge\n"
                          "broken NaN\n");
}

TEST(metrics, callback_gauge_may_use_the_registry) {
  registry reg;
  auto& c = reg.get_counter("c_total", "C.");
  c.inc(4);
  // render() does not hold its lock while calling callbacks.
  reg.add_callback_gauge("mirror", "Mirror.", {}, [&] {
    return reg.get_counter("c_total", "C.").value();
  });
  EXPECT_NE(reg.render().find("mirror 4\n"), std::string::npos);
}

TEST(metrics, same_name_with_another_type_is_a_logic_error) {
  registry reg;
  reg.get_counter("x", "X.");
  EXPECT_THROW(reg.get_gauge("x", "X."), std::logic_error);
  EXPECT_THROW(reg.get_histogram("x", "X."), std::logic_error);
  EXPECT_THROW(reg.add_callback_gauge("x", "X.", {}, [] { return 1.0; }),
               std::logic_error);
  reg.get_gauge("g", "G.", {{"a", "1"}});
  EXPECT_THROW(reg.add_callback_gauge("g", "G.", {{"a", "1"}},
                                      [] { return 1.0; }),
               std::logic_error);
}

TEST(metrics, invalid_names_are_logic_errors) {
  registry reg;
  EXPECT_THROW(reg.get_counter("", "E."), std::logic_error);
  EXPECT_THROW(reg.get_counter("1abc", "E."), std::logic_error);
  EXPECT_THROW(reg.get_counter("a-b", "E."), std::logic_error);
  EXPECT_THROW(reg.get_counter("ok", "E.", {{"bad-label", "v"}}),
               std::logic_error);
  EXPECT_THROW(reg.get_counter("ok", "E.", {{"__reserved", "v"}}),
               std::logic_error);
  EXPECT_THROW(reg.get_counter("ok", "E.", {{"a", "1"}, {"a", "2"}}),
               std::logic_error);
  EXPECT_THROW(reg.get_histogram("h", "E.", {{"le", "1"}}), std::logic_error);
  EXPECT_NO_THROW(reg.get_counter("ns:ok_total", "E.", {{"_a1", "v"}}));
}

TEST(metrics, concurrent_increments_are_not_lost) {
  registry reg;
  auto& c = reg.get_counter("c_total", "C.");
  auto& h = reg.get_histogram("h", "H.", {}, {1});
  constexpr int per_thread = 10000;
  auto work = [&] {
    for (int i = 0; i < per_thread; ++i) {
      c.inc();
      h.observe(0.5);
    }
  };
  std::thread t1{work};
  std::thread t2{work};
  t1.join();
  t2.join();
  EXPECT_EQ(c.value(), 2 * per_thread);
  EXPECT_EQ(h.read().count, 2u * per_thread);
  EXPECT_EQ(h.read().sum, per_thread); // 0.5 is exact in binary
}
