#include "storage/memory_repository.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include "messages/errc.hpp"
#include "messages/import_stream.hpp"
#include "storage/binary_copy.hpp"
#include "storage/platform_repository.hpp"
#include "runtime/uuid.hpp"
#include "storage/platform_sql.hpp"
#include "storage/sql_values.hpp"

namespace engram::storage {

namespace {

using namespace platform_detail;
using sql_values::array_literal;
using sql_values::optional_text;

/// Class id of the advisory locks that serialise, per project, the imports
/// that bring an embedding model new to it ("eng" + 0x02; extraction uses
/// 0x01).
constexpr int32_t import_lock_class = 0x656e6702;

constexpr auto memory_columns
  = "m.id::text, m.project_id::text, m.agent_id::text, m.type, m.tier, "
    "m.status, m.content, m.embedding_model, "
    "coalesce(length(m.embedding) / 4, 0), m.importance, m.pinned, "
    "m.access_count, m.source_type, m.superseded_by::text, m.parent_id::text, "
    "engram.to_us(m.created_at), engram.to_us(m.updated_at), "
    "engram.to_us(m.last_accessed_at), engram.to_us(m.expires_at), "
    "m.metadata::text";

bool one_of(const std::string& x, std::initializer_list<const char*> set) {
  return std::any_of(set.begin(), set.end(),
                     [&](const char* s) { return x == s; });
}

bool is_memory_type(const std::string& x) {
  return one_of(x, {"episodic", "semantic", "procedural", "identity",
                    "principle"});
}

bool is_tier(const std::string& x) {
  return one_of(x, {"hot", "warm", "cold"});
}

bool is_status(const std::string& x) {
  return one_of(x, {"active", "superseded", "archived"});
}

std::string field(size_t index, const char* name) {
  return "memories[" + std::to_string(index) + "]." + name;
}

caf::error refused(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

/// A random (version 4) UUID.

/// A vector column back to floats.
std::vector<float> floats_of(const pqxx::field& f) {
  std::vector<float> result;
  sql_values::append_floats(f, result);
  return result;
}



memories::memory_record to_record(const pqxx::row& row) {
  memories::memory_record m;
  m.id = row[0].as<std::string>();
  m.project_id = row[1].as<std::string>();
  m.agent_id = optional_string_of(row[2]).value_or("");
  m.type = row[3].as<std::string>();
  m.tier = row[4].as<std::string>();
  m.status = row[5].as<std::string>();
  m.content = row[6].as<std::string>();
  m.embedding_model = optional_string_of(row[7]).value_or("");
  m.embedding_dimension = row[8].as<int32_t>();
  m.importance = row[9].as<int32_t>();
  m.pinned = row[10].as<bool>();
  m.access_count = row[11].as<int32_t>();
  m.source_type = row[12].as<std::string>();
  m.superseded_by = optional_string_of(row[13]).value_or("");
  m.parent_id = optional_string_of(row[14]).value_or("");
  m.created_at_us = row[15].as<int64_t>();
  m.updated_at_us = row[16].as<int64_t>();
  m.last_accessed_at_us = optional_of<int64_t>(row[17]).value_or(0);
  m.expires_at_us = optional_of<int64_t>(row[18]).value_or(0);
  m.metadata_json = row[19].as<std::string>();
  return m;
}

std::optional<memories::memory_record> read_memory(pqxx::transaction_base& tx,
                                                   const std::string& id,
                                                   bool with_embedding) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + memory_columns
                               + (with_embedding ? ", m.embedding" : "")
                               + " FROM engram.memories m "
                                 "WHERE m.id = $1::uuid",
                             id);
  if (rows.empty())
    return std::nullopt;
  auto result = to_record(rows[0]);
  if (with_embedding)
    result.embedding = floats_of(rows[0][20]);
  return result;
}

/// A page cursor: "<created_at in epoch µs>_<id>" of the last memory of a
/// page.
struct memory_cursor {
  int64_t created_at_us = 0;
  std::string id;
};

std::optional<memory_cursor> decode_cursor(const std::string& cursor) {
  auto sep = cursor.find('_');
  if (sep == std::string::npos || sep == 0)
    return std::nullopt;
  memory_cursor result;
  const char* first = cursor.data();
  const char* last = cursor.data() + sep;
  auto [end, ec] = std::from_chars(first, last, result.created_at_us);
  result.id = cursor.substr(sep + 1);
  if (ec != std::errc{} || end != last || !is_uuid(result.id))
    return std::nullopt;
  return result;
}

/// The first row index of every client id that an existing memory has.
std::optional<std::pair<size_t, std::string>>
first_taken_id(pqxx::transaction_base& tx,
               const std::unordered_map<std::string, size_t>& client_ids) {
  std::vector<std::string> ids;
  ids.reserve(client_ids.size());
  for (const auto& [id, index] : client_ids)
    ids.push_back(id);
  auto rows = tx.exec_params("SELECT id::text FROM engram.memories "
                             "WHERE id = ANY($1::uuid[])",
                             array_literal(ids));
  std::optional<std::pair<size_t, std::string>> result;
  for (const auto& row : rows) {
    auto id = row[0].as<std::string>();
    auto index = client_ids.at(id);
    if (!result || index < result->first)
      result = std::make_pair(index, id);
  }
  return result;
}

// -- the import's COPY (storage/binary_copy.hpp) ----------------------------------

/// The columns COPY fills, in the order copy_row writes them; metadata must
/// stay last (a jsonb ends each row).
const std::vector<std::string>& copy_columns() {
  static const std::vector<std::string> columns{
    "id",           "project_id",      "agent_id",   "type",
    "tier",         "status",          "content",    "embedding",
    "embedding_model", "importance",   "pinned",     "access_count",
    "source_type",  "created_at",      "updated_at", "last_accessed_at",
    "expires_at",   "metadata"};
  return columns;
}

void copy_row(binary_copy_buffer& out, const memories::memory_row& r,
              const std::string& id, const std::string& project_id,
              int64_t now_us) {
  out.begin_row(static_cast<int16_t>(copy_columns().size()));
  out.uuid(id);
  out.uuid(project_id);
  out.optional_uuid(r.agent_id);
  out.text(r.type);
  out.text(r.tier);
  out.text(r.status);
  out.text(r.content);
  out.embedding(r.embedding);
  out.optional_text(r.embedding_model);
  out.int4(r.importance);
  out.boolean(r.pinned);
  out.int4(r.access_count);
  out.text(r.source_type);
  out.timestamptz(r.created_at_us == 0 ? now_us : r.created_at_us);
  out.timestamptz(now_us);
  out.timestamptz(r.last_accessed_at_us);
  out.timestamptz(r.expires_at_us);
  out.jsonb_ending_row(r.metadata_json.empty() ? std::string_view{"{}"}
                                               : r.metadata_json);
}

} // namespace

