#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "messages/tasks.hpp"
#include "runtime/clock.hpp"

namespace engram::storage {

/// The channel every enqueue (and every change that makes a task due)
/// notifies, with the task's queue as the payload.
inline constexpr char tasks_channel[] = "engram_tasks";

// Every function takes the caller's `now` (the daemon's injectable clock):
// run_at, lease_until and the other times it writes are computed from it,
// never from the database server's clock.

/// Inserts tasks inside the caller's transaction, so they commit (and wake
/// workers through NOTIFY engram_tasks) together with the change that caused
/// them. A task whose unique key a queued or running task holds (or an
/// earlier task of the same batch) is not inserted: its result carries that
/// task's id with created = false. Results are in the order of `requests`.
/// No notification is sent for `quiet_queue` (a caller that claims that
/// queue in the same transaction).
[[nodiscard]] std::vector<tasks::enqueue_result>
enqueue_tasks(pqxx::transaction_base& tx,
              const std::vector<tasks::enqueue_request>& requests,
              wall_time now, const std::string& quiet_queue = {});

/// One task; see enqueue_tasks.
[[nodiscard]] tasks::enqueue_result
enqueue_task(pqxx::transaction_base& tx, const tasks::enqueue_request& req,
             wall_time now);

/// Claims up to `limit` due tasks of `queue` (highest priority, then oldest
/// run_at, then id), skipping rows other workers hold: each becomes running,
/// its attempt counter grows, and it gets a fresh lease token valid for
/// `lease`. The claimed tasks come back in claim order. The transaction
/// commits asynchronously (synchronous_commit off for it alone): a claim
/// lost in a server crash only makes the task run again.
[[nodiscard]] std::vector<tasks::claimed_task>
claim_tasks(pqxx::transaction_base& tx, const std::string& queue,
            const std::string& worker, int64_t limit,
            std::chrono::milliseconds lease, wall_time now);

/// Extends the leases of running tasks. Leases that are no longer the
/// caller's (reclaimed, finished or cancelled elsewhere) come back as lost;
/// tasks an operator asked to stop come back in cancel_requested.
[[nodiscard]] tasks::renewal_result
renew_leases(pqxx::transaction_base& tx,
             const std::vector<tasks::lease_ref>& leases,
             std::chrono::milliseconds lease, wall_time now);

/// Applies finished attempts whose `lease_token` is still the task's lease:
/// success → succeeded with its result; cancelled → cancelled; failure →
/// queued again after `retry_delay_ms`, or dead when retries are exhausted
/// or the failure is permanent (every failure is appended to the task's
/// errors). The followups of accepted outcomes are enqueued in the same
/// transaction. Outcomes whose lease was lost change nothing and are
/// reported as refused.
[[nodiscard]] tasks::completion_result
complete_tasks(pqxx::transaction_base& tx,
               const std::vector<tasks::task_outcome>& outcomes, wall_time now);

/// complete_tasks, then (if `claim.limit` > 0) a claim in the same
/// transaction, which commits synchronously like every completion. A
/// single success with no followup, or with one that the claim takes at
/// insert, is recorded (and claimed after) in one statement; see
/// single_statement_completion.
[[nodiscard]] tasks::completion_result
complete_and_claim(pqxx::transaction_base& tx,
                   const std::vector<tasks::task_outcome>& outcomes,
                   const tasks::claim_tasks& claim, wall_time now);

/// Whether complete_and_claim records `outcomes` in one statement (a single
/// success with no followup, or with one followup the claim takes at
/// insert; a claim may follow as a statement of its own), so the caller
/// may run it outside a transaction block and save BEGIN and COMMIT.
[[nodiscard]] bool
single_statement_completion(const std::vector<tasks::task_outcome>& outcomes,
                            const tasks::claim_tasks& claim, wall_time now);

/// Hands claimed tasks back to the queue, due now, without counting the
/// attempt (a worker stopping). Returns how many were still the caller's.
int64_t release_tasks(pqxx::transaction_base& tx,
                      const std::vector<tasks::lease_ref>& leases,
                      wall_time now);

/// Returns running tasks whose lease expired to the queue (or to dead when
/// that was their last attempt), recording why. Returns their ids, sorted.
[[nodiscard]] std::vector<int64_t>
reclaim_expired(pqxx::transaction_base& tx, int64_t limit, wall_time now);

/// Cancels a task: a queued one at once (returns "cancelled"); a running one
/// is asked to stop cooperatively (returns "cancelling"). Returns the
/// status unchanged for a finished task and "" for an unknown id.
[[nodiscard]] std::string cancel_task(pqxx::transaction_base& tx, int64_t id,
                                      wall_time now);

/// Puts a dead or cancelled task back in the queue, due now, with its
/// attempt counter reset (its error history stays). Returns "queued" on
/// success, the current status when the task is not dead or cancelled, and
/// "" for an unknown id, and "blocked" when another queued or running task
/// holds its unique key (nothing changes then).
[[nodiscard]] std::string retry_task(pqxx::transaction_base& tx, int64_t id,
                                     wall_time now);

/// Reads one task.
[[nodiscard]] std::optional<tasks::task_info> get_task(pqxx::transaction_base& tx,
                                                       int64_t id);

/// One page of tasks, newest first; see tasks::list_tasks.
[[nodiscard]] tasks::task_page list_tasks(pqxx::transaction_base& tx,
                                          const tasks::list_tasks& filter);

/// Deletes up to `limit` finished tasks past their retention (see
/// tasks::purge_finished_tasks), oldest first; returns how many.
int64_t purge_finished_tasks(pqxx::transaction_base& tx, wall_time now,
                             int64_t succeeded_days, int64_t dead_days,
                             int64_t limit);

/// Queued and running counts and the oldest due task's age, per queue.
[[nodiscard]] std::vector<tasks::queue_depth>
queue_depths(pqxx::transaction_base& tx, wall_time now);

} // namespace engram::storage
