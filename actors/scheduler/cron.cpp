#include "actors/scheduler/cron.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstdio>
#include <exception>

namespace engram::cron {

namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_seconds;
using namespace std::chrono_literals;

// -- parsing ----------------------------------------------------------------

constexpr std::array<std::string_view, 12> month_names{"jan", "feb", "mar",
                                                       "apr", "may", "jun",
                                                       "jul", "aug", "sep",
                                                       "oct", "nov", "dec"};

constexpr std::array<std::string_view, 7> dow_names{"sun", "mon", "tue", "wed",
                                                    "thu", "fri", "sat"};

/// One of the five fields: its name, its range, and the names it accepts.
struct field_spec {
  std::string_view name;
  int low;
  int high;
  /// Names for low, low+1, ... (empty = numbers only).
  const std::string_view* names = nullptr;
  size_t name_count = 0;
  /// How the names read in an error message, e.g. "JAN-DEC".
  std::string_view names_hint;
};

constexpr field_spec minute_field{"minute", 0, 59, nullptr, 0, ""};
constexpr field_spec hour_field{"hour", 0, 23, nullptr, 0, ""};
constexpr field_spec dom_field{"day-of-month", 1, 31, nullptr, 0, ""};
constexpr field_spec month_field{
  "month", 1, 12, month_names.data(), month_names.size(), "JAN-DEC"};
constexpr field_spec dow_field{"day-of-week",    0,        7, dow_names.data(),
                               dow_names.size(), "SUN-SAT"};

bool is_digits(std::string_view x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

bool is_alpha(std::string_view x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0;
  });
}

bool iequals(std::string_view x, std::string_view y) {
  return x.size() == y.size()
         && std::equal(x.begin(), x.end(), y.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a))
                     == std::tolower(static_cast<unsigned char>(b));
            });
}

/// A whole number of at most 9 digits; longer ones become a value that is
/// out of every range.
int to_int(std::string_view digits) {
  if (digits.size() > 9)
    return 999'999'999;
  int result = 0;
  for (auto c : digits)
    result = result * 10 + (c - '0');
  return result;
}

std::string quoted(std::string_view x) {
  std::string result;
  result.reserve(x.size() + 2);
  result += '\'';
  result += x;
  result += '\'';
  return result;
}

/// A value of `spec`: a number in its range or one of its names.
std::variant<int, std::string> parse_value(std::string_view text,
                                           const field_spec& spec) {
  auto range = std::to_string(spec.low) + "-" + std::to_string(spec.high);
  if (is_digits(text)) {
    auto value = to_int(text);
    if (value < spec.low || value > spec.high)
      return std::string{text} + " is out of range " + range;
    return value;
  }
  if (is_alpha(text)) {
    for (size_t i = 0; i < spec.name_count; ++i)
      if (iequals(text, spec.names[i]))
        return spec.low + static_cast<int>(i);
    if (spec.name_count > 0)
      return quoted(text) + " is neither a number " + range + " nor a name "
             + std::string{spec.names_hint};
    return quoted(text) + " is not a number " + range;
  }
  if (text.empty())
    return std::string{"a value is missing"};
  return quoted(text) + " is not a number " + range;
}