std::string check_memory_row(const memories::memory_row& r, size_t index) {
  if (!r.id.empty() && !is_uuid(r.id))
    return field(index, "id") + " must be a UUID, got '" + r.id.substr(0, 64)
           + "'";
  if (!r.agent_id.empty() && !is_uuid(r.agent_id))
    return field(index, "agent_id") + " must be a UUID, got '"
           + r.agent_id.substr(0, 64) + "'";
  if (!is_memory_type(r.type))
    return field(index, "type")
           + " must be episodic, semantic, procedural, identity or "
             "principle, got '"
           + r.type.substr(0, 64) + "'";
  if (!is_tier(r.tier))
    return field(index, "tier") + " must be hot, warm or cold, got '"
           + r.tier.substr(0, 64) + "'";
  if (!is_status(r.status))
    return field(index, "status")
           + " must be active, superseded or archived, got '"
           + r.status.substr(0, 64) + "'";
  if (r.content.empty())
    return field(index, "content") + " must not be empty";
  if (r.content.find('\0') != std::string::npos)
    return field(index, "content") + " must not contain NUL";
  if (r.source_type.empty())
    return field(index, "source_type") + " must not be empty";
  if (r.importance < 1 || r.importance > 10)
    return field(index, "importance") + " must be between 1 and 10, got "
           + std::to_string(r.importance);
  if (r.access_count < 0)
    return field(index, "access_count") + " must not be negative";
  for (size_t i = 0; i < r.embedding.size(); ++i)
    if (!std::isfinite(r.embedding[i]))
      return field(index, "embedding") + "[" + std::to_string(i)
             + "] must be a finite number";
  if (!r.embedding.empty() && r.embedding_model.empty())
    return field(index, "embedding_model") + " is required with an embedding";
  if (r.embedding.empty() && !r.embedding_model.empty())
    return field(index, "embedding_model")
           + " is given without an embedding";
  auto brace = r.metadata_json.find_first_not_of(" \t\r\n");
  if (!r.metadata_json.empty()
      && (brace == std::string::npos || r.metadata_json[brace] != '{'))
    return field(index, "metadata") + " must be a JSON object";
  return {};
}

