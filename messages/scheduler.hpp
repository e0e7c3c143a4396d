#pragma once

// The scheduler's protocol (DESIGN §5): the SCHEDULER actor (static entries
// and dynamic scheduled_jobs turned into tasks by the cluster's one leader;
// schedule CRUD for the HTTP API) and the SCHEDULE STORE it owns (one
// dedicated connection that holds the leader's advisory lock and runs every
// fire as one transaction).
//
// Times travel as epoch microseconds (runtime/clock.hpp); 0 means "none".
// Optional texts are empty when absent. Job ids are UUIDs in canonical text
// form.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/tasks.hpp"

namespace engram::schedules {

// -- jobs and runs as the API sees them ---------------------------------------

/// A dynamic schedule: a row of engram.scheduled_jobs.
struct job_info {
  std::string id;
  /// Empty: none.
  std::string team_id;
  std::string agent_id;
  /// Empty: none.
  std::string user_id;
  std::string name;
  /// What the agent is asked at each run.
  std::string message;
  std::string cron_expression;
  std::string timezone;
  bool is_active = true;
  int64_t last_run_at_us = 0;
  /// The next fire (0: not scheduled, e.g. inactive).
  int64_t next_run_at_us = 0;
  int64_t run_count = 0;
  int32_t consecutive_failures = 0;
  /// Empty: none.
  std::string last_error;
  /// A JSON object.
  std::string delivery_config_json = "{}";
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_info& x) {
  return f(caf::meta::type_name("job_info"), x.id, x.team_id, x.agent_id,
           x.user_id, x.name, x.message, x.cron_expression, x.timezone,
           x.is_active, x.last_run_at_us, x.next_run_at_us, x.run_count,
           x.consecutive_failures, x.last_error, x.delivery_config_json,
           x.created_at_us, x.updated_at_us);
}

/// One fire (or manual run) of a job: a row of engram.scheduled_job_runs.
struct run_info {
  int64_t id = 0;
  std::string job_id;
  /// 0: no task (yet).
  int64_t task_id = 0;
  /// 0: a manual "run now".
  int64_t fire_time_us = 0;
  /// "queued", "running", "succeeded", "failed" or "skipped".
  std::string status;
  std::string conversation_id;
  std::string error;
  int64_t started_at_us = 0;
  int64_t finished_at_us = 0;
  int64_t created_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_info& x) {
  return f(caf::meta::type_name("run_info"), x.id, x.job_id, x.task_id,
           x.fire_time_us, x.status, x.conversation_id, x.error,
           x.started_at_us, x.finished_at_us, x.created_at_us);
}

// -- schedule CRUD (HTTP → scheduler) -----------------------------------------

/// What a client gives to create a job. The scheduler validates it (cron
/// expression, zone, delivery config, sizes) and computes next_run_at.
struct job_spec {
  std::string team_id;
  std::string agent_id;
  std::string user_id;
  std::string name;
  std::string message;
  std::string cron_expression;
  std::string timezone = "UTC";
  bool is_active = true;
  /// A JSON object.
  std::string delivery_config_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_spec& x) {
  return f(caf::meta::type_name("job_spec"), x.team_id, x.agent_id, x.user_id,
           x.name, x.message, x.cron_expression, x.timezone, x.is_active,
           x.delivery_config_json);
}

/// A partial update: only the fields whose `has_` flag is set change.
struct job_patch {
  bool has_name = false;
  std::string name;
  bool has_message = false;
  std::string message;
  bool has_cron_expression = false;
  std::string cron_expression;
  bool has_timezone = false;
  std::string timezone;
  bool has_is_active = false;
  bool is_active = true;
  /// Replaces the whole config (a JSON object).
  bool has_delivery_config = false;
  std::string delivery_config_json;

