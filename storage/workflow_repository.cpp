#include "storage/workflow_repository.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

#include <boost/json.hpp>
#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/transaction>

#include "messages/errc.hpp"
#include "messages/tasks.hpp"
#include "runtime/uuid.hpp"
#include "storage/sql_values.hpp"
#include "storage/task_repository.hpp"

namespace engram::storage {

namespace {

using namespace sql_values;
using workflows::artifact_record;
using workflows::credential_audit;
using workflows::run_record;
using workflows::step_record;
namespace json = boost::json;

constexpr auto run_columns
  = "r.id::text, r.workflow, r.status, coalesce(r.idempotency_key, ''), "
    "coalesce(r.branch_name, ''), r.input::text, to_json(r.steps)::text, "
    "r.current_step_index, r.attempt, coalesce(r.error, ''), "
    "coalesce(r.error_kind, ''), to_json(r.missing_credentials)::text, "
    "coalesce(r.note, ''), coalesce(r.output::text, ''), "
    "engram.to_us(r.created_at), coalesce(engram.to_us(r.started_at), 0), "
    "engram.to_us(r.updated_at), coalesce(engram.to_us(r.finished_at), 0), "
    "r.seq";

constexpr auto state_columns
  = "s.id, s.run_id::text, s.step, s.step_index, s.attempt, s.run_attempt, "
    "s.try_number, s.status, engram.to_us(s.started_at), "
    "coalesce(engram.to_us(s.finished_at), 0), coalesce(s.duration_ms, 0), "
    "coalesce(s.exit_code, -1), coalesce(s.term_signal, 0), "
    "coalesce(s.payload::text, ''), coalesce(s.error, ''), "
    "coalesce(s.error_kind, ''), array_to_string(s.artifact_ids, ','), "
    "coalesce(s.task_id, 0)";

constexpr auto artifact_columns
  = "a.id, a.run_id::text, a.step, a.step_state_id, a.name, a.relative_path, "
    "a.size_bytes, a.sha256, a.content_type, engram.to_us(a.created_at)";

constexpr auto audit_columns
  = "c.id, c.run_id::text, c.step, c.attempt, c.credential, c.kind, "
    "c.present, c.valid, engram.to_us(c.checked_at), c.detail";

constexpr auto interrupted_error
  = "interrupted: the daemon stopped before the step finished";

caf::error refused(errc code, std::string message) {
  return make_error(code, std::move(message));
}

/// A JSON array of strings (to_json of a text[]) as a vector.
std::vector<std::string> strings_of(const std::string& text) {
  std::vector<std::string> out;
  auto value = json::parse(text);
  if (!value.is_array())
    return out;
  for (const auto& item : value.as_array())
    out.emplace_back(item.is_string() ? std::string{item.as_string()}
                                      : std::string{});
  return out;
}

std::vector<int64_t> ids_of(const std::string& commas) {
  std::vector<int64_t> out;
  for (const auto& id : split_commas(commas))
    out.push_back(std::stoll(id));
  return out;
}

run_record run_of(const pqxx::row& row) {
  run_record r;
  r.id = row[0].as<std::string>();
  r.workflow = row[1].as<std::string>();
  r.status = row[2].as<std::string>();
  r.idempotency_key = row[3].as<std::string>();
  r.branch_name = row[4].as<std::string>();
  r.input_json = row[5].as<std::string>();
  r.steps = strings_of(row[6].as<std::string>());
  r.current_step_index = row[7].as<int32_t>();
  r.attempt = row[8].as<int32_t>();
  r.error = row[9].as<std::string>();
  r.error_kind = row[10].as<std::string>();
  r.missing_credentials = strings_of(row[11].as<std::string>());
  r.note = row[12].as<std::string>();
  r.output_json = row[13].as<std::string>();
  r.created_at_us = row[14].as<int64_t>();
  r.started_at_us = row[15].as<int64_t>();
  r.updated_at_us = row[16].as<int64_t>();
  r.finished_at_us = row[17].as<int64_t>();
  r.seq = row[18].as<int64_t>();
  return r;
}

step_record state_of(const pqxx::row& row) {
  step_record s;
  s.id = row[0].as<int64_t>();
  s.run_id = row[1].as<std::string>();
  s.step = row[2].as<std::string>();
  s.step_index = row[3].as<int32_t>();
  s.attempt = row[4].as<int32_t>();
  s.run_attempt = row[5].as<int32_t>();
  s.try_number = row[6].as<int32_t>();
  s.status = row[7].as<std::string>();
  s.started_at_us = row[8].as<int64_t>();
  s.finished_at_us = row[9].as<int64_t>();
  s.duration_ms = row[10].as<int64_t>();
  s.exit_code = row[11].as<int32_t>();
  s.term_signal = row[12].as<int32_t>();
  s.payload_json = row[13].as<std::string>();
  s.error = row[14].as<std::string>();
  s.error_kind = row[15].as<std::string>();
  s.artifact_ids = ids_of(row[16].as<std::string>());
  s.task_id = row[17].as<int64_t>();
  return s;
}

artifact_record artifact_of(const pqxx::row& row) {
  artifact_record a;
  a.id = row[0].as<int64_t>();
  a.run_id = row[1].as<std::string>();
  a.step = row[2].as<std::string>();
  a.step_state_id = row[3].as<int64_t>();
  a.name = row[4].as<std::string>();
  a.relative_path = row[5].as<std::string>();
  a.size_bytes = row[6].as<int64_t>();
  a.sha256 = row[7].as<std::string>();
  a.content_type = row[8].as<std::string>();
  a.created_at_us = row[9].as<int64_t>();
  return a;
}

credential_audit audit_of(const pqxx::row& row) {
  credential_audit c;
  c.id = row[0].as<int64_t>();
  c.run_id = row[1].as<std::string>();
  c.step = row[2].as<std::string>();
  c.attempt = row[3].as<int32_t>();
  c.credential = row[4].as<std::string>();
  c.kind = row[5].as<std::string>();
  c.present = row[6].as<bool>();
  c.valid = row[7].as<bool>();
  c.checked_at_us = row[8].as<int64_t>();
  c.detail = row[9].as<std::string>();
  return c;
}

/// The run `id` (lower-case canonical), locked FOR UPDATE if `lock`;
/// nullopt for an unknown or malformed id.
std::optional<run_record> read_run(pqxx::transaction_base& tx,
                                   const std::string& id, bool lock = false) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + run_columns
                               + " FROM engram.workflow_runs r WHERE r.id = $1"
                               + (lock ? " FOR UPDATE" : ""),
                             ascii_lower(id));
  if (rows.empty())
    return std::nullopt;
  return run_of(rows[0]);
}

