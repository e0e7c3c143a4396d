#include "storage/consolidation_repository.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <set>
#include <string_view>
#include <tuple>

#include <boost/json.hpp>
#include <pqxx/result>
#include <pqxx/stream_to>
#include <pqxx/subtransaction>
#include <pqxx/transaction>

#include "messages/errc.hpp"
#include "messages/tasks.hpp"
#include "runtime/uuid.hpp"
#include "storage/binary_copy.hpp"
#include "storage/binary_result.hpp"
#include "storage/platform_repository.hpp"
#include "storage/sql_values.hpp"
#include "storage/task_repository.hpp"

namespace engram::storage {

namespace {

using namespace sql_values;
using consolidation::job_record;

constexpr auto job_columns
  = "j.id::text, j.project_id::text, j.status, j.trigger_type, "
    "coalesce(j.triggered_by, ''), j.options::text, "
    "array_to_string(j.phases_completed, ','), j.metrics::text, "
    "j.memories_processed, j.memories_merged, j.memories_archived, "
    "coalesce(j.error_message, ''), engram.to_us(j.created_at), "
    "coalesce(engram.to_us(j.started_at), 0), "
    "coalesce(engram.to_us(j.completed_at), 0), coalesce(j.duration_ms, 0), "
    "coalesce(j.task_id, 0)";

job_record job_of(const pqxx::row& row) {
  job_record j;
  j.id = row[0].as<std::string>();
  j.project_id = row[1].as<std::string>();
  j.status = row[2].as<std::string>();
  j.trigger_type = row[3].as<std::string>();
  j.triggered_by = row[4].as<std::string>();
  j.options_json = row[5].as<std::string>();
  j.phases_completed = split_commas(row[6].as<std::string>());
  j.metrics_json = row[7].as<std::string>();
  j.memories_processed = row[8].as<int64_t>();
  j.memories_merged = row[9].as<int64_t>();
  j.memories_archived = row[10].as<int64_t>();
  j.error_message = row[11].as<std::string>();
  j.created_at_us = row[12].as<int64_t>();
  j.started_at_us = row[13].as<int64_t>();
  j.completed_at_us = row[14].as<int64_t>();
  j.duration_ms = row[15].as<int64_t>();
  j.task_id = row[16].as<int64_t>();
  return j;
}

std::optional<job_record> read_job(pqxx::transaction_base& tx,
                                   const std::string& id, bool lock = false) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + job_columns
                               + " FROM engram.consolidation_jobs j "
                                 "WHERE j.id = $1"
                               + (lock ? " FOR UPDATE" : ""),
                             id);
  if (rows.empty())
    return std::nullopt;
  return job_of(rows[0]);
}

caf::error refused(errc code, std::string message) {
  return make_error(code, std::move(message));
}

/// The selected phases in their fixed order; an unknown or repeated name
/// is an error (the message names it).
caf::expected<std::vector<std::string>>
canonical_phases(const std::vector<std::string>& selected) {
  const auto& all = consolidation::phase_names();
  if (selected.empty())
    return all;
  for (size_t i = 0; i < selected.size(); ++i) {
    if (std::find(all.begin(), all.end(), selected[i]) == all.end())
      return refused(errc::invalid_argument,
                     "phases[" + std::to_string(i) + "]: unknown phase \""
                       + selected[i] + "\"");
    if (std::find(selected.begin(), selected.begin() + i, selected[i])
        != selected.begin() + i)
      return refused(errc::invalid_argument,
                     "phases[" + std::to_string(i) + "]: \"" + selected[i]
                       + "\" is listed twice");
  }
  std::vector<std::string> out;
  for (const auto& p : all)
    if (std::find(selected.begin(), selected.end(), p) != selected.end())
      out.push_back(p);
  return out;
}

/// Indexes of `xs` in the order of `key(x)` (stable). Rows written in key
/// order reach an index on that key leaf after leaf, and an UPDATE joined
/// on it looks its rows up the same way: the hierarchy phase's 63,000
/// audit rows went in ~25% faster.
template <class T, class Key>
std::vector<uint32_t> order_by(const std::vector<T>& xs, Key key) {
  std::vector<uint32_t> order(xs.size());
  for (uint32_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return key(xs[a]) < key(xs[b]);
  });
  return order;
}

