#pragma once

#include <caf/actor_system.hpp>

#include "messages/consolidation.hpp"
#include "storage/storage_actors.hpp"

namespace engram {

/// Spawns a detached PROJECT SESSION (see messages/consolidation.hpp) with
/// its own connection. It holds at most one project's lock at a time: a
/// begin_job while it holds one is refused (errc::conflict). When its
/// connection drops, the lock goes with it and every later phase_commit of
/// that job is refused with errc::conflict ("lost the project lock"), so a
/// phase never commits unguarded; the job's task retries it. A session
/// goes back to its pool holding no lock: a finish_job that cannot end the
/// job row still gives the lock back (the row stays running; a re-run
/// resumes it), and a begin_job first drops any lock left behind.
[[nodiscard]] project_session_actor
spawn_project_session(caf::actor_system& sys, storage_options options);

} // namespace engram
