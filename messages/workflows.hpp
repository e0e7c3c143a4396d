#pragma once

// Workflow chains (DESIGN §7): runs as stored (`workflow_runs`), the state of
// every step attempt (`workflow_task_states`), artifacts, credential audits,
// the storage requests that move a run through its states, and the
// interface of the workflow actor (start, cancel, retry, run one step).
//
// How a run moves: creating a run enqueues the durable task `workflow.step`
// {run_id, step_index, run_attempt, try} for its first step in the same
// transaction. The task asks the workflow actor, whose chain actor for the
// run checks credentials, records the attempt as running (begin_step), runs
// the step's child process, and records the outcome (finish_step) together
// with the next task: the next step, the same step again after its backoff,
// or nothing when the run ends. A step whose task is redelivered after a
// crash finds its attempt `running`, marks it `interrupted` and runs again;
// a finished step is never run again because its task's successor exists
// only if its outcome was committed.
//
// Conventions as messages/memories.hpp: empty string = none, times are epoch
// microseconds with 0 = none, JSON travels as text.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/tasks.hpp"

namespace engram::workflows {

/// The run states: pending → running → succeeded | failed | cancelled;
/// failed → retrying → running (POST …/retry).
inline const std::vector<std::string>& run_statuses() {
  static const std::vector<std::string> names{
    "pending", "running", "succeeded", "failed", "retrying", "cancelled"};
  return names;
}

/// A step attempt's states: running → succeeded | failed | cancelled, or
/// interrupted (the daemon stopped while it ran; the step runs again).
inline const std::vector<std::string>& step_statuses() {
  static const std::vector<std::string> names{
    "running", "succeeded", "failed", "interrupted", "cancelled"};
  return names;
}

/// Why a step or run failed (`error_kind`).
namespace failure {
/// The command exited with a non-zero status or was killed by a signal.
inline constexpr const char* exit = "exit";
/// The step ran past its timeout; its process group was killed.
inline constexpr const char* timeout = "timeout";
/// stdout was not one JSON value (or was larger than the limit).
inline constexpr const char* invalid_output = "invalid_output";
/// A required credential was missing or unusable; nothing was started.
inline constexpr const char* missing_credential = "missing_credential";
/// The command could not be started (not found, not executable).
inline constexpr const char* start = "start";
/// The step no longer exists in the workflow's definition.
inline constexpr const char* definition = "definition";
} // namespace failure

// -- records --------------------------------------------------------------------

/// A run as stored.
struct run_record {
  std::string id;
  std::string workflow;
  std::string status;
  std::string idempotency_key;
  std::string branch_name;
  std::string input_json = "{}";
  /// The step names at creation, in order (a run keeps its shape when the
  /// definition changes; commands are read from the current definition).
  std::vector<std::string> steps;
  /// The step running or next to run (index into `steps`).
  int32_t current_step_index = 0;
  /// 1 + the number of operator retries.
  int32_t attempt = 1;
  std::string error;
  /// One of the `failure` names, "cancelled", or empty.
  std::string error_kind;
  /// Credentials the failed step lacked (error_kind missing_credential).
  std::vector<std::string> missing_credentials;
  /// The note of the latest operator retry.
  std::string note;
  /// The last step's JSON result once the run succeeded, else empty.
  std::string output_json;
  int64_t created_at_us = 0;
  int64_t started_at_us = 0;
  int64_t updated_at_us = 0;
  int64_t finished_at_us = 0;
  /// Insertion order (the list's cursor).
  int64_t seq = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_record& x) {
  return f(caf::meta::type_name("run_record"), x.id, x.workflow, x.status,
           x.idempotency_key, x.branch_name, x.input_json, x.steps,
           x.current_step_index, x.attempt, x.error, x.error_kind,
           x.missing_credentials, x.note, x.output_json, x.created_at_us,
           x.started_at_us, x.updated_at_us, x.finished_at_us, x.seq);
}

/// One attempt of one step (`workflow_task_states`).
struct step_record {
  int64_t id = 0;
  std::string run_id;
  std::string step;
  int32_t step_index = 0;
  /// Counts every execution of this step in the run (1, 2, ...), including
  /// retries and re-runs after a crash; names the artifact folder.
  int32_t attempt = 1;
  /// The run attempt it belongs to.
  int32_t run_attempt = 1;
  /// The try within the run attempt (1 + the step's retries used so far).
  int32_t try_number = 1;
  std::string status;
  int64_t started_at_us = 0;
  int64_t finished_at_us = 0;
  int64_t duration_ms = 0;
  /// -1 when it did not exit normally (or has not finished).
  int32_t exit_code = -1;
  /// The signal that ended it, else 0.
  int32_t term_signal = 0;
  /// The step's JSON result (succeeded), else empty.
  std::string payload_json;
  std::string error;
  std::string error_kind;
  /// Artifacts this attempt produced.
  std::vector<int64_t> artifact_ids;
  /// The durable task that ran it.
  int64_t task_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_record& x) {
  return f(caf::meta::type_name("step_record"), x.id, x.run_id, x.step,
           x.step_index, x.attempt, x.run_attempt, x.try_number, x.status,
           x.started_at_us, x.finished_at_us, x.duration_ms, x.exit_code,
           x.term_signal, x.payload_json, x.error, x.error_kind,
           x.artifact_ids, x.task_id);
}

/// A file a step produced (`workflow_artifacts`).
struct artifact_record {
  int64_t id = 0;
  std::string run_id;
  std::string step;
  int64_t step_state_id = 0;
  /// File name within the attempt's folder, e.g. "stdout.json",
  /// "reports/summary.md".
  std::string name;
  /// Path below the artifact root: "<run_id>/<step>/<attempt>/<name>".
  std::string relative_path;
  int64_t size_bytes = 0;
  /// Lower-case hex SHA-256 of the content.
  std::string sha256;
  std::string content_type;
  int64_t created_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, artifact_record& x) {
  return f(caf::meta::type_name("artifact_record"), x.id, x.run_id, x.step,
           x.step_state_id, x.name, x.relative_path, x.size_bytes, x.sha256,
           x.content_type, x.created_at_us);
}

/// A credential check before a step (`workflow_credential_audits`): never
/// the secret itself.
struct credential_audit {
  int64_t id = 0;
  std::string run_id;
  std::string step;
  int32_t attempt = 0;
  /// As written in the definition: "GH_TOKEN" or "file:/etc/engram/key".
  std::string credential;
  /// "env" or "file".
  std::string kind;
  bool present = false;
  bool valid = false;
  int64_t checked_at_us = 0;
  /// Why it is not usable ("not set", "empty", "not a regular file",
  /// "not readable"), or "ok".
  std::string detail;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, credential_audit& x) {
  return f(caf::meta::type_name("credential_audit"), x.id, x.run_id, x.step,
           x.attempt, x.credential, x.kind, x.present, x.valid,
           x.checked_at_us, x.detail);
}

/// A run with its step attempts (oldest first).
struct run_detail {
  run_record run;
  std::vector<step_record> steps;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_detail& x) {
  return f(caf::meta::type_name("run_detail"), x.run, x.steps);
}

// -- storage requests --------------------------------------------------------------

/// Creates a pending run and, in the same transaction, `first_task` (the
/// caller fills its args except run_id, which storage sets). A run of the
/// same workflow with the same idempotency key, or with the same branch
/// name that is not cancelled, is returned instead (created = false).
struct create_run {
  std::string id; ///< the new run's id (the caller generates it)
  std::string workflow;
  std::string idempotency_key;
  std::string branch_name;
  std::string input_json = "{}";
  std::vector<std::string> steps;
  tasks::enqueue_request first_task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_run& x) {
  return f(caf::meta::type_name("create_run"), x.id, x.workflow,
           x.idempotency_key, x.branch_name, x.input_json, x.steps,
           x.first_task, x.now_us);
}

struct create_run_result {
  run_record run;
  bool created = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_run_result& x) {
  return f(caf::meta::type_name("create_run_result"), x.run, x.created);
}

/// Records the start of a step attempt: the credential checks, then either
/// a `running` attempt or (a check failed) a failed attempt and a failed
/// run. An attempt of the same (run_attempt, step_index, try) still marked
/// running is first marked interrupted. Refused (outcome stale) when the
/// run has moved on: another run attempt, another step, or a final state.
struct begin_step {
  std::string run_id;
  int32_t step_index = 0;
  int32_t run_attempt = 1;
  int32_t try_number = 1;
  int64_t task_id = 0;
  std::vector<credential_audit> audits;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, begin_step& x) {
  return f(caf::meta::type_name("begin_step"), x.run_id, x.step_index,
           x.run_attempt, x.try_number, x.task_id, x.audits, x.now_us);
}

/// What begin_step decided.
enum class start_outcome : uint8_t {
  /// Run the step: `state` is the running attempt.
  run = 0,
  /// Nothing to do: the run moved on, or this step is finished.
  stale = 1,
  /// The run was cancelled.
  cancelled = 2,
  /// A credential check failed: `state` is the failed attempt and the run
  /// is failed.
  missing_credentials = 3,
};

struct step_start {
  start_outcome outcome = start_outcome::stale;
  run_record run;
  step_record state;
  /// The step's stdin: the previous step's JSON result (its latest
  /// succeeded attempt), or the run's input for the first step.
  std::string stdin_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_start& x) {
  return f(caf::meta::type_name("step_start"), x.outcome, x.run, x.state,
           x.stdin_json);
}

/// Records a step attempt's outcome with its artifacts and, in the same
/// transaction, what comes next:
/// - succeeded, not the last step: the run advances and `next_task` (the
///   next step) is enqueued;
/// - succeeded, last step: the run succeeded with the payload as output;
/// - failed with `next_task` set: the step's next try, enqueued with its
///   backoff delay; the run stays running;
/// - failed without `next_task`: the run failed with the error;
/// - cancelled: the attempt and (if not yet) the run are cancelled.
/// Refused (conflict) when the attempt is no longer running (another worker
/// took the step over); then nothing is written.
struct finish_step {
  std::string run_id;
  int64_t state_id = 0;
  /// succeeded, failed or cancelled.
  std::string status;
  int32_t exit_code = -1;
  int32_t term_signal = 0;
  std::string payload_json;
  std::string error;
  std::string error_kind;
  std::vector<artifact_record> artifacts;
  /// Enqueued with the outcome (args complete; empty name = none).
  tasks::enqueue_request next_task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, finish_step& x) {
  return f(caf::meta::type_name("finish_step"), x.run_id, x.state_id,
           x.status, x.exit_code, x.term_signal, x.payload_json, x.error,
           x.error_kind, x.artifacts, x.next_task, x.now_us);
}

/// Cancels a pending, running, retrying or failed run (conflict for a
/// succeeded or cancelled one; not_found for an unknown id). A running
/// step's attempt is ended by its chain (finish_step with cancelled).
struct cancel_run {
  std::string run_id;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_run& x) {
  return f(caf::meta::type_name("cancel_run"), x.run_id, x.now_us);
}

/// Retries a failed run from its failed step: status retrying, attempt + 1,
/// the note kept, error cleared, and `task` (the failed step, try 1, the new
/// run attempt; storage sets run_id, step_index and run_attempt in its
/// args) enqueued. Conflict when the run is not failed.
struct retry_run {
  std::string run_id;
  std::string note;
  tasks::enqueue_request task;
  /// Credential checks made before the retry (recorded with the run).
  std::vector<credential_audit> audits;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, retry_run& x) {
  return f(caf::meta::type_name("retry_run"), x.run_id, x.note, x.task,
           x.audits, x.now_us);
}

/// Records credential checks without changing the run (a retry refused
/// because a credential is still missing).
struct record_audits {
  std::vector<credential_audit> audits;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_audits& x) {
  return f(caf::meta::type_name("record_audits"), x.audits);
}

/// A run with its step attempts; not_found for an unknown id.
struct get_run {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_run& x) {
  return f(caf::meta::type_name("get_run"), x.run_id);
}

/// A page of runs, newest first. The cursor is the `seq` of the last run of
/// the previous page (runs inserted meanwhile sort before it, so pages
/// neither repeat nor skip a run).
struct list_runs {
  std::string workflow;
  std::string status;
  int64_t before_seq = 0; ///< 0 = from the newest
  int32_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_runs& x) {
  return f(caf::meta::type_name("list_runs"), x.workflow, x.status,
           x.before_seq, x.limit);
}

struct run_page {
  std::vector<run_record> runs;
  /// The next page's before_seq; 0 = no more.
  int64_t next_before_seq = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_page& x) {
  return f(caf::meta::type_name("run_page"), x.runs, x.next_before_seq);
}

/// A run's artifacts (oldest first); not_found for an unknown run.
struct list_artifacts {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_artifacts& x) {
  return f(caf::meta::type_name("list_artifacts"), x.run_id);
}

/// One artifact of a run; not_found for an unknown run or an artifact of
/// another run.
struct get_artifact {
  std::string run_id;
  int64_t artifact_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_artifact& x) {
  return f(caf::meta::type_name("get_artifact"), x.run_id, x.artifact_id);
}

/// A run's credential audits (oldest first); not_found for an unknown run.
struct list_audits {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_audits& x) {
  return f(caf::meta::type_name("list_audits"), x.run_id);
}

// -- the workflow actor ------------------------------------------------------------

/// Starts a run of `workflow` (not_found for an unknown workflow;
/// invalid_argument for input the definition refuses).
struct start_run {
  std::string workflow;
  std::string input_json = "{}";
  std::string idempotency_key;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, start_run& x) {
  return f(caf::meta::type_name("start_run"), x.workflow, x.input_json,
           x.idempotency_key);
}

/// Cancels a run and stops its running step's process group.
struct cancel_request {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_request& x) {
  return f(caf::meta::type_name("cancel_request"), x.run_id);
}

/// Retries a failed run from its failed step; unprocessable (with the
/// names to provide) when its missing credential is still missing.
struct retry_request {
  std::string run_id;
  std::string note;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, retry_request& x) {
  return f(caf::meta::type_name("retry_request"), x.run_id, x.note);
}

/// Runs one step attempt (sent by the `workflow.step` task); answers when
/// the outcome is committed.
struct run_step {
  std::string run_id;
  int32_t step_index = 0;
  int32_t run_attempt = 1;
  int32_t try_number = 1;
  int64_t task_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_step& x) {
  return f(caf::meta::type_name("run_step"), x.run_id, x.step_index,
           x.run_attempt, x.try_number, x.task_id);
}

/// Stops the run's running step, if this node runs it: its process group
/// is killed. The attempt is recorded as cancelled when the run was
/// cancelled; otherwise it is left running, so the step's redelivered task
/// marks it interrupted and runs it again (the worker stopping, a lease
/// lost).
struct stop_step {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stop_step& x) {
  return f(caf::meta::type_name("stop_step"), x.run_id);
}

/// What a run_step did: "succeeded", "failed", "retrying" (a next try is
/// queued), "cancelled", "skipped" (stale: nothing to do), "superseded"
/// (another worker took the step over; this outcome was not recorded).
struct step_report {
  std::string outcome;
  std::string run_status;
  std::string step;
  int32_t attempt = 0;
  int64_t duration_ms = 0;
  int32_t exit_code = -1;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_report& x) {
  return f(caf::meta::type_name("step_report"), x.outcome, x.run_status,
           x.step, x.attempt, x.duration_ms, x.exit_code, x.error);
}

/// The loaded definitions, as JSON text (GET /api/workflows).
struct list_definitions {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_definitions&) {
  return f(caf::meta::type_name("list_definitions"));
}

} // namespace engram::workflows

namespace engram {

/// The workflow actor's key in the actor registry.
inline constexpr char workflows_name[] = "workflows";

/// Starts, cancels and retries runs; runs steps for the `workflow.step`
/// task through one chain actor per running run.
using workflow_actor = caf::typed_actor<
  caf::replies_to<workflows::start_run>::with<workflows::create_run_result>,
  caf::replies_to<workflows::cancel_request>::with<workflows::run_record>,
  caf::replies_to<workflows::retry_request>::with<workflows::run_record>,
  caf::replies_to<workflows::run_step>::with<workflows::step_report>,
  caf::reacts_to<workflows::stop_step>,
  caf::replies_to<workflows::list_definitions>::with<std::string>>;

} // namespace engram