  [[nodiscard]] bool empty() const noexcept {
    return !has_name && !has_message && !has_cron_expression && !has_timezone
           && !has_is_active && !has_delivery_config;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_patch& x) {
  return f(caf::meta::type_name("job_patch"), x.has_name, x.name,
           x.has_message, x.message, x.has_cron_expression, x.cron_expression,
           x.has_timezone, x.timezone, x.has_is_active, x.is_active,
           x.has_delivery_config, x.delivery_config_json);
}

/// Creates a job; invalid_argument (naming the field) for a bad spec or an
/// unknown agent.
struct create_job {
  job_spec spec;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_job& x) {
  return f(caf::meta::type_name("create_job"), x.spec);
}

/// One job; not_found for an unknown (or malformed) id.
struct get_job {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_job& x) {
  return f(caf::meta::type_name("get_job"), x.id);
}

/// A page of jobs, newest first. Filters are ignored when empty;
/// `active` is -1 (any), 0 (inactive only) or 1 (active only).
struct list_jobs {
  std::string cursor;
  int64_t limit = 50;
  std::string agent_id;
  std::string team_id;
  std::string user_id;
  int8_t active = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_jobs& x) {
  return f(caf::meta::type_name("list_jobs"), x.cursor, x.limit, x.agent_id,
           x.team_id, x.user_id, x.active);
}

/// One page of jobs; `next_cursor` is empty on the last page.
struct job_page {
  std::vector<job_info> jobs;
  std::string next_cursor;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_page& x) {
  return f(caf::meta::type_name("job_page"), x.jobs, x.next_cursor);
}

/// Applies a patch; the scheduler recomputes next_run_at when the
/// expression, zone or activity changes. not_found, invalid_argument.
struct patch_job {
  std::string id;
  job_patch patch;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, patch_job& x) {
  return f(caf::meta::type_name("patch_job"), x.id, x.patch);
}

/// Deletes a job and its runs; true, or not_found.
struct delete_job {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delete_job& x) {
  return f(caf::meta::type_name("delete_job"), x.id);
}

/// Runs a job now ("run now"): records a run without fire time and enqueues
/// agent.scheduled_run at once. At most one manual run per job is queued or
/// running: asking again meanwhile returns that one (created = false).
struct run_job_now {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_job_now& x) {
  return f(caf::meta::type_name("run_job_now"), x.id);
}

/// The answer to run_job_now.
struct manual_run {
  tasks::task_info task;
  run_info run;
  /// False: a manual run of this job was already queued or running.
  bool created = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, manual_run& x) {
  return f(caf::meta::type_name("manual_run"), x.task, x.run, x.created);
}

/// Runs of a job, newest first; `before_run_id` is the cursor (0: from the
/// newest). not_found for an unknown job.
struct list_job_runs {
  std::string id;
  int64_t before_run_id = 0;
  int64_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_job_runs& x) {
  return f(caf::meta::type_name("list_job_runs"), x.id, x.before_run_id,
           x.limit);
}

/// One page of runs; `next_before_run_id` is 0 on the last page.
struct run_page {
  std::vector<run_info> runs;
  int64_t next_before_run_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_page& x) {
  return f(caf::meta::type_name("run_page"), x.runs, x.next_before_run_id);
}

// -- the scheduler's own state ------------------------------------------------

/// The schedule changed in the database (NOTIFY engram_schedules, or the
/// listener reconnected): reload the dynamic jobs.
struct reload {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reload&) {
  return f(caf::meta::type_name("reload"));
}

/// Asks the scheduler what it does.
struct status_request {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, status_request&) {
  return f(caf::meta::type_name("status_request"));
}

/// One static entry as the scheduler sees it.
struct entry_status {
  std::string name;
  std::string task_name;
  std::string cron_expression;
  std::string timezone;
  bool enabled = true;
  /// Known only on the leader once it loaded the entry's state.
  int64_t next_fire_us = 0;
  int64_t last_fire_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entry_status& x) {
  return f(caf::meta::type_name("entry_status"), x.name, x.task_name,
           x.cron_expression, x.timezone, x.enabled, x.next_fire_us,
           x.last_fire_us);
}

/// What a scheduler does right now.
struct scheduler_status {
  /// This node holds the scheduler lock and fires.
  bool leader = false;
  /// The leader loaded the static entries' state and the jobs at least once.
  bool ready = false;
  std::vector<entry_status> entries;
  /// Active jobs with a valid expression and zone, on the leader.
  int64_t jobs = 0;
  /// Active jobs skipped for an invalid expression or zone, on the leader.
  int64_t invalid_jobs = 0;
  /// Fires (tasks enqueued) and coalesced misfires since this actor started.
  int64_t fires = 0;
  int64_t misfires = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_status& x) {
  return f(caf::meta::type_name("scheduler_status"), x.leader, x.ready,
           x.entries, x.jobs, x.invalid_jobs, x.fires, x.misfires);
}

// -- the schedule store (scheduler → store) -----------------------------------

/// Takes or confirms leadership: the store tries the advisory lock unless
/// its session already holds it (a reconnect loses it).
struct lead_request {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lead_request&) {
  return f(caf::meta::type_name("lead_request"));
}

/// Whether the store's session holds the scheduler lock.
struct leadership {
  bool leader = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, leadership& x) {
  return f(caf::meta::type_name("leadership"), x.leader);
}

/// The durable state of one static entry (engram.schedule_state).
struct static_state {
  std::string entry;
  /// The expression and zone `next_fire_us` was computed with.
  std::string cron_expression;
  std::string timezone;
  int64_t last_fire_us = 0;
  /// The first slot not fired yet (0: not scheduled, e.g. disabled).
  int64_t next_fire_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, static_state& x) {
  return f(caf::meta::type_name("static_state"), x.entry, x.cron_expression,
           x.timezone, x.last_fire_us, x.next_fire_us);
}

/// Reads the state of the named entries (those without a row are absent).
struct load_static_states {
  std::vector<std::string> entries;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_static_states& x) {
  return f(caf::meta::type_name("load_static_states"), x.entries);
}

/// Writes entries' expression, zone and next fire (the last fire is kept),
/// in one transaction. Leader only (conflict otherwise).
struct save_static_states {
  std::vector<static_state> states;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, save_static_states& x) {
  return f(caf::meta::type_name("save_static_states"), x.states, x.now_us);
}

/// How a fire ended.
enum class fire_outcome : uint8_t {
  /// The fire was recorded and its task enqueued.
  fired,
  /// This slot had been recorded before: nothing enqueued; the next fire
  /// was still moved on.
  duplicate,
  /// The entry changed underneath (fired elsewhere, re-timed, deactivated,
  /// deleted): nothing changed; reload it.
  stale,
};

inline std::string to_string(fire_outcome x) {
  switch (x) {
    case fire_outcome::fired:
      return "fired";
    case fire_outcome::duplicate:
      return "duplicate";
    default:
      return "stale";
  }
}

struct fire_result {
  fire_outcome outcome = fire_outcome::stale;
  int64_t task_id = 0;
  /// False: a queued or running task already held the unique key.
  bool task_created = false;
  /// The run row (dynamic jobs).
  int64_t run_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fire_result& x) {
  return f(caf::meta::type_name("fire_result"), x.outcome, x.task_id,
           x.task_created, x.run_id);
}

/// Fires a static entry in one transaction: moves its state from
/// `expected_next_us` to (`fire_us`, `next_us`) if it still is at
/// `expected_next_us` with this expression and zone, and enqueues `task`
/// (its unique key names the entry and the slot). Leader only.
struct fire_static {
  std::string entry;
  std::string cron_expression;
  std::string timezone;
  int64_t expected_next_us = 0;
  int64_t fire_us = 0;
  /// 0: no further slot.
  int64_t next_us = 0;
  /// More than one slot was due: counted in the state's misfire_count.
  bool misfire = false;
  tasks::enqueue_request task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fire_static& x) {
  return f(caf::meta::type_name("fire_static"), x.entry, x.cron_expression,
           x.timezone, x.expected_next_us, x.fire_us, x.next_us, x.misfire,
           x.task, x.now_us);
}

/// The active jobs (all of them, by id).
struct load_active_jobs {
  /// Runs whose task ended without a result are closed first, at this time
  /// (epoch microseconds; 0 = skip that).
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_active_jobs& x) {
  return f(caf::meta::type_name("load_active_jobs"), x.now_us);
}

/// Sets an active job's next_run_at to `next_us` (0: NULL) if its
/// expression and zone are still the given ones and its next_run_at is
/// still `expected_next_us` (0: NULL): a job that has none, or whose
/// next_run_at is not a slot of its expression (another writer changed the
/// expression), gets the first slot after now. Leader only; false when the
/// job changed.
struct set_job_next {
  std::string job_id;
  std::string cron_expression;
  std::string timezone;
  int64_t expected_next_us = 0;
  int64_t next_us = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, set_job_next& x) {
  return f(caf::meta::type_name("set_job_next"), x.job_id, x.cron_expression,
           x.timezone, x.expected_next_us, x.next_us, x.now_us);
}

/// Fires a dynamic job in one transaction, if it is still active with this
/// expression and zone and its next_run_at is still `expected_next_us`:
/// records the run for `fire_us` (once per slot), enqueues `task` with args
/// {"job_id", "run_id", "fire_time"} and a unique key for the slot, and sets
/// next_run_at to `next_us` (0: NULL). Leader only.
struct fire_job {
  std::string job_id;
  std::string cron_expression;
  std::string timezone;
  int64_t expected_next_us = 0;
  int64_t fire_us = 0;
  int64_t next_us = 0;
  /// Name, queue, retries and limits; the store fills args and unique key.
  tasks::enqueue_request task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fire_job& x) {
  return f(caf::meta::type_name("fire_job"), x.job_id, x.cron_expression,
           x.timezone, x.expected_next_us, x.fire_us, x.next_us, x.task,
           x.now_us);
}

/// Stores a validated job created at `now_us` with its computed next run
/// (0: none). invalid_argument for an unknown agent.
struct store_create_job {
  job_spec spec;
  int64_t next_run_at_us = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_create_job& x) {
  return f(caf::meta::type_name("store_create_job"), x.spec, x.next_run_at_us,
           x.now_us);
}

/// Applies a validated patch if the job's expression, zone and activity are
/// still the ones the scheduler merged it with (conflict otherwise: read and
/// merge again). With `set_next`, next_run_at becomes `next_run_at_us`
/// (0: NULL). not_found for an unknown job.
struct store_patch_job {
  std::string id;
  job_patch patch;
  std::string expected_cron_expression;
  std::string expected_timezone;
  bool expected_is_active = true;
  bool set_next = false;
  int64_t next_run_at_us = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_patch_job& x) {
  return f(caf::meta::type_name("store_patch_job"), x.id, x.patch,
           x.expected_cron_expression, x.expected_timezone,
           x.expected_is_active, x.set_next, x.next_run_at_us, x.now_us);
}

/// Records a manual run of job `id` and enqueues `task` (the store fills
/// args and the manual unique key) at `now_us`; see run_job_now.
struct store_run_now {
  std::string id;
  tasks::enqueue_request task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_run_now& x) {
  return f(caf::meta::type_name("store_run_now"), x.id, x.task, x.now_us);
}

} // namespace engram::schedules

namespace engram {

/// The SCHEDULE STORE: a detached actor owning one connection, used by one
/// scheduler. Its session holds the cluster's scheduler lock while it
/// leads; every fire is one transaction and is refused (conflict) unless the
/// session holds the lock. Errors are `errc` (database_unavailable is
/// retryable and means the session, and with it the lock, was lost).
using schedule_store_actor = caf::typed_actor<
  caf::replies_to<schedules::lead_request>::with<schedules::leadership>,
  caf::replies_to<schedules::load_static_states>::with<
    std::vector<schedules::static_state>>,
  caf::replies_to<schedules::save_static_states>::with<bool>,
  caf::replies_to<schedules::fire_static>::with<schedules::fire_result>,
  caf::replies_to<schedules::load_active_jobs>::with<
    std::vector<schedules::job_info>>,
  caf::replies_to<schedules::set_job_next>::with<bool>,
  caf::replies_to<schedules::fire_job>::with<schedules::fire_result>,
  // -- CRUD, on behalf of the scheduler --
  caf::replies_to<schedules::store_create_job>::with<schedules::job_info>,
  caf::replies_to<schedules::get_job>::with<schedules::job_info>,
  caf::replies_to<schedules::list_jobs>::with<schedules::job_page>,
  caf::replies_to<schedules::store_patch_job>::with<schedules::job_info>,
  caf::replies_to<schedules::delete_job>::with<bool>,
  caf::replies_to<schedules::store_run_now>::with<schedules::manual_run>,
  caf::replies_to<schedules::list_job_runs>::with<schedules::run_page>>;

/// The SCHEDULER: on the leader (advisory lock) it turns due static entries
/// and dynamic jobs into tasks; on every node it serves schedule CRUD.
using scheduler_actor = caf::typed_actor<
  // Internal clock: leadership, reloads, due fires.
  caf::reacts_to<atom::tick>,
  // The schedule changed in the database.
  caf::reacts_to<schedules::reload>,
  caf::replies_to<schedules::status_request>::with<schedules::scheduler_status>,
  // -- schedule CRUD (DESIGN §5; HTTP /api/schedules) --
  caf::replies_to<schedules::create_job>::with<schedules::job_info>,
  caf::replies_to<schedules::get_job>::with<schedules::job_info>,
  caf::replies_to<schedules::list_jobs>::with<schedules::job_page>,
  caf::replies_to<schedules::patch_job>::with<schedules::job_info>,
  caf::replies_to<schedules::delete_job>::with<bool>,
  caf::replies_to<schedules::run_job_now>::with<schedules::manual_run>,
  caf::replies_to<schedules::list_job_runs>::with<schedules::run_page>>;

/// The scheduler's name among the supervised actors and in the registry.
inline constexpr char scheduler_name[] = "scheduler";

} // namespace engram
