#pragma once

// The periodic cleanups (DESIGN §4, §5: cleanup.expire_tokens,
// cleanup.close_stale_sessions, cleanup.archive_old_conversations,
// cleanup.archive_expired_memories). Each changes only the rows that are due
// at `now`, so running it twice (a retried task, two nodes) changes nothing
// the second time. Each processes at most `limit` rows (<= 0: all) and
// returns how many it changed: a caller with a large backlog commits and
// calls again until the count is below `limit`. Rows that another
// transaction holds locked are skipped (FOR UPDATE SKIP LOCKED) and picked
// up by the next call, so concurrent cleanups never wait on each other.

#include <cstdint>

#include <pqxx/transaction_base>

#include "runtime/clock.hpp"

namespace engram::storage {

/// The default batch size of the cleanups.
inline constexpr int64_t default_cleanup_batch = 1000;

/// Deletes refresh tokens that expired: `expires_at <= now`. Revoked tokens
/// stay until they expire as well (the revocation is their record).
/// Returns the number deleted.
[[nodiscard]] int64_t expire_tokens(pqxx::transaction_base& tx, wall_time now,
                                    int64_t limit = default_cleanup_batch);

/// Marks active conversations idle whose last activity (last message, else
/// creation) is more than `idle_minutes` before `now` (strictly older).
/// Idle conversations become active again with their next message.
/// Returns the number marked.
[[nodiscard]] int64_t close_stale_sessions(pqxx::transaction_base& tx,
                                           wall_time now, int64_t idle_minutes,
                                           int64_t limit = default_cleanup_batch);

/// Closes (archives) active and idle conversations whose last activity (last
/// message, else creation) is more than `days` days before `now` (strictly
/// older): a conversation still in use is kept however old it is. Closed is
/// terminal. Returns the number closed.
[[nodiscard]] int64_t archive_old_conversations(pqxx::transaction_base& tx,
                                                wall_time now, int64_t days,
                                                int64_t limit = default_cleanup_batch);

/// Archives active memories whose `expires_at <= now`: status archived, tier
/// cold. Pinned memories and any type or importance too (DESIGN §6, decay: an
/// explicit expiry is the writer's instruction). Superseded and archived
/// memories are never touched. Returns the number archived.
[[nodiscard]] int64_t archive_expired_memories(pqxx::transaction_base& tx,
                                               wall_time now,
                                               int64_t limit = default_cleanup_batch);

} // namespace engram::storage
