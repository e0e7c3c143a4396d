#pragma once

// A CHAIN ACTOR runs the steps of one workflow run on this node (DESIGN
// §7), one attempt at a time, for the `workflow.step` tasks the workflow
// actor hands it. For each attempt it:
// 1. checks the step's credentials (audited, never the secret);
// 2. records the attempt as running (storage begin_step) — or learns that
//    there is nothing to do (the run moved on, was cancelled) or that a
//    credential is missing (the run is failed with what to provide);
// 3. runs the step's command as a child process in its own process group:
//    cwd = the run's workspace `<artifact_root>/<run>/.workspace`, env
//    ENGRAM_RUN_ID, ENGRAM_WORKFLOW, ENGRAM_STEP, ENGRAM_ATTEMPT,
//    ENGRAM_ARTIFACT_DIR (`<artifact_root>/<run>/<step>/<attempt>`) and
//    ENGRAM_WORKSPACE, stdin = the previous step's JSON result (kept as
//    stdin.json), stdout → stdout.json, stderr → stderr.log;
// 4. on the step's timeout or a cancel, stops the whole group (SIGTERM,
//    then SIGKILL after the kill grace);
// 5. records the outcome with every file of the attempt's folder as an
//    artifact (size, SHA-256) and, in the same transaction, the next task:
//    the next step, or this step's next try after its backoff (storage
//    finish_step). Only then does it answer the task.
//
// The actor is detached (its own thread): hashing artifacts and reading
// outputs may block it, and a child's parent-death signal is tied to the
// thread that started it, which lives as long as the actor. It stops after
// a short idle time.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/workflows/definition.hpp"
#include "messages/storage.hpp"
#include "runtime/clock.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram::workflows {

/// What every chain of a node shares (read-only once chains run).
struct chain_config {
  std::map<std::string, workflow_definition, std::less<>> definitions;
  std::filesystem::path artifact_root;
  /// Queue of the `workflow.step` tasks.
  std::string queue = "workflows";
  std::chrono::milliseconds kill_grace{5000};
  size_t max_output_bytes = 16u << 20;
  /// Bound on each storage request.
  std::chrono::milliseconds request_timeout{30000};
  /// A chain with nothing to do stops after this long.
  std::chrono::milliseconds idle_timeout{2000};
  /// Unset: the storage pool in the actor registry, looked up at each use.
  storage_actor storage;
  const clock* time = &real_clock();
  /// engram_workflow_steps_total{workflow,step,outcome},
  /// engram_workflow_step_seconds{workflow,step},
  /// engram_workflow_step_retries_total{workflow,step},
  /// engram_workflow_runs_total{workflow,status}; null: none.
  metrics::registry* metrics = nullptr;

  [[nodiscard]] const workflow_definition* find(std::string_view name) const;
};

/// Sent by an idle chain to its parent (the workflow actor), which stops
/// routing to it and answers with chain_quit; a chain that got new work in
/// between ignores the chain_quit and asks again when idle.
struct chain_idle {
  std::string run_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, chain_idle& x) {
  return f(caf::meta::type_name("chain_idle"), x.run_id);
}

struct chain_quit {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, chain_quit&) {
  return f(caf::meta::type_name("chain_quit"));
}

/// Counts a run reaching `status` (engram_workflow_runs_total).
void count_run(const chain_config& cfg, const std::string& workflow,
               const std::string& status);

/// The storage actor `cfg` names, or the registry's.
[[nodiscard]] storage_actor storage_for(caf::actor_system& sys,
                                        const chain_config& cfg);

/// Spawns the (detached) chain actor of `run_id`, linked to `parent`. It
/// answers workflows::run_step with a workflows::step_report, reacts to
/// workflows::stop_step, and sends chain_idle to `parent` when idle.
[[nodiscard]] caf::actor spawn_chain(caf::actor_system& sys,
                                     std::shared_ptr<const chain_config> cfg,
                                     std::string run_id, caf::actor parent);

} // namespace engram::workflows
