#pragma once

#include <chrono>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "actors/tasks/task_registry.hpp"
#include "http/router.hpp"
#include "messages/tasks.hpp"

namespace engram::http {

struct task_route_deps {
  caf::actor_system* sys = nullptr;
  /// Task names and argument checks: unknown names and bad arguments are
  /// refused with 400 before anything is stored.
  const tasks::task_registry* registry = nullptr;
  const clock* time = &real_clock();
  std::chrono::milliseconds timeout{10000};
};

/// Largest batch `POST /api/tasks` accepts in one request.
inline constexpr size_t max_task_batch = 10000;

/// The task API:
/// - `POST /api/tasks`: one task object, or an array of up to 10,000
///   enqueued in one transaction (all or nothing) → 202;
/// - `GET /api/tasks/{id}`, `GET /api/tasks?status=&name=&queue=&cursor=&limit=`;
/// - `POST /api/tasks/{id}/cancel`, `POST /api/tasks/{id}/retry`.
void add_task_routes(router& r, task_route_deps deps);

/// A task as the API shows it (times in RFC 3339 UTC, null when unset).
[[nodiscard]] boost::json::object task_json(const tasks::task_info& t);

} // namespace engram::http