/// Makes the session's scratch tables (once per session; emptied at every
/// commit). Each is keyed by what the statements join it on: temporary
/// tables have no statistics, and a project imported since the last
/// ANALYZE is estimated at one memory, so the planner may put the project's
/// memories outside a nested loop; with a key on the scratch side that loop
/// is an index lookup per memory, not a scan of the scratch table per
/// memory (25,000 × 2,208 rows compared: 7.4 s for one merge commit).
void ensure_scratch_tables(pqxx::transaction_base& tx) {
  tx.exec0(
    "CREATE TEMP TABLE IF NOT EXISTS consolidation_rewrites ("
    "  id uuid PRIMARY KEY, content text, embedding bytea, "
    "  embedding_model text, importance integer, row_end \"char\") "
    "  ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS consolidation_supersedes ("
    "  id uuid PRIMARY KEY, by_id uuid, row_end \"char\") "
    "  ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS consolidation_states ("
    "  id uuid PRIMARY KEY, status text, tier text, parent_id uuid, "
    "  row_end \"char\") ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS consolidation_patterns ("
    "  id uuid, seed_memory_id uuid PRIMARY KEY, label text, "
    "  support integer, member_ids uuid[], centroid bytea, "
    "  embedding_model text, position integer, row_end \"char\") "
    "  ON COMMIT DELETE ROWS");
}

/// Throws `conflict` through the caller: how many rows an update was
/// meant to change vs. how many it did.
caf::error changed_underneath(std::string_view what, size_t expected,
                              size_t changed) {
  return refused(errc::conflict,
                 std::string{what} + ": " + std::to_string(expected - changed)
                   + " of " + std::to_string(expected)
                   + " memories are no longer active (changed by another "
                     "writer); the phase was rolled back and will run again");
}

/// The first id that a change list names twice, with the list's name; a
/// guarded UPDATE would change such a row once and count it as a conflict.
caf::error repeated_ids(const consolidation::phase_commit& c) {
  auto check = [](std::string_view what, auto&& ids) -> caf::error {
    std::set<std::string> seen;
    for (const auto& id : ids)
      if (!seen.insert(ascii_lower(id)).second)
        return refused(errc::invalid_argument,
                       std::string{what} + ": memory " + id
                         + " is listed twice in one phase commit");
    return {};
  };
  auto ids_of = [](const auto& changes) {
    std::vector<std::string> out;
    for (const auto& x : changes)
      out.push_back(x.id);
    return out;
  };
  if (auto err = check("rewrites", ids_of(c.rewrites)))
    return err;
  if (auto err = check("supersedes", ids_of(c.supersedes)))
    return err;
  return check("state changes", ids_of(c.state_changes));
}

/// The first id of a phase commit that is not a UUID, as an
/// invalid_argument naming its field (empty = none, where optional).
caf::error ids_not_uuids(const consolidation::phase_commit& c) {
  caf::error err;
  auto check = [&](std::string_view field, const std::string& id,
                   bool optional = false) {
    if (!err && !(optional && id.empty()) && !is_uuid(id))
      err = refused(errc::invalid_argument,
                    std::string{field} + ": '" + id.substr(0, 64)
                      + "' is not a UUID");
  };
  for (const auto& m : c.inserts) {
    check("insert id", m.id);
    check("insert agent_id", m.agent_id, true);
  }
  for (const auto& r : c.rewrites)
    check("rewrite id", r.id);
  for (const auto& x : c.supersedes) {
    check("supersede id", x.id);
    check("supersede by", x.by);
  }
  for (const auto& x : c.state_changes) {
    check("state change id", x.id);
    check("state change parent_id", x.parent_id, true);
  }
  for (const auto& a : c.audits)
    check("audit: memory id", a.memory_id);
  for (const auto& p : c.patterns) {
    check("pattern id", p.id, true);
    check("pattern seed_memory_id", p.seed_memory_id);
    for (const auto& id : p.member_ids)
      check("pattern member id", id);
  }
  return err;
}

} // namespace

