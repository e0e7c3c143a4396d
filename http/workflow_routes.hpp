#pragma once

#include <chrono>
#include <filesystem>

#include <boost/json/object.hpp>
#include <caf/actor_system.hpp>

#include "http/router.hpp"
#include "messages/workflows.hpp"

namespace engram::http {

struct workflow_route_deps {
  caf::actor_system* sys = nullptr;
  /// How long a request waits for the workflow actor or storage.
  std::chrono::milliseconds timeout{10000};
  /// Where artifacts are kept (downloads are served from below it).
  std::filesystem::path artifact_root;
};

/// The workflow API (DESIGN §7, §8). The workflow actor (registry key
/// `workflows_name`) and the storage pool are looked up at each request.
/// - `GET /api/workflows` → {"workflows": [definitions]}.
/// - `POST /api/workflows/{name}/runs` (body: the run's input, a JSON
///   object; empty = {}; optional `Idempotency-Key` header, 1..200 visible
///   ASCII characters) → 202 with the new run, or 200 with the run the key
///   or the derived branch name already names ("created": false).
/// - `GET /api/workflows/runs?workflow=&status=&cursor=&limit=` →
///   {"runs": [...], "next_cursor": "..." or null}, newest first; a cursor
///   stays valid while runs are added.
/// - `GET /api/workflows/runs/{id}` → the run with "steps" (every step
///   attempt, oldest first; the run's step names are in "step_names").
/// - `GET /api/workflows/runs/{id}/tasks` → {"tasks": [attempts]}.
/// - `GET /api/workflows/runs/{id}/artifacts` → {"artifacts": [...]}.
/// - `GET /api/workflows/runs/{id}/artifacts/{artifact_id}` → the file,
///   with its content type and `X-Engram-SHA256`; nothing outside the run's
///   folder can be reached, whatever the stored path says.
/// - `GET /api/workflows/runs/{id}/audits` → {"audits": [credential
///   checks]}.
/// - `POST /api/workflows/runs/{id}/cancel` → 200 with the run; 409 when it
///   already ended.
/// - `POST /api/workflows/runs/{id}/retry` ({"note": "..."} optional) → 202
///   with the run; 409 when it is not failed; 422 naming what to set when
///   its missing credential is still missing.
/// Unknown runs are 404; malformed input 400 naming the field.
void add_workflow_routes(router& r, workflow_route_deps deps);

/// A run as the API shows it.
[[nodiscard]] boost::json::object
workflow_run_json(const workflows::run_record& run);

/// A step attempt as the API shows it.
[[nodiscard]] boost::json::object
workflow_step_json(const workflows::step_record& step);

} // namespace engram::http
