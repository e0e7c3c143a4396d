#pragma once

#include <chrono>
#include <cstddef>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "http/router.hpp"
#include "messages/memories.hpp"
#include "runtime/clock.hpp"

namespace engram::http {

/// What the memory routes need.
struct memory_route_deps {
  /// Where the storage pool runs (requests go to it by message).
  caf::actor_system* sys = nullptr;
  /// Embeds imported memories that come without an embedding. Unset: such
  /// an import is answered 503 `unavailable`.
  embedder_actor embedder;
  /// Stamps the import's created_at (for rows without one) and updated_at,
  /// and a restore's updated_at.
  const clock* time = &real_clock();
  /// Bound on each request to the storage pool, but an import.
  std::chrono::milliseconds timeout{10000};
  /// Bound on the import's embedding request and on its storage request
  /// (each).
  std::chrono::milliseconds import_timeout{60000};
};

/// Most memories one import takes (more: 413 `too_large`).
inline constexpr size_t max_imported_memories = 100000;
/// Longest content of one memory, in bytes.
inline constexpr size_t max_memory_content_bytes = 1024 * 1024;
/// Longest embedding.
inline constexpr size_t max_embedding_dimension = 65536;

/// Registers the memory API (DESIGN §3, §8; ids are UUIDs, times RFC 3339,
/// answered in UTC):
/// - `POST /api/projects/{id}/memories`: a JSON array of memory objects, or
///   NDJSON (one object per line; chosen by Content-Type
///   application/x-ndjson, or by a body that does not start with '[') →
///   201 {"imported": n, "ids": [...]} (ids in input order), all or
///   nothing. A memory: content (required, non-empty), type (required:
///   episodic, semantic, procedural, identity, principle), id, agent_id,
///   tier (warm; hot, warm, cold), status (active; active, superseded,
///   archived), importance (5; integer 1-10), pinned (false), access_count
///   (0), source_type ("import"), created_at (now), last_accessed_at,
///   expires_at, metadata ({}), embedding (finite numbers) with
///   embedding_model (required with an embedding). Memories without an
///   embedding are embedded by `embedder` (one request for all of them).
///   The vectors of one model must have one dimension, in the request and
///   with the model's memories already in the project. Bad input is 400
///   naming the row (0-based) and field, e.g. "memories[3].importance";
///   an id that repeats or that a stored memory has is 400 naming "id";
///   unknown project → 404; more than max_imported_memories → 413.
/// - `GET /api/projects/{id}/memories?agent_id=&type=&status=&tier=&cursor=&limit=`
///   → {"memories": [...], "next_cursor": "..." or null}, newest first
///   (created_at, then id); memories carry their embedding's model and
///   dimension, not the vector. Bad filter values → 400.
/// - `GET /api/memories/{id}` → the memory with "embedding" (the vector, or
///   null) and "audit": its audit history, oldest first.
/// - `POST /api/memories/{id}/restore` → 200 with the memory made active
///   again (see memories::restore_memory_request); an active memory → 409
///   `conflict`; unknown id → 404.
/// Throws std::logic_error when `sys` or `time` is missing.
void add_memory_routes(router& r, memory_route_deps deps);

/// A memory as the API shows it (without the vector).
[[nodiscard]] boost::json::object
memory_json(const memories::memory_record& m);

} // namespace engram::http
