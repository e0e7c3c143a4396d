#include "actors/scheduler/cron_command.hpp"

#include <ostream>

#include "actors/scheduler/cron.hpp"

namespace engram::cron {

namespace {

/// Exit status for input the command refuses (as for usage errors).
constexpr int exit_usage = 2;

} // namespace

int run_next_command(const cron_next_args& args, std::chrono::sys_seconds now,
                     std::ostream& out, std::ostream& err) {
  auto parsed = parse(args.expression);
  if (auto* e = std::get_if<parse_error>(&parsed)) {
    err << "engram: invalid cron expression: " << e->to_string() << '\n';
    return exit_usage;
  }
  const auto* tz = find_zone(args.zone);
  if (tz == nullptr) {
    err << "engram: unknown time zone '" << args.zone
        << "' (expected an IANA name such as UTC or America/New_York)\n";
    return exit_usage;
  }
  auto from = now;
  if (!args.from.empty()) {
    auto t = parse_rfc3339(args.from);
    if (!t) {
      err << "engram: invalid --from '" << args.from
          << "' (expected an RFC 3339 time such as 2024-03-09T12:00:00Z or "
             "2024-03-09T07:00:00-05:00)\n";
      return exit_usage;
    }
    from = *t;
  }
  auto runs = next_n(std::get<schedule>(parsed), tz, from, args.count);
  for (auto t : runs)
    out << format_rfc3339(t, tz) << '\n';
  if (runs.size() < args.count)
    err << "engram: only " << runs.size() << " run"
        << (runs.size() == 1 ? "" : "s")
        << " within 400 years of the start time\n";
  out.flush();
  return 0;
}

} // namespace engram::cron
