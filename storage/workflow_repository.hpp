#pragma once

// Workflow chains' storage (DESIGN §7): runs, the state of every step
// attempt, artifacts and credential audits, and the durable tasks
// (`workflow.step`) that move a run on, enqueued in the same transaction as
// the change that causes them. See messages/workflows.hpp for what each
// request means.
//
// Times are the caller's (`now`), never the server's. Refusals are `errc`
// errors: not_found, conflict, invalid_argument (a malformed id, an unknown
// status, JSON text that is not JSON, ...). The caller must not commit
// after a refusal (storage_actors' checked_transaction): some refusals are
// found after a statement ran. Other libpqxx exceptions are left to the
// caller, which rolls back.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <pqxx/transaction_base>

#include "messages/workflows.hpp"
#include "runtime/clock.hpp"

namespace engram::storage {

/// Bounds of list_runs' limit.
inline constexpr int32_t max_workflow_page = 500;

/// The unique key of the `workflow.step` task of one try:
/// "workflow:<run_id>:<run_attempt>:<step_index>:<try>".
[[nodiscard]] std::string workflow_task_key(const std::string& run_id,
                                            int32_t run_attempt,
                                            int32_t step_index,
                                            int32_t try_number);

/// The `workflow.step` arguments of one try: the caller's `args_json`
/// object (empty = {}) with run_id, step_index, run_attempt and try set.
/// std::invalid_argument when `args_json` is not a JSON object.
[[nodiscard]] std::string workflow_task_args(const std::string& args_json,
                                             const std::string& run_id,
                                             int32_t step_index,
                                             int32_t run_attempt,
                                             int32_t try_number);

/// Creates a pending run and its first task, or returns the run that holds
/// the idempotency key (any status) or the branch name (not cancelled);
/// two concurrent creations with one key or branch make one run. The task
/// keeps the caller's name, queue, priority, retries and limits; its args
/// and unique key are the first try's. Refusals: invalid_argument
/// (malformed id, empty workflow or steps, invalid JSON), conflict (the id
/// belongs to a run of another workflow).
[[nodiscard]] caf::expected<workflows::create_run_result>
create_run(pqxx::transaction_base& tx, const workflows::create_run& req,
           wall_time now);

/// Records the start of a step attempt (see workflows::begin_step): the
/// outcome is run, stale, cancelled or missing_credentials. Refusals:
/// not_found (run), invalid_argument (an audit's kind).
[[nodiscard]] caf::expected<workflows::step_start>
begin_step(pqxx::transaction_base& tx, const workflows::begin_step& req,
           wall_time now);

/// Records a step attempt's outcome with its artifacts and what comes next
/// (see workflows::finish_step); returns the run. Refusals: not_found
/// (run), conflict (the attempt is not this run's or no longer running),
/// invalid_argument (status, artifact, JSON).
[[nodiscard]] caf::expected<workflows::run_record>
finish_step(pqxx::transaction_base& tx, const workflows::finish_step& req,
            wall_time now);

/// Cancels a run. Refusals: not_found, conflict (succeeded or cancelled).
[[nodiscard]] caf::expected<workflows::run_record>
cancel_run(pqxx::transaction_base& tx, const workflows::cancel_run& req,
           wall_time now);

/// Retries a failed run from its current step with the next run attempt,
/// recording the audits and enqueueing the task (args and unique key set
/// here; an audit without step or attempt names the step and the attempt
/// the retry will run). Refusals: not_found, conflict (not failed).
[[nodiscard]] caf::expected<workflows::run_record>
retry_run(pqxx::transaction_base& tx, const workflows::retry_run& req,
          wall_time now);

/// Inserts credential checks; returns how many. Refusals: not_found (an
/// audit names an unknown run), invalid_argument (malformed run id, kind).
/// An audit without checked_at_us is stamped `now`.
[[nodiscard]] caf::expected<int64_t>
record_audits(pqxx::transaction_base& tx, const workflows::record_audits& req,
              wall_time now);

/// A run with its step attempts in id order; not_found.
[[nodiscard]] caf::expected<workflows::run_detail>
get_run(pqxx::transaction_base& tx, const std::string& run_id);

/// A page of runs, newest first (by seq). invalid_argument for a limit
/// outside 1..max_workflow_page, a negative cursor or an unknown status.
[[nodiscard]] caf::expected<workflows::run_page>
list_runs(pqxx::transaction_base& tx, const workflows::list_runs& req);

/// A run's artifacts in id order; not_found for an unknown run.
[[nodiscard]] caf::expected<std::vector<workflows::artifact_record>>
list_artifacts(pqxx::transaction_base& tx, const std::string& run_id);

/// One artifact; not_found unless it exists and belongs to `run_id`.
[[nodiscard]] caf::expected<workflows::artifact_record>
get_artifact(pqxx::transaction_base& tx, const std::string& run_id,
             int64_t artifact_id);

/// A run's credential audits in id order; not_found for an unknown run.
[[nodiscard]] caf::expected<std::vector<workflows::credential_audit>>
list_audits(pqxx::transaction_base& tx, const std::string& run_id);

} // namespace engram::storage