caf::error no_run(const std::string& id) {
  return refused(errc::not_found, "no workflow run " + id);
}

std::optional<step_record> read_state(pqxx::transaction_base& tx, int64_t id,
                                      bool lock = false) {
  auto rows = tx.exec_params(std::string{"SELECT "} + state_columns
                               + " FROM engram.workflow_task_states s "
                                 "WHERE s.id = $1"
                               + (lock ? " FOR UPDATE" : ""),
                             id);
  if (rows.empty())
    return std::nullopt;
  return state_of(rows[0]);
}

/// invalid_argument unless `text` is one JSON value (empty is allowed when
/// `optional`).
caf::error check_json(std::string_view field, const std::string& text,
                      bool optional = false) {
  if (text.empty() && optional)
    return {};
  json::error_code ec;
  json::parse(text, ec);
  if (ec)
    return refused(errc::invalid_argument,
                   std::string{field} + ": not valid JSON (" + ec.message()
                     + ")");
  return {};
}

caf::error check_audits(const std::vector<credential_audit>& audits) {
  for (size_t i = 0; i < audits.size(); ++i) {
    const auto& a = audits[i];
    auto where = "audits[" + std::to_string(i) + "]";
    if (a.kind != "env" && a.kind != "file")
      return refused(errc::invalid_argument,
                     where + ".kind: must be \"env\" or \"file\", not \""
                       + a.kind + "\"");
    if (a.credential.empty())
      return refused(errc::invalid_argument, where + ".credential: empty");
  }
  return {};
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

/// Whether `path` has a ".." segment.
bool climbs(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    if (path.substr(start, end - start) == "..")
      return true;
    start = end + 1;
  }
  return false;
}

caf::error check_artifacts(const std::vector<artifact_record>& artifacts) {
  std::set<std::string> names;
  for (size_t i = 0; i < artifacts.size(); ++i) {
    const auto& a = artifacts[i];
    auto where = "artifacts[" + std::to_string(i) + "]";
    if (a.name.empty())
      return refused(errc::invalid_argument, where + ".name: empty");
    if (!names.insert(a.name).second)
      return refused(errc::invalid_argument,
                     where + ".name: \"" + a.name + "\" is listed twice");
    if (a.relative_path.empty() || a.relative_path.front() == '/'
        || climbs(a.relative_path))
      return refused(errc::invalid_argument,
                     where + ".relative_path: must be a relative path "
                             "without \"..\" segments, not \""
                       + a.relative_path + "\"");
    if (a.size_bytes < 0)
      return refused(errc::invalid_argument,
                     where + ".size_bytes: negative");
    if (a.sha256.size() != 64 || !is_lower_hex(a.sha256))
      return refused(errc::invalid_argument,
                     where + ".sha256: not 64 lower-case hex digits");
  }
  return {};
}

