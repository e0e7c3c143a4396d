#pragma once

#include <chrono>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "http/router.hpp"
#include "messages/memories.hpp"
#include "runtime/clock.hpp"

namespace engram::http {

/// What the project routes need.
struct project_route_deps {
  /// Where the storage pool runs (requests go to it by message).
  caf::actor_system* sys = nullptr;
  /// Stamps created_at and updated_at.
  const clock* time = &real_clock();
  /// Bound on each request to the storage pool.
  std::chrono::milliseconds timeout{10000};
};

/// Registers the project API (DESIGN §8; times in RFC 3339 UTC):
/// - `PUT /api/projects/{id}` {name, consolidation_enabled (true),
///   consolidation_config ({})} → 201 with the project when it was
///   created, 200 when it replaced one (the whole config is replaced;
///   created_at stays).
/// - `GET /api/projects/{id}` → 200 with the project; unknown id → 404.
/// `consolidation_config` overrides consolidation defaults (DESIGN §6).
/// Its keys and values: pattern_threshold, merge_threshold,
/// summarize_threshold, principle_threshold, playbook_threshold: numbers in
/// (0, 1]; pattern_min_support, principle_min_support: integers >= 2;
/// summarize_min_age_days, demote_after_days: numbers > 0;
/// summarize_max_access_count: an integer >= 0; demote_importance_floor: an
/// integer 1-10. Bad input (malformed JSON, wrong types, unknown or repeated
/// fields or config keys, values out of range, an id that is not a UUID)
/// is refused with 400 naming the field, e.g.
/// "consolidation_config.merge_threshold", and nothing is stored.
/// Throws std::logic_error when `sys` or `time` is missing.
void add_project_routes(router& r, project_route_deps deps);

/// A project as the API shows it.
[[nodiscard]] boost::json::object
project_json(const memories::project_record& p);

} // namespace engram::http
