#include "storage/schedule_repository.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include <pqxx/pqxx>

#include "storage/platform_sql.hpp"

namespace engram::storage {

namespace {

using namespace platform_detail;

constexpr auto job_columns
  = "j.id::text, j.team_id, j.agent_id::text, j.user_id, j.name, j.message, "
    "j.cron_expression, j.timezone, j.is_active, engram.to_us(j.last_run_at), "
    "engram.to_us(j.next_run_at), j.run_count, j.consecutive_failures, "
    "j.last_error, j.delivery_config::text, engram.to_us(j.created_at), "
    "engram.to_us(j.updated_at)";

constexpr auto run_columns
  = "r.id, r.job_id::text, r.task_id, engram.to_us(r.fire_time), r.status, "
    "r.conversation_id::text, r.error, engram.to_us(r.started_at), "
    "engram.to_us(r.finished_at), engram.to_us(r.created_at)";

scheduled_job_row to_job(const pqxx::row& row) {
  scheduled_job_row j;
  j.id = row[0].as<std::string>();
  j.team_id = optional_string_of(row[1]);
  j.agent_id = row[2].as<std::string>();
  j.user_id = optional_string_of(row[3]);
  j.name = row[4].as<std::string>();
  j.message = row[5].as<std::string>();
  j.cron_expression = row[6].as<std::string>();
  j.timezone = row[7].as<std::string>();
  j.is_active = row[8].as<bool>();
  j.last_run_at = optional_time_of(row[9]);
  j.next_run_at = optional_time_of(row[10]);
  j.run_count = row[11].as<int64_t>();
  j.consecutive_failures = row[12].as<int32_t>();
  j.last_error = optional_string_of(row[13]);
  j.delivery_config_json = row[14].as<std::string>();
  j.created_at = time_of(row[15]);
  j.updated_at = time_of(row[16]);
  return j;
}

std::vector<scheduled_job_row> to_jobs(const pqxx::result& rows) {
  std::vector<scheduled_job_row> result;
  result.reserve(rows.size());
  for (const auto& row : rows)
    result.push_back(to_job(row));
  return result;
}

job_run_row to_run(const pqxx::row& row) {
  job_run_row r;
  r.id = row[0].as<int64_t>();
  r.job_id = row[1].as<std::string>();
  r.task_id = optional_of<int64_t>(row[2]);
  r.fire_time = optional_time_of(row[3]);
  r.status = row[4].as<std::string>();
  r.conversation_id = optional_string_of(row[5]);
  r.error = optional_string_of(row[6]);
  r.started_at = optional_time_of(row[7]);
  r.finished_at = optional_time_of(row[8]);
  r.created_at = time_of(row[9]);
  return r;
}

/// A page cursor: "<created_at in epoch µs>_<id>" of the last job of a page.
struct job_cursor {
  int64_t created_at_us = 0;
  std::string id;
};

std::string encode_cursor(const scheduled_job_row& last) {
  return std::to_string(to_epoch_us(last.created_at)) + "_" + last.id;
}

job_cursor decode_cursor(const std::string& cursor) {
  auto sep = cursor.find('_');
  job_cursor result;
  if (sep != std::string::npos && sep > 0) {
    const char* first = cursor.data();
    const char* last = cursor.data() + sep;
    auto [end, ec] = std::from_chars(first, last, result.created_at_us);
    result.id = cursor.substr(sep + 1);
    if (ec == std::errc{} && end == last && is_uuid(result.id))
      return result;
  }
  throw std::invalid_argument("malformed page cursor \"" + cursor + "\"");
}

} // namespace

std::optional<scheduled_job_row>
create_scheduled_job(pqxx::transaction_base& tx, const new_scheduled_job& job,
                     wall_time now) {
  if (!is_uuid(job.agent_id))
    return std::nullopt;
  auto rows = tx.exec_params(
    std::string{"INSERT INTO engram.scheduled_jobs AS j (team_id, agent_id, "
                "  user_id, name, message, cron_expression, timezone, "
                "  is_active, delivery_config, next_run_at, created_at, "
                "  updated_at) "
                "SELECT $1::text, a.id, $3::text, $4::text, $5::text, $6::text, "
                "  $7::text, $8::boolean, $9::jsonb, "
                "  engram.from_us($10), engram.from_us($11), "
                "  engram.from_us($11) "
                "FROM engram.agents a WHERE a.id = $2::uuid "
                "RETURNING "}
      + job_columns,
    job.team_id, job.agent_id, job.user_id, job.name, job.message,
    job.cron_expression, job.timezone, job.is_active,
    job.delivery_config_json.empty() ? std::string{"{}"}
                                     : job.delivery_config_json,
    us_param(job.next_run_at), to_epoch_us(now));
  if (rows.empty())
    return std::nullopt;
  return to_job(rows[0]);
}

std::optional<scheduled_job_row>
get_scheduled_job(pqxx::transaction_base& tx, const std::string& id) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + job_columns
                               + " FROM engram.scheduled_jobs j "
                                 "WHERE j.id = $1::uuid",
                             id);
  if (rows.empty())
    return std::nullopt;
  return to_job(rows[0]);
}

