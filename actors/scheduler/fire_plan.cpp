#include "actors/scheduler/fire_plan.hpp"

#include <set>

#include <boost/json/parse.hpp>
#include <date/date.h>

namespace engram::sched {

using namespace std::chrono_literals;

std::variant<timing, std::string> compile(std::string_view expr,
                                          std::string_view zone) {
  auto parsed = cron::parse(expr);
  if (auto* err = std::get_if<cron::parse_error>(&parsed))
    return "cron_expression: " + err->to_string();
  auto* tz = cron::find_zone(zone);
  if (tz == nullptr)
    return "timezone: unknown time zone \"" + std::string{zone}
           + "\" (an IANA name such as \"UTC\" or \"Europe/Berlin\" is "
             "expected)";
  return timing{std::get<cron::schedule>(std::move(parsed)), tz};
}

std::optional<sys_seconds> next_slot(const timing& t, sys_seconds after) {
  return cron::next(t.schedule, t.zone, after);
}

bool is_slot(const timing& t, sys_seconds at) {
  return next_slot(t, at - 1s) == at;
}

sys_seconds to_seconds(wall_time t) {
  return std::chrono::floor<std::chrono::seconds>(t);
}

int64_t slot_us(std::optional<sys_seconds> t) {
  if (!t)
    return 0;
  return to_epoch_us(wall_time{*t});
}

std::optional<sys_seconds> slot_of_us(int64_t us) {
  if (us == 0)
    return std::nullopt;
  return to_seconds(from_epoch_us(us));
}

fire_plan plan(const timing& t, sys_seconds next_due, sys_seconds now) {
  fire_plan result;
  if (next_due > now) {
    result.next = next_due;
    return result;
  }
  auto second = next_slot(t, next_due);
  if (!second || *second > now) {
    result.fire = next_due;
    result.next = second;
    return result;
  }
  // Two or more slots are due: find the latest. Widen a window [now - w,
  // now] until it holds a slot; the walk from there to `now` then covers
  // about as many slots as lie in one gap between runs, however long the
  // downtime was.
  result.misfire = true;
  auto latest = *second;
  for (auto width = std::chrono::seconds{60};; width *= 2) {
    auto from = now - width;
    if (from <= latest)
      break; // walk from the slot already known to be due
    auto candidate = next_slot(t, from - 1s);
    if (candidate && *candidate <= now) {
      latest = *candidate;
      break;
    }
  }
  for (;;) {
    auto n = next_slot(t, latest);
    if (!n || *n > now) {
      result.next = n;
      break;
    }
    latest = *n;
  }
  result.fire = latest;
  return result;
}

std::string utc_text(sys_seconds t) {
  return date::format("%Y-%m-%dT%H:%M:%SZ", t);
}

std::string fire_key(std::string_view entry, sys_seconds fire) {
  return "schedule:" + std::string{entry} + "@" + utc_text(fire);
}

std::string job_entry(std::string_view id) {
  return "job:" + std::string{id};
}

std::string manual_key(std::string_view id) {
  return "schedule:" + job_entry(id) + "@manual";
}

std::vector<static_entry> default_static_entries() {
  auto entry = [](std::string name, std::string cron) {
    static_entry e;
    e.task_name = name;
    e.name = std::move(name);
    e.cron = std::move(cron);
    return e;
  };
  return {
    entry("cleanup.expire_tokens", "0 * * * *"),
    entry("cleanup.close_stale_sessions", "*/15 * * * *"),
    entry("cleanup.archive_old_conversations", "0 3 * * *"),
    entry("cleanup.archive_expired_memories", "0 4 * * *"),
    entry("memory.consolidate", "0 2 * * *"),
    entry("memory.decay_and_expire", "0 5 * * *"),
  };
}

std::optional<std::string>
validate_static_entries(const std::vector<static_entry>& entries) {
  std::set<std::string> names;
  for (const auto& e : entries) {
    if (e.name.empty())
      return std::string{"a schedule entry has an empty name"};
    auto where = "schedule entry \"" + e.name + "\": ";
    if (!names.insert(e.name).second)
      return where + "the name is used twice";
    if (e.task_name.empty())
      return where + "task must not be empty";
    auto compiled = compile(e.cron, e.timezone);
    if (auto* err = std::get_if<std::string>(&compiled))
      return where + *err;
    boost::system::error_code ec;
    auto args = boost::json::parse(e.args_json.empty() ? "{}" : e.args_json,
                                   ec);
    if (ec || !args.is_object())
      return where + "args must be a JSON object";
  }
  return std::nullopt;
}

static_start start_static(const timing& t, const static_entry& entry,
                          const std::optional<schedules::static_state>& stored,
                          sys_seconds now) {
  if (stored && stored->next_fire_us != 0
      && stored->cron_expression == entry.cron
      && stored->timezone == entry.timezone)
    return {slot_of_us(stored->next_fire_us), false};
  return {next_slot(t, now), true};
}

} // namespace engram::sched
