#include "actors/consolidation/phase_actor.hpp"

#include <algorithm>
#include <chrono>

#include <boost/json.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/vector_kernel.hpp"
#include "runtime/log.hpp"

namespace engram {

namespace {

using namespace consolidation;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("consolidation");
  return result;
}

struct phase_state {
  std::string phase;
  phase_services services;
  static inline const char* name = "consolidation_phase";
};

using phase_ptr = phase_actor::stateful_pointer<phase_state>;

/// Adds `more` to the sorted set `agents`.
void merge_agents(std::vector<std::string>& agents,
                  const std::vector<std::string>& more) {
  agents.insert(agents.end(), more.begin(), more.end());
  std::sort(agents.begin(), agents.end());
  agents.erase(std::unique(agents.begin(), agents.end()), agents.end());
}

/// Records a dry run's plan of `phase` in `w.plan_json`.
void add_plan(stage_work& w, const std::string& phase,
              const prepared_phase& p) {
  auto plans = boost::json::parse(w.plan_json).as_object();
  plans[phase] = boost::json::parse(p.plan_json);
  w.plan_json = boost::json::serialize(plans);
}

/// Runs the actor's phase on one project (see the top of the header).
caf::result<stage_work> run_phase(phase_ptr self, stage_work& w,
                                  project_session_actor& session) {
  const auto& phase = self->state.phase;
  auto started = std::chrono::steady_clock::now();
  bool fresh = w.snap == nullptr;
  if (fresh) {
    if (w.loaded == nullptr)
      return make_error(errc::invalid_argument,
                        "a project reached phase " + phase
                          + " without its snapshot");
    w.snap = std::make_shared<snapshot>(make_snapshot(
      w.job.project_id, w.as_of_us, std::move(*w.loaded)));
    w.loaded.reset();
  }
  auto built = std::chrono::steady_clock::now();
  auto cfg = settings_from_json(w.settings_json);
  if (!cfg)
    return cfg.error();
  vec::reset_counters();
  auto prepared = prepare_phase(phase, *w.snap, *cfg, self->state.services);
  if (!prepared)
    return make_error(code_of(prepared.error()),
                      "phase " + phase + ": "
                        + message_of(prepared.error()));
  // Where the time went: planning (kernel included) and providers, the
  // kernel's share; the first phase also the snapshot's build.
  auto kernel = vec::counters();
  auto metrics = boost::json::parse(prepared->commit.metrics_json)
                   .as_object();
  metrics["plan_ms"] = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - built)
                         .count();
  metrics["kernel_gflop"] = kernel.flops * 1e-9;
  metrics["kernel_seconds"] = kernel.seconds;
  if (fresh)
    metrics["snapshot_build_ms"]
      = std::chrono::duration<double, std::milli>(built - started).count();
  prepared->commit.metrics_json = boost::json::serialize(metrics);
  merge_agents(w.agents_changed, prepared->agents_changed);
  if (w.dry_run) {
    if (auto err = prepared->apply(*w.snap))
      return err;
    add_plan(w, phase, *prepared);
    ++w.next;
    return std::move(w);
  }
  auto commit = std::move(prepared->commit);
  commit.job_id = w.job.id;
  commit.project_id = w.job.project_id;
  const clock& clk = self->state.services.clk != nullptr
                       ? *self->state.services.clk
                       : real_clock();
  commit.now_us = to_epoch_us(clk.now());
  auto rp = self->make_response_promise<stage_work>();
  self->request(session, caf::infinite, std::move(commit))
    .then(
      [self, rp, w = std::move(w), apply = std::move(prepared->apply),
       started](job_record& job) mutable {
        const auto& phase = self->state.phase;
        caf::error err;
        try {
          err = apply(*w.snap);
        } catch (const std::exception& e) {
          err = make_error(errc::unspecified, e.what());
        }
        if (err) {
          rp.deliver(make_error(code_of(err), "phase " + phase
                                                + " committed but: "
                                                + message_of(err)));
          return;
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
        logger()->info("job {} project {}: phase {} committed in {} ms",
                       job.id, job.project_id, phase, ms);
        w.job = std::move(job);
        ++w.next;
        rp.deliver(std::move(w));
      },
      [self, rp](caf::error& err) mutable {
        rp.deliver(make_error(code_of(err),
                              "phase " + self->state.phase + ": "
                                + message_of(err)));
      });
  return rp;
}

phase_actor::behavior_type phase_behavior(phase_ptr self, std::string phase,
                                          phase_services services) {
  self->state.phase = std::move(phase);
  self->state.services = std::move(services);
  return {
    [self](stage_work& w, project_session_actor& session)
      -> caf::result<stage_work> {
      // An exception (a provider's, a malformed plan) fails this project's
      // phase, not the actor and the pipeline linked to it.
      try {
        return run_phase(self, w, session);
      } catch (const std::exception& e) {
        return make_error(errc::unspecified,
                          "phase " + self->state.phase + ": " + e.what());
      }
    },
  };
}

} // namespace

phase_actor spawn_phase_actor(caf::actor_system& sys, std::string phase,
                              phase_services services) {
  return sys.spawn<caf::detached>(phase_behavior, std::move(phase),
                                  std::move(services));
}

} // namespace engram
