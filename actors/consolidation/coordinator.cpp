#include "actors/consolidation/coordinator.hpp"

#include <algorithm>
#include <deque>
#include <memory>
#include <set>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/consolidation/settings.hpp"
#include "actors/consolidation/snapshot.hpp"
#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"
#include "runtime/ascii.hpp"

namespace engram {

namespace {

using namespace consolidation;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("consolidation");
  return result;
}

/// A request waiting for a session.
struct pending {
  bool dry = false;
  run_job run;
  dry_run_request dry_run;
  caf::typed_response_promise<job_record> run_rp;
  caf::typed_response_promise<dry_run_result> dry_rp;

  [[nodiscard]] const std::string& project() const {
    return dry ? dry_run.project_id : run.project_id;
  }
};

/// A project in flight.
struct flight {
  pending request;
  project_session_actor session;
  stage_work work;
  /// When the current phase was handed to its actor.
  std::chrono::steady_clock::time_point phase_started;
  /// Some phases were committed before this run (a resumed job).
  bool resumed = false;
  /// The job as begun: `work` is handed to each phase actor and is gone
  /// from here while the phase runs, so a failed phase is ended with these.
  std::string job_id;
  std::string project_id;
  /// Agents whose memories the phases committed so far changed.
  std::vector<std::string> agents_changed;
};

using flight_ptr = std::shared_ptr<flight>;

struct coordinator_state {
  coordinator_options options;
  std::vector<project_session_actor> idle;
  std::deque<pending> waiting;
  std::set<std::string> busy_projects;
  int64_t completed = 0;
  int64_t failed = 0;
  metrics::gauge* in_flight_gauge = nullptr;
  metrics::gauge* waiting_gauge = nullptr;
  static inline const char* name = "consolidation_coordinator";

  void count_job(const std::string& status) {
    if (options.metrics != nullptr)
      options.metrics
        ->get_counter("engram_consolidation_jobs_total",
                      "Consolidation jobs ended, by outcome.",
                      {{"status", status}})
        .inc();
  }

  void observe_phase(const std::string& phase, double seconds) {
    if (options.metrics != nullptr)
      options.metrics
        ->get_histogram("engram_consolidation_phase_seconds",
                        "Time of one consolidation phase of one project "
                        "(planning, providers and commit).",
                        {{"phase", phase}})
        .observe(seconds);
  }

