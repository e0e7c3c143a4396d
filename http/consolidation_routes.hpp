#pragma once

#include <chrono>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "http/router.hpp"
#include "messages/consolidation.hpp"

namespace engram::http {

struct consolidation_route_deps {
  caf::actor_system* sys = nullptr;
  /// How long a request waits for storage or the cache.
  std::chrono::milliseconds timeout{10000};
  /// How long a dry run may take (it plans every phase on the project).
  std::chrono::milliseconds dry_run_timeout{std::chrono::minutes{5}};
};

/// The consolidation API (DESIGN §6, §8). The coordinator (registry key
/// `consolidation_name`), the storage pool and the hot-memory cache
/// (`hot_cache_name`) are looked up at each request.
/// - `POST /api/projects/{id}/consolidations` {phases? (default all, in
///   their fixed order), dry_run? (false), as_of? (RFC 3339; default: when
///   the job starts)} → 202 with the queued job (its task runs it), or, for
///   a dry run, 200 with the plan of every selected phase (which memories
///   would merge into which, be summarised, archived, demoted; patterns,
///   principles, playbook entries; the agents whose cache would be
///   invalidated) — nothing is changed or stored. Unknown project: 404.
/// - `GET /api/consolidations/{job_id}` → the job.
/// - `GET /api/projects/{id}/consolidations?cursor=&limit=` → {"jobs":
///   [...], "next_cursor": "..." or null}, newest first.
/// - `GET /api/agents/{id}/memories/hot` → {"agent_id", "memories": [...],
///   "cached": bool}.
/// Bad input (malformed JSON, unknown fields or phases, a bad as_of,
/// malformed ids or cursors) is answered with 400 naming the field.
void add_consolidation_routes(router& r, consolidation_route_deps deps);

/// A job as the API shows it.
[[nodiscard]] boost::json::object
consolidation_job_json(const consolidation::job_record& job);

} // namespace engram::http