caf::error check_task(std::string_view field,
                      const tasks::enqueue_request& task) {
  if (task.name.empty())
    return refused(errc::invalid_argument, std::string{field} + ".name: empty");
  if (task.args_json.empty())
    return {};
  json::error_code ec;
  auto value = json::parse(task.args_json, ec);
  if (ec || !value.is_object())
    return refused(errc::invalid_argument,
                   std::string{field} + ".args_json: not a JSON object");
  return {};
}

/// `ids` as a bigint[] literal.
std::string id_array(const std::vector<int64_t>& ids) {
  std::string out = "{";
  for (auto id : ids) {
    if (out.size() > 1)
      out += ',';
    out += std::to_string(id);
  }
  return out + "}";
}

/// Runs `f()` and turns a value PostgreSQL refused (invalid JSON or text,
/// a value out of range: SQLSTATE class 22) into invalid_argument. The
/// transaction is then aborted; the caller does not commit it.
template <class F>
auto refusing_bad_data(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const pqxx::data_exception& e) {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' '))
      what.pop_back();
    return refused(errc::invalid_argument, "invalid value: " + what);
  }
}

void insert_audits(pqxx::transaction_base& tx,
                   const std::vector<credential_audit>& audits,
                   const std::string& run_id, const std::string& step,
                   int32_t attempt, int64_t now_us) {
  for (const auto& a : audits)
    tx.exec_params0(
      "INSERT INTO engram.workflow_credential_audits (run_id, step, attempt, "
      "  credential, kind, present, valid, checked_at, detail) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, engram.from_us($8), $9)",
      run_id, step, attempt, a.credential, a.kind, a.present, a.valid,
      a.checked_at_us != 0 ? a.checked_at_us : now_us, a.detail);
}

/// "missing credential: A (not set), file:/k (not readable) — set the
/// environment variable A; provide the file /k".
std::string missing_message(const std::vector<credential_audit>& invalid) {
  std::string listed;
  std::string guidance;
  for (const auto& a : invalid) {
    if (!listed.empty()) {
      listed += ", ";
      guidance += "; ";
    }
    listed += a.credential;
    if (!a.detail.empty())
      listed += " (" + a.detail + ")";
    if (a.kind == "file") {
      std::string_view path = a.credential;
      if (path.starts_with("file:"))
        path.remove_prefix(5);
      guidance += "provide the file " + std::string{path};
    } else {
      guidance += "set the environment variable " + a.credential;
    }
  }
  return "missing credential: " + listed + " \u2014 " + guidance;
}

/// The step's stdin: the run's input for the first step, else the result
/// of the latest succeeded attempt of the step before (any run attempt).
std::string stdin_of(pqxx::transaction_base& tx, const run_record& run,
                     int32_t step_index) {
  if (step_index == 0)
    return run.input_json;
  auto rows = tx.exec_params(
    "SELECT payload::text FROM engram.workflow_task_states "
    "WHERE run_id = $1 AND step_index = $2 AND status = 'succeeded' "
    "ORDER BY id DESC LIMIT 1",
    run.id, step_index - 1);
  if (rows.empty() || rows[0][0].is_null())
    return "{}";
  return rows[0][0].as<std::string>();
}