caf::expected<job_record>
create_job(pqxx::transaction_base& tx,
           const consolidation::create_job_request& req, wall_time now) {
  if (!req.id.empty() && !is_uuid(req.id))
    return refused(errc::invalid_argument, "id: not a UUID");
  if (!is_uuid(req.project_id))
    return refused(errc::invalid_argument, "project_id: not a UUID");
  if (req.trigger_type != "manual" && req.trigger_type != "scheduled")
    return refused(errc::invalid_argument,
                   "trigger_type: must be \"manual\" or \"scheduled\"");
  auto phases = canonical_phases(req.phases);
  if (!phases)
    return phases.error();
  if (!req.id.empty())
    if (auto existing = read_job(tx, ascii_lower(req.id))) {
      if (existing->project_id != ascii_lower(req.project_id))
        return refused(errc::conflict,
                       "job " + existing->id + " exists for project "
                         + existing->project_id + ", not "
                         + ascii_lower(req.project_id));
      return *existing;
    }
  auto id = req.id.empty() ? random_uuid() : ascii_lower(req.id);
  boost::json::object options;
  boost::json::array phase_list;
  for (const auto& p : *phases)
    phase_list.emplace_back(p);
  options["phases"] = std::move(phase_list);
  if (req.as_of_us != 0) {
    options["as_of"] = format_utc(from_epoch_us(req.as_of_us));
    options["as_of_us"] = req.as_of_us;
  }
  auto inserted = tx.exec_params(
    "INSERT INTO engram.consolidation_jobs "
    "  (id, project_id, status, trigger_type, triggered_by, options, "
    "   created_at) "
    "VALUES ($1, $2, 'queued', $3, $4, $5::jsonb, engram.from_us($6)) "
    "ON CONFLICT (id) DO NOTHING RETURNING id",
    id, ascii_lower(req.project_id), req.trigger_type, optional_text(req.triggered_by),
    boost::json::serialize(options), to_epoch_us(now));
  if (inserted.empty()) // created concurrently with the same id
    return *read_job(tx, id);
  if (!req.enqueue)
    return *read_job(tx, id);
  tasks::enqueue_request task;
  task.name = "consolidation.run_project";
  task.queue = req.queue;
  task.priority = req.priority;
  boost::json::object args;
  args["project_id"] = ascii_lower(req.project_id);
  args["job_id"] = id;
  task.args_json = boost::json::serialize(args);
  task.unique_key = "consolidation.job:" + id;
  auto queued = enqueue_task(tx, task, now);
  tx.exec_params0("UPDATE engram.consolidation_jobs SET task_id = $2 "
                  "WHERE id = $1",
                  id, queued.id);
  return *read_job(tx, id);
}

caf::expected<job_record> get_job(pqxx::transaction_base& tx,
                                  const std::string& id) {
  if (auto job = read_job(tx, ascii_lower(id)))
    return *job;
  return refused(errc::not_found, "no consolidation job " + id);
}

caf::expected<consolidation::job_page>
list_jobs(pqxx::transaction_base& tx,
          const consolidation::list_jobs_request& req) {
  if (!is_uuid(req.project_id))
    return refused(errc::invalid_argument, "project_id: not a UUID");
  // The cursor is "<created_at us>_<id>" of the last job of a page.
  int64_t cursor_us = 0;
  std::string cursor_id;
  if (!req.cursor.empty()) {
    auto sep = req.cursor.find('_');
    auto ok = sep != std::string::npos;
    if (ok) {
      auto [ptr, ec] = std::from_chars(req.cursor.data(),
                                       req.cursor.data() + sep, cursor_us);
      cursor_id = req.cursor.substr(sep + 1);
      ok = ec == std::errc{} && ptr == req.cursor.data() + sep
           && is_uuid(cursor_id);
    }
    if (!ok)
      return refused(errc::invalid_argument,
                     "cursor: not a cursor this endpoint returned");
  }
  auto limit = std::clamp<int32_t>(req.limit <= 0 ? default_consolidation_page
                                                  : req.limit,
                                   1, max_consolidation_page);
  auto rows = tx.exec_params(
    std::string{"SELECT "} + job_columns
      + " FROM engram.consolidation_jobs j WHERE j.project_id = $1 "
        "AND ($2 = '' OR (j.created_at, j.id) < "
        "  (engram.from_us($3), nullif($2, '')::uuid)) "
        "ORDER BY j.created_at DESC, j.id DESC LIMIT $4",
    ascii_lower(req.project_id), ascii_lower(cursor_id), cursor_us, limit + 1);
  consolidation::job_page page;
  for (const auto& row : rows) {
    if (static_cast<int32_t>(page.jobs.size()) == limit) {
      const auto& last = page.jobs.back();
      page.next_cursor = std::to_string(last.created_at_us) + "_" + last.id;
      break;
    }
    page.jobs.push_back(job_of(row));
  }
  return page;
}

