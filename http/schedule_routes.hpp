#pragma once

#include <chrono>
#include <functional>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "http/router.hpp"
#include "messages/scheduler.hpp"

namespace engram::http {

struct schedule_route_deps {
  caf::actor_system* sys = nullptr;
  /// The scheduler to ask. Unset: the one in the actor registry under
  /// `scheduler_name`, looked up at each request (so a restarted scheduler
  /// is found).
  std::function<scheduler_actor()> scheduler;
  /// How long a request waits for the scheduler.
  std::chrono::milliseconds timeout{10000};
};

/// The schedule API (DESIGN §5, §8). Handlers never touch the database:
/// they ask the scheduler, which validates (cron expression, zone, delivery
/// config) and computes next_run_at before its store writes anything.
/// - `POST /api/schedules`: {agent_id, name, message, cron_expression,
///   timezone ("UTC"), is_active (true), delivery_config ({}), team_id,
///   user_id} → 201 with the schedule;
/// - `GET /api/schedules?cursor=&limit=&agent_id=&team_id=&user_id=&is_active=`
///   → {"schedules": [...], "next_cursor": "..." or null};
/// - `GET /api/schedules/{id}`, `PATCH /api/schedules/{id}` (name, message,
///   cron_expression, timezone, is_active, delivery_config) → the schedule;
///   `DELETE /api/schedules/{id}` → {"id", "deleted": true};
/// - `POST /api/schedules/{id}/run` → 202 {"task", "run", "created"};
/// - `GET /api/schedules/{id}/runs?cursor=&limit=` → {"runs": [...],
///   "next_cursor": "..." or null}.
/// Bad input (malformed JSON, wrong types, unknown fields, an invalid
/// expression or zone, a bad webhook URL, oversized fields) is answered
/// with 400 naming the field, unknown ids with 404; nothing is stored then.
void add_schedule_routes(router& r, schedule_route_deps deps);

/// A schedule as the API shows it (times in RFC 3339 UTC, null when unset).
[[nodiscard]] boost::json::object schedule_json(const schedules::job_info& j);

/// A run of a schedule as the API shows it.
[[nodiscard]] boost::json::object
schedule_run_json(const schedules::run_info& r);

} // namespace engram::http