scheduled_job_page list_scheduled_jobs(pqxx::transaction_base& tx,
                                       const scheduled_job_filter& filter,
                                       const std::string& cursor,
                                       int64_t limit) {
  std::optional<job_cursor> after;
  if (!cursor.empty())
    after = decode_cursor(cursor);
  if (limit <= 0)
    limit = default_job_page;
  limit = std::min(limit, max_job_page);
  scheduled_job_page page;
  // No job has a malformed agent id.
  if (filter.agent_id && !is_uuid(*filter.agent_id))
    return page;
  std::optional<int64_t> after_us;
  std::optional<std::string> after_id;
  if (after) {
    after_us = after->created_at_us;
    after_id = after->id;
  }
  // One row more than asked tells whether there is a next page.
  auto rows = tx.exec_params(
    std::string{"SELECT "} + job_columns
      + " FROM engram.scheduled_jobs j "
        "WHERE ($1::text IS NULL OR j.team_id = $1::text) "
        "AND ($2::uuid IS NULL OR j.agent_id = $2::uuid) "
        "AND ($3::text IS NULL OR j.user_id = $3::text) "
        "AND ($4::boolean IS NULL OR j.is_active = $4::boolean) "
        "AND ($5::bigint IS NULL OR (j.created_at, j.id) "
        "    < (engram.from_us($5::bigint), $6::uuid)) "
        "ORDER BY j.created_at DESC, j.id DESC LIMIT $7",
    filter.team_id, filter.agent_id, filter.user_id, filter.is_active,
    after_us, after_id, limit + 1);
  page.jobs = to_jobs(rows);
  if (static_cast<int64_t>(page.jobs.size()) > limit) {
    page.jobs.resize(static_cast<size_t>(limit));
    page.next_cursor = encode_cursor(page.jobs.back());
  }
  return page;
}

std::optional<scheduled_job_row>
patch_scheduled_job(pqxx::transaction_base& tx, const std::string& id,
                    const scheduled_job_patch& patch, wall_time now) {
  bool anything = patch.name || patch.message || patch.cron_expression
                  || patch.timezone || patch.is_active
                  || patch.delivery_config_json || patch.next_run_at
                  || patch.clear_next_run_at;
  if (!anything)
    return get_scheduled_job(tx, id);
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(
    std::string{"UPDATE engram.scheduled_jobs j SET "
                "  name = coalesce($2, j.name), "
                "  message = coalesce($3, j.message), "
                "  cron_expression = coalesce($4, j.cron_expression), "
                "  timezone = coalesce($5, j.timezone), "
                "  is_active = coalesce($6::boolean, j.is_active), "
                "  consecutive_failures = CASE "
                "    WHEN $6::boolean AND NOT j.is_active THEN 0 "
                "    ELSE j.consecutive_failures END, "
                "  delivery_config = coalesce($7::jsonb, j.delivery_config), "
                "  next_run_at = CASE WHEN $9::boolean THEN NULL "
                "    ELSE coalesce(engram.from_us($8::bigint), j.next_run_at) "
                "    END, "
                "  updated_at = engram.from_us($10) "
                "WHERE j.id = $1::uuid RETURNING "}
      + job_columns,
    id, patch.name, patch.message, patch.cron_expression, patch.timezone,
    patch.is_active, patch.delivery_config_json, us_param(patch.next_run_at),
    patch.clear_next_run_at, to_epoch_us(now));
  if (rows.empty())
    return std::nullopt;
  return to_job(rows[0]);
}

bool delete_scheduled_job(pqxx::transaction_base& tx, const std::string& id) {
  if (!is_uuid(id))
    return false;
  auto result = tx.exec_params(
    "DELETE FROM engram.scheduled_jobs WHERE id = $1::uuid", id);
  return result.affected_rows() == 1;
}

