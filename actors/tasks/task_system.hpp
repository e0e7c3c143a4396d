#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/tasks/task_queue.hpp"
#include "messages/storage.hpp"
#include "runtime/config.hpp"

namespace engram {

struct task_system_options {
  /// The queues this node works on.
  std::vector<queue_spec> queues;
  /// Settings shared by every queue (its name and concurrency come from
  /// `queues`).
  task_queue_options queue_defaults;
  /// Spawns a storage actor with a connection of its own (the reclaimer,
  /// and each queue's claimer and acker when spawn_task_store is not set).
  std::function<storage_actor(caf::actor_system&)> spawn_storage;
  /// Spawns a task store (storage/task_store.hpp) for each queue's claimer
  /// and acker: it runs claims and single completions outside a transaction
  /// block, a round trip or two shorter than a storage worker, and an idle
  /// queue's claimer claims on a notification itself.
  std::function<task_claimer_actor(caf::actor_system&)> spawn_task_store;
  /// Spawns a listener on `engram_tasks` that calls the callback.
  std::function<notification_listener_actor(caf::actor_system&,
                                            notification_callback)>
    spawn_listener;
  /// How often expired leases are reclaimed and queue depths refreshed.
  std::chrono::milliseconds reclaim_interval{5000};
};

/// Spawns the task system: one task queue actor per queue (each with two
/// storage connections), a LISTEN connection whose notifications wake the
/// queue they name, and a reclaimer that returns expired leases to the
/// queue. On an exit message it drains every queue (finish or hand back
/// what they hold) and then quits. `registry`, `services` and `metrics` must
/// outlive it.
[[nodiscard]] task_system_actor
spawn_task_system(caf::actor_system& sys, task_system_options options,
                  const tasks::task_registry& registry,
                  const tasks::task_services& services,
                  metrics::registry* metrics);

} // namespace engram