namespace {

/// What an import has seen so far, checked row by row in the order the
/// rows arrive (request order, but for rows that had to be embedded
/// first, which come last).
struct import_checks {
  /// Client ids (lower case) and the row that gave each.
  std::unordered_map<std::string, size_t> client_ids;
  /// Per model: (dimension, first row with it).
  std::map<std::string, std::pair<size_t, size_t>> dimensions;
  size_t rows = 0;

  /// Checks the rows of a chunk: what can be checked without the database.
  /// Models the import had not seen before are added to `new_models`.
  caf::error check(const memories::import_stream::chunk& c,
                   std::vector<std::string>& new_models) {
    if (c.rows.size() != c.indices.size())
      return make_error(errc::unspecified,
                        "an import chunk has rows without places");
    for (size_t k = 0; k < c.rows.size(); ++k) {
      const auto& r = c.rows[k];
      size_t i = c.indices[k];
      if (++rows > max_import_rows)
        return make_error(errc::too_large,
                          "an import takes at most "
                            + std::to_string(max_import_rows) + " memories");
      if (auto problem = check_memory_row(r, i); !problem.empty())
        return refused(std::move(problem));
      if (!r.id.empty()) {
        auto [it, fresh] = client_ids.emplace(ascii_lower(r.id), i);
        if (!fresh)
          return refused(field(i, "id") + " repeats the id of memories["
                         + std::to_string(it->second) + "] (" + it->first
                         + ")");
      }
      if (!r.embedding.empty()) {
        // try_emplace: no node (and no copy of the model's name) for a
        // model seen before, i.e. for all rows but the first of each.
        auto [it, fresh] = dimensions.try_emplace(r.embedding_model,
                                                  r.embedding.size(), i);
        if (fresh)
          new_models.push_back(r.embedding_model);
        else if (it->second.first != r.embedding.size())
          return refused(field(i, "embedding") + " has "
                         + std::to_string(r.embedding.size())
                         + " dimensions, but memories["
                         + std::to_string(it->second.second) + "] of model '"
                         + r.embedding_model + "' has "
                         + std::to_string(it->second.first));
      }
    }
    return {};
  }

  /// Checks the dimensions of `models` against the project's stored
  /// vectors. When a model has no vector in the project yet, the import
  /// takes the project's new-model lock (transaction-scoped; one lock, so
  /// imports that bring new models in any order cannot wait for each
  /// other in a cycle) and looks again, so two concurrent imports cannot
  /// store two dimensions of one new model; imports of models the project
  /// knows run side by side.
  caf::error check_stored(pqxx::transaction_base& tx,
                          const std::string& project_id,
                          std::vector<std::string> models) const {
    std::sort(models.begin(), models.end());
    auto stored_dimensions = [&](const std::vector<std::string>& which) {
      std::map<std::string, size_t> out;
      auto stored = tx.exec_params(
        "SELECT m.model, (SELECT length(e.embedding) / 4 "
        "  FROM engram.memories e WHERE e.project_id = $1::uuid "
        "  AND e.embedding_model = m.model AND e.embedding IS NOT NULL "
        "  LIMIT 1) "
        "FROM unnest($2::text[]) AS m(model)",
        project_id, array_literal(which));
      for (const auto& row : stored)
        if (!row[1].is_null())
          out.emplace(row[0].as<std::string>(), row[1].as<size_t>());
      return out;
    };
    auto known = stored_dimensions(models);
    std::vector<std::string> fresh;
    for (const auto& model : models)
      if (known.count(model) == 0)
        fresh.push_back(model);
    if (!fresh.empty()) {
      // Taken again by a later chunk's new model: a no-op for the holder.
      tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
                     import_lock_class, project_id);
      known.merge(stored_dimensions(fresh));
    }
    for (const auto& [model, have] : known) {
      const auto& [dimension, first] = dimensions.at(model);
      if (have != dimension)
        return refused(field(first, "embedding") + " has "
                       + std::to_string(dimension)
                       + " dimensions, but the project's memories of model '"
                       + model + "' have " + std::to_string(have));
    }
    return {};
  }
};

