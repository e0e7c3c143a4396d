#pragma once

#include <functional>
#include <string>

#include "http/router.hpp"
#include "runtime/metrics.hpp"

namespace engram::http {

/// Whether the daemon can serve requests, and if not, why.
struct readiness {
  bool ready = false;
  /// Why not, for the operator, e.g. "database unreachable: ..." or "schema
  /// at version 3, binary needs 5".
  std::string reason;
};

/// What the admin routes need, as plain functions so that http/ does not
/// depend on actors and is testable without them.
struct admin_deps {
  /// Checks readiness asynchronously and calls back once, from any thread.
  std::function<void(std::function<void(readiness)>)> check_ready;
  /// Rendered by /metrics; outlives the server.
  metrics::registry* metrics = nullptr;
  /// Reported by /api/version.
  std::string version;
  std::string git_commit;
  std::string build_type;
  std::string node_name;
};

/// Registers the skeleton's routes:
/// - `GET /healthz`: 200 `{"status":"ok"}` while the process serves HTTP;
/// - `GET /readyz`: 200 `{"status":"ready"}` or 503 with code `not_ready`;
/// - `GET /metrics`: the registry in Prometheus text format;
/// - `GET /api/version`: `{"version","git_commit","build_type","node"}`.
/// Throws std::logic_error if `check_ready` or `metrics` is missing.
void add_admin_routes(router& r, admin_deps deps);

} // namespace engram::http