/// Sets the bits of one list item (`*`, `*/s`, `n`, `a-b`, `a-b/s`).
std::optional<std::string> parse_item(std::string_view item,
                                      const field_spec& spec, uint64_t& bits) {
  auto slash = item.find('/');
  auto base = item.substr(0, slash);
  int first = 0;
  int last = 0;
  bool is_range = true;
  if (base.empty())
    return "missing value before '/' in " + quoted(item);
  if (base == "*") {
    first = spec.low;
    last = spec.high;
  } else if (auto dash = base.find('-'); dash != std::string_view::npos) {
    auto a = base.substr(0, dash);
    auto b = base.substr(dash + 1);
    if (a.empty())
      return "missing start of range in " + quoted(item)
             + " (negative values do not exist)";
    if (b.empty())
      return "missing end of range in " + quoted(item);
    if (b.find('-') != std::string_view::npos)
      return "unexpected '-' in " + quoted(item);
    auto x = parse_value(a, spec);
    if (auto* err = std::get_if<std::string>(&x))
      return *err;
    auto y = parse_value(b, spec);
    if (auto* err = std::get_if<std::string>(&y))
      return *err;
    first = std::get<int>(x);
    last = std::get<int>(y);
    // FRI-SUN: a day-of-week range that ends on Sunday (0) means ...-7.
    if (&spec == &dow_field && last == 0 && first > 0)
      last = 7;
    if (first > last)
      return "range " + std::string{base} + " is reversed";
  } else {
    auto x = parse_value(base, spec);
    if (auto* err = std::get_if<std::string>(&x))
      return *err;
    first = last = std::get<int>(x);
    is_range = false;
  }
  int step = 1;
  if (slash != std::string_view::npos) {
    auto step_text = item.substr(slash + 1);
    if (step_text.empty())
      return "missing step after '/' in " + quoted(item);
    if (!is_digits(step_text))
      return "step " + quoted(step_text) + " in " + quoted(item)
             + " is not a whole number";
    step = to_int(step_text);
    if (step == 0)
      return "step 0 in " + quoted(item)
             + " is not allowed (the step must be 1 or more)";
    if (!is_range)
      return quoted(item) + " has a step but no range (write "
             + std::string{base} + "-" + std::to_string(spec.high) + "/"
             + std::string{step_text} + " or */" + std::string{step_text} + ")";
  }
  for (int v = first; v <= last; v += step)
    bits |= uint64_t{1} << v;
  return std::nullopt;
}

/// The bits of a whole field (a comma list).
std::variant<uint64_t, parse_error> parse_field(std::string_view text,
                                                const field_spec& spec) {
  auto fail = [&](std::string reason) {
    return parse_error{std::string{spec.name}, std::move(reason)};
  };
  if (text.find('?') != std::string_view::npos)
    return fail("'?' is not supported; use '*'");
  uint64_t bits = 0;
  size_t pos = 0;
  for (;;) {
    auto comma = text.find(',', pos);
    auto item = text.substr(pos, comma == std::string_view::npos
                                   ? std::string_view::npos
                                   : comma - pos);
    if (item.empty())
      return fail("empty item in list " + quoted(text));
    if (auto err = parse_item(item, spec, bits))
      return fail(std::move(*err));
    if (comma == std::string_view::npos)
      break;
    pos = comma + 1;
  }
  return bits;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> result;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i]))
      ++i;
    auto begin = i;
    while (i < text.size() && !is_space(text[i]))
      ++i;
    if (i > begin)
      result.push_back(text.substr(begin, i - begin));
  }
  return result;
}

/// The five-field text an alias stands for, or nothing.
std::optional<std::string_view> expand_alias(std::string_view alias) {
  constexpr std::array<std::pair<std::string_view, std::string_view>, 7> table{{
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
  }};
  for (auto& [name, expansion] : table)
    if (iequals(alias, name))
      return expansion;
  return std::nullopt;
}

/// The longest each month can be (February: 29).
constexpr std::array<int, 13> max_month_length{0,  31, 29, 31, 30, 31, 30,
                                               31, 31, 30, 31, 30, 31};

/// Whether some listed day exists in some listed month. Every date recurs
/// on every weekday within the 400-year cycle, so under the "both must
/// match" day rule this decides whether the expression ever fires; under
/// "either may match" it always does (every month has every weekday).
bool can_fire(const schedule& s) {
  if (!s.dom_star && !s.dow_star)
    return true;
  for (int m = 1; m <= 12; ++m) {
    if ((s.months >> m & 1) == 0)
      continue;
    auto days_in_month = ((uint32_t{1} << (max_month_length[m] + 1)) - 1) & ~1u;
    if ((s.days_of_month & days_in_month) != 0)
      return true;
  }
  return false;
}