/// Abandons the stream when the import ends, however it ends: a producer
/// still parsing stops at its next chunk.
struct abandon_on_exit {
  memories::import_stream& stream;
  ~abandon_on_exit() { stream.abandon(); }
};

} // namespace

caf::expected<memories::import_result>
import_memory_stream(pqxx::dbtransaction& tx, memories::import_stream& stream,
                     const std::string& project, wall_time now,
                     std::chrono::steady_clock::time_point deadline) {
  abandon_on_exit abandon{stream};
  auto too_late = [] {
    return make_error(errc::timeout,
                      "the import did not finish within its time; nothing "
                      "was imported");
  };
  // Lock waits (the project row, the new-model lock, a row another import
  // is writing) end at the deadline too.
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    if (left <= 0)
      return too_late();
    tx.exec("SET LOCAL lock_timeout = " + std::to_string(left));
  }
  try {
    if (!lock_project(tx, project))
      return make_error(errc::not_found,
                        "project_id: no project with id " + project);
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "55P03") // lock_not_available
      return too_late();
    throw;
  }
  auto project_id = ascii_lower(project);
  auto now_us = to_epoch_us(now);
  auto now_ms = static_cast<uint64_t>(now_us / 1000);
  import_checks checks;
  memories::import_result result;
  // In a savepoint, so that an id taken by an existing memory (the primary
  // key refuses the COPY) can be looked up and named afterwards.
  try {
    pqxx::subtransaction sub{tx, "import_memories"};
    binary_copy_writer copy{sub, "engram.memories", copy_columns()};
    memories::import_stream::chunk c;
    std::vector<std::string> new_models;
    for (;;) {
      auto what = stream.pop(c, deadline);
      using next = memories::import_stream::next;
      if (what == next::failed)
        return make_error(stream.failure_code(), stream.failure_message());
      // pop answers what is queued even past the deadline.
      if (what == next::timed_out
          || std::chrono::steady_clock::now() >= deadline)
        return too_late();
      if (what == next::finished)
        break;
      new_models.clear();
      if (auto err = checks.check(c, new_models))
        return err;
      if (!new_models.empty()) {
        // A statement cannot run inside a COPY: end it; the next row opens
        // another.
        copy.complete();
        if (auto err = checks.check_stored(sub, project_id, new_models))
          return err;
      }
      for (size_t k = 0; k < c.rows.size(); ++k) {
        const auto& r = c.rows[k];
        size_t i = c.indices[k];
        if (i >= result.ids.size())
          result.ids.resize(i + 1);
        auto& id = result.ids[i];
        if (!id.empty())
          return make_error(errc::unspecified,
                            "an import chunk gave memories["
                              + std::to_string(i) + "] twice");
        id = r.id.empty() ? time_ordered_uuid(now_ms) : ascii_lower(r.id);
        copy_row(copy.next_row(), r, id, project_id, now_us);
        copy.row_done();
      }
      // The server ingests these rows while the next chunk is parsed.
      copy.flush();
    }
    copy.complete();
    // Past the deadline the caller has stopped waiting, or is about to:
    // an import must not commit after its caller was told it timed out.
    if (std::chrono::steady_clock::now() >= deadline)
      return too_late();
    sub.commit();
  } catch (const pqxx::unique_violation&) {
    auto taken = checks.client_ids.empty()
                   ? std::nullopt
                   : first_taken_id(tx, checks.client_ids);
    if (!taken)
      return make_error(errc::conflict,
                        "an id of the import was taken by a concurrent "
                        "write; nothing was imported, try again");
    return refused(field(taken->first, "id") + ": a memory with id "
                   + taken->second + " exists already");
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "55P03") // lock_not_available: the deadline
      return too_late();
    if (e.sqlstate() == "40P01") // deadlock_detected
      return make_error(errc::conflict,
                        "the import waited for a concurrent write that "
                        "waited for it; nothing was imported, try again");
    throw;
  }
  // The last word: a caller that stopped waiting has cancelled the
  // stream, and then nothing may be committed; from here it cannot.
  if (!stream.begin_commit())
    return make_error(stream.failure_code(), stream.failure_message());
  if (result.ids.size() != checks.rows)
    return make_error(errc::unspecified,
                      "an import's chunks left rows out: "
                        + std::to_string(checks.rows) + " rows for "
                        + std::to_string(result.ids.size()) + " places");
  result.count = static_cast<int64_t>(checks.rows);
  return result;
}