std::vector<std::string> enabled_projects(pqxx::transaction_base& tx) {
  auto rows = tx.exec("SELECT id::text FROM engram.projects "
                      "WHERE consolidation_enabled ORDER BY id");
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back(row[0].as<std::string>());
  return out;
}

caf::expected<consolidation::job_start>
begin_job(pqxx::transaction_base& tx, const std::string& job_id,
          wall_time now) {
  auto job = read_job(tx, ascii_lower(job_id), true);
  if (!job)
    return refused(errc::not_found, "no consolidation job " + job_id);
  consolidation::job_start start;
  if (job->status == "completed" || job->status == "cancelled") {
    start.job = std::move(*job);
    return start;
  }
  auto locked = tx.exec_params1(
    "SELECT pg_try_advisory_lock($1, hashtext($2))",
    consolidation_lock_class, job->project_id)[0]
                  .as<bool>();
  if (!locked)
    return refused(errc::conflict, "project " + job->project_id
                                     + " is being consolidated by another "
                                       "job; try again when it is done");
  auto project = tx.exec_params(
    "SELECT consolidation_enabled, consolidation_config::text "
    "FROM engram.projects WHERE id = $1",
    job->project_id);
  if (!project.empty()) {
    start.project_found = true;
    start.consolidation_enabled = project[0][0].as<bool>();
    start.config_json = project[0][1].as<std::string>();
  }
  tx.exec_params0("UPDATE engram.consolidation_jobs SET status = 'running', "
                  "  started_at = coalesce(started_at, engram.from_us($2)), "
                  "  error_message = NULL, completed_at = NULL "
                  "WHERE id = $1",
                  job->id, to_epoch_us(now));
  start.job = *read_job(tx, job->id);
  return start;
}

namespace {

/// The phases' commits join their scratch tables to engram.memories; the
/// planner sizes that join from the table's statistics. Right after a
/// bulk import they still describe the table as it was (often empty), and
/// the plan then hashes every memory of the table for each statement:
/// ~0.1 s each, 0.5 s for one carrying vectors, per 100,000 memories.
/// When the table is known to hold more rows than the statistics say
/// (`active` were just read), a small-sample ANALYZE of the joined columns
/// puts the row count right in ~50 ms; autovacuum later redoes it with
/// the full sample. It gives up at once rather than wait on another
/// ANALYZE or VACUUM of the table.
void refresh_stale_statistics(pqxx::transaction_base& tx, size_t active) {
  if (active < 1000)
    return;
  auto known = tx.exec1("SELECT reltuples FROM pg_class "
                        "WHERE oid = 'engram.memories'::regclass")[0]
                 .as<double>();
  if (known >= 0.5 * static_cast<double>(active))
    return;
  try {
    pqxx::subtransaction sub{dynamic_cast<pqxx::dbtransaction&>(tx),
                             "refresh_statistics"};
    sub.exec("SET LOCAL lock_timeout = '50ms'");
    sub.exec("SET LOCAL default_statistics_target = 10");
    sub.exec("ANALYZE engram.memories (id, project_id, status)");
    sub.exec("SET LOCAL lock_timeout TO DEFAULT; "
             "SET LOCAL default_statistics_target TO DEFAULT");
    sub.commit();
  } catch (const pqxx::sql_error&) {
    // Another ANALYZE or VACUUM holds the table: plans stay as they were.
  }
}

} // namespace