caf::expected<workflows::create_run_result>
create_run_impl(pqxx::transaction_base& tx, const workflows::create_run& req,
                wall_time now) {
  if (!is_uuid(req.id))
    return refused(errc::invalid_argument, "id: not a UUID");
  if (req.workflow.empty())
    return refused(errc::invalid_argument, "workflow: empty");
  if (req.steps.empty())
    return refused(errc::invalid_argument, "steps: a run needs a step");
  for (size_t i = 0; i < req.steps.size(); ++i)
    if (req.steps[i].empty())
      return refused(errc::invalid_argument,
                     "steps[" + std::to_string(i) + "]: empty");
  if (auto err = check_json("input_json", req.input_json))
    return err;
  if (auto err = check_task("first_task", req.first_task))
    return err;
  auto id = ascii_lower(req.id);
  auto task = req.first_task;
  task.args_json = workflow_task_args(task.args_json, id, 0, 1, 1);
  task.unique_key = workflow_task_key(id, 1, 0, 1);
  // The run that holds the key or the branch (or, for a repeated request,
  // the id) if there is one.
  auto existing = [&]() -> caf::expected<std::optional<run_record>> {
    if (!req.idempotency_key.empty()) {
      auto rows = tx.exec_params(std::string{"SELECT "} + run_columns
                                   + " FROM engram.workflow_runs r "
                                     "WHERE r.workflow = $1 "
                                     "AND r.idempotency_key = $2",
                                 req.workflow, req.idempotency_key);
      if (!rows.empty())
        return run_of(rows[0]);
    }
    if (!req.branch_name.empty()) {
      auto rows = tx.exec_params(std::string{"SELECT "} + run_columns
                                   + " FROM engram.workflow_runs r "
                                     "WHERE r.workflow = $1 "
                                     "AND r.branch_name = $2 "
                                     "AND r.status <> 'cancelled'",
                                 req.workflow, req.branch_name);
      if (!rows.empty())
        return run_of(rows[0]);
    }
    if (auto same = read_run(tx, id)) {
      if (same->workflow != req.workflow)
        return refused(errc::conflict, "workflow run " + id
                                         + " exists for workflow "
                                         + same->workflow + ", not "
                                         + req.workflow);
      return same;
    }
    return std::optional<run_record>{};
  };
  auto now_us = to_epoch_us(now);
  // A concurrent creation with the same key, branch or id makes the insert
  // wait for it and then do nothing; the next look-up (a new statement,
  // READ COMMITTED) sees its run. If that run went away meanwhile (rolled
  // back, or the branch's run cancelled), try again.
  for (int round = 0; round < 3; ++round) {
    auto found = existing();
    if (!found)
      return found.error();
    if (*found)
      return workflows::create_run_result{std::move(**found), false};
    auto inserted = tx.exec_params(
      "INSERT INTO engram.workflow_runs (id, workflow, status, "
      "  idempotency_key, branch_name, input, steps, current_step_index, "
      "  current_step, attempt, created_at, updated_at) "
      "VALUES ($1, $2, 'pending', $3, $4, $5::jsonb, $6::text[], 0, $7, 1, "
      "  engram.from_us($8), engram.from_us($8)) "
      "ON CONFLICT DO NOTHING RETURNING id",
      id, req.workflow, optional_text(req.idempotency_key),
      optional_text(req.branch_name), req.input_json,
      array_literal(req.steps), req.steps.front(), now_us);
    if (inserted.empty())
      continue;
    (void) enqueue_task(tx, task, now);
    return workflows::create_run_result{*read_run(tx, id), true};
  }
  return refused(errc::conflict,
                 "workflow run " + id
                   + ": another run holds its idempotency key or branch "
                     "and changed while this one was created; try again");
}

