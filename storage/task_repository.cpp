#include "storage/task_repository.hpp"

#include <algorithm>

#include <pqxx/pqxx>

namespace engram::storage {

namespace {

/// Columns a claim returns, in claimed_task order.
constexpr auto claimed_columns
  = "id, name, queue, args::text, attempts, max_retries, soft_time_limit_ms, "
    "time_limit_ms, lease_token::text, "
    "(extract(epoch FROM lease_until) * 1000000)::bigint";

caf::timestamp from_epoch_us(int64_t us) {
  return caf::timestamp{std::chrono::microseconds{us}};
}

} // namespace

tasks::enqueue_result enqueue_task(pqxx::transaction_base& tx,
                                   const tasks::enqueue_request& req) {
  auto inserted = tx.exec_params(
    "INSERT INTO engram.tasks (name, queue, args, priority, max_retries, "
    "  run_at, unique_key, soft_time_limit_ms, time_limit_ms) "
    "VALUES ($1, $2, $3::jsonb, $4, $5, "
    "  now() + $6 * interval '1 millisecond', nullif($7, ''), $8, $9) "
    "ON CONFLICT (unique_key) "
    "  WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') "
    "  DO NOTHING "
    "RETURNING id",
    req.name, req.queue, req.args_json, req.priority, req.max_retries,
    req.delay_ms, req.unique_key, req.soft_time_limit_ms, req.time_limit_ms);
  if (!inserted.empty()) {
    // Delivered at commit, so workers never see an uncommitted task.
    tx.exec_params("SELECT pg_notify('engram_tasks', $1)", req.queue);
    return {inserted[0][0].as<int64_t>(), true};
  }
  auto existing = tx.exec_params1(
    "SELECT id FROM engram.tasks WHERE unique_key = $1 "
    "AND status IN ('queued', 'running')",
    req.unique_key);
  return {existing[0].as<int64_t>(), false};
}

std::vector<tasks::claimed_task>
claim_tasks(pqxx::transaction_base& tx, const std::string& queue,
            const std::string& worker, int64_t limit,
            std::chrono::milliseconds lease) {
  auto rows = tx.exec_params(
    std::string{"UPDATE engram.tasks SET status = 'running', "
                "  attempts = attempts + 1, locked_by = $2, "
                "  lease_token = gen_random_uuid(), "
                "  lease_until = now() + $3 * interval '1 millisecond', "
                "  cancel_requested = false, "
                "  started_at = now(), updated_at = now() "
                "WHERE id IN (SELECT id FROM engram.tasks "
                "  WHERE status = 'queued' AND queue = $1 AND run_at <= now() "
                "  ORDER BY priority DESC, run_at, id LIMIT $4 "
                "  FOR UPDATE SKIP LOCKED) "
                "RETURNING "}
      + claimed_columns,
    queue, worker, lease.count(), limit);
  std::vector<tasks::claimed_task> result;
  result.reserve(rows.size());
  for (const auto& row : rows) {
    tasks::claimed_task t;
    t.id = row[0].as<int64_t>();
    t.name = row[1].as<std::string>();
    t.queue = row[2].as<std::string>();
    t.args_json = row[3].as<std::string>();
    t.attempts = row[4].as<int32_t>();
    t.max_retries = row[5].as<int32_t>();
    t.soft_time_limit_ms = row[6].as<int64_t>();
    t.time_limit_ms = row[7].as<int64_t>();
    t.lease_token = row[8].as<std::string>();
    t.lease_until = from_epoch_us(row[9].as<int64_t>());
    result.push_back(std::move(t));
  }
  return result;
}

bool renew_lease(pqxx::transaction_base& tx, int64_t id,
                 const std::string& lease_token,
                 std::chrono::milliseconds lease, bool& cancel_requested) {
  auto rows = tx.exec_params(
    "UPDATE engram.tasks "
    "SET lease_until = now() + $3 * interval '1 millisecond', "
    "  updated_at = now() "
    "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
    "RETURNING cancel_requested",
    id, lease_token, lease.count());
  if (rows.empty())
    return false;
  cancel_requested = rows[0][0].as<bool>();
  return true;
}

bool apply_outcome(pqxx::transaction_base& tx,
                   const tasks::task_outcome& outcome) {
  if (outcome.succeeded) {
    auto rows = tx.exec_params(
      "UPDATE engram.tasks SET status = 'succeeded', "
      "  result = $3::jsonb, finished_at = now(), updated_at = now(), "
      "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
      "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
      "RETURNING id",
      outcome.id, outcome.lease_token,
      outcome.result_json.empty() ? std::string{"null"} : outcome.result_json);
    return !rows.empty();
  }
  // Dead when the failure is permanent or this was the last allowed attempt
  // (attempts counts claims: max_retries = 3 allows 4 attempts).
  auto rows = tx.exec_params(
    "UPDATE engram.tasks SET "
    "  status = CASE WHEN $3 OR attempts > max_retries "
    "           THEN 'dead' ELSE 'queued' END, "
    "  run_at = CASE WHEN $3 OR attempts > max_retries THEN run_at "
    "           ELSE now() + $4 * interval '1 millisecond' END, "
    "  finished_at = CASE WHEN $3 OR attempts > max_retries "
    "                THEN now() END, "
    "  last_error = $5, "
    "  errors = errors || jsonb_build_array(jsonb_build_object("
    "    'attempt', attempts, 'at', now(), 'error', $5::text)), "
    "  updated_at = now(), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
    "RETURNING id",
    outcome.id, outcome.lease_token, outcome.permanent, outcome.retry_delay_ms,
    outcome.error);
  return !rows.empty();
}

std::vector<int64_t> reclaim_expired(pqxx::transaction_base& tx,
                                     int64_t limit) {
  auto rows = tx.exec_params(
    "UPDATE engram.tasks SET "
    "  status = CASE WHEN attempts > max_retries THEN 'dead' ELSE 'queued' END, "
    "  finished_at = CASE WHEN attempts > max_retries THEN now() END, "
    "  run_at = now(), "
    "  last_error = 'lease expired: worker ' || coalesce(locked_by, '?') "
    "    || ' stopped renewing it', "
    "  errors = errors || jsonb_build_array(jsonb_build_object("
    "    'attempt', attempts, 'at', now(), 'error', 'lease expired: worker ' "
    "    || coalesce(locked_by, '?') || ' stopped renewing it')), "
    "  updated_at = now(), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "WHERE id IN (SELECT id FROM engram.tasks "
    "  WHERE status = 'running' AND lease_until < now() "
    "  ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED) "
    "RETURNING id",
    limit);
  std::vector<int64_t> result;
  for (const auto& row : rows)
    result.push_back(row[0].as<int64_t>());
  std::sort(result.begin(), result.end());
  return result;
}

std::string cancel_task(pqxx::transaction_base& tx, int64_t id) {
  auto row = tx.exec_params(
    "WITH current AS (SELECT id, status FROM engram.tasks WHERE id = $1 "
    "  FOR UPDATE), "
    "changed AS (UPDATE engram.tasks t SET "
    "  status = CASE WHEN c.status = 'queued' THEN 'cancelled' ELSE t.status END, "
    "  finished_at = CASE WHEN c.status = 'queued' THEN now() "
    "                ELSE t.finished_at END, "
    "  cancel_requested = (c.status = 'running'), updated_at = now() "
    "  FROM current c WHERE t.id = c.id "
    "  AND c.status IN ('queued', 'running') RETURNING c.status) "
    "SELECT c.status, (SELECT status FROM changed) FROM current c",
    id);
  if (row.empty())
    return {};
  if (row[0][1].is_null())
    return row[0][0].as<std::string>();
  return row[0][1].as<std::string>() == "queued" ? "cancelled" : "cancelling";
}

} // namespace engram::storage