std::variant<schedule, parse_error> parse_fields(std::string_view text,
                                                 std::string original) {
  auto fields = split_fields(text);
  if (fields.size() != 5)
    return parse_error{"expression",
                       "expected 5 fields (minute hour day-of-month month "
                       "day-of-week), got "
                         + std::to_string(fields.size())};
  const std::array<const field_spec*, 5> specs{
    &minute_field, &hour_field, &dom_field, &month_field, &dow_field};
  std::array<uint64_t, 5> bits{};
  for (size_t i = 0; i < 5; ++i) {
    auto res = parse_field(fields[i], *specs[i]);
    if (auto* err = std::get_if<parse_error>(&res))
      return std::move(*err);
    bits[i] = std::get<uint64_t>(res);
  }
  schedule result;
  result.minutes = bits[0];
  result.hours = static_cast<uint32_t>(bits[1]);
  result.days_of_month = static_cast<uint32_t>(bits[2]);
  result.months = static_cast<uint16_t>(bits[3]);
  // Sunday is both 0 and 7.
  auto dow = bits[4];
  if (dow >> 7 & 1)
    dow |= 1;
  result.days_of_week = static_cast<uint8_t>(dow & 0x7f);
  result.dom_star = fields[2].front() == '*';
  result.dow_star = fields[4].front() == '*';
  result.fixed_time = fields[0].front() != '*' && fields[1].front() != '*';
  result.text = std::move(original);
  if (!can_fire(result))
    return parse_error{"day-of-month", "day " + std::string{fields[2]}
                                         + " never occurs in month "
                                         + std::string{fields[3]}
                                         + "; the expression can never fire"};
  return result;
}

// -- next run ----------------------------------------------------------------

/// The lowest set bit at or above `from`, or 64.
int next_bit(uint64_t bits, int from) {
  if (from >= 64)
    return 64;
  auto rest = bits & (~uint64_t{0} << from);
  return rest == 0 ? 64 : std::countr_zero(rest);
}

/// The first matching time of day at or after `from` (minutes since
/// midnight), or nothing.
std::optional<minutes> first_time_of_day(const schedule& s, minutes from) {
  auto hour = static_cast<int>(from.count() / 60);
  auto minute = static_cast<int>(from.count() % 60);
  for (auto h = next_bit(s.hours, hour); h < 24; h = next_bit(s.hours, h + 1)) {
    auto m = next_bit(s.minutes, h == hour ? minute : 0);
    if (m < 60)
      return minutes{h * 60 + m};
  }
  return std::nullopt;
}

/// The first matching wall-clock minute in [lo, hi): skips whole months and
/// days that do not match, then finds the time of day with bit scans.
std::optional<date::local_seconds>
find_local(const schedule& s, date::local_seconds lo, date::local_seconds hi) {
  auto t = date::ceil<minutes>(lo);
  if (t >= hi)
    return std::nullopt;
  auto day = date::floor<date::days>(t);
  auto time_of_day = t - day;
  while (day < hi) {
    date::year_month_day ymd{day};
    if ((s.months >> static_cast<unsigned>(ymd.month()) & 1) == 0) {
      day = date::local_days{(ymd.year() / ymd.month() / 1) + date::months{1}};
      time_of_day = 0min;
      continue;
    }
    if (s.fires_on(ymd)) {
      if (auto at = first_time_of_day(s, time_of_day)) {
        auto result = date::local_seconds{day} + *at;
        if (result < hi)
          return result;
        return std::nullopt;
      }
    }
    day += date::days{1};
    time_of_day = 0min;
  }
  return std::nullopt;
}

date::local_seconds to_local(sys_seconds t, seconds offset) {
  return date::local_seconds{t.time_since_epoch() + offset};
}

sys_seconds to_sys(date::local_seconds t, seconds offset) {
  return sys_seconds{t.time_since_epoch() - offset};
}

/// Offset changes smaller than this are DST-like: a fixed-time entry
/// catches up the local times they skip and does not repeat the ones they
/// repeat (cronie's rule).
constexpr seconds catch_up_limit = 3h;