std::vector<scheduled_job_row> list_active_jobs(pqxx::transaction_base& tx) {
  return to_jobs(tx.exec(std::string{"SELECT "} + job_columns
                         + " FROM engram.scheduled_jobs j WHERE j.is_active "
                           "ORDER BY j.id"));
}

std::vector<scheduled_job_row> list_due_jobs(pqxx::transaction_base& tx,
                                             wall_time now, int64_t limit) {
  return to_jobs(tx.exec_params(
    std::string{"SELECT "} + job_columns
      + " FROM engram.scheduled_jobs j WHERE j.is_active "
        "AND j.next_run_at <= engram.from_us($1) "
        "ORDER BY j.next_run_at, j.id LIMIT $2",
    to_epoch_us(now), limit_param(limit)));
}

bool set_next_run(pqxx::transaction_base& tx, const std::string& job_id,
                  std::optional<wall_time> next_run_at, wall_time now) {
  if (!is_uuid(job_id))
    return false;
  auto result = tx.exec_params(
    "UPDATE engram.scheduled_jobs SET next_run_at = engram.from_us($2), "
    "  updated_at = engram.from_us($3) WHERE id = $1::uuid",
    job_id, us_param(next_run_at), to_epoch_us(now));
  return result.affected_rows() == 1;
}

std::optional<run_record> record_run_queued(pqxx::transaction_base& tx,
                                            const std::string& job_id,
                                            std::optional<wall_time> fire_time,
                                            std::optional<int64_t> task_id,
                                            wall_time now) {
  if (!is_uuid(job_id))
    return std::nullopt;
  auto inserted = tx.exec_params(
    "INSERT INTO engram.scheduled_job_runs "
    "  (job_id, task_id, fire_time, status, created_at) "
    "SELECT j.id, $2::bigint, engram.from_us($3::bigint), 'queued', "
    "  engram.from_us($4::bigint) "
    "FROM engram.scheduled_jobs j WHERE j.id = $1::uuid "
    "ON CONFLICT (job_id, fire_time) WHERE fire_time IS NOT NULL DO NOTHING "
    "RETURNING id",
    job_id, task_id, us_param(fire_time), to_epoch_us(now));
  if (!inserted.empty())
    return run_record{inserted[0][0].as<int64_t>(), true};
  if (!fire_time)
    return std::nullopt;
  auto existing = tx.exec_params(
    "SELECT id FROM engram.scheduled_job_runs "
    "WHERE job_id = $1::uuid AND fire_time = engram.from_us($2)",
    job_id, to_epoch_us(*fire_time));
  if (existing.empty())
    return std::nullopt;
  return run_record{existing[0][0].as<int64_t>(), false};
}

bool attach_run_task(pqxx::transaction_base& tx, int64_t run_id,
                     int64_t task_id) {
  auto result = tx.exec_params(
    "UPDATE engram.scheduled_job_runs SET task_id = $2 WHERE id = $1", run_id,
    task_id);
  return result.affected_rows() == 1;
}

bool record_run_start(pqxx::transaction_base& tx, const std::string& job_id,
                      int64_t run_id, wall_time now) {
  if (!is_uuid(job_id))
    return false;
  auto result = tx.exec_params(
    "UPDATE engram.scheduled_job_runs SET status = 'running', "
    "  started_at = engram.from_us($3) "
    "WHERE id = $2 AND job_id = $1::uuid AND status IN ('queued', 'running')",
    job_id, run_id, to_epoch_us(now));
  return result.affected_rows() == 1;
}

