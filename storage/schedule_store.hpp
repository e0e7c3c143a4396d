#pragma once

// The schedule store: the scheduler's own storage actor (see
// schedule_store_actor in messages/scheduler.hpp). It owns ONE connection,
// separate from the storage pool, because leadership is a property of a
// database session: the leader's session holds a PostgreSQL advisory lock
// (pg_try_advisory_lock), and when the session ends (the process dies, the
// connection breaks, the actor stops) the lock is released and a standby's
// next try wins. A reconnect is a new session and starts without the lock.
//
// Every fire is one transaction on that session: the fire is recorded
// (engram.schedule_state for static entries, scheduled_job_runs for dynamic
// jobs, both compare-and-set on the slot the scheduler planned), the task is
// enqueued with a unique key naming the entry and the slot, and the entry's
// next fire is stored. A store whose session does not hold the lock refuses
// to fire (errc::conflict), so a slot fires at most once across nodes and
// restarts.

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>

#include "messages/scheduler.hpp"
#include "storage/storage_actors.hpp"

namespace engram {

/// The advisory lock key of the scheduler's leader ("engramSC" in ASCII).
inline constexpr int64_t default_scheduler_lock_key = 0x656E6772616D5343;

/// The NOTIFY channel on which schedule changes are announced (see
/// storage/migrations/004_platform.sql).
inline constexpr char schedules_channel[] = "engram_schedules";

struct schedule_store_options {
  /// Connection, statement timeout and reconnect backoff.
  storage_options storage;
  /// The advisory lock that makes a session the leader. Every node of a
  /// cluster must use the same key.
  int64_t lock_key = default_scheduler_lock_key;
};

/// Spawns a detached schedule store. It connects lazily; after a failed
/// connect it answers `database_unavailable` at once until the backoff
/// passed. A lost connection is dropped (with the lock) and the request that
/// found it lost fails with `database_unavailable`.
[[nodiscard]] schedule_store_actor
spawn_schedule_store(caf::actor_system& sys, schedule_store_options options);

} // namespace engram
