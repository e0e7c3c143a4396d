#pragma once

// A PHASE ACTOR (DESIGN §1, §6): one detached actor per phase, so the
// CPU-heavy planning never runs on the cooperative scheduler's threads and
// different projects are in different phases at the same time. For each
// project it is handed it builds the snapshot when the project arrives
// fresh from its load, plans its phase (stage.hpp), commits the changes on
// the project's session (a real run) or records the plan (a dry run),
// applies the phase to the snapshot, and hands the project back to the
// coordinator. While one project's commit is in flight it already plans the
// next project.

#include <string>

#include <caf/actor_system.hpp>

#include "actors/consolidation/stage.hpp"
#include "messages/consolidation.hpp"

namespace engram {

[[nodiscard]] phase_actor
spawn_phase_actor(caf::actor_system& sys, std::string phase,
                  consolidation::phase_services services);

} // namespace engram