/// `next` with an absolute end: the first run in (after, limit), i.e. the
/// horizon is inclusive when `limit` = after + horizon + 1 s.
std::optional<sys_seconds> next_until(const schedule& s,
                                      const date::time_zone* tz,
                                      sys_seconds after, sys_seconds limit) {
  if (tz == nullptr || s.minutes == 0 || s.hours == 0 || s.months == 0
      || (s.days_of_month == 0 && s.days_of_week == 0) || after >= limit)
    return std::nullopt;
  const auto start = after + 1s;
  // Walk the zone's periods of constant offset, oldest first; within one,
  // the wall clock runs with real time.
  auto info = tz->get_info(start);
  auto prev = tz->get_info(info.begin - 1s);
  for (;;) {
    auto jump = info.offset - prev.offset;
    auto caught = s.fixed_time && jump != 0s && abs(jump) < catch_up_limit;
    if (caught && jump > 0s && info.begin >= start && info.begin < limit) {
      // Local times the forward jump skips fire once, at the transition.
      if (find_local(s, to_local(info.begin, prev.offset),
                     to_local(info.begin, info.offset)))
        return info.begin;
    }
    auto lo = to_local(std::max(info.begin, start), info.offset);
    if (caught && jump < 0s) {
      // The repeated local times already fired in the first pass.
      lo = std::max(lo, to_local(info.begin, prev.offset));
    }
    auto end = std::min(info.end, limit);
    if (auto hit = find_local(s, lo, to_local(end, info.offset)))
      return to_sys(*hit, info.offset);
    if (info.end >= limit)
      return std::nullopt;
    prev = info;
    info = tz->get_info(info.end);
  }
}

// -- RFC 3339 ----------------------------------------------------------------

/// Reads exactly `n` digits at `pos`.
std::optional<int> digits_at(std::string_view text, size_t& pos, size_t n) {
  if (pos + n > text.size() || !is_digits(text.substr(pos, n)))
    return std::nullopt;
  auto result = to_int(text.substr(pos, n));
  pos += n;
  return result;
}

bool char_at(std::string_view text, size_t& pos, std::string_view accepted) {
  if (pos >= text.size() || accepted.find(text[pos]) == std::string_view::npos)
    return false;
  ++pos;
  return true;
}

} // namespace

bool schedule::fires_on(const date::year_month_day& day) const noexcept {
  if ((months >> static_cast<unsigned>(day.month()) & 1) == 0)
    return false;
  auto dom = (days_of_month >> static_cast<unsigned>(day.day()) & 1) != 0;
  auto dow
    = (days_of_week >> date::weekday{date::sys_days{day}}.c_encoding() & 1)
      != 0;
  return dom_star || dow_star ? dom && dow : dom || dow;
}

bool schedule::matches(date::local_seconds local) const noexcept {
  auto day = date::floor<date::days>(local);
  auto time_of_day = date::floor<std::chrono::minutes>(local - day).count();
  return fires_on(date::year_month_day{day})
         && (hours >> (time_of_day / 60) & 1) != 0
         && (minutes >> (time_of_day % 60) & 1) != 0;
}

std::string parse_error::to_string() const {
  return field + ": " + reason;
}

std::variant<schedule, parse_error> parse(std::string_view expr) {
  auto begin = expr.find_first_not_of(" \t\r\n\f\v");
  if (begin == std::string_view::npos)
    return parse_error{"expression",
                       "empty; expected 5 fields (minute hour day-of-month "
                       "month day-of-week) or an alias such as @daily"};
  auto end = expr.find_last_not_of(" \t\r\n\f\v");
  auto text = expr.substr(begin, end - begin + 1);
  if (text.front() != '@')
    return parse_fields(text, std::string{text});
  auto fields = split_fields(text);
  if (iequals(fields[0], "@reboot"))
    return parse_error{"expression",
                       "@reboot is not supported (there is no boot to run at)"};
  auto expansion = expand_alias(fields[0]);
  if (!expansion)
    return parse_error{"expression",
                       "unknown alias " + std::string{fields[0]}
                         + " (expected @hourly, @daily, @midnight, @weekly, "
                           "@monthly, @yearly or @annually)"};
  if (fields.size() > 1)
    return parse_error{"expression", "unexpected " + quoted(fields[1])
                                       + " after " + std::string{fields[0]}
                                       + " (an alias stands alone)"};
  return parse_fields(*expansion, std::string{text});
}

