#include "storage/cleanup_repository.hpp"

#include <pqxx/pqxx>

#include "storage/platform_sql.hpp"

namespace engram::storage {

using platform_detail::limit_param;

int64_t expire_tokens(pqxx::transaction_base& tx, wall_time now,
                      int64_t limit) {
  auto result = tx.exec_params(
    "WITH due AS (SELECT id FROM engram.refresh_tokens "
    "  WHERE expires_at <= engram.from_us($1) "
    "  ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "DELETE FROM engram.refresh_tokens t USING due WHERE t.id = due.id",
    to_epoch_us(now), limit_param(limit));
  return static_cast<int64_t>(result.affected_rows());
}

int64_t close_stale_sessions(pqxx::transaction_base& tx, wall_time now,
                             int64_t idle_minutes, int64_t limit) {
  auto result = tx.exec_params(
    "WITH due AS (SELECT id FROM engram.conversations "
    "  WHERE status = 'active' AND coalesce(last_message_at, created_at) "
    "    < engram.from_us($1) - $2 * interval '1 minute' "
    "  ORDER BY coalesce(last_message_at, created_at) LIMIT $3 "
    "  FOR UPDATE SKIP LOCKED) "
    "UPDATE engram.conversations c SET status = 'idle', "
    "  updated_at = engram.from_us($1) "
    "FROM due WHERE c.id = due.id AND c.status = 'active'",
    to_epoch_us(now), idle_minutes, limit_param(limit));
  return static_cast<int64_t>(result.affected_rows());
}

int64_t archive_old_conversations(pqxx::transaction_base& tx, wall_time now,
                                  int64_t days, int64_t limit) {
  auto result = tx.exec_params(
    "WITH due AS (SELECT id FROM engram.conversations "
    "  WHERE status <> 'closed' AND coalesce(last_message_at, created_at) "
    "    < engram.from_us($1) - $2 * interval '1 day' "
    "  ORDER BY coalesce(last_message_at, created_at) LIMIT $3 "
    "  FOR UPDATE SKIP LOCKED) "
    "UPDATE engram.conversations c SET status = 'closed', "
    "  updated_at = engram.from_us($1) "
    "FROM due WHERE c.id = due.id AND c.status <> 'closed'",
    to_epoch_us(now), days, limit_param(limit));
  return static_cast<int64_t>(result.affected_rows());
}

int64_t archive_expired_memories(pqxx::transaction_base& tx, wall_time now,
                                 int64_t limit) {
  auto result = tx.exec_params(
    "WITH due AS (SELECT id FROM engram.memories "
    "  WHERE status = 'active' AND expires_at <= engram.from_us($1) "
    "  ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "UPDATE engram.memories m SET status = 'archived', tier = 'cold', "
    "  updated_at = engram.from_us($1) "
    "FROM due WHERE m.id = due.id AND m.status = 'active'",
    to_epoch_us(now), limit_param(limit));
  return static_cast<int64_t>(result.affected_rows());
}

} // namespace engram::storage