caf::expected<workflows::step_start>
begin_step_impl(pqxx::transaction_base& tx, const workflows::begin_step& req,
                wall_time now) {
  auto run = read_run(tx, req.run_id, true);
  if (!run)
    return no_run(req.run_id);
  if (auto err = check_audits(req.audits))
    return err;
  auto now_us = to_epoch_us(now);
  workflows::step_start result;
  result.outcome = workflows::start_outcome::stale;
  if (run->status == "cancelled") {
    result.outcome = workflows::start_outcome::cancelled;
    result.run = std::move(*run);
    return result;
  }
  if (run->status == "succeeded" || run->status == "failed"
      || run->attempt != req.run_attempt
      || run->current_step_index != req.step_index || req.step_index < 0
      || req.step_index >= static_cast<int32_t>(run->steps.size())) {
    result.run = std::move(*run);
    return result;
  }
  // Earlier attempts of this very try: finished means its outcome (and the
  // task that follows it) is committed; running means it was interrupted.
  auto earlier = tx.exec_params(
    std::string{"SELECT "} + state_columns
      + " FROM engram.workflow_task_states s WHERE s.run_id = $1 "
        "AND s.step_index = $2 AND s.run_attempt = $3 AND s.try_number = $4 "
        "ORDER BY s.id",
    run->id, req.step_index, req.run_attempt, req.try_number);
  for (const auto& row : earlier) {
    auto s = state_of(row);
    if (s.status == "succeeded" || s.status == "failed"
        || s.status == "cancelled") {
      result.run = std::move(*run);
      result.state = std::move(s);
      return result;
    }
  }
  // At most one attempt of a step runs (a unique index): the one found
  // above, or (the run's tasks make this impossible, but a stale row must
  // not block the step) another try's.
  tx.exec_params0(
    "UPDATE engram.workflow_task_states SET status = 'interrupted', "
    "  finished_at = engram.from_us($3), error = $4, "
    "  error_kind = 'interrupted' "
    "WHERE run_id = $1 AND step_index = $2 AND status = 'running'",
    run->id, req.step_index, now_us, interrupted_error);
  const auto& step = run->steps[static_cast<size_t>(req.step_index)];
  auto attempt = tx.exec_params1(
    "SELECT coalesce(max(attempt), 0) + 1 FROM engram.workflow_task_states "
    "WHERE run_id = $1 AND step_index = $2",
    run->id, req.step_index)[0]
                   .as<int32_t>();
  insert_audits(tx, req.audits, run->id, step, attempt, now_us);
  std::vector<credential_audit> invalid;
  for (const auto& a : req.audits)
    if (!a.valid)
      invalid.push_back(a);
  std::optional<int64_t> task_id;
  if (req.task_id > 0)
    task_id = req.task_id;
  if (!invalid.empty()) {
    auto message = missing_message(invalid);
    std::vector<std::string> names;
    for (const auto& a : invalid)
      names.push_back(a.credential);
    auto state_id = tx.exec_params1(
      "INSERT INTO engram.workflow_task_states (run_id, step, step_index, "
      "  attempt, run_attempt, try_number, status, started_at, finished_at, "
      "  duration_ms, error, error_kind, task_id) "
      "VALUES ($1, $2, $3, $4, $5, $6, 'failed', engram.from_us($7), "
      "  engram.from_us($7), 0, $8, $9, "
      "  (SELECT id FROM engram.tasks WHERE id = $10::bigint)) "
      "RETURNING id",
      run->id, step, req.step_index, attempt, req.run_attempt, req.try_number,
      now_us, message, workflows::failure::missing_credential, task_id)[0]
                      .as<int64_t>();
    tx.exec_params0(
      "UPDATE engram.workflow_runs SET status = 'failed', error = $2, "
      "  error_kind = $3, missing_credentials = $4::text[], "
      "  current_step = $5, finished_at = engram.from_us($6), "
      "  updated_at = engram.from_us($6) "
      "WHERE id = $1",
      run->id, message, workflows::failure::missing_credential,
      array_literal(names), step, now_us);
    result.outcome = workflows::start_outcome::missing_credentials;
    result.run = *read_run(tx, run->id);
    result.state = *read_state(tx, state_id);
    result.stdin_json = stdin_of(tx, result.run, req.step_index);
    return result;
  }
  auto state_id = tx.exec_params1(
    "INSERT INTO engram.workflow_task_states (run_id, step, step_index, "
    "  attempt, run_attempt, try_number, status, started_at, task_id) "
    "VALUES ($1, $2, $3, $4, $5, $6, 'running', engram.from_us($7), "
    "  (SELECT id FROM engram.tasks WHERE id = $8::bigint)) "
    "RETURNING id",
    run->id, step, req.step_index, attempt, req.run_attempt, req.try_number,
    now_us, task_id)[0]
                    .as<int64_t>();
  tx.exec_params0(
    "UPDATE engram.workflow_runs SET status = 'running', "
    "  started_at = coalesce(started_at, engram.from_us($3)), "
    "  current_step = $2, updated_at = engram.from_us($3) "
    "WHERE id = $1",
    run->id, step, now_us);
  result.outcome = workflows::start_outcome::run;
  result.run = *read_run(tx, run->id);
  result.state = *read_state(tx, state_id);
  result.stdin_json = stdin_of(tx, result.run, req.step_index);
  return result;
}

