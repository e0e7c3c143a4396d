#pragma once

// The CONSOLIDATION COORDINATOR (DESIGN §1, §6). It admits jobs and dry
// runs, at most one per project session at a time (the bound on projects in
// flight; the rest wait in arrival order), never two of one project on this
// node (a later job of a project waits for the earlier one), and moves each
// project through the phase actors: begin the job on its session (the
// project's advisory lock), load the snapshot once, hand the project from
// phase actor to phase actor (each commits its own phase), invalidate the
// hot-memory cache of the agents whose memories changed, end the job.
//
// Job outcomes (the job row says each):
// - completed: every selected phase committed.
// - cancelled: the project does not exist or has consolidation disabled;
//   nothing was changed. Answered as a value: a retry would change nothing.
// - failed: a phase failed (the message names it; earlier phases stay
//   committed) or the project's config is invalid. Answered as an error,
//   so the task's retry policy applies; a retry resumes after the last
//   committed phase.
// A job that another node is running (its project locked) is refused with
// errc::conflict and left as it is.
//
// A resumed job (some phases committed before a crash) invalidates the
// cache of every agent of the project: which agents the earlier phases
// changed was lost with the crash.

#include <map>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "messages/cache.hpp"
#include "messages/consolidation.hpp"
#include "messages/storage.hpp"
#include "runtime/clock.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram {

struct coordinator_options {
  /// One per project in flight (the bound). Required, at least one.
  std::vector<project_session_actor> sessions;
  /// The phase actors by phase name (patterns … decay).
  std::map<std::string, phase_actor> phases;
  /// Reads projects for dry runs. Unset: the storage pool in the actor
  /// registry, looked up at each use (so a restarted pool is found).
  storage_actor storage;
  /// Invalidated after a job's phases. Unset: this node's hot cache in the
  /// actor registry, looked up at each use; none running: no invalidation.
  hot_cache_actor cache;
  const clock* time = &real_clock();
  /// engram_consolidation_jobs_total{status},
  /// engram_consolidation_phase_seconds{phase} (a phase's plan and commit),
  /// engram_consolidation_projects{state="in_flight"|"waiting"}; null: none.
  metrics::registry* metrics = nullptr;
};

/// Spawns the coordinator; it links to the sessions and phase actors.
[[nodiscard]] consolidation_actor
spawn_consolidation_coordinator(caf::actor_system& sys,
                                coordinator_options options);

} // namespace engram
