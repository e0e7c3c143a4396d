#pragma once

// Dynamic schedules (DESIGN §5): engram.scheduled_jobs and one
// engram.scheduled_job_runs row per fire. Cron expressions and time zones
// are not validated here: the caller validates them with the cron module
// (actors/scheduler/cron.hpp) before storing them. Any change to a job's
// expression, zone, activity or next run, and any insert or delete, wakes
// the scheduler through NOTIFY engram_schedules at commit.
//
// The life of a fire, each step in the caller's transaction:
//   scheduler: record_run_queued (a fire time happens once per job) →
//     enqueue agent.scheduled_run (args: job id, run id) → attach_run_task →
//     set_next_run;
//   worker: record_run_start (false: the run already finished, skip it) →
//     run the agent → record_run_result (or record_run_skipped).
// record_run_result applies the job's tracking once per run, so a handler
// that runs twice (at-least-once delivery) never counts a run twice.
//
// Ids are UUIDs in canonical text form; a malformed id is "not found".
// JSON columns travel as JSON text.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "runtime/clock.hpp"

namespace engram::storage {

/// Consecutive failures after which a job is deactivated (DESIGN §5).
inline constexpr int32_t max_consecutive_failures = 5;
/// How much of an error a job keeps in last_error, in characters.
inline constexpr int32_t job_last_error_chars = 500;
/// How much of an error a run row keeps, in characters.
inline constexpr int32_t run_error_chars = 4000;
/// Page size of list_scheduled_jobs when none is given, and its maximum.
inline constexpr int64_t default_job_page = 50;
inline constexpr int64_t max_job_page = 1000;

/// What a caller gives to create a scheduled job.
struct new_scheduled_job {
  std::optional<std::string> team_id;
  std::string agent_id;
  std::optional<std::string> user_id;
  std::string name;
  /// What the agent is asked at each run.
  std::string message;
  /// Validated by the caller.
  std::string cron_expression;
  /// IANA zone, validated by the caller.
  std::string timezone = "UTC";
  bool is_active = true;
  /// A JSON object.
  std::string delivery_config_json = "{}";
  /// Computed by the caller from the expression (none: not scheduled yet).
  std::optional<wall_time> next_run_at;
};

/// A row of engram.scheduled_jobs.
struct scheduled_job_row {
  std::string id;
  std::optional<std::string> team_id;
  std::string agent_id;
  std::optional<std::string> user_id;
  std::string name;
  std::string message;
  std::string cron_expression;
  std::string timezone;
  bool is_active = true;
  std::optional<wall_time> last_run_at;
  std::optional<wall_time> next_run_at;
  int64_t run_count = 0;
  int32_t consecutive_failures = 0;
  std::optional<std::string> last_error;
  std::string delivery_config_json;
  wall_time created_at;
  wall_time updated_at;
};

/// A partial update: only the fields that are set change.
struct scheduled_job_patch {
  std::optional<std::string> name;
  std::optional<std::string> message;
  std::optional<std::string> cron_expression;
  std::optional<std::string> timezone;
  /// Turning an inactive job active also resets consecutive_failures to 0
  /// (otherwise its next failure would deactivate it again at once).
  std::optional<bool> is_active;
  /// A JSON object; replaces the whole config.
  std::optional<std::string> delivery_config_json;
  std::optional<wall_time> next_run_at;
  /// Sets next_run_at to NULL (wins over `next_run_at`).
  bool clear_next_run_at = false;
};

/// Which jobs list_scheduled_jobs returns: every field that is set must match.
struct scheduled_job_filter {
  std::optional<std::string> team_id;
  std::optional<std::string> agent_id;
  std::optional<std::string> user_id;
  std::optional<bool> is_active;
};

/// One page of jobs, newest first.
struct scheduled_job_page {
  std::vector<scheduled_job_row> jobs;
  /// Opaque; pass it back for the next page. Empty: this is the last page.
  std::string next_cursor;
};

/// A row of engram.scheduled_job_runs.
struct job_run_row {
  int64_t id = 0;
  std::string job_id;
  std::optional<int64_t> task_id;
  /// None: a manual "run now".
  std::optional<wall_time> fire_time;
  /// "queued", "running", "succeeded", "failed" or "skipped".
  std::string status;
  std::optional<std::string> conversation_id;
  std::optional<std::string> error;
  std::optional<wall_time> started_at;
  std::optional<wall_time> finished_at;
  wall_time created_at;
};

/// The answer to record_run_queued: the run's id and whether this call
/// created it (false: that fire time was already recorded).
struct run_record {
  int64_t run_id = 0;
  bool created = false;
};

/// A job's tracking after record_run_result.
struct run_tracking {
  int64_t run_count = 0;
  int32_t consecutive_failures = 0;
  bool is_active = true;
  /// This result deactivated the job (its max_consecutive_failures-th
  /// consecutive failure).
  bool deactivated = false;
};

/// Creates a job created (and updated) at `now`, or nullopt when the agent
/// does not exist (or its id is malformed). A delivery config that is not a
/// JSON object is refused by the database (pqxx exception).
[[nodiscard]] std::optional<scheduled_job_row>
create_scheduled_job(pqxx::transaction_base& tx, const new_scheduled_job& job,
                     wall_time now);

/// The job `id`, or nullopt when there is none.
[[nodiscard]] std::optional<scheduled_job_row>
get_scheduled_job(pqxx::transaction_base& tx, const std::string& id);

/// Jobs matching `filter`, newest first (created_at, then id, descending),
/// at most `limit` (<= 0: default_job_page; at most max_job_page), starting
/// after `cursor` (empty: the first page). Keyset pagination: jobs created
/// while a client pages (they are newer) never shift or repeat later pages.
/// Throws std::invalid_argument for a cursor this function did not make.
[[nodiscard]] scheduled_job_page
list_scheduled_jobs(pqxx::transaction_base& tx,
                    const scheduled_job_filter& filter,
                    const std::string& cursor, int64_t limit);

/// Applies `patch` to job `id` (updated_at = `now` when anything is set) and
/// returns the job as it is now, or nullopt when there is none.
[[nodiscard]] std::optional<scheduled_job_row>
patch_scheduled_job(pqxx::transaction_base& tx, const std::string& id,
                    const scheduled_job_patch& patch, wall_time now);

/// Deletes job `id` and its runs. Returns whether there was one.
[[nodiscard]] bool delete_scheduled_job(pqxx::transaction_base& tx,
                                        const std::string& id);

/// Every active job (by id), for the scheduler to load.
[[nodiscard]] std::vector<scheduled_job_row>
list_active_jobs(pqxx::transaction_base& tx);

/// Active jobs whose next_run_at <= `now`, earliest first (then by id), at
/// most `limit` (<= 0: all).
[[nodiscard]] std::vector<scheduled_job_row>
list_due_jobs(pqxx::transaction_base& tx, wall_time now, int64_t limit = 0);

/// Sets job `job_id`'s next_run_at (none: NULL, no next run) and
/// updated_at = `now`. Returns whether the job exists.
[[nodiscard]] bool set_next_run(pqxx::transaction_base& tx,
                                const std::string& job_id,
                                std::optional<wall_time> next_run_at,
                                wall_time now);

/// Records a fire of job `job_id` as a queued run created at `now`, with
/// its task when the caller already has one. A fire time is recorded once
/// per job: when `fire_time` was recorded before, nothing changes and that
/// run comes back with created = false (so the caller does not enqueue it
/// again). No fire time (a manual "run now") always makes a new run.
/// nullopt when the job does not exist.
[[nodiscard]] std::optional<run_record>
record_run_queued(pqxx::transaction_base& tx, const std::string& job_id,
                  std::optional<wall_time> fire_time,
                  std::optional<int64_t> task_id, wall_time now);

/// Sets the task of run `run_id`. Returns whether the run exists.
[[nodiscard]] bool attach_run_task(pqxx::transaction_base& tx, int64_t run_id,
                                   int64_t task_id);

/// Marks run `run_id` of job `job_id` running since `now` (again, when a
/// worker died and its task runs anew). Returns false, changing nothing,
/// when there is no such run or it already finished (succeeded, failed or
/// skipped): the caller must not run it again.
[[nodiscard]] bool record_run_start(pqxx::transaction_base& tx,
                                    const std::string& job_id, int64_t run_id,
                                    wall_time now);

/// Finishes run `run_id` of job `job_id` at `now` and applies the job's
/// tracking (DESIGN §5). Success: the run succeeded; the job's last_run_at =
/// `now`, run_count + 1, consecutive_failures = 0 (last_error is kept as
/// the last error seen). Failure: the run failed with `error` (first
/// run_error_chars characters); the job's consecutive_failures + 1,
/// last_error = the first job_last_error_chars characters of `error`, and at
/// max_consecutive_failures consecutive failures is_active = false.
/// `conversation_id`, when given, is the conversation the run produced.
/// Returns nullopt, changing nothing, when the run does not exist, belongs to
/// another job or already finished: a run counts once.
[[nodiscard]] std::optional<run_tracking>
record_run_result(pqxx::transaction_base& tx, const std::string& job_id,
                  int64_t run_id, bool succeeded, const std::string& error,
                  wall_time now,
                  const std::optional<std::string>& conversation_id = {});

/// Records as failed (with record_run_result's tracking) every unfinished
/// run whose task ended dead or cancelled without the handler recording a
/// result: a hard time limit, a lease that expired on the last attempt, a
/// cancel. Returns how many runs it closed (at most `limit`).
int64_t close_abandoned_runs(pqxx::transaction_base& tx, wall_time now,
                             int64_t limit = 100);

/// Finishes run `run_id` of job `job_id` as skipped at `now` (e.g. the job
/// was deactivated before its task ran), with `reason` as its error. The job's tracking does not change. Returns false when there is no
/// such unfinished run.
[[nodiscard]] bool record_run_skipped(pqxx::transaction_base& tx,
                                      const std::string& job_id,
                                      int64_t run_id, const std::string& reason,
                                      wall_time now);

/// The run `run_id`, or nullopt when there is none.
[[nodiscard]] std::optional<job_run_row> get_job_run(pqxx::transaction_base& tx,
                                                     int64_t run_id);

/// Runs of job `job_id`, newest first (by id), those older than
/// `before_run_id` only (0: from the newest), at most `limit` (<= 0: all).
/// Empty for an unknown job.
[[nodiscard]] std::vector<job_run_row>
list_job_runs(pqxx::transaction_base& tx, const std::string& job_id,
              int64_t before_run_id = 0, int64_t limit = 50);

} // namespace engram::storage