caf::expected<memories::import_result>
import_memories(pqxx::dbtransaction& tx, memories::import_memories_request req,
                wall_time now) {
  if (req.rows.size() > max_import_rows)
    return make_error(errc::too_large,
                      "an import takes at most "
                        + std::to_string(max_import_rows) + " memories, got "
                        + std::to_string(req.rows.size()));
  memories::import_stream stream;
  memories::import_stream::chunk all;
  all.rows = std::move(req.rows);
  all.indices.resize(all.rows.size());
  for (size_t i = 0; i < all.indices.size(); ++i)
    all.indices[i] = static_cast<uint32_t>(i);
  if (!all.rows.empty())
    (void) stream.push(std::move(all));
  stream.finish();
  return import_memory_stream(tx, stream, req.project_id, now,
                              std::chrono::steady_clock::time_point::max());
}

caf::expected<memories::memory_page>
list_memories(pqxx::transaction_base& tx,
              const memories::list_memories_request& req) {
  if (!req.agent_id.empty() && !is_uuid(req.agent_id))
    return refused("agent_id must be a UUID, got '" + req.agent_id.substr(0, 64)
                   + "'");
  if (!req.type.empty() && !is_memory_type(req.type))
    return refused("type must be episodic, semantic, procedural, identity or "
                   "principle, got '"
                   + req.type.substr(0, 64) + "'");
  if (!req.status.empty() && !is_status(req.status))
    return refused("status must be active, superseded or archived, got '"
                   + req.status.substr(0, 64) + "'");
  if (!req.tier.empty() && !is_tier(req.tier))
    return refused("tier must be hot, warm or cold, got '"
                   + req.tier.substr(0, 64) + "'");
  std::optional<memory_cursor> after;
  if (!req.cursor.empty()) {
    after = decode_cursor(req.cursor);
    if (!after)
      return refused("cursor: malformed page cursor '"
                     + req.cursor.substr(0, 64) + "'");
  }
  if (!get_project(tx, req.project_id))
    return make_error(errc::not_found,
                      "project_id: no project with id " + req.project_id);
  auto limit = req.limit <= 0 ? default_memory_page
                              : std::min(req.limit, max_memory_page);
  std::optional<int64_t> after_us;
  std::optional<std::string> after_id;
  if (after) {
    after_us = after->created_at_us;
    after_id = after->id;
  }
  // One row more than asked tells whether there is a next page.
  auto rows = tx.exec_params(
    std::string{"SELECT "} + memory_columns
      + " FROM engram.memories m "
        "WHERE m.project_id = $1::uuid "
        "AND ($2::uuid IS NULL OR m.agent_id = $2::uuid) "
        "AND ($3::text IS NULL OR m.type = $3::text) "
        "AND ($4::text IS NULL OR m.status = $4::text) "
        "AND ($5::text IS NULL OR m.tier = $5::text) "
        "AND ($6::bigint IS NULL OR (m.created_at, m.id) "
        "    < (engram.from_us($6::bigint), $7::uuid)) "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT $8",
    req.project_id, optional_text(req.agent_id), optional_text(req.type),
    optional_text(req.status), optional_text(req.tier), after_us, after_id,
    limit + 1);
  memories::memory_page page;
  page.memories.reserve(std::min<size_t>(rows.size(), limit));
  for (const auto& row : rows) {
    if (static_cast<int64_t>(page.memories.size()) == limit) {
      const auto& last = page.memories.back();
      page.next_cursor = std::to_string(last.created_at_us) + "_" + last.id;
      break;
    }
    page.memories.push_back(to_record(row));
  }
  return page;
}

