// Cron expressions (DESIGN §5): parsing and validation, the Vixie day rule,
// "next run" across DST and other clock changes, checked against a naive
// minute-by-minute reference. Times come from the tz database on this
// machine (tzdata); no wall clock, no randomness beyond a fixed seed.

#include "actors/scheduler/cron.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "actors/scheduler/cron_command.hpp"

using namespace std::chrono_literals;
using std::chrono::sys_seconds;

namespace cron = engram::cron;

namespace {

/// An instant from RFC 3339 text.
sys_seconds at(std::string_view text) {
  auto t = cron::parse_rfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(sys_seconds{});
}

cron::schedule parse_ok(std::string_view expr) {
  auto res = cron::parse(expr);
  if (auto* err = std::get_if<cron::parse_error>(&res)) {
    ADD_FAILURE() << expr << ": " << err->to_string();
    return {};
  }
  return std::get<cron::schedule>(std::move(res));
}

/// "<field>: <reason>" of a refused expression.
std::string refusal(std::string_view expr) {
  auto res = cron::parse(expr);
  if (std::holds_alternative<cron::schedule>(res)) {
    ADD_FAILURE() << "accepted: " << expr;
    return {};
  }
  return std::get<cron::parse_error>(res).to_string();
}

const date::time_zone* zone(std::string_view name) {
  auto* tz = cron::find_zone(name);
  EXPECT_NE(tz, nullptr) << name;
  return tz;
}

/// The next `n` runs after `from`, as RFC 3339 in `tz_name`.
std::vector<std::string> runs(std::string_view expr, std::string_view tz_name,
                              std::string_view from, size_t n) {
  auto* tz = zone(tz_name);
  std::vector<std::string> result;
  for (auto t : cron::next_n(parse_ok(expr), tz, at(from), n))
    result.push_back(cron::format_rfc3339(t, tz));
  return result;
}

/// Every run in [from, to), as RFC 3339 in `tz_name`.
std::vector<std::string>
runs_between(std::string_view expr, std::string_view tz_name,
             std::string_view from, std::string_view to) {
  auto* tz = zone(tz_name);
  auto s = parse_ok(expr);
  auto end = at(to);
  std::vector<std::string> result;
  for (auto t = cron::next(s, tz, at(from) - 1s); t && *t < end;
       t = cron::next(s, tz, *t))
    result.push_back(cron::format_rfc3339(*t, tz));
  return result;
}

size_t count_containing(const std::vector<std::string>& xs,
                        std::string_view needle) {
  return static_cast<size_t>(std::count_if(xs.begin(), xs.end(), [&](auto& x) {
    return x.find(needle) != std::string::npos;
  }));
}

template <class Int>
std::vector<int> bits_of(Int bits) {
  std::vector<int> result;
  for (int i = 0; i < static_cast<int>(sizeof(Int) * 8); ++i)
    if ((static_cast<uint64_t>(bits) >> i) & 1)
      result.push_back(i);
  return result;
}

using ints = std::vector<int>;
using strings = std::vector<std::string>;

} // namespace

// -- parsing -----------------------------------------------------------------

TEST(cron_parse, fields_lists_ranges_and_steps) {
  auto s = parse_ok("5,10-12 */6 1-31/10 JAN,mar-May mon-FRI");
  EXPECT_EQ(bits_of(s.minutes), (ints{5, 10, 11, 12}));
  EXPECT_EQ(bits_of(s.hours), (ints{0, 6, 12, 18}));
  EXPECT_EQ(bits_of(s.days_of_month), (ints{1, 11, 21, 31}));
  EXPECT_EQ(bits_of(s.months), (ints{1, 3, 4, 5}));
  EXPECT_EQ(bits_of(s.days_of_week), (ints{1, 2, 3, 4, 5}));
  EXPECT_FALSE(s.dom_star);
  EXPECT_FALSE(s.dow_star);
  EXPECT_FALSE(s.fixed_time); // the hour field starts with `*`
  EXPECT_EQ(s.text, "5,10-12 */6 1-31/10 JAN,mar-May mon-FRI");
}

TEST(cron_parse, steps) {
  EXPECT_EQ(bits_of(parse_ok("*/15 * * * *").minutes), (ints{0, 15, 30, 45}));
  EXPECT_EQ(bits_of(parse_ok("10-50/20 * * * *").minutes), (ints{10, 30, 50}));
  EXPECT_EQ(bits_of(parse_ok("7-9/1 * * * *").minutes), (ints{7, 8, 9}));
  // A step beyond the range leaves its first value.
  EXPECT_EQ(bits_of(parse_ok("*/100 * * * *").minutes), (ints{0}));
  EXPECT_EQ(bits_of(parse_ok("0 0 */10 * *").days_of_month),
            (ints{1, 11, 21, 31}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * */5 *").months), (ints{1, 6, 11}));
  // Day-of-week `*` is 0-7: */2 = 0,2,4,6 and */7 = 0,7 = Sunday.
  EXPECT_EQ(bits_of(parse_ok("0 0 * * */2").days_of_week), (ints{0, 2, 4, 6}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * */7").days_of_week), (ints{0}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 1-7/2").days_of_week),
            (ints{0, 1, 3, 5}));
}

TEST(cron_parse, names_are_case_insensitive) {
  auto a = parse_ok("0 0 * jAn,FEB,dec sUn,Mon,SAT");
  auto b = parse_ok("0 0 * 1,2,12 0,1,6");
  EXPECT_EQ(a.months, b.months);
  EXPECT_EQ(a.days_of_week, b.days_of_week);
  EXPECT_EQ(parse_ok("0 0 * JUL-sep *").months, parse_ok("0 0 * 7-9 *").months);
  EXPECT_EQ(parse_ok("0 0 * * tue-THU").days_of_week,
            parse_ok("0 0 * * 2-4").days_of_week);
}

TEST(cron_parse, sunday_is_zero_and_seven) {
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 0").days_of_week), (ints{0}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 7").days_of_week), (ints{0}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * SUN").days_of_week), (ints{0}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 5-7").days_of_week), (ints{0, 5, 6}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 0-6").days_of_week),
            (ints{0, 1, 2, 3, 4, 5, 6}));
}