  void update_gauges() {
    if (in_flight_gauge == nullptr)
      return;
    in_flight_gauge->set(
      static_cast<double>(options.sessions.size() - idle.size()));
    waiting_gauge->set(static_cast<double>(waiting.size()));
  }
};

using coordinator_ptr = consolidation_actor::stateful_pointer<coordinator_state>;

/// The cache to invalidate: the configured one, else this node's (looked
/// up at each use, so a restarted cache is found); may be invalid.
hot_cache_actor cache_of(coordinator_ptr self) {
  if (self->state.options.cache)
    return self->state.options.cache;
  return self->system().registry().get<hot_cache_actor>(
    caf::atom(hot_cache_name));
}

/// The storage to read projects from, found the same way.
storage_actor storage_of(coordinator_ptr self) {
  if (self->state.options.storage)
    return self->state.options.storage;
  return self->system().registry().get<storage_actor>(
    caf::atom(storage_pool_name));
}

int64_t now_us(coordinator_ptr self) {
  return to_epoch_us(self->state.options.time->now());
}

/// The phases a job selected and its as_of (0: none given).
struct job_options {
  std::vector<std::string> phases;
  int64_t as_of_us = 0;
};

job_options options_of(const job_record& job) {
  job_options out;
  boost::system::error_code ec;
  auto v = boost::json::parse(job.options_json, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    if (auto* p = o.if_contains("phases"); p != nullptr && p->is_array())
      for (const auto& x : p->as_array())
        if (x.is_string())
          out.phases.emplace_back(x.as_string());
    if (auto* t = o.if_contains("as_of_us"); t != nullptr && t->is_int64())
      out.as_of_us = t->as_int64();
  }
  if (out.phases.empty())
    out.phases = phase_names();
  return out;
}

void pump(coordinator_ptr self);

/// Frees the flight's session and project, then admits what waits.
void land(coordinator_ptr self, const flight_ptr& f) {
  auto& st = self->state;
  st.busy_projects.erase(f->request.project());
  st.idle.push_back(f->session);
  pump(self);
  st.update_gauges();
}

/// Ends a real job with `status` (and `error`), answers its requester and
/// lands it.
void end_job(coordinator_ptr self, flight_ptr f, std::string status,
             std::string error, caf::error cause = {}) {
  finish_job req;
  req.job_id = f->job_id;
  req.project_id = f->project_id;
  req.status = status;
  // The cache of the agents the committed phases changed goes now (a
  // resumed job's earlier phases: every agent) unless the invalidate phase
  // did it: a job that fails after some phases committed, and a job that
  // did not select the invalidate phase, still leave no stale cache.
  bool invalidated = status == "completed"
                     && std::find(f->work.phases.begin(),
                                  f->work.phases.end(), "invalidate")
                          != f->work.phases.end();
  if (status != "cancelled" && !invalidated && cache_of(self)
      && (f->resumed || !f->agents_changed.empty()))
    self->send(cache_of(self),
               cache::invalidate_agents{
                 f->project_id, f->resumed ? std::vector<std::string>{std::string{}}
                                           : f->agents_changed});
  req.error = error;
  req.now_us = now_us(self);
  self->request(f->session, caf::infinite, std::move(req))
    .then(
      [self, f, status, error, cause](job_record& job) mutable {
        self->state.count_job(status);
        if (status == "failed") {
          ++self->state.failed;
          logger()->warn("job {} project {} failed: {}", job.id,
                         job.project_id, error);
          f->request.run_rp.deliver(
            cause ? std::move(cause) : make_error(errc::unspecified, error));
        } else {
          ++self->state.completed;
          logger()->info("job {} project {} {} in {} ms", job.id,
                         job.project_id, job.status, job.duration_ms);
          f->request.run_rp.deliver(std::move(job));
        }
        land(self, f);
      },
      [self, f](caf::error& err) {
        ++self->state.failed;
        self->state.count_job("failed");
        f->request.run_rp.deliver(std::move(err));
        land(self, f);
      });
}

void next_stage(coordinator_ptr self, flight_ptr f);

/// The invalidate phase: the cache of the agents whose memories changed.
void invalidate(coordinator_ptr self, flight_ptr f) {
  auto& w = f->work;
  std::vector<std::string> agents = w.agents_changed;
  if (f->resumed)
    agents = {std::string{}}; // every agent of the project
  if (auto cache = cache_of(self); !w.dry_run && cache)
    self->send(cache,
               cache::invalidate_agents{w.job.project_id, agents});
  boost::json::object metrics;
  boost::json::array list;
  for (const auto& a : agents)
    list.emplace_back(a.empty() ? boost::json::value("*")
                                : boost::json::value(a));
  metrics["agents_invalidated"] = std::move(list);
  if (w.dry_run) {
    auto plans = boost::json::parse(w.plan_json).as_object();
    boost::json::object entry;
    entry["phase"] = "invalidate";
    entry["metrics"] = std::move(metrics);
    plans["invalidate"] = std::move(entry);
    w.plan_json = boost::json::serialize(plans);
    ++w.next;
    next_stage(self, f);
    return;
  }
  phase_commit commit;
  commit.job_id = w.job.id;
  commit.project_id = w.job.project_id;
  commit.phase = "invalidate";
  commit.metrics_json = boost::json::serialize(metrics);
  commit.now_us = now_us(self);
  self->request(f->session, caf::infinite, std::move(commit))
    .then(
      [self, f](job_record& job) {
        f->work.job = std::move(job);
        ++f->work.next;
        next_stage(self, f);
      },
      [self, f](caf::error& err) {
        end_job(self, f, "failed", "phase invalidate: " + message_of(err),
                err);
      });
}

/// Answers a dry run and lands it.
void end_dry_run(coordinator_ptr self, flight_ptr f) {
  const auto& w = f->work;
  boost::json::object out;
  out["project_id"] = w.job.project_id;
  out["dry_run"] = true;
  out["as_of"] = format_utc(from_epoch_us(w.as_of_us));
  boost::json::array phases;
  for (const auto& p : w.phases)
    phases.emplace_back(p);
  out["phases"] = std::move(phases);
  out["memories_loaded"] = w.snap ? w.snap->memories.size() : 0;
  out["plan"] = boost::json::parse(w.plan_json);
  f->request.dry_rp.deliver(dry_run_result{boost::json::serialize(out)});
  land(self, f);
}

void next_stage(coordinator_ptr self, flight_ptr f) {
  auto& w = f->work;
  if (w.next >= w.phases.size()) {
    if (w.dry_run)
      end_dry_run(self, f);
    else
      end_job(self, f, "completed", "");
    return;
  }
  const auto& phase = w.phases[w.next];
  if (phase == "invalidate") {
    invalidate(self, f);
    return;
  }
  auto actor = self->state.options.phases.find(phase);
  if (actor == self->state.options.phases.end()) {
    auto msg = "phase " + phase + ": no actor runs it";
    if (w.dry_run) {
      f->request.dry_rp.deliver(make_error(errc::invalid_argument, msg));
      land(self, f);
    } else {
      end_job(self, f, "failed", msg);
    }
    return;
  }
  f->phase_started = std::chrono::steady_clock::now();
  self->request(actor->second, caf::infinite, std::move(w), f->session)
    .then(
      [self, f](stage_work& done) {
        if (!done.dry_run && done.next > 0)
          self->state.observe_phase(
            done.phases[done.next - 1],
            std::chrono::duration<double>(std::chrono::steady_clock::now()
                                          - f->phase_started)
              .count());
        f->work = std::move(done);
        f->agents_changed = f->work.agents_changed;
        next_stage(self, f);
      },
      [self, f](caf::error& err) {
        if (f->work.dry_run) {
          f->request.dry_rp.deliver(std::move(err));
          land(self, f);
          return;
        }
        end_job(self, f, "failed", message_of(err), err);
      });
}

/// Loads the flight's snapshot, then runs its phases.
void load_and_run(coordinator_ptr self, flight_ptr f) {
  self->request(f->session, caf::infinite,
                load_snapshot{f->work.job.project_id})
    .then(
      [self, f](snapshot_data& data) {
        f->work.loaded = std::make_shared<snapshot_data>(std::move(data));
        next_stage(self, f);
      },
      [self, f](caf::error& err) {
        if (f->work.dry_run) {
          f->request.dry_rp.deliver(std::move(err));
          land(self, f);
          return;
        }
        end_job(self, f, "failed", "loading the snapshot: " + message_of(err),
                err);
      });
}

void start_run(coordinator_ptr self, flight_ptr f) {
  begin_job req{f->request.run.job_id, now_us(self)};
  self->request(f->session, caf::infinite, std::move(req))
    .then(
      [self, f](job_start& start) {
        auto& job = start.job;
        if (job.status != "running") { // completed or cancelled before
          f->request.run_rp.deliver(std::move(job));
          land(self, f);
          return;
        }
        f->work.job = job;
        f->job_id = job.id;
        f->project_id = job.project_id;
        if (!start.project_found) {
          end_job(self, f, "cancelled",
                  "project " + job.project_id
                    + " does not exist; nothing was done");
          return;
        }
        if (!start.consolidation_enabled) {
          end_job(self, f, "cancelled",
                  "consolidation is disabled for project " + job.project_id
                    + "; nothing was done");
          return;
        }
        auto cfg = settings_from_json(start.config_json);
        if (!cfg) {
          end_job(self, f, "failed",
                  "the project's consolidation_config is invalid: "
                    + message_of(cfg.error()),
                  cfg.error());
          return;
        }
        auto opts = options_of(job);
        auto& w = f->work;
        for (const auto& p : opts.phases)
          if (std::find(job.phases_completed.begin(),
                        job.phases_completed.end(), p)
              == job.phases_completed.end())
            w.phases.push_back(p);
        f->resumed = !job.phases_completed.empty();
        w.as_of_us = opts.as_of_us != 0 ? opts.as_of_us : job.started_at_us;
        w.settings_json = to_json(*cfg);
        bool needs_snapshot = std::any_of(
          w.phases.begin(), w.phases.end(),
          [](const std::string& p) { return p != "invalidate"; });
        if (needs_snapshot)
          load_and_run(self, f);
        else
          next_stage(self, f);
      },
      [self, f](caf::error& err) {
        ++self->state.failed;
        f->request.run_rp.deliver(std::move(err));
        land(self, f);
      });
}

void start_dry_run(coordinator_ptr self, flight_ptr f) {
  const auto& req = f->request.dry_run;
  self->request(storage_of(self), caf::infinite,
                memories::get_project_request{req.project_id})
    .then(
      [self, f](memories::project_record& project) {
        auto cfg = settings_from_json(project.consolidation_config_json);
        if (!cfg) {
          f->request.dry_rp.deliver(cfg.error());
          land(self, f);
          return;
        }
        auto& w = f->work;
        const auto& req = f->request.dry_run;
        w.dry_run = true;
        w.job.project_id = project.id;
        const auto& all = phase_names();
        for (const auto& p : all)
          if (req.phases.empty()
              || std::find(req.phases.begin(), req.phases.end(), p)
                   != req.phases.end())
            w.phases.push_back(p);
        w.as_of_us = req.as_of_us != 0 ? req.as_of_us : now_us(self);
        w.settings_json = to_json(*cfg);
        load_and_run(self, f);
      },
      [self, f](caf::error& err) {
        f->request.dry_rp.deliver(std::move(err));
        land(self, f);
      });
}

void pump(coordinator_ptr self) {
  auto& st = self->state;
  while (!st.idle.empty()) {
    auto it = std::find_if(st.waiting.begin(), st.waiting.end(),
                           [&](const pending& p) {
                             return st.busy_projects.count(p.project()) == 0;
                           });
    if (it == st.waiting.end())
      return;
    auto f = std::make_shared<flight>();
    f->request = std::move(*it);
    st.waiting.erase(it);
    f->session = st.idle.back();
    st.idle.pop_back();
    st.busy_projects.insert(f->request.project());
    if (f->request.dry)
      start_dry_run(self, f);
    else
      start_run(self, f);
  }
}

consolidation_actor::behavior_type coordinator(coordinator_ptr self,
                                               coordinator_options options) {
  auto& st = self->state;
  st.options = std::move(options);
  st.idle = st.options.sessions;
  if (st.options.metrics != nullptr) {
    const char* help = "Consolidation projects on this node, in flight or "
                       "waiting for a session.";
    st.in_flight_gauge = &st.options.metrics->get_gauge(
      "engram_consolidation_projects", help, {{"state", "in_flight"}});
    st.waiting_gauge = &st.options.metrics->get_gauge(
      "engram_consolidation_projects", help, {{"state", "waiting"}});
  }
  for (auto& s : st.options.sessions)
    self->link_to(s);
  for (auto& [name, actor] : st.options.phases)
    self->link_to(actor);
  return {
    [self](run_job& req) -> caf::result<job_record> {
      pending p;
      p.run = std::move(req);
      p.run.project_id = ascii_lower(p.run.project_id);
      p.run_rp = self->make_response_promise<job_record>();
      auto rp = p.run_rp;
      self->state.waiting.push_back(std::move(p));
      pump(self);
      self->state.update_gauges();
      return rp;
    },
    [self](dry_run_request& req) -> caf::result<dry_run_result> {
      pending p;
      p.dry = true;
      p.dry_run = std::move(req);
      p.dry_run.project_id = ascii_lower(p.dry_run.project_id);
      p.dry_rp = self->make_response_promise<dry_run_result>();
      auto rp = p.dry_rp;
      self->state.waiting.push_back(std::move(p));
      pump(self);
      return rp;
    },
    [self](atom::stats) {
      const auto& st = self->state;
      coordinator_stats out;
      out.capacity = static_cast<int64_t>(st.options.sessions.size());
      out.in_flight = out.capacity - static_cast<int64_t>(st.idle.size());
      out.waiting = static_cast<int64_t>(st.waiting.size());
      out.completed = st.completed;
      out.failed = st.failed;
      return out;
    },
  };
}

} // namespace

consolidation_actor
spawn_consolidation_coordinator(caf::actor_system& sys,
                                coordinator_options options) {
  return sys.spawn(coordinator, std::move(options));
}

} // namespace engram