caf::expected<run_record>
finish_step_impl(pqxx::transaction_base& tx, const workflows::finish_step& req,
                 wall_time now) {
  auto run = read_run(tx, req.run_id, true);
  if (!run)
    return no_run(req.run_id);
  if (req.status != "succeeded" && req.status != "failed"
      && req.status != "cancelled")
    return refused(errc::invalid_argument,
                   "status: a step attempt ends succeeded, failed or "
                   "cancelled, not \""
                     + req.status + "\"");
  if (auto err = check_json("payload_json", req.payload_json, true))
    return err;
  if (auto err = check_artifacts(req.artifacts))
    return err;
  if (!req.next_task.name.empty())
    if (auto err = check_task("next_task", req.next_task))
      return err;
  auto state = read_state(tx, req.state_id, true);
  if (!state || state->run_id != run->id || state->status != "running")
    return refused(errc::conflict,
                   "step attempt " + std::to_string(req.state_id) + " of run "
                     + run->id
                     + ": the step attempt is no longer running (another "
                       "worker took the step over); nothing was recorded");
  auto now_us = to_epoch_us(now);
  std::vector<int64_t> artifact_ids;
  for (const auto& a : req.artifacts)
    artifact_ids.push_back(
      tx.exec_params1(
          "INSERT INTO engram.workflow_artifacts (run_id, step, "
          "  step_state_id, name, relative_path, size_bytes, sha256, "
          "  content_type, created_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, engram.from_us($9)) "
          "RETURNING id",
          run->id, state->step, state->id, a.name, a.relative_path,
          a.size_bytes, a.sha256, a.content_type, now_us)[0]
        .as<int64_t>());
  tx.exec_params0(
    "UPDATE engram.workflow_task_states SET status = $2, "
    "  finished_at = engram.from_us($3), "
    "  duration_ms = greatest(0, ($3 - engram.to_us(started_at)) / 1000), "
    "  exit_code = $4, term_signal = $5, payload = $6::jsonb, error = $7, "
    "  error_kind = $8, artifact_ids = $9::bigint[] "
    "WHERE id = $1",
    state->id, req.status, now_us,
    req.exit_code == -1 ? std::nullopt : std::optional<int32_t>{req.exit_code},
    req.term_signal == 0 ? std::nullopt
                         : std::optional<int32_t>{req.term_signal},
    optional_text(req.payload_json), optional_text(req.error),
    optional_text(req.error_kind), id_array(artifact_ids));
  auto last = static_cast<size_t>(state->step_index) + 1 >= run->steps.size();
  bool enqueue_next = false;
  if (req.status == "cancelled" || run->status == "cancelled") {
    if (run->status != "cancelled")
      tx.exec_params0(
        "UPDATE engram.workflow_runs SET status = 'cancelled', "
        "  error = $2, error_kind = 'cancelled', "
        "  finished_at = engram.from_us($3), updated_at = engram.from_us($3) "
        "WHERE id = $1",
        run->id, req.error.empty() ? std::string{"cancelled"} : req.error,
        now_us);
    else
      tx.exec_params0(
        "UPDATE engram.workflow_runs SET "
        "  error = coalesce(error, 'cancelled'), "
        "  error_kind = coalesce(error_kind, 'cancelled'), "
        "  finished_at = coalesce(finished_at, engram.from_us($2)), "
        "  updated_at = engram.from_us($2) "
        "WHERE id = $1",
        run->id, now_us);
  } else if (run->status == "succeeded" || run->status == "failed"
             || run->attempt != state->run_attempt
             || run->current_step_index != state->step_index) {
    // The run moved on without this attempt (cannot happen through the
    // run's own tasks): the attempt is recorded, the run left as it is.
    tx.exec_params0("UPDATE engram.workflow_runs SET "
                    "  updated_at = engram.from_us($2) WHERE id = $1",
                    run->id, now_us);
  } else if (req.status == "succeeded" && last) {
    tx.exec_params0(
      "UPDATE engram.workflow_runs SET status = 'succeeded', "
      "  output = $2::jsonb, error = NULL, error_kind = NULL, "
      "  missing_credentials = '{}', finished_at = engram.from_us($3), "
      "  updated_at = engram.from_us($3) "
      "WHERE id = $1",
      run->id, optional_text(req.payload_json), now_us);
  } else if (req.status == "succeeded") {
    auto next = static_cast<size_t>(state->step_index) + 1;
    tx.exec_params0(
      "UPDATE engram.workflow_runs SET current_step_index = $2, "
      "  current_step = $3, error = NULL, error_kind = NULL, "
      "  updated_at = engram.from_us($4) "
      "WHERE id = $1",
      run->id, static_cast<int32_t>(next), run->steps[next], now_us);
    enqueue_next = true;
  } else if (!req.next_task.name.empty()) {
    // The step's next try: the run stays running and shows why it retries.
    tx.exec_params0(
      "UPDATE engram.workflow_runs SET error = $2, error_kind = $3, "
      "  updated_at = engram.from_us($4) "
      "WHERE id = $1",
      run->id, optional_text(req.error), optional_text(req.error_kind),
      now_us);
    enqueue_next = true;
  } else {
    tx.exec_params0(
      "UPDATE engram.workflow_runs SET status = 'failed', error = $2, "
      "  error_kind = $3, finished_at = engram.from_us($4), "
      "  updated_at = engram.from_us($4) "
      "WHERE id = $1",
      run->id, optional_text(req.error), optional_text(req.error_kind),
      now_us);
  }
  if (enqueue_next && !req.next_task.name.empty())
    (void) enqueue_task(tx, req.next_task, now);
  return *read_run(tx, run->id);
}

