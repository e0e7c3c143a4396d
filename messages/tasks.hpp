#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <stop_token>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/timestamp.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"

namespace engram::tasks {

/// What a producer asks for when it enqueues a task.
struct enqueue_request {
  /// Registered task name, e.g. "cleanup.expire_tokens".
  std::string name;
  std::string queue = "default";
  /// Arguments as a JSON object text.
  std::string args_json = "{}";
  /// Higher runs first.
  int32_t priority = 0;
  int32_t max_retries = 3;
  /// Delay before the task may run (0 = now), counted from the enqueue.
  int64_t delay_ms = 0;
  /// Earliest start as epoch microseconds; when set (> 0) it wins over
  /// `delay_ms`.
  int64_t run_at_us = 0;
  /// At most one queued-or-running task per key; empty = no key.
  std::string unique_key;
  /// Soft limit (cooperative stop) and hard limit (attempt abandoned); 0 = none.
  int64_t soft_time_limit_ms = 0;
  int64_t time_limit_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_request& x) {
  return f(caf::meta::type_name("enqueue_request"), x.name, x.queue,
           x.args_json, x.priority, x.max_retries, x.delay_ms, x.run_at_us,
           x.unique_key,
           x.soft_time_limit_ms, x.time_limit_ms);
}

/// The answer to an enqueue: the task's id and whether this call created it
/// (false: a queued-or-running task with the same unique key existed).
struct enqueue_result {
  int64_t id = 0;
  bool created = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_result& x) {
  return f(caf::meta::type_name("enqueue_result"), x.id, x.created);
}

/// A task handed to a worker by a claim, with the lease that fences it.
struct claimed_task {
  int64_t id = 0;
  std::string name;
  std::string queue;
  std::string args_json;
  /// Attempt number of this run (1 for the first).
  int32_t attempts = 0;
  int32_t max_retries = 0;
  int64_t soft_time_limit_ms = 0;
  int64_t time_limit_ms = 0;
  /// Changes at every claim; completion and heartbeats must present it.
  std::string lease_token;
  caf::timestamp lease_until;
  /// When the task became due (its run_at), epoch microseconds.
  int64_t due_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, claimed_task& x) {
  return f(caf::meta::type_name("claimed_task"), x.id, x.name, x.queue,
           x.args_json, x.attempts, x.max_retries, x.soft_time_limit_ms,
           x.time_limit_ms, x.lease_token, x.lease_until, x.due_us);
}

/// How a finished attempt ended, reported by the lease holder.
struct task_outcome {
  int64_t id = 0;
  std::string lease_token;
  bool succeeded = false;
  /// Result JSON on success.
  std::string result_json;
  /// Error text on failure.
  std::string error;
  /// Failure that no retry can fix (bad args): dead at once.
  bool permanent = false;
  /// Delay before the retry, from the task's retry policy.
  int64_t retry_delay_ms = 0;
  /// The handler stopped because an operator cancelled the task: it ends
  /// `cancelled` instead of being retried.
  bool cancelled = false;
  /// Tasks to enqueue in the same transaction that records this outcome (a
  /// chain's next step): they exist if and only if the outcome was accepted.
  std::vector<enqueue_request> followups;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_outcome& x) {
  return f(caf::meta::type_name("task_outcome"), x.id, x.lease_token,
           x.succeeded, x.result_json, x.error, x.permanent, x.retry_delay_ms,
           x.cancelled, x.followups);
}

/// A running task's lease, as its holder knows it.
struct lease_ref {
  int64_t id = 0;
  std::string lease_token;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lease_ref& x) {
  return f(caf::meta::type_name("lease_ref"), x.id, x.lease_token);
}

// -- storage requests ---------------------------------------------------------

/// Enqueues tasks in one transaction: all of them or none.
struct enqueue_tasks {
  std::vector<enqueue_request> tasks;
  /// The enqueuer's clock (epoch microseconds): run_at = now + delay.
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_tasks& x) {
  return f(caf::meta::type_name("enqueue_tasks"), x.tasks, x.now_us);
}

/// Claims up to `limit` due tasks of `queue` for `worker`.
struct claim_tasks {
  std::string queue;
  std::string worker;
  int64_t limit = 1;
  int64_t lease_ms = 30000;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, claim_tasks& x) {
  return f(caf::meta::type_name("claim_tasks"), x.queue, x.worker, x.limit,
           x.lease_ms, x.now_us);
}

/// Claims like `claim` as soon as a notification names its queue (or
/// arrives with no payload), waiting at most `wait_ms` of real time; then
/// answers with nothing. An idle queue's task store listens on its own
/// connection, so a new task is claimed without hops through the listener
/// and the queue. The claim uses the store's clock at the time it runs.
struct claim_on_notify {
  claim_tasks claim;
  int64_t wait_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, claim_on_notify& x) {
  return f(caf::meta::type_name("claim_on_notify"), x.claim, x.wait_ms);
}

/// Records finished attempts in one transaction (a batch completion).
struct complete_tasks {
  std::vector<task_outcome> outcomes;
  int64_t now_us = 0;
  /// Optionally claims in the same transaction, after the followups are
  /// inserted (limit 0 = no claim): a chain's next step is claimed by the
  /// commit that creates it.
  claim_tasks claim{{}, {}, 0, 0, 0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, complete_tasks& x) {
  return f(caf::meta::type_name("complete_tasks"), x.outcomes, x.now_us,
           x.claim);
}

/// Which outcomes of a batch were refused because their lease was lost.
struct completion_result {
  int64_t accepted = 0;
  std::vector<int64_t> refused;
  /// Tasks claimed by the same transaction (see complete_tasks::claim).
  std::vector<claimed_task> claimed;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, completion_result& x) {
  return f(caf::meta::type_name("completion_result"), x.accepted, x.refused,
           x.claimed);
}

/// Extends the leases of tasks a worker holds.
struct renew_leases {
  std::vector<lease_ref> leases;
  int64_t lease_ms = 30000;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, renew_leases& x) {
  return f(caf::meta::type_name("renew_leases"), x.leases, x.lease_ms,
           x.now_us);
}

/// Leases a renewal could not extend, and tasks an operator asked to stop.
struct renewal_result {
  std::vector<int64_t> lost;
  std::vector<int64_t> cancel_requested;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, renewal_result& x) {
  return f(caf::meta::type_name("renewal_result"), x.lost, x.cancel_requested);
}

/// Hands tasks back to the queue without counting the attempt (a worker
/// that stops before running or finishing them).
struct release_tasks {
  std::vector<lease_ref> leases;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, release_tasks& x) {
  return f(caf::meta::type_name("release_tasks"), x.leases, x.now_us);
}

/// Requeues (or buries) running tasks whose lease expired.
struct reclaim_expired {
  int64_t limit = 1000;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reclaim_expired& x) {
  return f(caf::meta::type_name("reclaim_expired"), x.limit, x.now_us);
}

/// Cancels a task (queued: at once; running: cooperatively).
struct cancel_task {
  int64_t id = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_task& x) {
  return f(caf::meta::type_name("cancel_task"), x.id, x.now_us);
}

/// Puts a dead (or cancelled) task back in the queue with a fresh retry
/// budget.
struct retry_task {
  int64_t id = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, retry_task& x) {
  return f(caf::meta::type_name("retry_task"), x.id, x.now_us);
}

/// A task as stored, for the API.
struct task_info {
  int64_t id = 0;
  std::string name;
  std::string queue;
  std::string args_json;
  std::string status;
  int32_t priority = 0;
  int32_t attempts = 0;
  int32_t max_retries = 0;
  std::string unique_key;
  int64_t soft_time_limit_ms = 0;
  int64_t time_limit_ms = 0;
  bool cancel_requested = false;
  std::string locked_by;
  /// Epoch microseconds; 0 = not set.
  int64_t run_at_us = 0;
  int64_t lease_until_us = 0;
  int64_t created_at_us = 0;
  int64_t started_at_us = 0;
  int64_t finished_at_us = 0;
  /// JSON text; empty when there is none.
  std::string result_json;
  std::string last_error;
  /// JSON array of {attempt, at, error}.
  std::string errors_json;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_info& x) {
  return f(caf::meta::type_name("task_info"), x.id, x.name, x.queue,
           x.args_json, x.status, x.priority, x.attempts, x.max_retries,
           x.unique_key, x.soft_time_limit_ms, x.time_limit_ms,
           x.cancel_requested, x.locked_by, x.run_at_us, x.lease_until_us,
           x.created_at_us, x.started_at_us, x.finished_at_us, x.result_json,
           x.last_error, x.errors_json);
}

/// Reads one task; unknown ids are answered with `errc::not_found`.
struct get_task {
  int64_t id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_task& x) {
  return f(caf::meta::type_name("get_task"), x.id);
}

/// Lists tasks newest first, optionally filtered; `before_id` is the cursor
/// (only ids below it; 0 = from the newest). Ids grow with inserts, so pages
/// stay stable while tasks are added.
struct list_tasks {
  std::string status;
  std::string name;
  std::string queue;
  int64_t before_id = 0;
  int64_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_tasks& x) {
  return f(caf::meta::type_name("list_tasks"), x.status, x.name, x.queue,
           x.before_id, x.limit);
}

/// One page of tasks; `next_before_id` is 0 on the last page.
struct task_page {
  std::vector<task_info> tasks;
  int64_t next_before_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_page& x) {
  return f(caf::meta::type_name("task_page"), x.tasks, x.next_before_id);
}

/// Deletes finished tasks past their retention, at most `limit` per call:
/// succeeded and cancelled ones `succeeded_days` after they finished, dead
/// ones after `dead_days`. Answers how many it deleted.
struct purge_finished_tasks {
  int64_t now_us = 0;
  int64_t succeeded_days = 7;
  int64_t dead_days = 30;
  int64_t limit = 1000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, purge_finished_tasks& x) {
  return f(caf::meta::type_name("purge_finished_tasks"), x.now_us,
           x.succeeded_days, x.dead_days, x.limit);
}

/// Depth of one queue, for metrics.
struct queue_depth {
  std::string queue;
  int64_t queued = 0;
  int64_t running = 0;
  /// Age of the oldest due queued task in milliseconds (0 = none).
  int64_t oldest_age_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_depth& x) {
  return f(caf::meta::type_name("queue_depth"), x.queue, x.queued, x.running,
           x.oldest_age_ms);
}

/// Asks for every queue's depth.
struct queue_depths_request {
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_depths_request& x) {
  return f(caf::meta::type_name("queue_depths_request"), x.now_us);
}

// -- workers ----------------------------------------------------------------------

/// Due tasks may be waiting (a notification arrived, or one may have been
/// missed).
struct wake {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wake&) {
  return f(caf::meta::type_name("wake"));
}

/// Runs one attempt of a claimed task on a worker slot. `stop` is the
/// cooperative stop signal the handler sees (local only: not serialized).
struct run_attempt {
  claimed_task task;
  std::stop_token stop;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_attempt& x) {
  return f(caf::meta::type_name("run_attempt"), x.task);
}

/// How one attempt ended on its slot.
enum class attempt_status : uint8_t {
  succeeded,
  /// An error a retry may fix.
  failed,
  /// Bad arguments or another error no retry fixes: dead at once.
  permanent,
  /// The handler honoured a stop request.
  stopped,
};

inline std::string to_string(attempt_status x) {
  switch (x) {
    case attempt_status::succeeded:
      return "succeeded";
    case attempt_status::failed:
      return "failed";
    case attempt_status::permanent:
      return "permanent";
    default:
      return "stopped";
  }
}

struct attempt_result {
  int64_t id = 0;
  attempt_status status = attempt_status::failed;
  std::string result_json;
  std::string error;
  std::vector<enqueue_request> followups;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_result& x) {
  return f(caf::meta::type_name("attempt_result"), x.id, x.status,
           x.result_json, x.error, x.followups);
}

/// Counters of one queue's workers on this node.
struct queue_stats {
  std::string queue;
  int64_t concurrency = 0;
  int64_t running = 0;
  /// Claimed and waiting for a free worker.
  int64_t prefetched = 0;
  /// Outcomes waiting for their batch commit.
  int64_t unacknowledged = 0;
  int64_t started = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  /// Completions refused because the lease had been lost.
  int64_t refused = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_stats& x) {
  return f(caf::meta::type_name("queue_stats"), x.queue, x.concurrency,
           x.running, x.prefetched, x.unacknowledged, x.started, x.succeeded,
           x.failed, x.refused);
}

} // namespace engram::tasks

namespace engram {

/// A TASK STORE: the connection a queue claims, renews and acknowledges
/// on (the task messages of storage_actor, so a storage worker serves as
/// one too).
using task_store_actor = caf::typed_actor<
  // Claims due tasks of a queue under fresh leases.
  caf::replies_to<tasks::claim_tasks>::with<std::vector<tasks::claimed_task>>,
  // Records finished attempts (and their followups), optionally claiming.
  caf::replies_to<tasks::complete_tasks>::with<tasks::completion_result>,
  // Extends leases; reports lost ones and cancel requests.
  caf::replies_to<tasks::renew_leases>::with<tasks::renewal_result>,
  // Hands claimed tasks back without counting the attempt.
  caf::replies_to<tasks::release_tasks>::with<int64_t>>;

/// A task store that can also wait for a queue's notifications and claim
/// at once (storage/task_store.hpp).
using task_claimer_actor = task_store_actor::extend<
  // Claims once a notification names the queue; nothing after wait_ms.
  caf::replies_to<tasks::claim_on_notify>::with<
    std::vector<tasks::claimed_task>>>;

/// A WORKER SLOT: runs one attempt at a time on its own thread.
using task_slot_actor = caf::typed_actor<
  caf::replies_to<tasks::run_attempt>::with<tasks::attempt_result>>;

/// A TASK QUEUE's workers on this node: claims, runs, renews leases and
/// acknowledges in batches.
using task_queue_actor = caf::typed_actor<
  // Due tasks may be waiting: claim if there is room.
  caf::reacts_to<tasks::wake>,
  // Internal clock: limits, heartbeats, polls.
  caf::reacts_to<atom::tick>,
  // Stop claiming, finish or release what is held, then quit.
  caf::reacts_to<atom::shutdown>,
  caf::replies_to<atom::stats>::with<tasks::queue_stats>>;

/// The TASK SYSTEM of a node: every queue's workers, the notification
/// listener that wakes them, and lease reclaiming.
using task_system_actor = caf::typed_actor<
  // Internal clock: reclaim expired leases, refresh queue depth gauges.
  caf::reacts_to<atom::tick>,
  // The counters of every queue on this node.
  caf::replies_to<atom::stats>::with<std::vector<tasks::queue_stats>>>;

/// The task system's name among the supervised actors and in the registry.
inline constexpr char task_system_name[] = "tasks";

} // namespace engram
