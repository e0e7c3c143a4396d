#include "storage/task_repository.hpp"

#include <algorithm>
#include <unordered_set>

#include <boost/json.hpp>
#include <pqxx/pqxx>

namespace engram::storage {

namespace {

namespace json = boost::json;

/// Columns a claim returns, in claimed_task order.
constexpr auto claimed_columns
  = "t.id, name, queue, args::text, attempts, max_retries, soft_time_limit_ms, "
    "time_limit_ms, lease_token::text, engram.to_us(lease_until)";

/// A claimed task from claimed_columns starting at column `first` (due_us
/// is left to the caller).
tasks::claimed_task claimed_from(const pqxx::row& row, int first) {
  tasks::claimed_task t;
  t.id = row[first].as<int64_t>();
  t.name = row[first + 1].as<std::string>();
  t.queue = row[first + 2].as<std::string>();
  t.args_json = row[first + 3].as<std::string>();
  t.attempts = row[first + 4].as<int32_t>();
  t.max_retries = row[first + 5].as<int32_t>();
  t.soft_time_limit_ms = row[first + 6].as<int64_t>();
  t.time_limit_ms = row[first + 7].as<int64_t>();
  t.lease_token = row[first + 8].as<std::string>();
  t.lease_until = caf::timestamp{
    std::chrono::microseconds{row[first + 9].as<int64_t>()}};
  return t;
}

/// Columns of task_info, in order.
constexpr auto info_columns
  = "id, name, queue, args::text, status, priority, attempts, max_retries, "
    "coalesce(unique_key, ''), soft_time_limit_ms, time_limit_ms, "
    "cancel_requested, coalesce(locked_by, ''), "
    "coalesce(engram.to_us(run_at), 0), coalesce(engram.to_us(lease_until), 0), "
    "coalesce(engram.to_us(created_at), 0), "
    "coalesce(engram.to_us(started_at), 0), "
    "coalesce(engram.to_us(finished_at), 0), coalesce(result::text, ''), "
    "coalesce(last_error, ''), errors::text";

tasks::task_info info_from(const pqxx::row& row) {
  tasks::task_info t;
  t.id = row[0].as<int64_t>();
  t.name = row[1].as<std::string>();
  t.queue = row[2].as<std::string>();
  t.args_json = row[3].as<std::string>();
  t.status = row[4].as<std::string>();
  t.priority = row[5].as<int32_t>();
  t.attempts = row[6].as<int32_t>();
  t.max_retries = row[7].as<int32_t>();
  t.unique_key = row[8].as<std::string>();
  t.soft_time_limit_ms = row[9].as<int64_t>();
  t.time_limit_ms = row[10].as<int64_t>();
  t.cancel_requested = row[11].as<bool>();
  t.locked_by = row[12].as<std::string>();
  t.run_at_us = row[13].as<int64_t>();
  t.lease_until_us = row[14].as<int64_t>();
  t.created_at_us = row[15].as<int64_t>();
  t.started_at_us = row[16].as<int64_t>();
  t.finished_at_us = row[17].as<int64_t>();
  t.result_json = row[18].as<std::string>();
  t.last_error = row[19].as<std::string>();
  t.errors_json = row[20].as<std::string>();
  return t;
}

/// Runs a statement prepared on this connection under `name` (prepared on
/// first use, re-prepared after a reconnect by libpqxx): hot statements skip
/// parsing and planning.
template <class... Args>
pqxx::result run_prepared(pqxx::transaction_base& tx, const char* name,
                          const std::string& sql, Args&&... args) {
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

/// The leases as a JSON array of {id, token}, for jsonb_to_recordset.
std::string leases_json(const std::vector<tasks::lease_ref>& leases) {
  json::array arr;
  arr.reserve(leases.size());
  for (const auto& l : leases)
    arr.push_back(json::object{{"id", l.id}, {"token", l.lease_token}});
  return json::serialize(arr);
}

/// Applies one failed or cancelled attempt; false if the lease was lost.
bool apply_failure(pqxx::transaction_base& tx, const tasks::task_outcome& o,
                   int64_t now_us) {
  if (o.cancelled) {
    auto rows = tx.exec_params(
      "UPDATE engram.tasks SET status = 'cancelled', "
      "  finished_at = engram.from_us($3), updated_at = engram.from_us($3), "
      "  last_error = nullif($4, ''), "
      "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
      "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
      "RETURNING id",
      o.id, o.lease_token, now_us, o.error);
    return !rows.empty();
  }
  // Dead when the failure is permanent or this was the last allowed attempt
  // (attempts counts claims: max_retries = 3 allows 4 attempts).
  auto rows = tx.exec_params(
    "UPDATE engram.tasks SET "
    "  status = CASE WHEN $3 OR attempts > max_retries "
    "           THEN 'dead' ELSE 'queued' END, "
    "  run_at = CASE WHEN $3 OR attempts > max_retries THEN run_at "
    "           ELSE engram.from_us($6) + $4 * interval '1 millisecond' END, "
    "  finished_at = CASE WHEN $3 OR attempts > max_retries "
    "                THEN engram.from_us($6) END, "
    "  last_error = $5, "
    "  errors = errors || jsonb_build_array(jsonb_build_object("
    "    'attempt', attempts, 'at', engram.from_us($6), 'error', $5::text)), "
    "  updated_at = engram.from_us($6), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
    "RETURNING id",
    o.id, o.lease_token, o.permanent, o.retry_delay_ms, o.error, now_us);
  return !rows.empty();
}

/// A CTE that lets the transaction commit without waiting for its WAL
/// flush (SET LOCAL inside the statement, so it costs no round trip of its
/// own); a statement that uses it joins `relaxed`. Only for claims and lease
/// renewals: losing one in a server crash can only make a task run again,
/// which at-least-once delivery allows anyway, and the next synchronous
/// commit (the attempt's completion) flushes it. Enqueues and completions
/// stay synchronous.
constexpr auto relaxed_commit
  = "relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', "
    "'off', true)) ";

} // namespace

std::vector<tasks::enqueue_result>
enqueue_tasks(pqxx::transaction_base& tx,
              const std::vector<tasks::enqueue_request>& requests,
              wall_time now, const std::string& quiet_queue) {
  std::vector<tasks::enqueue_result> results(requests.size());
  if (requests.empty())
    return results;
  auto now_us = to_epoch_us(now);
  if (requests.size() == 1) {
    // One task (the common case of an enqueue or a chain's next step): a
    // plain insert, without the batch's JSON round trip.
    const auto& r = requests.front();
    auto run_at = r.run_at_us > 0 ? r.run_at_us : now_us + r.delay_ms * 1000;
    auto rows = run_prepared(tx, "engram_enqueue_one",
      "WITH ins AS (INSERT INTO engram.tasks (name, queue, args, priority, "
      "    max_retries, run_at, unique_key, soft_time_limit_ms, "
      "    time_limit_ms, created_at, updated_at) "
      "  VALUES ($1, $2, $3::jsonb, $4, $5, engram.from_us($6), "
      "    nullif($7, ''), $8, $9, engram.from_us($10), engram.from_us($10)) "
      "  ON CONFLICT (unique_key) "
      "    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') "
      "    DO NOTHING RETURNING id, queue) "
      "SELECT id, CASE WHEN queue <> $11 "
      "  THEN pg_notify('engram_tasks', queue) END FROM ins",
      r.name, r.queue, r.args_json, r.priority, r.max_retries, run_at,
      r.unique_key, r.soft_time_limit_ms, r.time_limit_ms, now_us,
      quiet_queue);
    if (!rows.empty()) {
      results[0] = {rows[0][0].as<int64_t>(), true};
      return results;
    }
    auto existing = tx.exec_params(
      "SELECT id FROM engram.tasks WHERE unique_key = $1 "
      "ORDER BY (status IN ('queued', 'running')) DESC, id DESC LIMIT 1",
      r.unique_key);
    results[0] = {existing.empty() ? 0 : existing[0][0].as<int64_t>(), false};
    return results;
  }
  json::array input;
  input.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    auto run_at = r.run_at_us > 0 ? r.run_at_us : now_us + r.delay_ms * 1000;
    input.push_back(json::object{
      {"o", i}, {"n", r.name}, {"q", r.queue}, {"a", r.args_json},
      {"p", r.priority}, {"m", r.max_retries}, {"r", run_at},
      {"u", r.unique_key}, {"s", r.soft_time_limit_ms},
      {"h", r.time_limit_ms}});
  }
  // Ids are drawn in input order before the insert, so each result maps
  // back to its request; a row the unique index refused has no match.
  auto rows = run_prepared(tx, "engram_enqueue",
    "WITH input AS MATERIALIZED ("
    "  SELECT x.*, nextval('engram.tasks_id_seq') AS id "
    "  FROM jsonb_to_recordset($1::jsonb) AS x(o int, n text, q text, a text, "
    "    p int, m int, r bigint, u text, s bigint, h bigint) ORDER BY x.o), "
    "ins AS (INSERT INTO engram.tasks (id, name, queue, args, priority, "
    "    max_retries, run_at, unique_key, soft_time_limit_ms, time_limit_ms, "
    "    created_at, updated_at) "
    "  SELECT id, n, q, a::jsonb, p, m, engram.from_us(r), nullif(u, ''), s, h, "
    "    engram.from_us($2), engram.from_us($2) FROM input ORDER BY o "
    "  ON CONFLICT (unique_key) "
    "    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') "
    "    DO NOTHING "
    "  RETURNING id, queue), "
    "woken AS (SELECT pg_notify('engram_tasks', q.queue) "
    "  FROM (SELECT DISTINCT queue FROM ins WHERE queue <> $3) q) "
    "SELECT i.o, ins.id, (SELECT count(*) FROM woken) "
    "FROM input i LEFT JOIN ins ON ins.id = i.id ORDER BY i.o",
    json::serialize(input), now_us, quiet_queue);
  std::vector<size_t> refused;
  for (const auto& row : rows) {
    auto i = row[0].as<size_t>();
    if (row[1].is_null()) {
      refused.push_back(i);
    } else {
      results[i] = {row[1].as<int64_t>(), true};
    }
  }
  for (auto i : refused) {
    // The holder of the key: queued or running now, or (if it finished in
    // the meantime) the newest task with that key.
    auto existing = tx.exec_params(
      "SELECT id FROM engram.tasks WHERE unique_key = $1 "
      "ORDER BY (status IN ('queued', 'running')) DESC, id DESC LIMIT 1",
      requests[i].unique_key);
    results[i] = {existing.empty() ? 0 : existing[0][0].as<int64_t>(), false};
  }
  return results;
}

tasks::enqueue_result enqueue_task(pqxx::transaction_base& tx,
                                   const tasks::enqueue_request& req,
                                   wall_time now) {
  return enqueue_tasks(tx, {req}, now, {}).front();
}

namespace {

std::vector<tasks::claimed_task> claimed_in_order(const pqxx::result& rows,
                                                  int first);

/// The claim statement; `relaxed` commits it without waiting for the WAL
/// flush (see relaxed_commit).
std::string claim_sql(bool relaxed) {
  std::string with = relaxed ? std::string{"WITH "} + relaxed_commit + ", "
                             : std::string{"WITH "};
  return with
         + "picked AS (SELECT id FROM engram.tasks "
           "  WHERE status = 'queued' AND queue = $1 "
           "  AND run_at <= engram.from_us($5) "
           "  ORDER BY priority DESC, run_at, id LIMIT $4 "
           "  FOR UPDATE SKIP LOCKED) "
           "UPDATE engram.tasks t SET status = 'running', "
           "  attempts = attempts + 1, locked_by = $2, "
           "  lease_token = gen_random_uuid(), "
           "  lease_until = engram.from_us($5) "
           "    + $3 * interval '1 millisecond', "
           "  cancel_requested = false, "
           "  started_at = engram.from_us($5), "
           "  updated_at = engram.from_us($5) "
         + (relaxed ? "FROM picked, relaxed " : "FROM picked ")
         + "WHERE t.id = picked.id "
           "RETURNING t.priority, engram.to_us(t.run_at), "
         + claimed_columns;
}

std::vector<tasks::claimed_task>
claim_rows(pqxx::transaction_base& tx, const std::string& queue,
           const std::string& worker, int64_t limit,
           std::chrono::milliseconds lease, wall_time now, bool relaxed) {
  // The relaxed variant's set_config runs whenever a row is claimed (it is
  // joined to every claimed row); a claim that takes nothing writes
  // nothing to flush.
  static const std::string plain_sql = claim_sql(false);
  static const std::string relaxed_sql = claim_sql(true);
  auto rows = run_prepared(tx, relaxed ? "engram_claim_relaxed" : "engram_claim",
    relaxed ? relaxed_sql : plain_sql,
    queue, worker, lease.count(), limit, to_epoch_us(now));
  return claimed_in_order(rows, 0);
}

/// The claimed tasks of claim rows (priority, run_at, then claimed_columns,
/// from column `first` on; rows whose id is NULL are skipped), in claim
/// order: RETURNING has no defined order.
std::vector<tasks::claimed_task> claimed_in_order(const pqxx::result& rows,
                                                  int first) {
  std::vector<std::tuple<int32_t, int64_t, tasks::claimed_task>> claimed;
  claimed.reserve(rows.size());
  for (const auto& row : rows) {
    if (row[first + 2].is_null())
      continue;
    auto t = claimed_from(row, first + 2);
    t.due_us = row[first + 1].as<int64_t>();
    claimed.emplace_back(row[first].as<int32_t>(), t.due_us, std::move(t));
  }
  std::vector<tasks::claimed_task> result;
  result.reserve(claimed.size());
  std::sort(claimed.begin(), claimed.end(), [](auto& a, auto& b) {
    if (std::get<0>(a) != std::get<0>(b))
      return std::get<0>(a) > std::get<0>(b);
    if (std::get<1>(a) != std::get<1>(b))
      return std::get<1>(a) < std::get<1>(b);
    return std::get<2>(a).id < std::get<2>(b).id;
  });
  for (auto& c : claimed)
    result.push_back(std::move(std::get<2>(c)));
  return result;
}

} // namespace

std::vector<tasks::claimed_task>
claim_tasks(pqxx::transaction_base& tx, const std::string& queue,
            const std::string& worker, int64_t limit,
            std::chrono::milliseconds lease, wall_time now) {
  return claim_rows(tx, queue, worker, limit, lease, now, true);
}

tasks::renewal_result renew_leases(pqxx::transaction_base& tx,
                                   const std::vector<tasks::lease_ref>& leases,
                                   std::chrono::milliseconds lease,
                                   wall_time now) {
  tasks::renewal_result result;
  if (leases.empty())
    return result;
  auto rows = run_prepared(tx, "engram_renew",
    std::string{"WITH "} + relaxed_commit
      + "UPDATE engram.tasks t "
        "SET lease_until = engram.from_us($3) + $2 * interval '1 millisecond', "
        "  updated_at = engram.from_us($3) "
        "FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token uuid), "
        "  relaxed "
    "WHERE t.id = x.id AND t.lease_token = x.token AND t.status = 'running' "
    "RETURNING t.id, t.cancel_requested",
    leases_json(leases), lease.count(), to_epoch_us(now));
  std::unordered_set<int64_t> renewed;
  for (const auto& row : rows) {
    auto id = row[0].as<int64_t>();
    renewed.insert(id);
    if (row[1].as<bool>())
      result.cancel_requested.push_back(id);
  }
  for (const auto& l : leases)
    if (renewed.count(l.id) == 0)
      result.lost.push_back(l.id);
  std::sort(result.cancel_requested.begin(), result.cancel_requested.end());
  return result;
}

namespace {

/// Whether a followup is due at `now`.
bool due_now(const tasks::enqueue_request& f, int64_t now_us) {
  return f.delay_ms <= 0 && (f.run_at_us == 0 || f.run_at_us <= now_us);
}

/// Inserts `req` as running under a fresh lease of `claim.worker` (its
/// first attempt started now); nothing when its unique key is taken.
std::optional<tasks::claimed_task>
insert_claimed(pqxx::transaction_base& tx, const tasks::enqueue_request& req,
               const tasks::claim_tasks& claim, wall_time now) {
  auto rows = run_prepared(tx, "engram_enqueue_claimed",
    "INSERT INTO engram.tasks (name, queue, args, priority, max_retries, "
    "  run_at, unique_key, soft_time_limit_ms, time_limit_ms, created_at, "
    "  updated_at, status, attempts, locked_by, lease_token, lease_until, "
    "  started_at) "
    "VALUES ($1, $2, $3::jsonb, $4, $5, engram.from_us($6), nullif($7, ''), "
    "  $8, $9, engram.from_us($6), engram.from_us($6), 'running', 1, $10, "
    "  gen_random_uuid(), "
    "  engram.from_us($6) + $11 * interval '1 millisecond', "
    "  engram.from_us($6)) "
    "ON CONFLICT (unique_key) "
    "  WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') "
    "  DO NOTHING "
    "RETURNING id, name, queue, args::text, attempts, max_retries, "
    "  soft_time_limit_ms, time_limit_ms, lease_token::text, "
    "  engram.to_us(lease_until)",
    req.name, req.queue, req.args_json, req.priority, req.max_retries,
    to_epoch_us(now), req.unique_key, req.soft_time_limit_ms,
    req.time_limit_ms, claim.worker, claim.lease_ms);
  if (rows.empty())
    return std::nullopt;
  auto t = claimed_from(rows[0], 0);
  t.due_us = to_epoch_us(now);
  return t;
}

tasks::completion_result
complete_quietly(pqxx::transaction_base& tx,
                 const std::vector<tasks::task_outcome>& outcomes,
                 wall_time now, const std::string& quiet_queue,
                 const tasks::claim_tasks* claim = nullptr) {
  tasks::completion_result result;
  auto now_us = to_epoch_us(now);
  std::unordered_set<int64_t> accepted;
  json::array succeeded;
  for (const auto& o : outcomes) {
    if (o.succeeded) {
      succeeded.push_back(json::object{
        {"id", o.id},
        {"token", o.lease_token},
        {"result", o.result_json.empty() ? std::string{"null"} : o.result_json}});
    } else if (apply_failure(tx, o, now_us)) {
      accepted.insert(o.id);
    }
  }
  if (succeeded.size() == 1) {
    const auto& o = succeeded[0].as_object();
    auto rows = run_prepared(tx, "engram_succeed_one",
      "UPDATE engram.tasks SET status = 'succeeded', "
      "  result = $3::jsonb, finished_at = engram.from_us($4), "
      "  updated_at = engram.from_us($4), "
      "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
      "WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
      "RETURNING id",
      o.at("id").as_int64(), std::string{o.at("token").as_string()},
      std::string{o.at("result").as_string()}, now_us);
    for (const auto& row : rows)
      accepted.insert(row[0].as<int64_t>());
  } else if (!succeeded.empty()) {
    // One statement for every success of the batch.
    auto rows = run_prepared(tx, "engram_succeed",
      "UPDATE engram.tasks t SET status = 'succeeded', "
      "  result = x.result::jsonb, finished_at = engram.from_us($2), "
      "  updated_at = engram.from_us($2), "
      "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
      "FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token uuid, "
      "  result text) "
      "WHERE t.id = x.id AND t.lease_token = x.token AND t.status = 'running' "
      "RETURNING t.id",
      json::serialize(succeeded), now_us);
    for (const auto& row : rows)
      accepted.insert(row[0].as<int64_t>());
  }
  std::vector<tasks::enqueue_request> followups;
  for (const auto& o : outcomes) {
    if (accepted.count(o.id) == 0) {
      result.refused.push_back(o.id);
      continue;
    }
    followups.insert(followups.end(), o.followups.begin(), o.followups.end());
  }
  result.accepted = static_cast<int64_t>(accepted.size());
  if (followups.empty())
    return result;
  if (claim == nullptr) {
    (void) enqueue_tasks(tx, followups, now, quiet_queue);
    return result;
  }
  // The claiming queue's followups that are due now are inserted already
  // claimed by the caller (a chain's next step costs no claim); the rest
  // are enqueued as usual.
  std::vector<tasks::enqueue_request> rest;
  for (auto& f : followups) {
    if (f.queue == claim->queue && due_now(f, now_us)
        && static_cast<int64_t>(result.claimed.size()) < claim->limit) {
      if (auto t = insert_claimed(tx, f, *claim, now))
        result.claimed.push_back(std::move(*t));
    } else {
      rest.push_back(std::move(f));
    }
  }
  if (!rest.empty())
    (void) enqueue_tasks(tx, rest, now,
                         result.claimed.empty() ? quiet_queue : std::string{});
  return result;
}


/// Columns a claim's RETURNING names (claimed_columns with unique names, so
/// a CTE can return them).
constexpr auto claimed_returning
  = "t.priority, engram.to_us(t.run_at) AS due_us, t.id, t.name, t.queue, "
    "t.args::text AS args, t.attempts, t.max_retries, t.soft_time_limit_ms, "
    "t.time_limit_ms, t.lease_token::text AS lease_token, "
    "engram.to_us(t.lease_until) AS lease_until_us";

/// The success of one attempt that has no followups, and the claim, as one
/// statement (see complete_and_claim).
tasks::completion_result succeed_and_claim(pqxx::transaction_base& tx,
                                           const tasks::task_outcome& o,
                                           const tasks::claim_tasks& claim,
                                           int64_t now_us) {
  static const std::string sql = std::string{
    "WITH done AS (UPDATE engram.tasks SET status = 'succeeded', "
    "  result = $3::jsonb, finished_at = engram.from_us($4), "
    "  updated_at = engram.from_us($4), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "  WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
    "  RETURNING id), "
    "picked AS (SELECT id FROM engram.tasks "
    "  WHERE status = 'queued' AND queue = $5 "
    "  AND run_at <= engram.from_us($4) "
    "  ORDER BY priority DESC, run_at, id LIMIT $7 "
    "  FOR UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE engram.tasks t SET status = 'running', "
    "  attempts = attempts + 1, locked_by = $6, "
    "  lease_token = gen_random_uuid(), "
    "  lease_until = engram.from_us($4) + $8 * interval '1 millisecond', "
    "  cancel_requested = false, started_at = engram.from_us($4), "
    "  updated_at = engram.from_us($4) "
    "  FROM picked WHERE t.id = picked.id RETURNING "}
    + claimed_returning
    + "), "
      // A full claim may leave due tasks behind: wake the other nodes.
      "woken AS (SELECT pg_notify('engram_tasks', $5) "
      "  WHERE $7 > 0 AND (SELECT count(*) FROM claimed) = $7) "
      "SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM woken), c.* "
      "FROM (VALUES (1)) AS one (x) LEFT JOIN claimed c ON true";
  auto rows = run_prepared(tx, "engram_succeed_and_claim", sql, o.id,
                           o.lease_token,
                           o.result_json.empty() ? std::string{"null"}
                                                 : o.result_json,
                           now_us, claim.queue, claim.worker,
                           std::max<int64_t>(claim.limit, 0), claim.lease_ms);
  tasks::completion_result result;
  result.accepted = rows[0][0].as<int64_t>();
  if (result.accepted == 0)
    result.refused.push_back(o.id);
  result.claimed = claimed_in_order(rows, 2);
  return result;
}

/// The success of one attempt and its followup, inserted already claimed
/// by the claiming worker, as one statement (see complete_and_claim). When
/// the outcome was refused or the followup's unique key was taken, the
/// claim runs as a statement of its own.
tasks::completion_result succeed_with_claimed_followup(
  pqxx::transaction_base& tx, const tasks::task_outcome& o,
  const tasks::claim_tasks& claim, wall_time now) {
  static const std::string sql = std::string{
    "WITH done AS (UPDATE engram.tasks SET status = 'succeeded', "
    "  result = $3::jsonb, finished_at = engram.from_us($4), "
    "  updated_at = engram.from_us($4), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "  WHERE id = $1 AND lease_token = $2::uuid AND status = 'running' "
    "  RETURNING id), "
    // The followup exists if and only if the outcome was accepted.
    "ins AS (INSERT INTO engram.tasks AS t (name, queue, args, priority, "
    "    max_retries, run_at, unique_key, soft_time_limit_ms, time_limit_ms, "
    "    created_at, updated_at, status, attempts, locked_by, lease_token, "
    "    lease_until, started_at) "
    "  SELECT $5::text, $6::text, $7::jsonb, $8::int, $9::int, "
    "    engram.from_us($4), nullif($10::text, ''), $11::bigint, $12::bigint, "
    "    engram.from_us($4), engram.from_us($4), 'running', 1, $13::text, "
    "    gen_random_uuid(), "
    "    engram.from_us($4) + $14 * interval '1 millisecond', "
    "    engram.from_us($4) FROM done "
    "  ON CONFLICT (unique_key) "
    "    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') "
    "    DO NOTHING RETURNING "}
    + claimed_returning
    + ") SELECT (SELECT count(*) FROM done), i.* "
      "FROM (VALUES (1)) AS one (x) LEFT JOIN ins i ON true";
  const auto& f = o.followups.front();
  auto now_us = to_epoch_us(now);
  auto rows = run_prepared(
    tx, "engram_succeed_with_followup", sql, o.id, o.lease_token,
    o.result_json.empty() ? std::string{"null"} : o.result_json, now_us,
    f.name, f.queue, f.args_json, f.priority, f.max_retries, f.unique_key,
    f.soft_time_limit_ms, f.time_limit_ms, claim.worker, claim.lease_ms);
  tasks::completion_result result;
  result.accepted = rows[0][0].as<int64_t>();
  if (result.accepted == 0)
    result.refused.push_back(o.id);
  result.claimed = claimed_in_order(rows, 1);
  for (auto& t : result.claimed)
    t.due_us = now_us;
  if (!result.claimed.empty())
    return result;
  result.claimed = claim_rows(tx, claim.queue, claim.worker, claim.limit,
                              std::chrono::milliseconds{claim.lease_ms}, now,
                              false);
  if (static_cast<int64_t>(result.claimed.size()) == claim.limit)
    tx.exec_params("SELECT pg_notify('engram_tasks', $1)", claim.queue);
  return result;
}
} // namespace

tasks::completion_result
complete_tasks(pqxx::transaction_base& tx,
               const std::vector<tasks::task_outcome>& outcomes,
               wall_time now) {
  return complete_quietly(tx, outcomes, now, {});
}

tasks::completion_result
complete_and_claim(pqxx::transaction_base& tx,
                   const std::vector<tasks::task_outcome>& outcomes,
                   const tasks::claim_tasks& claim, wall_time now) {
  if (single_statement_completion(outcomes, claim, now)) {
    const auto& o = outcomes.front();
    if (o.followups.empty())
      return succeed_and_claim(tx, o, claim, to_epoch_us(now));
    return succeed_with_claimed_followup(tx, o, claim, now);
  }
  if (claim.limit <= 0)
    return complete_tasks(tx, outcomes, now);
  // Followups for the claiming queue need no notification when the claim
  // takes every due task; only a full claim leaves some for others.
  auto result = complete_quietly(tx, outcomes, now, claim.queue, &claim);
  if (!result.claimed.empty())
    return result; // followups claimed at insert; other work comes by wake
  result.claimed = claim_rows(tx, claim.queue, claim.worker, claim.limit,
                              std::chrono::milliseconds{claim.lease_ms}, now,
                              false);
  if (static_cast<int64_t>(result.claimed.size()) == claim.limit)
    tx.exec_params("SELECT pg_notify('engram_tasks', $1)", claim.queue);
  return result;
}

bool single_statement_completion(
  const std::vector<tasks::task_outcome>& outcomes,
  const tasks::claim_tasks& claim, wall_time now) {
  if (outcomes.size() != 1 || !outcomes.front().succeeded)
    return false;
  const auto& followups = outcomes.front().followups;
  if (followups.empty())
    return true;
  return followups.size() == 1 && claim.limit > 0
         && followups.front().queue == claim.queue
         && due_now(followups.front(), to_epoch_us(now));
}

int64_t release_tasks(pqxx::transaction_base& tx,
                      const std::vector<tasks::lease_ref>& leases,
                      wall_time now) {
  if (leases.empty())
    return 0;
  auto rows = tx.exec_params(
    "WITH released AS (UPDATE engram.tasks t SET status = 'queued', "
    "  attempts = greatest(attempts - 1, 0), run_at = engram.from_us($2), "
    "  updated_at = engram.from_us($2), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token uuid) "
    "WHERE t.id = x.id AND t.lease_token = x.token AND t.status = 'running' "
    "RETURNING t.queue), "
    "woken AS (SELECT pg_notify('engram_tasks', q.queue) "
    "  FROM (SELECT DISTINCT queue FROM released) q) "
    "SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM woken)",
    leases_json(leases), to_epoch_us(now));
  return rows[0][0].as<int64_t>();
}

std::vector<int64_t> reclaim_expired(pqxx::transaction_base& tx,
                                     int64_t limit, wall_time now) {
  auto rows = tx.exec_params(
    "WITH expired AS (SELECT id FROM engram.tasks "
    "  WHERE status = 'running' AND lease_until < engram.from_us($2) "
    "  ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED), "
    "reclaimed AS (UPDATE engram.tasks t SET "
    "  status = CASE WHEN attempts > max_retries THEN 'dead' ELSE 'queued' END, "
    "  finished_at = CASE WHEN attempts > max_retries "
    "                THEN engram.from_us($2) END, "
    "  run_at = engram.from_us($2), "
    "  last_error = 'lease expired: worker ' || coalesce(locked_by, '?') "
    "    || ' stopped renewing it', "
    "  errors = errors || jsonb_build_array(jsonb_build_object("
    "    'attempt', attempts, 'at', engram.from_us($2), "
    "    'error', 'lease expired: worker ' "
    "    || coalesce(locked_by, '?') || ' stopped renewing it')), "
    "  updated_at = engram.from_us($2), "
    "  lease_token = NULL, lease_until = NULL, locked_by = NULL "
    "FROM expired WHERE t.id = expired.id RETURNING t.id, t.queue, t.status), "
    "woken AS (SELECT pg_notify('engram_tasks', q.queue) FROM "
    "  (SELECT DISTINCT queue FROM reclaimed WHERE status = 'queued') q) "
    "SELECT id, (SELECT count(*) FROM woken) FROM reclaimed",
    limit, to_epoch_us(now));
  std::vector<int64_t> result;
  for (const auto& row : rows)
    result.push_back(row[0].as<int64_t>());
  std::sort(result.begin(), result.end());
  return result;
}

std::string cancel_task(pqxx::transaction_base& tx, int64_t id,
                        wall_time now) {
  auto row = tx.exec_params(
    "WITH current AS (SELECT id, status FROM engram.tasks WHERE id = $1 "
    "  FOR UPDATE), "
    "changed AS (UPDATE engram.tasks t SET "
    "  status = CASE WHEN c.status = 'queued' THEN 'cancelled' ELSE t.status END, "
    "  finished_at = CASE WHEN c.status = 'queued' THEN engram.from_us($2) "
    "                ELSE t.finished_at END, "
    "  cancel_requested = (c.status = 'running'), "
    "  updated_at = engram.from_us($2) "
    "  FROM current c WHERE t.id = c.id "
    "  AND c.status IN ('queued', 'running') RETURNING c.status) "
    "SELECT c.status, (SELECT status FROM changed) FROM current c",
    id, to_epoch_us(now));
  if (row.empty())
    return {};
  if (row[0][1].is_null())
    return row[0][0].as<std::string>();
  return row[0][1].as<std::string>() == "queued" ? "cancelled" : "cancelling";
}

std::string retry_task(pqxx::transaction_base& tx, int64_t id, wall_time now) {
  auto current = tx.exec_params(
    "SELECT status, coalesce(unique_key, '') FROM engram.tasks WHERE id = $1 "
    "FOR UPDATE",
    id);
  if (current.empty())
    return {};
  auto status = current[0][0].as<std::string>();
  if (status != "dead" && status != "cancelled")
    return status;
  auto key = current[0][1].as<std::string>();
  if (!key.empty()) {
    auto holder = tx.exec_params(
      "SELECT 1 FROM engram.tasks WHERE unique_key = $1 "
      "AND status IN ('queued', 'running') AND id <> $2",
      key, id);
    if (!holder.empty())
      return "blocked";
  }
  tx.exec_params(
    "UPDATE engram.tasks SET status = 'queued', attempts = 0, "
    "  run_at = engram.from_us($2), finished_at = NULL, "
    "  cancel_requested = false, updated_at = engram.from_us($2) "
    "WHERE id = $1",
    id, to_epoch_us(now));
  tx.exec_params(
    "SELECT pg_notify('engram_tasks', queue) FROM engram.tasks WHERE id = $1",
    id);
  return "queued";
}

std::optional<tasks::task_info> get_task(pqxx::transaction_base& tx,
                                         int64_t id) {
  auto rows = tx.exec_params(
    std::string{"SELECT "} + info_columns + " FROM engram.tasks WHERE id = $1",
    id);
  if (rows.empty())
    return std::nullopt;
  return info_from(rows[0]);
}

tasks::task_page list_tasks(pqxx::transaction_base& tx,
                            const tasks::list_tasks& filter) {
  auto limit = std::clamp<int64_t>(filter.limit, 1, 1000);
  auto rows = tx.exec_params(
    std::string{"SELECT "} + info_columns
      + " FROM engram.tasks "
        "WHERE ($1 = '' OR status = $1) AND ($2 = '' OR name = $2) "
        "AND ($3 = '' OR queue = $3) AND ($4 = 0 OR id < $4) "
        "ORDER BY id DESC LIMIT $5",
    filter.status, filter.name, filter.queue, filter.before_id, limit + 1);
  tasks::task_page page;
  for (const auto& row : rows) {
    if (static_cast<int64_t>(page.tasks.size()) == limit) {
      page.next_before_id = page.tasks.back().id;
      break;
    }
    page.tasks.push_back(info_from(row));
  }
  return page;
}

int64_t purge_finished_tasks(pqxx::transaction_base& tx, wall_time now,
                             int64_t succeeded_days, int64_t dead_days,
                             int64_t limit) {
  auto rows = tx.exec_params(
    "WITH old AS (SELECT id FROM engram.tasks "
    "  WHERE status IN ('succeeded', 'cancelled', 'dead') "
    "  AND finished_at < engram.from_us($1) - CASE WHEN status = 'dead' "
    "    THEN $3::bigint ELSE $2::bigint END * interval '1 day' "
    "  ORDER BY finished_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
    "gone AS (DELETE FROM engram.tasks t USING old WHERE t.id = old.id "
    "  RETURNING 1) "
    "SELECT count(*) FROM gone",
    to_epoch_us(now), succeeded_days, dead_days, limit);
  return rows[0][0].as<int64_t>();
}

std::vector<tasks::queue_depth> queue_depths(pqxx::transaction_base& tx,
                                             wall_time now) {
  auto rows = tx.exec_params(
    "SELECT queue, count(*) FILTER (WHERE status = 'queued'), "
    "  count(*) FILTER (WHERE status = 'running'), "
    "  coalesce(greatest(0, (($1 - engram.to_us(min(run_at) FILTER ("
    "    WHERE status = 'queued' AND run_at <= engram.from_us($1)))) / 1000)), 0) "
    "FROM engram.tasks WHERE status IN ('queued', 'running') "
    "GROUP BY queue ORDER BY queue",
    to_epoch_us(now));
  std::vector<tasks::queue_depth> result;
  for (const auto& row : rows)
    result.push_back({row[0].as<std::string>(), row[1].as<int64_t>(),
                      row[2].as<int64_t>(), row[3].as<int64_t>()});
  return result;
}

} // namespace engram::storage
