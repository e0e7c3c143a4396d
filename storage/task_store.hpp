#pragma once

#include <caf/actor_system.hpp>

#include "messages/tasks.hpp"
#include "runtime/clock.hpp"
#include "storage/storage_actors.hpp"

namespace engram {

/// Spawns a detached task store: one connection of its own (connected
/// lazily, reconnected with backoff like a storage worker) for one queue's
/// claims and lease renewals, or for its acknowledgements. Statements that
/// stand alone run outside a transaction block (claims, renewals, hand-backs
/// and the single-statement completions of storage::complete_and_claim),
/// which saves the round trips of BEGIN and COMMIT on the path from a
/// task's enqueue to its start; a batch completion runs in a transaction.
///
/// An idle queue asks it to claim on the next notification
/// (tasks::claim_on_notify): it LISTENs on `engram_tasks` itself and claims
/// as soon as one names the queue, at `time`'s now. `time` must outlive the
/// actor.
[[nodiscard]] task_claimer_actor spawn_task_store(caf::actor_system& sys,
                                                  storage_options options,
                                                  const clock& time);

} // namespace engram