caf::expected<memories::memory_detail>
get_memory(pqxx::transaction_base& tx, const std::string& id) {
  auto memory = read_memory(tx, id, true);
  if (!memory)
    return make_error(errc::not_found, "memory_id: no memory with id " + id);
  memories::memory_detail result;
  result.memory = std::move(*memory);
  auto rows = tx.exec_params("SELECT id, job_id::text, action, detail::text, "
                             "  engram.to_us(at) "
                             "FROM engram.memory_audit "
                             "WHERE memory_id = $1::uuid ORDER BY id",
                             id);
  result.audit.reserve(rows.size());
  for (const auto& row : rows) {
    memories::memory_audit_row a;
    a.id = row[0].as<int64_t>();
    a.job_id = optional_string_of(row[1]).value_or("");
    a.action = row[2].as<std::string>();
    a.detail_json = row[3].as<std::string>();
    a.at_us = row[4].as<int64_t>();
    result.audit.push_back(std::move(a));
  }
  return result;
}

caf::expected<memories::memory_record>
restore_memory(pqxx::transaction_base& tx, const std::string& id,
               wall_time now) {
  if (!is_uuid(id))
    return make_error(errc::not_found, "memory_id: no memory with id " + id);
  auto current = tx.exec_params("SELECT status, tier, superseded_by::text "
                                "FROM engram.memories WHERE id = $1::uuid "
                                "FOR UPDATE",
                                id);
  if (current.empty())
    return make_error(errc::not_found, "memory_id: no memory with id " + id);
  auto status = current[0][0].as<std::string>();
  auto tier = current[0][1].as<std::string>();
  if (status == "active")
    return make_error(errc::conflict,
                      "memory " + ascii_lower(id)
                        + " is active; only superseded or archived memories "
                          "can be restored");
  // An archived memory goes back to the tier it had before its archiving,
  // as the archiving's audit row recorded it.
  auto new_tier = tier;
  if (status == "archived") {
    auto recorded = tx.exec_params(
      "SELECT detail->>'previous_tier' FROM engram.memory_audit "
      "WHERE memory_id = $1::uuid AND action = 'archived' "
      "AND detail ? 'previous_tier' ORDER BY id DESC LIMIT 1",
      id);
    new_tier = "warm";
    if (!recorded.empty() && !recorded[0][0].is_null()
        && is_tier(recorded[0][0].as<std::string>()))
      new_tier = recorded[0][0].as<std::string>();
  }
  auto us = to_epoch_us(now);
  // The audit row's detail says what the restore undid.
  tx.exec_params(
    "WITH before AS (SELECT id, project_id, status, tier, superseded_by "
    "  FROM engram.memories WHERE id = $1::uuid), "
    "restored AS (UPDATE engram.memories m SET status = 'active', "
    "  superseded_by = NULL, tier = $2::text, updated_at = engram.from_us($3) "
    "  FROM before WHERE m.id = before.id RETURNING m.id) "
    "INSERT INTO engram.memory_audit (memory_id, project_id, action, detail, "
    "  at) "
    "SELECT before.id, before.project_id, 'restored', "
    "  CASE WHEN before.status = 'superseded' "
    "    THEN jsonb_build_object('previous_status', before.status, "
    "      'previous_superseded_by', before.superseded_by) "
    "    ELSE jsonb_build_object('previous_status', before.status, "
    "      'previous_tier', before.tier, 'tier', $2::text) "
    "      || CASE WHEN before.superseded_by IS NULL THEN '{}'::jsonb "
    "         ELSE jsonb_build_object('previous_superseded_by', "
    "           before.superseded_by) END "
    "  END, engram.from_us($3) "
    "FROM before, restored",
    id, new_tier, us);
  return *read_memory(tx, id, false);
}

} // namespace engram::storage

namespace engram::storage {

caf::expected<std::vector<memories::memory_record>>
hot_memories(pqxx::transaction_base& tx, const std::string& agent_id,
             int32_t limit) {
  if (!is_uuid(agent_id))
    return make_error(errc::invalid_argument, "agent_id: not a UUID");
  auto rows = tx.exec_params(
    std::string{"SELECT "} + memory_columns
      + " FROM engram.memories m WHERE m.agent_id = $1::uuid "
        "AND m.status = 'active' AND m.tier = 'hot' "
        "ORDER BY m.importance DESC, "
        "  coalesce(m.last_accessed_at, m.created_at) DESC, m.id "
        "LIMIT $2",
    agent_id, std::clamp<int32_t>(limit, 1, 1000));
  std::vector<memories::memory_record> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back(to_record(row));
  return out;
}

} // namespace engram::storage
