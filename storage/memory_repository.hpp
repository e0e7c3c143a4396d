#pragma once

// A project's memories as the API sees them (DESIGN §3, §6, §8): the bulk
// import, listing with filters and a cursor, one memory with its audit
// history, and the restore of a superseded or archived memory. Ids are
// UUIDs in canonical text form (answered lower-case); JSON columns travel
// as JSON text; embeddings are float32 little-endian in the database.
//
// Every function answers a refusal (not_found, conflict, invalid_argument)
// as an `errc` error and writes nothing then; libpqxx exceptions for
// anything else are left to the caller (the storage worker), which rolls
// the transaction back.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>
#include <pqxx/dbtransaction>
#include <pqxx/transaction_base>

#include "messages/import_stream.hpp"
#include "messages/memories.hpp"
#include "runtime/clock.hpp"

namespace engram::storage {

/// Most rows one import takes.
inline constexpr size_t max_import_rows = 100000;
/// Page size of list_memories when none is given, and its maximum.
inline constexpr int64_t default_memory_page = 50;
inline constexpr int64_t max_memory_page = 1000;

/// The first problem of row `index` of an import as
/// "memories[<index>].<field> ...", or "" when the row is fine on its own:
/// type, tier and status outside their sets, empty content (or content
/// with NUL) or source_type,
/// importance outside 1–10, a negative access_count, a malformed id or
/// agent_id, a non-finite embedding value, an embedding without its model
/// (or a model without an embedding), metadata that is not a JSON object.
[[nodiscard]] std::string check_memory_row(const memories::memory_row& row,
                                           size_t index);

/// Imports `req.rows` into project `req.project_id` in this transaction,
/// created at their `created_at_us` (else `now`) and updated at `now`. The
/// rows are checked first (check_memory_row, then ids that repeat within
/// the request, vectors of one model with different dimensions, and
/// vectors whose dimension differs from the model's memories already in
/// the project); then they are streamed into engram.memories with COPY. An
/// id an existing memory has is found by the primary key, inside a
/// savepoint, and refused naming its row. Imports that bring a model new to
/// the project serialise on a transaction-scoped advisory lock of the
/// project, so two of them cannot store two dimensions of one model;
/// imports of models the project already has run side by side. Rows without an id get a
/// time-ordered one (time_ordered_uuid); the ids come back in request
/// order.
/// Refusals: not_found (project), invalid_argument (naming the row and
/// field: "memories[3].embedding ..."), too_large (more than
/// max_import_rows).
[[nodiscard]] caf::expected<memories::import_result>
import_memories(pqxx::dbtransaction& tx, memories::import_memories_request req,
                wall_time now);

/// Imports the rows of `stream` as import_memories does (the same checks,
/// refusals and answer), writing each chunk as it arrives so that the
/// server ingests rows while the producer parses the next ones: a chunk's
/// rows are checked, then sent. The transaction commits nothing unless the
/// producer finishes the stream; its failure is the answer. A model new to
/// the import ends the current COPY for the dimension check (statements
/// cannot run inside one). Past `deadline` (waiting for rows, or before
/// the savepoint is released) it gives up: timeout, nothing imported. The
/// stream is abandoned however the import ends.
[[nodiscard]] caf::expected<memories::import_result>
import_memory_stream(pqxx::dbtransaction& tx, memories::import_stream& stream,
                     const std::string& project_id, wall_time now,
                     std::chrono::steady_clock::time_point deadline);

/// One page of a project's memories; see memories::list_memories_request.
/// not_found for an unknown project, invalid_argument for a filter value
/// outside its set, a malformed agent_id or cursor. `limit` <= 0 means
/// default_memory_page; it is capped at max_memory_page.
[[nodiscard]] caf::expected<memories::memory_page>
list_memories(pqxx::transaction_base& tx,
              const memories::list_memories_request& req);

/// Memory `id` with its vector and its audit rows in id order; not_found
/// for an unknown or malformed id.
[[nodiscard]] caf::expected<memories::memory_detail>
get_memory(pqxx::transaction_base& tx, const std::string& id);

/// Restores memory `id` at `now`; see memories::restore_memory_request.
/// The row is locked first, so concurrent restores of one memory restore
/// it once (the second answers conflict).
[[nodiscard]] caf::expected<memories::memory_record>
restore_memory(pqxx::transaction_base& tx, const std::string& id,
               wall_time now);

/// The hot memories of agent `agent_id` (active, tier hot), by importance
/// desc, last access (else creation) desc, id; at most `limit` (1..1000).
/// invalid_argument for a malformed id.
[[nodiscard]] caf::expected<std::vector<memories::memory_record>>
hot_memories(pqxx::transaction_base& tx, const std::string& agent_id,
             int32_t limit);

} // namespace engram::storage