consolidation::snapshot_data load_snapshot(pqxx::transaction_base& tx,
                                           const std::string& project_id) {
  consolidation::snapshot_data out;
  if (!is_uuid(project_id))
    return out;
  auto id = ascii_lower(project_id);
  // Binary rows: the vectors are most of the bytes (see binary_result).
  // They come through a cursor, a chunk at a time, so the client never
  // holds the whole result (150 MB per 100,000 memories): each chunk's
  // memory is freed and reused by the next instead of being fresh pages
  // (page faults were most of a 100k snapshot's load). The id is a checked
  // uuid. (A snapshot is read in a transaction block: pqxx::work.)
  auto& block = dynamic_cast<pqxx::dbtransaction&>(tx);
  auto project_is = "project_id = '" + id + "'::uuid AND status = 'active'";
  // Planned for all its rows, as the statement it replaces was (a cursor
  // is planned for its first tenth by default: index order, random heap
  // reads). For this transaction only.
  tx.exec0("SET LOCAL cursor_tuple_fraction = 1");
  tx.exec0(
    "DECLARE engram_snapshot BINARY NO SCROLL CURSOR FOR "
    "SELECT id, agent_id, type, tier, importance, pinned, access_count, "
    "  source_type, engram.to_us(created_at), "
    "  coalesce(engram.to_us(last_accessed_at), 0), "
    "  coalesce(engram.to_us(expires_at), 0), content, parent_id, "
    "  embedding_model, embedding "
    "FROM engram.memories WHERE " + project_is);
  auto n = tx.exec1("SELECT count(*) FROM engram.memories WHERE " + project_is)[0]
             .as<size_t>();
  out.memories.reserve(n);
  binary_cursor cursor{block, "engram_snapshot", 2048};
  for (;;) {
    auto rows = cursor.next();
    auto chunk = rows.rows();
    if (chunk == 0)
      break;
    // Room for every vector at the first one's size, and for the
    // summaries and principles the phases add: the snapshot's matrix takes
    // this buffer over (make_snapshot), and growing 150 MB would copy it
    // into fresh pages. Capacity that is never written costs no memory.
    for (size_t r = 0; r < chunk && out.floats.capacity() == 0; ++r)
      if (auto first = rows.bytes(r, 14); !first.empty())
        out.floats.reserve((n + n / 2 + 1024) * (first.size() / 4));
    for (size_t r = 0; r < chunk; ++r) {
      consolidation::memory_state m;
      m.id = rows.uuid(r, 0);
      m.agent_id = rows.uuid(r, 1);
      m.type = rows.text(r, 2);
      m.tier = rows.text(r, 3);
      m.importance = rows.int4(r, 4);
      m.pinned = rows.boolean(r, 5);
      m.access_count = rows.int4(r, 6);
      m.source_type = rows.text(r, 7);
      m.created_at_us = rows.int8(r, 8);
      m.last_accessed_at_us = rows.int8(r, 9);
      m.expires_at_us = rows.int8(r, 10);
      m.content = rows.text(r, 11);
      m.parent_id = rows.uuid(r, 12);
      m.embedding_model = rows.text(r, 13);
      m.offset = out.floats.size();
      m.dim = static_cast<uint32_t>(
        storage::append_floats(rows.bytes(r, 14), out.floats));
      out.memories.push_back(std::move(m));
    }
  }
  tx.exec0("CLOSE engram_snapshot");
  n = out.memories.size();
  refresh_stale_statistics(tx, n);
  // Sorted here, not by the server: its sort of rows this wide (vectors
  // inline) spills to disk; ids are canonical lower-case text, so they
  // order like uuid.
  std::sort(out.memories.begin(), out.memories.end(),
            [](const consolidation::memory_state& a,
               const consolidation::memory_state& b) {
              return a.created_at_us != b.created_at_us
                       ? a.created_at_us < b.created_at_us
                       : a.id < b.id;
            });
  auto patterns = tx.exec_params(
    "SELECT id::text, seed_memory_id::text, label, "
    "  array_to_string(member_ids, ','), coalesce(embedding_model, ''), "
    "  centroid "
    "FROM engram.patterns WHERE project_id = $1 ORDER BY position, id",
    id);
  for (const auto& row : patterns) {
    consolidation::pattern_state p;
    p.id = row[0].as<std::string>();
    p.seed_memory_id = row[1].as<std::string>();
    p.label = row[2].as<std::string>();
    p.member_ids = split_commas(row[3].as<std::string>());
    p.embedding_model = row[4].as<std::string>();
    p.offset = out.floats.size();
    p.dim = static_cast<uint32_t>(append_floats(row[5], out.floats));
    out.patterns.push_back(std::move(p));
  }
  auto entries = tx.exec_params(
    "SELECT id::text, coalesce(agent_id::text, ''), "
    "  coalesce(principle_id::text, ''), title, content, "
    "  engram.to_us(created_at), coalesce(embedding_model, ''), embedding "
    "FROM engram.playbook_entries WHERE project_id = $1 "
    "ORDER BY created_at, id",
    id);
  for (const auto& row : entries) {
    consolidation::playbook_state e;
    e.id = row[0].as<std::string>();
    e.agent_id = row[1].as<std::string>();
    e.principle_id = row[2].as<std::string>();
    e.title = row[3].as<std::string>();
    e.content = row[4].as<std::string>();
    e.created_at_us = row[5].as<int64_t>();
    e.embedding_model = row[6].as<std::string>();
    e.offset = out.floats.size();
    e.dim = static_cast<uint32_t>(append_floats(row[7], out.floats));
    out.playbook.push_back(std::move(e));
  }
  return out;
}

