#pragma once

// What the scheduler fires and when (DESIGN §5), as pure functions over the
// cron module: due slots, coalesced misfires, unique keys, and the static
// entries of the beat schedule. The scheduler actor wraps them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/scheduler/cron.hpp"
#include "messages/scheduler.hpp"
#include "runtime/clock.hpp"

namespace engram::sched {

using std::chrono::sys_seconds;

/// A parsed cron expression with the zone it is evaluated in.
struct timing {
  cron::schedule schedule;
  const date::time_zone* zone = nullptr;
};

/// Parses `expr` and resolves the IANA zone `zone`. On failure returns the
/// reason naming the field, e.g. "cron_expression: minute: 61 is out of
/// range 0-59" or "timezone: unknown time zone \"Mars/Base\"".
[[nodiscard]] std::variant<timing, std::string> compile(std::string_view expr,
                                                        std::string_view zone);

/// The first slot strictly after `after` (none: the expression never fires
/// again).
[[nodiscard]] std::optional<sys_seconds> next_slot(const timing& t,
                                                   sys_seconds after);

/// Whether `t` is a slot of the expression (the first slot after the
/// second before it).
[[nodiscard]] bool is_slot(const timing& t, sys_seconds at);

/// `t` truncated to whole seconds (slots are whole minutes, so a slot is due
/// at `t` iff it is <= to_seconds(t)).
[[nodiscard]] sys_seconds to_seconds(wall_time t);

/// Epoch microseconds of a slot, and back (0 stands for "none").
[[nodiscard]] int64_t slot_us(std::optional<sys_seconds> t);
[[nodiscard]] std::optional<sys_seconds> slot_of_us(int64_t us);

/// What one entry does at one instant.
struct fire_plan {
  /// The slot to fire now; none: nothing is due.
  std::optional<sys_seconds> fire;
  /// Other slots were due too (the scheduler was down or behind): they are
  /// coalesced into this one fire, the latest due slot.
  bool misfire = false;
  /// The first slot not covered by this fire: the entry's next fire
  /// (strictly after `now` when something fired). None: no more slots.
  std::optional<sys_seconds> next;
};

/// Plans an entry whose first unfired slot is `next_due` at `now`. Nothing
/// is due while next_due > now. Otherwise every slot in [next_due, now] is
/// due and fires once, at the latest of them (DESIGN §5: misfires coalesce
/// into one run), and the entry continues with the first slot after `now`.
/// The latest due slot is found by widening a window back from `now`, so
/// the cost does not grow with the length of the downtime.
[[nodiscard]] fire_plan plan(const timing& t, sys_seconds next_due,
                             sys_seconds now);

/// `t` as RFC 3339 in UTC, e.g. "2024-03-10T03:00:00Z".
[[nodiscard]] std::string utc_text(sys_seconds t);

/// The unique key of a fire: "schedule:<entry>@<utc_text(fire)>", e.g.
/// "schedule:cleanup.expire_tokens@2024-03-10T03:00:00Z".
[[nodiscard]] std::string fire_key(std::string_view entry, sys_seconds fire);

/// The entry name of dynamic job `id` in keys and logs: "job:<id>".
[[nodiscard]] std::string job_entry(std::string_view id);

/// The unique key of a manual run of job `id`:
/// "schedule:job:<id>@manual" (one queued or running at a time).
[[nodiscard]] std::string manual_key(std::string_view id);

// -- static entries (the beat schedule) ---------------------------------------

/// One static entry: a task enqueued on a cron schedule.
struct static_entry {
  /// Unique; names the entry in keys, state and metrics.
  std::string name;
  /// The registered task to enqueue.
  std::string task_name;
  std::string cron;
  std::string timezone = "UTC";
  bool enabled = true;
  /// The task's arguments, a JSON object.
  std::string args_json = "{}";
  /// Empty: the task's default queue.
  std::string queue;
};

/// DESIGN §5's six entries, in UTC: cleanup.expire_tokens hourly,
/// cleanup.close_stale_sessions every 15 minutes,
/// cleanup.archive_old_conversations daily 03:00,
/// cleanup.archive_expired_memories daily 04:00, memory.consolidate daily
/// 02:00, memory.decay_and_expire daily 05:00. Each enqueues the task of the
/// same name with {} as arguments.
[[nodiscard]] std::vector<static_entry> default_static_entries();

/// The first problem of a set of entries (empty or duplicate name, empty
/// task name, invalid expression or zone, arguments that are not a JSON
/// object), naming the entry; nothing when they are fine. Disabled entries
/// are checked too.
[[nodiscard]] std::optional<std::string>
validate_static_entries(const std::vector<static_entry>& entries);

/// How the leader starts an enabled static entry from its stored state.
struct static_start {
  /// The entry's first unfired slot.
  std::optional<sys_seconds> next;
  /// The stored state must be (re)written: there was none, the entry was
  /// re-timed (another expression or zone) or was not scheduled.
  bool save = false;
};

/// An entry keeps its stored next fire when it was computed with the same
/// expression and zone (so a slot missed while the daemon was down fires
/// once on start). Otherwise it starts afresh from the first slot after
/// `now`: a new or re-timed entry, or one re-enabled after being disabled,
/// does not catch up.
[[nodiscard]] static_start
start_static(const timing& t, const static_entry& entry,
             const std::optional<schedules::static_state>& stored,
             sys_seconds now);

} // namespace engram::sched