caf::expected<run_record>
retry_run_impl(pqxx::transaction_base& tx, const workflows::retry_run& req,
               wall_time now) {
  auto run = read_run(tx, req.run_id, true);
  if (!run)
    return no_run(req.run_id);
  if (run->status != "failed")
    return refused(errc::conflict,
                   "only a failed run can be retried; this one is "
                     + run->status);
  if (auto err = check_audits(req.audits))
    return err;
  if (auto err = check_task("task", req.task))
    return err;
  auto attempt = run->attempt + 1;
  auto index = run->current_step_index;
  auto task = req.task;
  task.args_json = workflow_task_args(task.args_json, run->id, index, attempt,
                                      1);
  task.unique_key = workflow_task_key(run->id, attempt, index, 1);
  auto now_us = to_epoch_us(now);
  // Checks made for the step's next execution: without an attempt of their
  // own they name the attempt the retry will run.
  int32_t next_attempt = 0;
  if (!req.audits.empty())
    next_attempt = tx.exec_params1(
      "SELECT coalesce(max(attempt), 0) + 1 FROM engram.workflow_task_states "
      "WHERE run_id = $1 AND step_index = $2",
      run->id, index)[0]
                     .as<int32_t>();
  for (const auto& a : req.audits)
    insert_audits(tx, {a}, run->id,
                  a.step.empty() ? run->steps[static_cast<size_t>(index)]
                                 : a.step,
                  a.attempt > 0 ? a.attempt : next_attempt, now_us);
  tx.exec_params0(
    "UPDATE engram.workflow_runs SET status = 'retrying', attempt = $2, "
    "  note = $3, error = NULL, error_kind = NULL, "
    "  missing_credentials = '{}', finished_at = NULL, "
    "  updated_at = engram.from_us($4) "
    "WHERE id = $1",
    run->id, attempt, optional_text(req.note), now_us);
  (void) enqueue_task(tx, task, now);
  return *read_run(tx, run->id);
}

} // namespace

std::string workflow_task_key(const std::string& run_id, int32_t run_attempt,
                              int32_t step_index, int32_t try_number) {
  return "workflow:" + run_id + ":" + std::to_string(run_attempt) + ":"
         + std::to_string(step_index) + ":" + std::to_string(try_number);
}

std::string workflow_task_args(const std::string& args_json,
                               const std::string& run_id, int32_t step_index,
                               int32_t run_attempt, int32_t try_number) {
  json::object args;
  if (!args_json.empty()) {
    json::error_code ec;
    auto value = json::parse(args_json, ec);
    if (ec || !value.is_object())
      throw std::invalid_argument("task args: not a JSON object");
    args = std::move(value.as_object());
  }
  args["run_id"] = run_id;
  args["step_index"] = step_index;
  args["run_attempt"] = run_attempt;
  args["try"] = try_number;
  return json::serialize(args);
}

caf::expected<workflows::create_run_result>
create_run(pqxx::transaction_base& tx, const workflows::create_run& req,
           wall_time now) {
  return refusing_bad_data([&] { return create_run_impl(tx, req, now); });
}

caf::expected<workflows::step_start>
begin_step(pqxx::transaction_base& tx, const workflows::begin_step& req,
           wall_time now) {
  return refusing_bad_data([&] { return begin_step_impl(tx, req, now); });
}

caf::expected<run_record> finish_step(pqxx::transaction_base& tx,
                                      const workflows::finish_step& req,
                                      wall_time now) {
  return refusing_bad_data([&] { return finish_step_impl(tx, req, now); });
}

caf::expected<run_record> cancel_run(pqxx::transaction_base& tx,
                                     const workflows::cancel_run& req,
                                     wall_time now) {
  auto run = read_run(tx, req.run_id, true);
  if (!run)
    return no_run(req.run_id);
  if (run->status == "succeeded" || run->status == "cancelled")
    return refused(errc::conflict, "workflow run " + run->id + " is "
                                     + run->status
                                     + "; only a pending, running, retrying "
                                       "or failed run can be cancelled");
  tx.exec_params0(
    "UPDATE engram.workflow_runs SET status = 'cancelled', "
    "  error = 'cancelled by an operator', error_kind = 'cancelled', "
    "  finished_at = engram.from_us($2), updated_at = engram.from_us($2) "
    "WHERE id = $1",
    run->id, to_epoch_us(now));
  return *read_run(tx, run->id);
}

caf::expected<run_record> retry_run(pqxx::transaction_base& tx,
                                    const workflows::retry_run& req,
                                    wall_time now) {
  return refusing_bad_data([&] { return retry_run_impl(tx, req, now); });
}