caf::expected<job_record>
commit_phase(pqxx::transaction_base& tx,
             const consolidation::phase_commit& c) {
  auto job = read_job(tx, ascii_lower(c.job_id), true);
  if (!job)
    return refused(errc::not_found, "no consolidation job " + c.job_id);
  if (job->status != "running")
    return refused(errc::conflict, "consolidation job " + job->id + " is "
                                     + job->status + ", not running");
  if (auto err = repeated_ids(c))
    return err;
  // Every write goes in binary COPY, which takes canonical uuids only (the
  // text form had the server refuse anything else): checked before
  // anything is written. The project and the job are checked by their
  // lookups.
  if (auto err = ids_not_uuids(c))
    return err;
  auto started = std::chrono::steady_clock::now();
  auto project = ascii_lower(c.project_id);
  // Held to the commit: the project cannot go while its memories are
  // written (memories.project_id has no foreign key; migration 011).
  if (!lock_project(tx, project))
    return refused(errc::not_found,
                   "project " + project + " no longer exists");
  auto now_us = c.now_us;
  auto now_text = format_utc(from_epoch_us(now_us));
  ensure_scratch_tables(tx);
  // New memories first: later changes may point at them. Every write of
  // the commit is a binary COPY (uuids as 16 bytes, vectors as float32):
  // the text form had the server parse each uuid, hex vector and array
  // (a 100k job's scratch rows: ~0.2 s of the server's time).
  if (!c.inserts.empty()) {
    static const std::vector<std::string> columns{
      "id", "project_id", "agent_id", "type", "tier", "status", "content",
      "embedding", "embedding_model", "importance", "source_type",
      "created_at", "updated_at", "metadata"};
    copy_binary(tx, "engram.memories", columns, c.inserts.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& m = c.inserts[i];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(m.id);
                  out.uuid(project);
                  out.optional_uuid(m.agent_id);
                  out.text(m.type);
                  out.text(m.tier);
                  out.text("active");
                  out.text(m.content);
                  out.embedding(m.embedding);
                  if (m.embedding.empty())
                    out.null();
                  else
                    out.optional_text(m.embedding_model);
                  out.int4(m.importance);
                  out.text(m.source_type);
                  out.timestamptz(m.created_at_us == 0 ? now_us
                                                       : m.created_at_us);
                  out.timestamptz(now_us);
                  out.jsonb_ending_row(m.metadata_json.empty()
                                         ? std::string_view{"{}"}
                                         : m.metadata_json);
                });
  }
  if (!c.rewrites.empty()) {
    static const std::vector<std::string> columns{
      "id", "content", "embedding", "embedding_model", "importance",
      "row_end"};
    copy_binary(tx, "consolidation_rewrites", columns, c.rewrites.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& r = c.rewrites[i];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(r.id);
                  out.text(r.content);
                  out.embedding(r.embedding);
                  out.optional_text(r.embedding_model);
                  out.int4(r.importance);
                  out.row_end();
                });
    // Two statements, so that neither reads the memories' old vectors: a
    // join that carries them costs ~0.5 s per 100,000 memories when the
    // planner hashes the memories' side (as it does while their
    // statistics are older than a bulk import).
    auto changed = tx.exec_params(
      "UPDATE engram.memories m SET content = r.content, "
      "  embedding = r.embedding, embedding_model = r.embedding_model, "
      "  importance = CASE WHEN r.importance > 0 THEN r.importance "
      "    ELSE m.importance END, "
      "  updated_at = engram.from_us($2) "
      "FROM consolidation_rewrites r "
      "WHERE r.embedding IS NOT NULL AND m.id = r.id "
      "  AND m.project_id = $1 AND m.status = 'active'",
      project, now_us);
    auto kept_vectors = tx.exec_params(
      "UPDATE engram.memories m SET content = r.content, "
      "  importance = CASE WHEN r.importance > 0 THEN r.importance "
      "    ELSE m.importance END, "
      "  updated_at = engram.from_us($2) "
      "FROM consolidation_rewrites r "
      "WHERE r.embedding IS NULL AND m.id = r.id "
      "  AND m.project_id = $1 AND m.status = 'active'",
      project, now_us);
    auto rewritten = changed.affected_rows() + kept_vectors.affected_rows();
    if (rewritten != c.rewrites.size())
      return changed_underneath("rewrite", c.rewrites.size(), rewritten);
  }
  if (!c.supersedes.empty()) {
    static const std::vector<std::string> columns{"id", "by_id", "row_end"};
    auto order = order_by(c.supersedes,
                          [](const auto& x) -> const std::string& {
                            return x.id;
                          });
    copy_binary(tx, "consolidation_supersedes", columns, order.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& x = c.supersedes[order[i]];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(x.id);
                  out.uuid(x.by);
                  out.row_end();
                });
    auto changed = tx.exec_params(
      "UPDATE engram.memories m SET status = 'superseded', "
      "  superseded_by = s.by_id, updated_at = engram.from_us($2) "
      "FROM consolidation_supersedes s "
      "WHERE m.id = s.id AND m.project_id = $1 AND m.status = 'active'",
      project, now_us);
    if (changed.affected_rows() != c.supersedes.size())
      return changed_underneath("supersede", c.supersedes.size(),
                                changed.affected_rows());
  }
  if (!c.state_changes.empty()) {
    static const std::vector<std::string> columns{"id", "status", "tier",
                                                  "parent_id", "row_end"};
    auto order = order_by(c.state_changes,
                          [](const auto& x) -> const std::string& {
                            return x.id;
                          });
    copy_binary(tx, "consolidation_states", columns, order.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& x = c.state_changes[order[i]];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(x.id);
                  out.optional_text(x.status);
                  out.optional_text(x.tier);
                  out.optional_uuid(x.parent_id);
                  out.row_end();
                });
    auto changed = tx.exec_params(
      "UPDATE engram.memories m SET status = coalesce(s.status, m.status), "
      "  tier = coalesce(s.tier, m.tier), "
      "  parent_id = coalesce(s.parent_id, m.parent_id), "
      "  updated_at = engram.from_us($2) "
      "FROM consolidation_states s "
      "WHERE m.id = s.id AND m.project_id = $1 AND m.status = 'active'",
      project, now_us);
    if (changed.affected_rows() != c.state_changes.size())
      return changed_underneath("state change", c.state_changes.size(),
                                changed.affected_rows());
  }
  if (!c.audits.empty()) {
    // A 100k job writes ~160,000 audit rows.
    static const std::vector<std::string> columns{
      "memory_id", "project_id", "job_id", "action", "at", "detail"};
    // In memory id order (stable: a memory's own rows keep theirs).
    auto order = order_by(c.audits, [](const auto& a) -> const std::string& {
      return a.memory_id;
    });
    copy_binary(tx, "engram.memory_audit", columns, c.audits.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& a = c.audits[order[i]];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(a.memory_id);
                  out.uuid(project);
                  out.uuid(job->id);
                  out.text(a.action);
                  out.timestamptz(now_us);
                  out.jsonb_ending_row(a.detail_json.empty()
                                         ? std::string_view{"{}"}
                                         : a.detail_json);
                });
  }
  if (c.replace_patterns) {
    static const std::vector<std::string> columns{
      "id", "seed_memory_id", "label", "support", "member_ids", "centroid",
      "embedding_model", "position", "row_end"};
    copy_binary(tx, "consolidation_patterns", columns, c.patterns.size(),
                [&](binary_copy_buffer& out, size_t i) {
                  const auto& p = c.patterns[i];
                  out.begin_row(static_cast<int16_t>(columns.size()));
                  out.uuid(p.id.empty() ? random_uuid() : p.id);
                  out.uuid(p.seed_memory_id);
                  out.text(p.label);
                  out.int4(static_cast<int32_t>(p.member_ids.size()));
                  out.uuid_array(p.member_ids);
                  out.embedding(p.centroid);
                  if (p.centroid.empty())
                    out.null();
                  else
                    out.optional_text(p.embedding_model);
                  out.int4(static_cast<int32_t>(i));
                  out.row_end();
                });
    tx.exec_params0(
      "DELETE FROM engram.patterns p WHERE p.project_id = $1 AND NOT EXISTS "
      "  (SELECT 1 FROM consolidation_patterns n "
      "   WHERE n.seed_memory_id = p.seed_memory_id)",
      project);
    tx.exec_params0(
      "INSERT INTO engram.patterns (id, project_id, seed_memory_id, label, "
      "  support, member_ids, centroid, embedding_model, position, job_id, "
      "  created_at, updated_at) "
      "SELECT n.id, $1, n.seed_memory_id, n.label, n.support, n.member_ids, "
      "  n.centroid, n.embedding_model, n.position, $2, engram.from_us($3), "
      "  engram.from_us($3) FROM consolidation_patterns n "
      "ON CONFLICT (project_id, seed_memory_id) DO UPDATE SET "
      "  label = excluded.label, support = excluded.support, "
      "  member_ids = excluded.member_ids, centroid = excluded.centroid, "
      "  embedding_model = excluded.embedding_model, "
      "  position = excluded.position, job_id = excluded.job_id, "
      "  updated_at = excluded.updated_at",
      project, job->id, now_us);
  }
  // New entries in one COPY (a statement each was a round trip each:
  // ~0.2 s per 1,000 entries).
  if (std::any_of(c.playbook.begin(), c.playbook.end(),
                  [](const auto& e) { return e.create; })) {
    pqxx::stream_to copy{
      tx, "engram.playbook_entries",
      std::vector<std::string>{"id", "project_id", "agent_id", "principle_id",
                               "title", "content", "embedding",
                               "embedding_model", "created_at",
                               "updated_at"}};
    for (const auto& e : c.playbook)
      if (e.create)
        copy << std::make_tuple(
          ascii_lower(e.id), project, optional_text(ascii_lower(e.agent_id)),
          optional_text(ascii_lower(e.principle_id)), e.title, e.content,
          bytea_text(e.embedding),
          e.embedding.empty() ? std::nullopt
                              : optional_text(e.embedding_model),
          now_text, now_text);
    copy.complete();
  }
  for (const auto& e : c.playbook) {
    if (e.create)
      continue;
    auto changed = tx.exec_params(
      "UPDATE engram.playbook_entries SET principle_id = $3, "
      "  content = $4, updated_at = engram.from_us($5) "
      "WHERE id = $1 AND project_id = $2",
      ascii_lower(e.id), project, optional_text(ascii_lower(e.principle_id)), e.content,
      now_us);
    if (changed.affected_rows() != 1)
      return refused(errc::conflict, "playbook entry " + e.id
                                       + " is gone; the phase will run "
                                         "again");
  }
  tx.exec_params0(
    "UPDATE engram.consolidation_jobs SET "
    "  phases_completed = CASE WHEN $2 = ANY (phases_completed) "
    "    THEN phases_completed ELSE array_append(phases_completed, $2) END, "
    "  metrics = metrics || jsonb_build_object($2, $3::jsonb "
    "    || jsonb_build_object('commit_ms', $7::float8)), "
    "  memories_processed = memories_processed + $4, "
    "  memories_merged = memories_merged + $5, "
    "  memories_archived = memories_archived + $6 "
    "WHERE id = $1",
    job->id, c.phase, c.metrics_json.empty() ? std::string{"{}"}
                                             : c.metrics_json,
    c.memories_processed, c.memories_merged, c.memories_archived,
    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now()
                                              - started)
      .count());
  return *read_job(tx, job->id);
}

