#pragma once

#include <chrono>
#include <functional>

#include <caf/fwd.hpp>

#include "http/admin_routes.hpp"

namespace engram::http {

/// Answers /readyz by asking the storage pool (looked up in the actor
/// registry) for the schema status: ready when the database answers and its
/// schema is the one this binary knows. Never blocks: `done` is called once,
/// from an actor thread, within `timeout`.
void probe_readiness(caf::actor_system& sys, std::chrono::milliseconds timeout,
                     std::function<void(readiness)> done);

} // namespace engram::http
