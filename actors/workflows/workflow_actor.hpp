#pragma once

// The WORKFLOW ACTOR (registry key `workflows_name`, DESIGN §7): starts,
// cancels and retries runs, and hands each `workflow.step` task to the
// chain actor of its run (actors/workflows/chain_actor.hpp), spawning it
// when the run has none on this node. It supervises the chains: a chain
// that fails is dropped (the task that waited on it fails and is retried,
// which runs the step again), and when this actor stops every chain stops
// with it, killing the process group of any step still running.
//
// - start_run: not_found for an unknown workflow; invalid_argument for an
//   input that is not a JSON object or lacks a field the branch name needs.
//   The run and its first step's task are created in one transaction; a
//   start with the same idempotency key, or one that derives the same
//   branch name as a live run, returns that run (created = false).
// - cancel_request: the run is cancelled at once; a step running on this
//   node is stopped; one running elsewhere is stopped through its task's
//   cancel (cooperative: the worker that runs it stops it).
// - retry_request: a failed run resumes at its failed step with a new run
//   attempt; conflict when the run is not failed; unprocessable, naming
//   what to set, when it failed for a credential that is still missing
//   (the check is audited).

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/workflows/chain_actor.hpp"
#include "messages/workflows.hpp"

namespace engram {

[[nodiscard]] workflow_actor
spawn_workflow_actor(caf::actor_system& sys,
                     std::shared_ptr<const workflows::chain_config> cfg);

} // namespace engram