TEST(cron_parse, day_of_week_range_ending_on_sunday) {
  EXPECT_EQ(bits_of(parse_ok("0 0 * * FRI-SUN").days_of_week), (ints{0, 5, 6}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 5-0").days_of_week), (ints{0, 5, 6}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * 6-0").days_of_week), (ints{0, 6}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * fri-sun/2").days_of_week), (ints{0, 5}));
  EXPECT_EQ(bits_of(parse_ok("0 0 * * MON-SUN").days_of_week),
            (ints{0, 1, 2, 3, 4, 5, 6}));
  // SUN-SUN (0-0) stays Sunday rather than becoming 0-7.
  EXPECT_EQ(bits_of(parse_ok("0 0 * * SUN-SUN").days_of_week), (ints{0}));
}

TEST(cron_parse, star_flags_and_fixed_time) {
  auto s = parse_ok("30 2 * * *");
  EXPECT_TRUE(s.fixed_time);
  EXPECT_TRUE(s.dom_star);
  EXPECT_TRUE(s.dow_star);
  EXPECT_FALSE(parse_ok("*/15 2 * * *").fixed_time);
  EXPECT_FALSE(parse_ok("30 * * * *").fixed_time);
  EXPECT_FALSE(parse_ok("30 */2 * * *").fixed_time);
  // Only the first character counts, as in cronie.
  EXPECT_TRUE(parse_ok("0-59 2 * * *").fixed_time);
  EXPECT_TRUE(parse_ok("5,* 2 * * *").fixed_time);
  auto t = parse_ok("0 0 */2,5 * 1-5");
  EXPECT_TRUE(t.dom_star);
  EXPECT_FALSE(t.dow_star);
  EXPECT_FALSE(parse_ok("0 0 1-31 * 1").dom_star);
}

TEST(cron_parse, whitespace_between_and_around_fields) {
  auto s = parse_ok("  30\t2   *  * *\n");
  EXPECT_EQ(s.text, "30\t2   *  * *");
  EXPECT_EQ(bits_of(s.minutes), (ints{30}));
  EXPECT_EQ(bits_of(s.hours), (ints{2}));
}

TEST(cron_parse, aliases) {
  struct alias_case {
    std::string alias;
    std::string expansion;
  };
  for (auto& [alias, expansion] : std::vector<alias_case>{
         {"@hourly", "0 * * * *"},
         {"@daily", "0 0 * * *"},
         {"@midnight", "0 0 * * *"},
         {"@weekly", "0 0 * * 0"},
         {"@monthly", "0 0 1 * *"},
         {"@yearly", "0 0 1 1 *"},
         {"@annually", "0 0 1 1 *"},
         {"@DAILY", "0 0 * * *"},
         {" @Weekly ", "0 0 * * 0"},
       }) {
    auto a = parse_ok(alias);
    auto b = parse_ok(expansion);
    EXPECT_EQ(a.minutes, b.minutes) << alias;
    EXPECT_EQ(a.hours, b.hours) << alias;
    EXPECT_EQ(a.days_of_month, b.days_of_month) << alias;
    EXPECT_EQ(a.months, b.months) << alias;
    EXPECT_EQ(a.days_of_week, b.days_of_week) << alias;
    EXPECT_EQ(a.dom_star, b.dom_star) << alias;
    EXPECT_EQ(a.dow_star, b.dow_star) << alias;
    EXPECT_EQ(a.fixed_time, b.fixed_time) << alias;
    b.text = a.text;
    EXPECT_EQ(a, b) << alias;
    EXPECT_EQ(a.text, alias.substr(alias.find('@'), alias.find_last_not_of(' ')
                                                      - alias.find('@') + 1));
  }
  // @hourly is a wildcard entry (its hour field is `*`), the others fixed.
  EXPECT_FALSE(parse_ok("@hourly").fixed_time);
  EXPECT_TRUE(parse_ok("@daily").fixed_time);
  EXPECT_EQ(
    runs("@weekly", "UTC", "2024-03-01T00:00:00Z", 2),
    (strings{"2024-03-03T00:00:00+00:00", "2024-03-10T00:00:00+00:00"}));
}

TEST(cron_parse, refusals_name_the_field_and_the_reason) {
  struct refusal_case {
    std::string expr;
    std::string expected;
  };
  for (
    auto& [expr, expected] : std::vector<refusal_case>{
      // Out of range.
      {"60 * * * *", "minute: 60 is out of range 0-59"},
      {"* 24 * * *", "hour: 24 is out of range 0-23"},
      {"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
      {"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
      {"* * * 0 *", "month: 0 is out of range 1-12"},
      {"* * * 13 *", "month: 13 is out of range 1-12"},
      {"0 0 * * 8", "day-of-week: 8 is out of range 0-7"},
      {"0-60 * * * *", "minute: 60 is out of range 0-59"},
      {"99999999999 * * * *", "minute: 99999999999 is out of range 0-59"},
      // Reversed ranges.
      {"30-10 * * * *", "minute: range 30-10 is reversed"},
      {"* * * DEC-JAN *", "month: range DEC-JAN is reversed"},
      {"* * * * SAT-MON", "day-of-week: range SAT-MON is reversed"},
      {"* * * * 7-1", "day-of-week: range 7-1 is reversed"},
      // A step without a range.
      {"5/15 * * * *",
       "minute: '5/15' has a step but no range (write 5-59/15 or */15)"},
      {"0 0 * * MON/2",
       "day-of-week: 'MON/2' has a step but no range (write MON-7/2 or */2)"},
      // Step 0 and bad steps.
      {"*/0 * * * *",
       "minute: step 0 in '*/0' is not allowed (the step must be 1 or more)"},
      {"0 1-10/0 * * *",
       "hour: step 0 in '1-10/0' is not allowed (the step must be 1 or more)"},
      {"*/ * * * *", "minute: missing step after '/' in '*/'"},
      {"/5 * * * *", "minute: missing value before '/' in '/5'"},
      {"*/x * * * *", "minute: step 'x' in '*/x' is not a whole number"},
      {"*/5/2 * * * *", "minute: step '5/2' in '*/5/2' is not a whole number"},
      {"0 0 * * */MON",
       "day-of-week: step 'MON' in '*/MON' is not a whole number"},
      // Empty list items.
      {"1,,2 * * * *", "minute: empty item in list '1,,2'"},
      {"1, * * * *", "minute: empty item in list '1,'"},
      {"0 ,3 * * *", "hour: empty item in list ',3'"},
      // `?`.
      {"0 0 ? * MON", "day-of-month: '?' is not supported; use '*'"},
      {"0 0 1 * ?", "day-of-week: '?' is not supported; use '*'"},
      // Field count.
      {"* * * *",
       "expression: expected 5 fields (minute hour day-of-month month "
       "day-of-week), got 4"},
      {"0 * * * * *",
       "expression: expected 5 fields (minute hour day-of-month month "
       "day-of-week), got 6"},
      {"", "expression: empty; expected 5 fields (minute hour day-of-month "
           "month day-of-week) or an alias such as @daily"},
      {"   ", "expression: empty; expected 5 fields (minute hour "
              "day-of-month month day-of-week) or an alias such as @daily"},
      // Garbage.
      {"abc * * * *", "minute: 'abc' is not a number 0-59"},
      {"1.5 * * * *", "minute: '1.5' is not a number 0-59"},
      {"-5 * * * *", "minute: missing start of range in '-5' (negative "
                     "values do not exist)"},
      {"5- * * * *", "minute: missing end of range in '5-'"},
      {"1-2-3 * * * *", "minute: unexpected '-' in '1-2-3'"},
      {"*-5 * * * *", "minute: '*' is not a number 0-59"},
      {"0 0 L * *", "day-of-month: 'L' is not a number 1-31"},
      {"0 0 * * 5#2", "day-of-week: '5#2' is not a number 0-7"},
      {"0 0 * JANUARY *",
       "month: 'JANUARY' is neither a number 1-12 nor a name JAN-DEC"},
      {"0 0 * * MONDAY",
       "day-of-week: 'MONDAY' is neither a number 0-7 nor a name SUN-SAT"},
      {"0 0 * * JAN",
       "day-of-week: 'JAN' is neither a number 0-7 nor a name SUN-SAT"},
      {"0 0 * MON *",
       "month: 'MON' is neither a number 1-12 nor a name JAN-DEC"},
      {"0 0 SUN * *", "day-of-month: 'SUN' is not a number 1-31"},
      // Aliases.
      {"@reboot",
       "expression: @reboot is not supported (there is no boot to run at)"},
      {"@fortnightly",
       "expression: unknown alias @fortnightly (expected @hourly, @daily, "
       "@midnight, @weekly, @monthly, @yearly or @annually)"},
      {"@daily 5", "expression: unexpected '5' after @daily (an alias "
                   "stands alone)"},
      // Never fires: refused at validation.
      {"0 0 30 2 *", "day-of-month: day 30 never occurs in month 2; the "
                     "expression can never fire"},
      {"0 0 31 4,6,9,11 *", "day-of-month: day 31 never occurs in month "
                            "4,6,9,11; the expression can never fire"},
      {"0 0 30,31 FEB *", "day-of-month: day 30,31 never occurs in month "
                          "FEB; the expression can never fire"},
      // `*/7` starts with `*`: both day fields must match, so it is
      // still impossible.
      {"0 0 31 apr */7", "day-of-month: day 31 never occurs in month apr; "
                         "the expression can never fire"},
    }) {
    EXPECT_EQ(refusal(expr), expected) << expr;
  }
}

TEST(cron_parse, unusual_but_possible_days_are_accepted) {
  // Either day field may match: Mondays in February.
  EXPECT_EQ(
    runs("0 0 30 2 mon", "UTC", "2024-01-01T00:00:00Z", 2),
    (strings{"2024-02-05T00:00:00+00:00", "2024-02-12T00:00:00+00:00"}));
  // Only the 31st of March.
  EXPECT_EQ(
    runs("0 0 31 2,3 *", "UTC", "2024-01-01T00:00:00Z", 2),
    (strings{"2024-03-31T00:00:00+00:00", "2025-03-31T00:00:00+00:00"}));
}

// -- the day rule ------------------------------------------------------------

TEST(cron_day_rule, either_day_field_may_match_when_neither_starts_with_star) {
  // March 2024: the 1st and the 15th are Fridays; Sundays are 3, 10, 17,
  // 24, 31.
  EXPECT_EQ(runs_between("0 0 1,15 * sun", "UTC", "2024-03-01T00:00:00Z",
                         "2024-04-01T00:00:00Z"),
            (strings{"2024-03-01T00:00:00+00:00", "2024-03-03T00:00:00+00:00",
                     "2024-03-10T00:00:00+00:00", "2024-03-15T00:00:00+00:00",
                     "2024-03-17T00:00:00+00:00", "2024-03-24T00:00:00+00:00",
                     "2024-03-31T00:00:00+00:00"}));
}

TEST(cron_day_rule, both_must_match_when_one_starts_with_star) {
  // Saturdays in March 2024: 2, 9, 16, 23, 30; `*/2` = odd days.
  EXPECT_EQ(
    runs_between("0 16 */2 * sat", "UTC", "2024-03-01T00:00:00Z",
                 "2024-04-01T00:00:00Z"),
    (strings{"2024-03-09T16:00:00+00:00", "2024-03-23T16:00:00+00:00"}));
  // The same days written without `*` mean odd days *or* Saturdays.
  auto either = runs_between("0 16 1-31/2 * sat", "UTC", "2024-03-01T00:00:00Z",
                             "2024-04-01T00:00:00Z");
  EXPECT_EQ(either.size(), 16u + 3u); // 16 odd days, Saturdays 2, 16, 30
  // Over a whole year every run is an odd day that is a Saturday.
  auto s = parse_ok("0 16 */2 * sat");
  auto* utc = zone("UTC");
  auto all = cron::next_n(s, utc, at("2024-01-01T00:00:00Z"), 1000,
                          std::chrono::hours{24 * 366});
  EXPECT_EQ(all.size(), 26u); // 52 Saturdays in 2024, half on odd days
  for (auto t : all) {
    date::year_month_day ymd{date::floor<date::days>(t)};
    EXPECT_EQ(static_cast<unsigned>(ymd.day()) % 2, 1u);
    EXPECT_EQ(date::weekday{date::sys_days{ymd}}, date::Saturday);
  }
}

// -- next: plain cases -------------------------------------------------------

TEST(cron_next, is_strictly_after_the_given_instant) {
  auto s = parse_ok("0 * * * *");
  auto* utc = zone("UTC");
  EXPECT_EQ(cron::next(s, utc, at("2024-05-01T10:00:00Z")),
            at("2024-05-01T11:00:00Z"));
  EXPECT_EQ(cron::next(s, utc, at("2024-05-01T09:59:59Z")),
            at("2024-05-01T10:00:00Z"));
  EXPECT_EQ(cron::next(s, utc, at("2024-05-01T10:00:30Z")),
            at("2024-05-01T11:00:00Z"));
  EXPECT_EQ(cron::next(parse_ok("* * * * *"), utc, at("2024-05-01T10:00:00Z")),
            at("2024-05-01T10:01:00Z"));
}

TEST(cron_next, crosses_days_months_and_years) {
  EXPECT_EQ(
    runs("59 23 31 12 *", "UTC", "2024-06-01T00:00:00Z", 2),
    (strings{"2024-12-31T23:59:00+00:00", "2025-12-31T23:59:00+00:00"}));
  EXPECT_EQ(
    runs("0 9 * * MON-FRI", "UTC", "2024-03-08T09:00:00Z", 2),
    (strings{"2024-03-11T09:00:00+00:00", "2024-03-12T09:00:00+00:00"}));
  EXPECT_EQ(runs("15 10 1 */3 *", "Europe/Berlin", "2024-02-01T00:00:00Z", 3),
            (strings{"2024-04-01T10:15:00+02:00", "2024-07-01T10:15:00+02:00",
                     "2024-10-01T10:15:00+02:00"}));
}

TEST(cron_next, leap_day) {
  EXPECT_EQ(
    runs("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", 2),
    (strings{"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"}));
  // 2100 is not a leap year.
  EXPECT_EQ(runs("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1),
            (strings{"2104-02-29T00:00:00+00:00"}));
  // A Sunday 29 February: 2004, then 2032 (28 years later), then 2060.
  EXPECT_EQ(
    runs("0 0 29 2 */7", "UTC", "2004-03-01T00:00:00Z", 2),
    (strings{"2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00"}));
  // Across 2100 (no leap day) the gap is 40 years: 2088, then 2128. Why the
  // default horizon is a whole 400-year cycle.
  EXPECT_EQ(runs("0 0 29 2 */7", "UTC", "2088-03-01T00:00:00Z", 1),
            (strings{"2128-02-29T00:00:00+00:00"}));
}

TEST(cron_next, is_bounded_for_schedules_that_never_fire) {
  auto* utc = zone("UTC");
  // parse refuses these; a schedule built by hand gets no run, quickly.
  auto s = parse_ok("0 0 1 2 *");
  s.days_of_month = 1u << 30; // 30 February
  EXPECT_EQ(cron::next(s, utc, at("2024-01-01T00:00:00Z")), std::nullopt);
  EXPECT_EQ(cron::next(s, zone("America/New_York"), at("2024-01-01T00:00:00Z")),
            std::nullopt);
  EXPECT_TRUE(cron::next_n(s, utc, at("2024-01-01T00:00:00Z"), 5).empty());
  auto empty = parse_ok("* * * * *");
  empty.minutes = 0;
  EXPECT_EQ(cron::next(empty, utc, at("2024-01-01T00:00:00Z")), std::nullopt);
  // Null zone.
  EXPECT_EQ(cron::next(parse_ok("* * * * *"), nullptr,
                       at("2024-01-01T00:00:00Z")),
            std::nullopt);
  // A shorter horizon.
  auto yearly = parse_ok("@yearly");
  EXPECT_EQ(cron::next(yearly, utc, at("2024-01-01T00:00:00Z"), 24h * 365),
            std::nullopt);
  EXPECT_EQ(cron::next(yearly, utc, at("2024-01-01T00:00:00Z"), 24h * 366),
            at("2025-01-01T00:00:00Z"));
  EXPECT_EQ(cron::next_n(yearly, utc, at("2024-06-01T00:00:00Z"), 10,
                         24h * 365 * 3)
              .size(),
            3u);
}

// -- next: clock changes -----------------------------------------------------

TEST(cron_dst, fixed_time_in_a_spring_gap_fires_once_at_the_transition) {
  // New York, 2024-03-10: 02:00 EST becomes 03:00 EDT (07:00Z).
  EXPECT_EQ(runs("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", 3),
            (strings{"2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00",
                     "2024-03-12T02:30:00-04:00"}));
  auto s = parse_ok("30 2 * * *");
  auto* ny = zone("America/New_York");
  EXPECT_EQ(cron::next(s, ny, at("2024-03-10T06:59:59Z")),
            at("2024-03-10T07:00:00Z"));
  // Strictly after the transition: the next day.
  EXPECT_EQ(cron::next(s, ny, at("2024-03-10T07:00:00Z")),
            at("2024-03-11T06:30:00Z"));
  // Several matches in the gap coalesce into one run.
  EXPECT_EQ(runs("0,15,30,45 2 * * *", "America/New_York",
                 "2024-03-10T06:00:00Z", 3),
            (strings{"2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00",
                     "2024-03-11T02:15:00-04:00"}));
  // A match right at the transition (03:00) is the same run.
  EXPECT_EQ(
    runs("0 2,3 * * *", "America/New_York", "2024-03-10T06:00:00Z", 2),
    (strings{"2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00"}));
  // Times around the gap are untouched.
  EXPECT_EQ(runs("59 1 * * *", "America/New_York", "2024-03-10T05:00:00Z", 1),
            (strings{"2024-03-10T01:59:00-05:00"}));
}

TEST(cron_dst,
     fixed_time_repeated_in_the_fall_fires_once_at_its_first_occurrence) {
  // New York, 2024-11-03: 02:00 EDT becomes 01:00 EST (06:00Z); 01:30
  // happens at 05:30Z and again at 06:30Z.
  EXPECT_EQ(
    runs("30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z", 2),
    (strings{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}));
  auto s = parse_ok("30 1 * * *");
  auto* ny = zone("America/New_York");
  EXPECT_EQ(cron::next(s, ny, at("2024-11-03T05:30:00Z")),
            at("2024-11-04T06:30:00Z"));
  // From inside the second pass, too.
  EXPECT_EQ(cron::next(s, ny, at("2024-11-03T06:10:00Z")),
            at("2024-11-04T06:30:00Z"));
  EXPECT_EQ(runs("0 2 * * *", "America/New_York", "2024-11-02T12:00:00Z", 1),
            (strings{"2024-11-03T02:00:00-05:00"}));
}

TEST(cron_dst, wildcard_entries_skip_the_gap_and_repeat_the_hour) {
  // Local 2024-03-10 has 23 hours: 92 quarter hours, none at 02:xx.
  auto spring = runs_between("*/15 * * * *", "America/New_York",
                             "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z");
  EXPECT_EQ(spring.size(), 92u);
  EXPECT_EQ(count_containing(spring, "T02:"), 0u);
  EXPECT_EQ(spring[7], "2024-03-10T01:45:00-05:00");
  EXPECT_EQ(spring[8], "2024-03-10T03:00:00-04:00");
  // Local 2024-11-03 has 25 hours: 100 quarter hours, 01:xx twice.
  auto fall = runs_between("*/15 * * * *", "America/New_York",
                           "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z");
  EXPECT_EQ(fall.size(), 100u);
  for (auto minute : {"T01:00:00", "T01:15:00", "T01:30:00", "T01:45:00"}) {
    EXPECT_EQ(count_containing(fall, minute), 2u) << minute;
    EXPECT_EQ(count_containing(fall, std::string{minute} + "-04:00"), 1u);
    EXPECT_EQ(count_containing(fall, std::string{minute} + "-05:00"), 1u);
  }
  EXPECT_EQ(count_containing(fall, "T02:00:00"), 1u);
  // A fixed minute with a `*` hour is a wildcard entry too.
  EXPECT_EQ(
    runs("30 * * * *", "America/New_York", "2024-03-10T06:00:00Z", 2),
    (strings{"2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00"}));
  auto hourly = runs_between("@hourly", "America/New_York",
                             "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z");
  EXPECT_EQ(hourly.size(), 25u);
  EXPECT_EQ(count_containing(hourly, "T01:00:00"), 2u);
}

TEST(cron_dst, europe_london) {
  // 2024-03-31 01:00 GMT becomes 02:00 BST; 2024-10-27 02:00 BST becomes
  // 01:00 GMT.
  EXPECT_EQ(
    runs("30 1 * * *", "Europe/London", "2024-03-30T12:00:00Z", 2),
    (strings{"2024-03-31T02:00:00+01:00", "2024-04-01T01:30:00+01:00"}));
  EXPECT_EQ(
    runs("30 1 * * *", "Europe/London", "2024-10-26T12:00:00Z", 2),
    (strings{"2024-10-27T01:30:00+01:00", "2024-10-28T01:30:00+00:00"}));
}

TEST(cron_dst, lord_howe_half_hour_shift) {
  // Australia/Lord_Howe: +10:30 standard, +11:00 summer time. 2024-10-06
  // 02:00 becomes 02:30 (15:30Z on the 5th); 2024-04-07 02:00 becomes 01:30
  // (15:00Z on the 6th).
  EXPECT_EQ(
    runs("15 2 * * *", "Australia/Lord_Howe", "2024-10-05T00:00:00Z", 2),
    (strings{"2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00"}));
  EXPECT_EQ(cron::next(parse_ok("15 2 * * *"), zone("Australia/Lord_Howe"),
                       at("2024-10-05T00:00:00Z")),
            at("2024-10-05T15:30:00Z"));
  EXPECT_EQ(
    runs("45 1 * * *", "Australia/Lord_Howe", "2024-04-06T00:00:00Z", 2),
    (strings{"2024-04-07T01:45:00+11:00", "2024-04-08T01:45:00+10:30"}));
  auto fall = runs_between("*/15 * * * *", "Australia/Lord_Howe",
                           "2024-04-06T13:00:00Z", "2024-04-06T17:00:00Z");
  EXPECT_EQ(count_containing(fall, "T01:30:00"), 2u);
  EXPECT_EQ(count_containing(fall, "T01:45:00"), 2u);
  EXPECT_EQ(count_containing(fall, "T01:15:00"), 1u);
  auto spring = runs_between("*/15 * * * *", "Australia/Lord_Howe",
                             "2024-10-05T14:00:00Z", "2024-10-05T17:00:00Z");
  EXPECT_EQ(count_containing(spring, "T02:00:00"), 0u);
  EXPECT_EQ(count_containing(spring, "T02:15:00"), 0u);
  EXPECT_EQ(count_containing(spring, "T02:30:00+11:00"), 1u);
}

TEST(cron_jump, a_forward_jump_of_a_day_is_not_caught_up) {
  // Pacific/Apia skipped 2011-12-30: -10:00 became +14:00 at 10:00Z
  // (local 2011-12-30 00:00 became 2011-12-31 00:00).
  EXPECT_EQ(
    runs("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z", 2),
    (strings{"2011-12-29T12:00:00-10:00", "2011-12-31T12:00:00+14:00"}));
  EXPECT_EQ(cron::next(parse_ok("0 12 * * *"), zone("Pacific/Apia"),
                       at("2011-12-29T22:00:00Z")),
            at("2011-12-30T22:00:00Z"));
  // The whole day is gone, not fired at the transition.
  EXPECT_EQ(runs("0 6 30 12 *", "Pacific/Apia", "2011-12-01T00:00:00Z", 1),
            (strings{"2012-12-30T06:00:00+14:00"}));
  // Pacific/Kwajalein, 1993-08-21 12:00Z: -12:00 became +12:00 (local
  // 1993-08-21 never happened).
  EXPECT_EQ(
    runs("0 12 * * *", "Pacific/Kwajalein", "1993-08-20T00:00:00Z", 2),
    (strings{"1993-08-20T12:00:00-12:00", "1993-08-22T12:00:00+12:00"}));
}

TEST(cron_jump, a_backward_jump_of_three_hours_runs_fixed_times_again) {
  // Antarctica/Casey, 2010-03-04 15:00Z: +11:00 became +08:00, so local
  // 23:00-02:00 repeats. As cronie does for jumps of 3 hours or more, the
  // new time is taken as it is: 01:00 runs in both passes.
  EXPECT_EQ(runs("0 1 * * *", "Antarctica/Casey", "2010-03-04T00:00:00Z", 3),
            (strings{"2010-03-05T01:00:00+11:00", "2010-03-05T01:00:00+08:00",
                     "2010-03-06T01:00:00+08:00"}));
}

// -- randomized cross-check against a naive reference -------------------------

namespace {

/// One random field: its text and the values it stands for.
struct random_field {
  std::string text;
  std::array<bool, 60> values{};
};

/// A deterministic generator (std::mt19937's output is fixed by the
/// standard; distributions are not, so plain modulo is used).
struct generator {
  std::mt19937 rng{20240310};

  int below(int n) {
    return static_cast<int>(rng() % static_cast<uint32_t>(n));
  }

  random_field field(int low, int high, bool day_of_week, bool force_star) {
    random_field result;
    auto items = 1 + below(3);
    for (int i = 0; i < items; ++i) {
      if (i > 0)
        result.text += ',';
      // `*` itself only first: later it would swallow the list.
      auto kind = i == 0 ? (force_star ? below(2) : below(5)) : 1 + below(4);
      int first = low;
      int last = high;
      int step = 1;
      switch (kind) {
        case 0: // *
          result.text += "*";
          break;
        case 1: // */s
          step = 1 + below(high - low + 2);
          result.text += "*/" + std::to_string(step);
          break;
        case 2: // n
          first = last = low + below(high - low + 1);
          result.text += std::to_string(first);
          break;
        default: { // a-b or a-b/s
          first = low + below(high - low + 1);
          last = first + below(high - first + 1);
          result.text += std::to_string(first) + "-" + std::to_string(last);
          if (kind == 4) {
            step = 1 + below(high - low + 1);
            result.text += "/" + std::to_string(step);
          }
        }
      }
      for (int v = first; v <= last; v += step)
        result.values[day_of_week && v == 7 ? 0 : v] = true;
    }
    return result;
  }
};

/// The wall-clock fields of one minute.
struct civil_minute {
  sys_seconds utc;
  uint8_t minute, hour, day, month, weekday;
};

/// Every UTC minute of [from, to) with its wall clock in `tz`.
std::vector<civil_minute> minutes_of(const date::time_zone* tz,
                                     sys_seconds from, sys_seconds to) {
  std::vector<civil_minute> result;
  for (auto t = from; t < to; t += 60s) {
    auto local = tz->to_local(t);
    auto day = date::floor<date::days>(local);
    date::year_month_day ymd{day};
    date::hh_mm_ss<std::chrono::seconds> hms{local - day};
    result.push_back({t, static_cast<uint8_t>(hms.minutes().count()),
                      static_cast<uint8_t>(hms.hours().count()),
                      static_cast<uint8_t>(static_cast<unsigned>(ymd.day())),
                      static_cast<uint8_t>(static_cast<unsigned>(ymd.month())),
                      static_cast<uint8_t>(date::weekday{day}.c_encoding())});
  }
  return result;
}

} // namespace

TEST(cron_cross_check, random_wildcard_entries_match_a_minute_by_minute_scan) {
  const auto from = at("2024-01-01T00:00:00Z");
  const auto to = at("2025-01-01T00:00:00Z");
  struct zone_minutes {
    const date::time_zone* tz;
    std::vector<civil_minute> minutes;
  };
  std::vector<zone_minutes> zones;
  for (auto name : {"UTC", "America/New_York", "Australia/Lord_Howe"}) {
    auto* tz = zone(name);
    zones.push_back({tz, minutes_of(tz, from, to)});
  }
  generator gen;
  size_t accepted = 0;
  for (int i = 0; i < 50; ++i) {
    // Minute or hour starts with `*`: a wildcard entry, whose runs are
    // exactly the real minutes whose wall clock matches.
    auto star_in_minute = gen.below(2) == 0;
    auto minute = gen.field(0, 59, false, star_in_minute);
    auto hour = gen.field(0, 23, false, !star_in_minute);
    auto dom = gen.field(1, 31, false, false);
    auto month = gen.field(1, 12, false, false);
    auto dow = gen.field(0, 7, true, false);
    auto expr = minute.text + " " + hour.text + " " + dom.text + " "
                + month.text + " " + dow.text;
    auto both = dom.text.front() == '*' || dow.text.front() == '*';
    auto reference_matches = [&](const civil_minute& m) {
      auto day_ok = both ? dom.values[m.day] && dow.values[m.weekday]
                         : dom.values[m.day] || dow.values[m.weekday];
      return minute.values[m.minute] && hour.values[m.hour]
             && month.values[m.month] && day_ok;
    };
    auto parsed = cron::parse(expr);
    if (auto* err = std::get_if<cron::parse_error>(&parsed)) {
      // Refused only when it can never fire.
      EXPECT_EQ(err->field, "day-of-month") << expr << ": " << err->to_string();
      for (auto& m : zones[0].minutes)
        ASSERT_FALSE(reference_matches(m)) << expr;
      continue;
    }
    ++accepted;
    auto& s = std::get<cron::schedule>(parsed);
    ASSERT_FALSE(s.fixed_time) << expr;
    for (auto& [tz, minutes] : zones) {
      std::vector<sys_seconds> expected;
      for (auto& m : minutes)
        if (reference_matches(m))
          expected.push_back(m.utc);
      std::vector<sys_seconds> actual;
      for (auto t = cron::next(s, tz, from - 1s); t && *t < to;
           t = cron::next(s, tz, *t))
        actual.push_back(*t);
      ASSERT_EQ(actual, expected) << expr << " in " << tz->name();
    }
  }
  EXPECT_GE(accepted, 40u);
}

TEST(cron_cross_check, random_fixed_entries_in_utc_match_a_scan) {
  // Without clock changes, fixed-time entries obey the same scan.
  const auto from = at("2024-01-01T00:00:00Z");
  const auto to = at("2025-01-01T00:00:00Z");
  auto* utc = zone("UTC");
  auto minutes = minutes_of(utc, from, to);
  generator gen;
  gen.rng.seed(42);
  for (int i = 0; i < 20; ++i) {
    auto minute = gen.field(0, 59, false, false);
    auto hour = gen.field(0, 23, false, false);
    if (minute.text.front() == '*' || hour.text.front() == '*')
      continue;
    auto dom = gen.field(1, 31, false, false);
    auto month = gen.field(1, 12, false, false);
    auto dow = gen.field(0, 7, true, false);
    auto expr = minute.text + " " + hour.text + " " + dom.text + " "
                + month.text + " " + dow.text;
    auto parsed = cron::parse(expr);
    if (!std::holds_alternative<cron::schedule>(parsed))
      continue;
    auto& s = std::get<cron::schedule>(parsed);
    EXPECT_TRUE(s.fixed_time);
    auto both = dom.text.front() == '*' || dow.text.front() == '*';
    std::vector<sys_seconds> expected;
    for (auto& m : minutes) {
      auto day_ok = both ? dom.values[m.day] && dow.values[m.weekday]
                         : dom.values[m.day] || dow.values[m.weekday];
      if (minute.values[m.minute] && hour.values[m.hour]
          && month.values[m.month] && day_ok)
        expected.push_back(m.utc);
    }
    std::vector<sys_seconds> actual;
    for (auto t = cron::next(s, utc, from - 1s); t && *t < to;
         t = cron::next(s, utc, *t))
      actual.push_back(*t);
    ASSERT_EQ(actual, expected) << expr;
  }
}

TEST(cron_cross_check, random_fixed_entries_match_a_local_time_reference) {
  // A reference that goes the other way round: every matching wall-clock
  // minute, mapped to real instants by the tz database. A unique time runs
  // once; a skipped one runs at the transition if the jump is under 3 hours;
  // a repeated one runs at its first occurrence, and again if the jump is
  // 3 hours or more.
  struct window {
    std::string zone;
    std::string from;
    std::string to;
  };
  const std::vector<window> windows{
    {"America/New_York", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
    {"Europe/London", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
    {"Australia/Lord_Howe", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
    {"Pacific/Apia", "2011-06-01T00:00:00Z", "2012-06-01T00:00:00Z"},
    {"Antarctica/Casey", "2009-06-01T00:00:00Z", "2010-06-01T00:00:00Z"},
  };
  generator gen;
  gen.rng.seed(7);
  int checked = 0;
  while (checked < 25) {
    auto minute = gen.field(0, 59, false, false);
    auto hour = gen.field(0, 23, false, false);
    auto dom = gen.field(1, 31, false, false);
    auto month = gen.field(1, 12, false, false);
    auto dow = gen.field(0, 7, true, false);
    if (minute.text.front() == '*' || hour.text.front() == '*')
      continue;
    auto expr = minute.text + " " + hour.text + " " + dom.text + " "
                + month.text + " " + dow.text;
    auto parsed = cron::parse(expr);
    if (!std::holds_alternative<cron::schedule>(parsed))
      continue;
    ++checked;
    auto& s = std::get<cron::schedule>(parsed);
    ASSERT_TRUE(s.fixed_time) << expr;
    auto both = dom.text.front() == '*' || dow.text.front() == '*';
    for (auto& w : windows) {
      auto* tz = zone(w.zone);
      auto from = at(w.from);
      auto to = at(w.to);
      std::vector<sys_seconds> expected;
      auto first_day = date::floor<date::days>(tz->to_local(from))
                       - date::days{1};
      auto last_day = date::floor<date::days>(tz->to_local(to)) + date::days{1};
      for (auto day = first_day; day <= last_day; day += date::days{1}) {
        date::year_month_day ymd{day};
        auto d = static_cast<unsigned>(ymd.day());
        auto wd = date::weekday{day}.c_encoding();
        auto day_ok = both ? dom.values[d] && dow.values[wd]
                           : dom.values[d] || dow.values[wd];
        if (!day_ok || !month.values[static_cast<unsigned>(ymd.month())])
          continue;
        for (int h = 0; h < 24; ++h) {
          if (!hour.values[h])
            continue;
          for (int m = 0; m < 60; ++m) {
            if (!minute.values[m])
              continue;
            auto local = date::local_seconds{day} + std::chrono::hours{h}
                         + std::chrono::minutes{m};
            auto info = tz->get_info(local);
            auto instant = [&](const date::sys_info& i) {
              return sys_seconds{local.time_since_epoch() - i.offset};
            };
            switch (info.result) {
              case date::local_info::unique:
                expected.push_back(instant(info.first));
                break;
              case date::local_info::nonexistent:
                if (info.second.offset - info.first.offset < 3h)
                  expected.push_back(info.second.begin);
                break;
              case date::local_info::ambiguous:
                expected.push_back(instant(info.first));
                if (info.first.offset - info.second.offset >= 3h)
                  expected.push_back(instant(info.second));
                break;
            }
          }
        }
      }
      std::sort(expected.begin(), expected.end());
      expected.erase(std::unique(expected.begin(), expected.end()),
                     expected.end());
      std::erase_if(expected,
                    [&](sys_seconds t) { return t < from || t >= to; });
      std::vector<sys_seconds> actual;
      for (auto t = cron::next(s, tz, from - 1s); t && *t < to;
           t = cron::next(s, tz, *t))
        actual.push_back(*t);
      ASSERT_EQ(actual, expected) << expr << " in " << w.zone;
    }
  }
}

// -- zones and RFC 3339
// --------------------------------------------------------

TEST(cron_zone, find_zone) {
  EXPECT_NE(cron::find_zone("UTC"), nullptr);
  EXPECT_NE(cron::find_zone("America/New_York"), nullptr);
  EXPECT_EQ(cron::find_zone("Mars/Olympus_Mons"), nullptr);
  EXPECT_EQ(cron::find_zone(""), nullptr);
  EXPECT_EQ(cron::find_zone("../../etc/passwd"), nullptr);
}

TEST(cron_rfc3339, parses_utc_and_numeric_offsets) {
  auto noon = cron::parse_rfc3339("2024-03-09T12:00:00Z");
  ASSERT_TRUE(noon);
  EXPECT_EQ(noon->time_since_epoch(), 1709985600s); // date -d ... +%s
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09T07:00:00-05:00"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09T17:30:00+05:30"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09t12:00:00z"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09 12:00:00Z"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09T12:00:00.999Z"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2024-03-09T12:00:00-00:00"), noon);
  EXPECT_EQ(cron::parse_rfc3339("2016-12-31T23:59:60Z"),
            cron::parse_rfc3339("2016-12-31T23:59:59Z"));
  for (auto bad :
       {"", "2024-03-09", "2024-03-09T12:00Z", "2024-03-09T12:00:00",
        "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-03-09T24:00:00Z",
        "2024-03-09T12:60:00Z", "2024-03-09T12:00:00+5:00",
        "2024-03-09T12:00:00+24:00", "2024-03-09T12:00:00Zjunk",
        "2024-03-09T12:00:00.Z", "24-03-09T12:00:00Z", "now"})
    EXPECT_EQ(cron::parse_rfc3339(bad), std::nullopt) << bad;
}

TEST(cron_rfc3339, formats_with_the_zone_offset) {
  auto t = at("2024-03-10T07:00:00Z");
  EXPECT_EQ(cron::format_rfc3339(t, zone("UTC")), "2024-03-10T07:00:00+00:00");
  EXPECT_EQ(cron::format_rfc3339(t, zone("America/New_York")),
            "2024-03-10T03:00:00-04:00");
  EXPECT_EQ(cron::format_rfc3339(t, zone("Asia/Kolkata")),
            "2024-03-10T12:30:00+05:30");
  EXPECT_EQ(cron::format_rfc3339(t, zone("America/St_Johns")),
            "2024-03-10T04:30:00-02:30");
  EXPECT_EQ(cron::format_rfc3339(t, nullptr), "2024-03-10T07:00:00Z");
  // New York's local mean time (-4:56:02) has seconds: written in UTC.
  EXPECT_EQ(cron::format_rfc3339(at("1850-01-01T12:00:00Z"),
                                 zone("America/New_York")),
            "1850-01-01T12:00:00Z");
}

// -- the `engram cron next` command
// --------------------------------------------

namespace {

struct command_result {
  int status;
  std::string out;
  std::string err;
};

command_result run_command(engram::cron_next_args args,
                           sys_seconds now = at("2024-01-01T00:00:00Z")) {
  std::ostringstream out;
  std::ostringstream err;
  auto status = cron::run_next_command(args, now, out, err);
  return {status, out.str(), err.str()};
}

} // namespace

TEST(cron_command, prints_runs_in_the_zone) {
  engram::cron_next_args args;
  args.expression = "30 2 * * *";
  args.zone = "America/New_York";
  args.from = "2024-03-09T12:00:00Z";
  args.count = 3;
  auto res = run_command(args);
  EXPECT_EQ(res.status, 0);
  EXPECT_EQ(res.out, "2024-03-10T03:00:00-04:00\n"
                     "2024-03-11T02:30:00-04:00\n"
                     "2024-03-12T02:30:00-04:00\n");
  EXPECT_EQ(res.err, "");
}

TEST(cron_command, defaults_to_utc_now_and_five_runs) {
  engram::cron_next_args args;
  args.expression = "@daily";
  auto res = run_command(args, at("2024-01-01T00:00:00Z"));
  EXPECT_EQ(res.status, 0);
  EXPECT_EQ(res.out, "2024-01-02T00:00:00+00:00\n"
                     "2024-01-03T00:00:00+00:00\n"
                     "2024-01-04T00:00:00+00:00\n"
                     "2024-01-05T00:00:00+00:00\n"
                     "2024-01-06T00:00:00+00:00\n");
}

TEST(cron_command, refuses_bad_input_with_status_2) {
  engram::cron_next_args args;
  args.expression = "0 0 * * 8";
  auto res = run_command(args);
  EXPECT_EQ(res.status, 2);
  EXPECT_EQ(res.out, "");
  EXPECT_EQ(
    res.err,
    "engram: invalid cron expression: day-of-week: 8 is out of range 0-7\n");

  args.expression = "0 0 * * *";
  args.zone = "Mars/Olympus_Mons";
  res = run_command(args);
  EXPECT_EQ(res.status, 2);
  EXPECT_EQ(res.err, "engram: unknown time zone 'Mars/Olympus_Mons' (expected "
                     "an IANA name such as UTC or America/New_York)\n");

  args.zone = "UTC";
  args.from = "yesterday";
  res = run_command(args);
  EXPECT_EQ(res.status, 2);
  EXPECT_EQ(res.err, "engram: invalid --from 'yesterday' (expected an RFC 3339 "
                     "time such as 2024-03-09T12:00:00Z or "
                     "2024-03-09T07:00:00-05:00)\n");
  EXPECT_EQ(res.out, "");
}