caf::expected<job_record> finish_job(pqxx::transaction_base& tx,
                                     const consolidation::finish_job& req) {
  auto job = read_job(tx, ascii_lower(req.job_id), true);
  if (!job)
    return refused(errc::not_found, "no consolidation job " + req.job_id);
  if (req.status != "completed" && req.status != "failed"
      && req.status != "cancelled")
    return refused(errc::invalid_argument,
                   "status: a job ends completed, failed or cancelled, not \""
                     + req.status + "\"");
  // A job that ended already (a late or repeated finish) stays as it ended.
  if (job->status != "queued" && job->status != "running")
    return *job;
  tx.exec_params0(
    "UPDATE engram.consolidation_jobs SET status = $2, "
    "  error_message = $3, completed_at = engram.from_us($4), "
    "  duration_ms = greatest(0, ($4 - engram.to_us(coalesce(started_at, "
    "    created_at))) / 1000) "
    "WHERE id = $1",
    job->id, req.status, optional_text(req.error), req.now_us);
  return *read_job(tx, job->id);
}

void release_project(pqxx::transaction_base& tx,
                     const std::string& project_id) {
  if (!is_uuid(project_id))
    return;
  tx.exec_params("SELECT pg_advisory_unlock($1, hashtext($2))",
    consolidation_lock_class, ascii_lower(project_id));
}

} // namespace engram::storage
