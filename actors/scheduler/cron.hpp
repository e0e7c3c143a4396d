#pragma once

// Cron expressions (DESIGN §5): parsing, validation and "next run" in an
// IANA time zone, with cronie's semantics. Pure functions over value types;
// the scheduler actor wraps them.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <date/tz.h>

namespace engram::cron {

/// A parsed five-field expression. Each field is a bit set: bit `v` is set
/// when value `v` matches. Built by `parse`, which never returns an empty
/// field or an expression that can never fire; `next` copes with any value
/// anyway (it then returns nothing).
struct schedule {
  /// Bits 0-59.
  std::uint64_t minutes = 0;
  /// Bits 0-23.
  std::uint32_t hours = 0;
  /// Bits 1-31.
  std::uint32_t days_of_month = 0;
  /// Bits 1-12.
  std::uint16_t months = 0;
  /// Bits 0-6, Sunday = 0 (a 7 in the expression sets bit 0).
  std::uint8_t days_of_week = 0;
  /// The day-of-month field starts with `*`.
  bool dom_star = false;
  /// The day-of-week field starts with `*`.
  bool dow_star = false;
  /// Neither the minute nor the hour field starts with `*`: a local time
  /// that a DST gap skips fires at the transition, and a repeated local time
  /// fires once. Otherwise the entry is a *wildcard* entry that fires at
  /// every real instant whose wall clock matches.
  bool fixed_time = false;
  /// The expression as written (trimmed), e.g. "30 2 * * *" or "@daily".
  std::string text;

  /// Whether the entry fires on this calendar day (month, then the Vixie
  /// day rule: if either day field starts with `*` both must match,
  /// otherwise either may).
  [[nodiscard]] bool fires_on(const date::year_month_day& day) const noexcept;

  /// Whether the wall-clock minute `local` matches every field (seconds are
  /// ignored).
  [[nodiscard]] bool matches(date::local_seconds local) const noexcept;

  friend bool operator==(const schedule&, const schedule&) = default;
};

/// Why an expression was refused.
struct parse_error {
  /// "minute", "hour", "day-of-month", "month", "day-of-week", or
  /// "expression" for what concerns the whole.
  std::string field;
  /// For the operator, e.g. "8 is out of range 0-7".
  std::string reason;

  /// "<field>: <reason>".
  [[nodiscard]] std::string to_string() const;
};

/// Parses and validates `expr`: five whitespace-separated fields, or one of
/// the aliases @hourly (0 * * * *), @daily and @midnight (0 0 * * *),
/// @weekly (0 0 * * 0), @monthly (0 0 1 * *), @yearly and @annually
/// (0 0 1 1 *); aliases and names are case-insensitive. An expression that
/// can never fire (`0 0 30 2 *`) is refused.
[[nodiscard]] std::variant<schedule, parse_error> parse(std::string_view expr);

/// How far `next` looks: a full 400-year Gregorian cycle (plus a day), so a
/// schedule that fires at all is always found (`0 0 29 2 */7`, a Sunday
/// 29 February, can be 40 years away).
inline constexpr std::chrono::hours default_horizon{24 * (146097 + 1)};

/// The first run strictly after `after`, on the wall clock of `tz`, or
/// nothing if there is none within `horizon` (or `tz` is null). Minute
/// resolution: runs happen at whole local minutes; an `after` with seconds
/// counts as that instant.
///
/// Clock changes, following cronie: a wildcard entry fires at every real
/// instant whose wall clock matches (skipped local minutes do not fire; a
/// repeated hour fires in both passes). A fixed-time entry whose local time
/// falls in a forward jump of less than 3 hours fires once, at the instant
/// of the transition (several matches in one gap coalesce); in a backward
/// jump of less than 3 hours it fires at the first occurrence only. A jump
/// of 3 hours or more (a zone changing its offset) is taken as the new
/// time: skipped local times are not caught up, and repeated ones fire
/// again.
///
/// Cost: a few time-zone lookups plus a walk that skips non-matching months
/// and days; independent of how many minutes lie between two runs.
[[nodiscard]] std::optional<std::chrono::sys_seconds>
next(const schedule& s, const date::time_zone* tz,
     std::chrono::sys_seconds after,
     std::chrono::hours horizon = default_horizon);

/// Up to `n` consecutive runs strictly after `after` (fewer if the horizon,
/// counted from `after`, ends first).
[[nodiscard]] std::vector<std::chrono::sys_seconds>
next_n(const schedule& s, const date::time_zone* tz,
       std::chrono::sys_seconds after, std::size_t n,
       std::chrono::hours horizon = default_horizon);

/// The zone named `name` in the system's tz database, or null if there is
/// no such zone (or no database).
[[nodiscard]] const date::time_zone* find_zone(std::string_view name) noexcept;

/// `t` on the wall clock of `tz` as RFC 3339 with a numeric offset, e.g.
/// "2024-03-10T03:00:00-04:00" ("+00:00" for UTC). Historical offsets with
/// seconds (local mean time) cannot be written in RFC 3339; those instants
/// are written in UTC with "Z".
[[nodiscard]] std::string format_rfc3339(std::chrono::sys_seconds t,
                                         const date::time_zone* tz);

/// Parses an RFC 3339 date-time ("2024-03-09T12:00:00Z",
/// "2024-03-09T07:00:00-05:00", lowercase t/z or a space also accepted,
/// fractional seconds dropped, a leap second 60 read as 59).
[[nodiscard]] std::optional<std::chrono::sys_seconds>
parse_rfc3339(std::string_view text);

} // namespace engram::cron
