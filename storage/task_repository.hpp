#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "messages/tasks.hpp"

namespace engram::storage {

/// Inserts a task inside the caller's transaction, so it commits (and wakes
/// workers through NOTIFY engram_tasks) together with the change that caused
/// it. With a unique key that a queued or running task holds, nothing is
/// inserted and that task's id is returned with created = false.
[[nodiscard]] tasks::enqueue_result
enqueue_task(pqxx::transaction_base& tx, const tasks::enqueue_request& req);

/// Claims up to `limit` due tasks of `queue` (highest priority, then oldest
/// run_at, then id), skipping rows other workers hold: each becomes running,
/// its attempt counter grows, and it gets a fresh lease token valid for
/// `lease`. The claimed tasks come back in no particular order.
[[nodiscard]] std::vector<tasks::claimed_task>
claim_tasks(pqxx::transaction_base& tx, const std::string& queue,
            const std::string& worker, int64_t limit,
            std::chrono::milliseconds lease);

/// Extends the lease of a running task. Returns false when the lease is no
/// longer the caller's (reclaimed, finished or cancelled elsewhere).
/// `cancel_requested` tells whether an operator asked the task to stop.
[[nodiscard]] bool renew_lease(pqxx::transaction_base& tx, int64_t id,
                               const std::string& lease_token,
                               std::chrono::milliseconds lease,
                               bool& cancel_requested);

/// Applies a finished attempt if `outcome.lease_token` is still the task's
/// lease: success → succeeded with its result; failure → queued again after
/// `retry_delay_ms`, or dead when retries are exhausted or the failure is
/// permanent. Every failure is appended to the task's errors. Returns false
/// (and changes nothing) when the lease was lost.
[[nodiscard]] bool apply_outcome(pqxx::transaction_base& tx,
                                 const tasks::task_outcome& outcome);

/// Returns running tasks whose lease expired to the queue (or to dead when
/// that was their last attempt), recording why. Returns their ids.
[[nodiscard]] std::vector<int64_t> reclaim_expired(pqxx::transaction_base& tx,
                                                   int64_t limit);

/// Cancels a task: a queued one at once (returns "cancelled"); a running one
/// is asked to stop cooperatively (returns "cancelling"). Returns the
/// terminal status unchanged for a finished task and "" for an unknown id.
[[nodiscard]] std::string cancel_task(pqxx::transaction_base& tx, int64_t id);

} // namespace engram::storage