caf::expected<int64_t> record_audits(pqxx::transaction_base& tx,
                                     const workflows::record_audits& req,
                                     wall_time now) {
  if (auto err = check_audits(req.audits))
    return err;
  std::set<std::string> runs;
  for (size_t i = 0; i < req.audits.size(); ++i) {
    const auto& id = req.audits[i].run_id;
    if (!is_uuid(id))
      return refused(errc::invalid_argument,
                     "audits[" + std::to_string(i) + "].run_id: not a UUID");
    runs.insert(ascii_lower(id));
  }
  for (const auto& id : runs)
    if (!read_run(tx, id))
      return no_run(id);
  auto now_us = to_epoch_us(now);
  return refusing_bad_data([&]() -> caf::expected<int64_t> {
    for (const auto& a : req.audits)
      insert_audits(tx, {a}, ascii_lower(a.run_id), a.step, a.attempt, now_us);
    return static_cast<int64_t>(req.audits.size());
  });
}

caf::expected<workflows::run_detail> get_run(pqxx::transaction_base& tx,
                                             const std::string& run_id) {
  auto run = read_run(tx, run_id);
  if (!run)
    return no_run(run_id);
  workflows::run_detail detail;
  auto rows = tx.exec_params(std::string{"SELECT "} + state_columns
                               + " FROM engram.workflow_task_states s "
                                 "WHERE s.run_id = $1 ORDER BY s.id",
                             run->id);
  detail.steps.reserve(rows.size());
  for (const auto& row : rows)
    detail.steps.push_back(state_of(row));
  detail.run = std::move(*run);
  return detail;
}

caf::expected<workflows::run_page>
list_runs(pqxx::transaction_base& tx, const workflows::list_runs& req) {
  if (req.limit < 1 || req.limit > max_workflow_page)
    return refused(errc::invalid_argument,
                   "limit: must be between 1 and "
                     + std::to_string(max_workflow_page));
  if (req.before_seq < 0)
    return refused(errc::invalid_argument, "before_seq: negative");
  if (!req.status.empty()) {
    const auto& all = workflows::run_statuses();
    if (std::find(all.begin(), all.end(), req.status) == all.end())
      return refused(errc::invalid_argument,
                     "status: unknown run status \"" + req.status + "\"");
  }
  auto rows = tx.exec_params(
    std::string{"SELECT "} + run_columns
      + " FROM engram.workflow_runs r "
        "WHERE ($1 = '' OR r.workflow = $1) AND ($2 = '' OR r.status = $2) "
        "AND ($3 = 0 OR r.seq < $3) "
        "ORDER BY r.seq DESC LIMIT $4",
    req.workflow, req.status, req.before_seq, req.limit + 1);
  workflows::run_page page;
  for (const auto& row : rows) {
    if (static_cast<int32_t>(page.runs.size()) == req.limit) {
      page.next_before_seq = page.runs.back().seq;
      break;
    }
    page.runs.push_back(run_of(row));
  }
  return page;
}

caf::expected<std::vector<artifact_record>>
list_artifacts(pqxx::transaction_base& tx, const std::string& run_id) {
  auto run = read_run(tx, run_id);
  if (!run)
    return no_run(run_id);
  auto rows = tx.exec_params(std::string{"SELECT "} + artifact_columns
                               + " FROM engram.workflow_artifacts a "
                                 "WHERE a.run_id = $1 ORDER BY a.id",
                             run->id);
  std::vector<artifact_record> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back(artifact_of(row));
  return out;
}

caf::expected<artifact_record> get_artifact(pqxx::transaction_base& tx,
                                            const std::string& run_id,
                                            int64_t artifact_id) {
  auto run = read_run(tx, run_id);
  if (!run)
    return no_run(run_id);
  auto rows = tx.exec_params(std::string{"SELECT "} + artifact_columns
                               + " FROM engram.workflow_artifacts a "
                                 "WHERE a.id = $1 AND a.run_id = $2",
                             artifact_id, run->id);
  if (rows.empty())
    return refused(errc::not_found, "workflow run " + run->id
                                      + " has no artifact "
                                      + std::to_string(artifact_id));
  return artifact_of(rows[0]);
}

caf::expected<std::vector<credential_audit>>
list_audits(pqxx::transaction_base& tx, const std::string& run_id) {
  auto run = read_run(tx, run_id);
  if (!run)
    return no_run(run_id);
  auto rows = tx.exec_params(std::string{"SELECT "} + audit_columns
                               + " FROM engram.workflow_credential_audits c "
                                 "WHERE c.run_id = $1 ORDER BY c.id",
                             run->id);
  std::vector<credential_audit> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back(audit_of(row));
  return out;
}

} // namespace engram::storage