std::optional<sys_seconds> next(const schedule& s, const date::time_zone* tz,
                                sys_seconds after, std::chrono::hours horizon) {
  return next_until(s, tz, after, after + horizon + 1s);
}

std::vector<sys_seconds> next_n(const schedule& s, const date::time_zone* tz,
                                sys_seconds after, size_t n,
                                std::chrono::hours horizon) {
  std::vector<sys_seconds> result;
  auto limit = after + horizon + 1s;
  while (result.size() < n) {
    auto t = next_until(s, tz, after, limit);
    if (!t)
      break;
    result.push_back(*t);
    after = *t;
  }
  return result;
}

const date::time_zone* find_zone(std::string_view name) noexcept {
  if (name.empty())
    return nullptr;
  try {
    return date::locate_zone(std::string{name});
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string format_rfc3339(sys_seconds t, const date::time_zone* tz) {
  auto offset = tz != nullptr ? tz->get_info(t).offset : 0s;
  // RFC 3339 offsets have no seconds: write such (local mean) times in UTC.
  auto utc = tz == nullptr || offset % 60s != 0s;
  if (utc)
    offset = 0s;
  auto local = to_local(t, offset);
  auto day = date::floor<date::days>(local);
  date::year_month_day ymd{day};
  date::hh_mm_ss<seconds> time{local - day};
  char buf[64];
  auto n = std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d",
                         static_cast<int>(ymd.year()),
                         static_cast<unsigned>(ymd.month()),
                         static_cast<unsigned>(ymd.day()),
                         static_cast<int>(time.hours().count()),
                         static_cast<int>(time.minutes().count()),
                         static_cast<int>(time.seconds().count()));
  std::string result{buf, static_cast<size_t>(n)};
  if (utc)
    return result + "Z";
  auto offset_minutes = std::abs(offset.count()) / 60;
  std::snprintf(buf, sizeof(buf), "%c%02d:%02d", offset < 0s ? '-' : '+',
                static_cast<int>(offset_minutes / 60),
                static_cast<int>(offset_minutes % 60));
  return result + buf;
}

std::optional<sys_seconds> parse_rfc3339(std::string_view text) {
  size_t pos = 0;
  auto y = digits_at(text, pos, 4);
  if (!y || !char_at(text, pos, "-"))
    return std::nullopt;
  auto mo = digits_at(text, pos, 2);
  if (!mo || !char_at(text, pos, "-"))
    return std::nullopt;
  auto d = digits_at(text, pos, 2);
  if (!d || !char_at(text, pos, "Tt "))
    return std::nullopt;
  auto h = digits_at(text, pos, 2);
  if (!h || !char_at(text, pos, ":"))
    return std::nullopt;
  auto mi = digits_at(text, pos, 2);
  if (!mi || !char_at(text, pos, ":"))
    return std::nullopt;
  auto sec = digits_at(text, pos, 2);
  if (!sec)
    return std::nullopt;
  if (char_at(text, pos, ".")) {
    auto frac = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
      ++pos;
    if (pos == frac)
      return std::nullopt;
  }
  seconds offset{0};
  if (!char_at(text, pos, "Zz")) {
    if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-'))
      return std::nullopt;
    auto sign = text[pos++] == '-' ? -1 : 1;
    auto oh = digits_at(text, pos, 2);
    if (!oh || !char_at(text, pos, ":"))
      return std::nullopt;
    auto om = digits_at(text, pos, 2);
    if (!om || *oh > 23 || *om > 59)
      return std::nullopt;
    offset = sign * (std::chrono::hours{*oh} + minutes{*om});
  }
  if (pos != text.size())
    return std::nullopt;
  date::year_month_day ymd{date::year{*y},
                           date::month{static_cast<unsigned>(*mo)},
                           date::day{static_cast<unsigned>(*d)}};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *sec > 60)
    return std::nullopt;
  // A leap second (23:59:60) counts as the second before it.
  auto s = std::min(*sec, 59);
  return sys_seconds{date::sys_days{ymd}.time_since_epoch()}
         + std::chrono::hours{*h} + minutes{*mi} + seconds{s} - offset;
}

} // namespace engram::cron
