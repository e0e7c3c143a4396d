#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/tasks/task_registry.hpp"
#include "messages/storage.hpp"
#include "messages/tasks.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram {

/// How one queue's workers on this node behave.
struct task_queue_options {
  std::string queue = "default";
  /// Attempts running at once (one worker slot, i.e. one thread, each).
  int concurrency = 4;
  /// Tasks claimed beyond the free slots, so a slot never waits for a claim.
  int prefetch = 512;
  /// Largest claim and largest batch of outcomes committed at once.
  int64_t max_claim_batch = 512;
  int64_t max_ack_batch = 2048;
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds poll_interval{1000};
  /// Longest real time an idle queue's claimer waits for a notification
  /// before the queue looks again (lease renewals wait behind it on the
  /// same connection, and so does the end of a drain).
  std::chrono::milliseconds notify_wait{250};
  /// Real-time period of the internal tick that checks limits, heartbeats
  /// and polls against the clock.
  std::chrono::milliseconds tick{25};
  /// How long a shutdown lets running attempts finish before it asks them
  /// to stop and releases their leases.
  std::chrono::milliseconds drain_timeout{10000};
  /// Identifies this node's workers in tasks.locked_by.
  std::string worker_id = "engram";
};

/// Where a queue's claims and acknowledgements go: two connections, so a
/// large batch commit never delays a claim.
struct task_queue_storage {
  task_store_actor claimer;
  task_store_actor acker;
  /// The claimer again when it can claim on a notification itself (a task
  /// store); null otherwise (a storage worker), and the queue claims when
  /// the listener wakes it.
  task_claimer_actor waiter;
};

/// Spawns a queue's workers: claims (on a wake, a poll, or while claims come
/// back full) up to concurrency + prefetch tasks, runs each on a free slot,
/// stops attempts that pass their soft limit, abandons and fails those that
/// pass their hard limit, renews leases, and acknowledges outcomes in
/// batches (one commit for everything that finished while the previous
/// commit ran). `registry` and `services` must outlive the actor.
[[nodiscard]] task_queue_actor
spawn_task_queue(caf::actor_system& sys, task_queue_options options,
                 task_queue_storage storage,
                 const tasks::task_registry& registry,
                 const tasks::task_services& services,
                 metrics::registry* metrics);

/// Runs one attempt of `task` with its handler from `registry`, on the
/// calling thread: what a worker slot does (exposed for inline execution
/// and tests).
[[nodiscard]] tasks::attempt_result
run_attempt_now(const tasks::claimed_task& task,
                const tasks::task_registry& registry,
                const tasks::task_services& services, std::stop_token stop);

} // namespace engram