std::optional<run_tracking>
record_run_result(pqxx::transaction_base& tx, const std::string& job_id,
                  int64_t run_id, bool succeeded, const std::string& error,
                  wall_time now,
                  const std::optional<std::string>& conversation_id) {
  if (!is_uuid(job_id))
    return std::nullopt;
  // Lock the job first: no other change to it can come between what it was
  // and what this makes of it (and `deactivated` compares the two).
  auto job = tx.exec_params("SELECT is_active FROM engram.scheduled_jobs "
                            "WHERE id = $1::uuid FOR UPDATE",
                            job_id);
  if (job.empty())
    return std::nullopt;
  bool was_active = job[0][0].as<bool>();
  auto rows = tx.exec_params(
    "WITH run AS (UPDATE engram.scheduled_job_runs SET "
    "    status = CASE WHEN $3::boolean THEN 'succeeded' ELSE 'failed' END, "
    "    error = CASE WHEN $3::boolean THEN NULL ELSE left($4, $7) END, "
    "    conversation_id = coalesce($6::uuid, conversation_id), "
    "    started_at = coalesce(started_at, engram.from_us($5)), "
    "    finished_at = engram.from_us($5) "
    "  WHERE id = $2 AND job_id = $1::uuid "
    "  AND status IN ('queued', 'running') RETURNING job_id) "
    "UPDATE engram.scheduled_jobs j SET "
    "  last_run_at = CASE WHEN $3::boolean THEN engram.from_us($5) "
    "    ELSE j.last_run_at END, "
    "  run_count = j.run_count + CASE WHEN $3::boolean THEN 1 ELSE 0 END, "
    "  consecutive_failures = CASE WHEN $3::boolean THEN 0 "
    "    ELSE j.consecutive_failures + 1 END, "
    "  last_error = CASE WHEN $3::boolean THEN j.last_error "
    "    ELSE left($4, $8) END, "
    "  is_active = CASE WHEN NOT $3::boolean "
    "    AND j.consecutive_failures + 1 >= $9 THEN false "
    "    ELSE j.is_active END, "
    "  updated_at = engram.from_us($5) "
    "FROM run WHERE j.id = run.job_id "
    "RETURNING j.run_count, j.consecutive_failures, j.is_active",
    job_id, run_id, succeeded, error, to_epoch_us(now), conversation_id,
    run_error_chars, job_last_error_chars, max_consecutive_failures);
  if (rows.empty())
    return std::nullopt;
  run_tracking t;
  t.run_count = rows[0][0].as<int64_t>();
  t.consecutive_failures = rows[0][1].as<int32_t>();
  t.is_active = rows[0][2].as<bool>();
  t.deactivated = was_active && !t.is_active;
  return t;
}

bool record_run_skipped(pqxx::transaction_base& tx, const std::string& job_id,
                        int64_t run_id, const std::string& reason,
                        wall_time now) {
  if (!is_uuid(job_id))
    return false;
  auto result = tx.exec_params(
    "UPDATE engram.scheduled_job_runs SET status = 'skipped', "
    "  error = left($3, $5), finished_at = engram.from_us($4) "
    "WHERE id = $2 AND job_id = $1::uuid AND status IN ('queued', 'running')",
    job_id, run_id, reason, to_epoch_us(now), run_error_chars);
  return result.affected_rows() == 1;
}

std::optional<job_run_row> get_job_run(pqxx::transaction_base& tx,
                                       int64_t run_id) {
  auto rows = tx.exec_params(std::string{"SELECT "} + run_columns
                               + " FROM engram.scheduled_job_runs r "
                                 "WHERE r.id = $1",
                             run_id);
  if (rows.empty())
    return std::nullopt;
  return to_run(rows[0]);
}

std::vector<job_run_row> list_job_runs(pqxx::transaction_base& tx,
                                       const std::string& job_id,
                                       int64_t before_run_id, int64_t limit) {
  std::vector<job_run_row> result;
  if (!is_uuid(job_id))
    return result;
  auto rows = tx.exec_params(
    std::string{"SELECT "} + run_columns
      + " FROM engram.scheduled_job_runs r WHERE r.job_id = $1::uuid "
        "AND ($2::bigint = 0 OR r.id < $2::bigint) "
        "ORDER BY r.id DESC LIMIT $3",
    job_id, before_run_id, limit_param(limit));
  result.reserve(rows.size());
  for (const auto& row : rows)
    result.push_back(to_run(row));
  return result;
}

int64_t close_abandoned_runs(pqxx::transaction_base& tx, wall_time now,
                             int64_t limit) {
  auto rows = tx.exec_params(
    "SELECT r.job_id::text, r.id, t.id, t.status, coalesce(t.last_error, '') "
    "FROM engram.scheduled_job_runs r JOIN engram.tasks t ON t.id = r.task_id "
    "WHERE r.status IN ('queued', 'running') "
    "AND t.status IN ('dead', 'cancelled') "
    "ORDER BY r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED",
    limit);
  int64_t closed = 0;
  for (const auto& row : rows) {
    auto error = "task " + row[2].as<std::string>() + " ended "
                 + row[3].as<std::string>() + " without a result: "
                 + row[4].as<std::string>();
    if (record_run_result(tx, row[0].as<std::string>(), row[1].as<int64_t>(),
                          false, error, now))
      ++closed;
  }
  return closed;
}

} // namespace engram::storage
