#include "actors/scheduler/scheduler.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/scheduler/job_rules.hpp"
#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"

namespace engram {

namespace {

using namespace schedules;
using sched::sys_seconds;
using steady = std::chrono::steady_clock;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("scheduler");
  return result;
}

/// How often a patch is re-read and merged again when the job changed in
/// between.
constexpr int patch_attempts = 3;

struct entry_plan {
  sched::static_entry def;
  /// None: the entry's expression or zone is invalid; it never fires.
  std::optional<sched::timing> timing;
  /// The first unfired slot, known once the leader loaded the state.
  std::optional<sys_seconds> next;
  std::optional<sys_seconds> last_fire;
  /// No fire before this instant (after an error).
  steady::time_point retry_after{};
  metrics::counter* fires = nullptr;
  metrics::counter* misfires = nullptr;

  [[nodiscard]] bool active() const { return def.enabled && timing; }
};

struct job_plan {
  job_info job;
  sched::timing timing;
  std::optional<sys_seconds> next;
  /// Its next_run_at is NULL, or not a slot of its expression: the leader
  /// sets the first slot after now.
  bool needs_next = false;
  steady::time_point retry_after{};
};

struct scheduler_state {
  scheduler_options options;
  schedule_store_actor store;
  notification_listener_actor listener;
  bool leader = false;
  /// A scheduling request to the store is in flight (one at a time).
  bool busy = false;
  bool static_loaded = false;
  bool jobs_loaded = false;
  bool jobs_dirty = true;
  steady::time_point next_lead_check{};
  steady::time_point next_reload{};
  std::vector<entry_plan> entries;
  std::map<std::string, job_plan> jobs;
  /// "id|expression|zone" of invalid jobs already warned about.
  std::set<std::string> warned;
  int64_t invalid_jobs = 0;
  int64_t fires = 0;
  int64_t misfires = 0;
  metrics::gauge* leader_gauge = nullptr;
  metrics::counter* job_fires = nullptr;
  metrics::counter* job_misfires = nullptr;

  static inline const char* name = "scheduler";
};

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;

void step(self_ptr self);

sys_seconds now_seconds(const scheduler_state& st) {
  return sched::to_seconds(st.options.time->now());
}

int64_t now_us(const scheduler_state& st) {
  return to_epoch_us(st.options.time->now());
}

tasks::enqueue_request task_for(const scheduler_state& st,
                                const std::string& name) {
  if (st.options.task_defaults)
    return st.options.task_defaults(name);
  tasks::enqueue_request req;
  req.name = name;
  return req;
}

void set_leader(self_ptr self, bool leader) {
  auto& st = self->state;
  if (st.leader == leader)
    return;
  st.leader = leader;
  if (st.leader_gauge != nullptr)
    st.leader_gauge->set(leader ? 1 : 0);
  st.static_loaded = false;
  st.jobs_loaded = false;
  st.jobs_dirty = true;
  st.jobs.clear();
  for (auto& e : st.entries) {
    e.next.reset();
    e.last_fire.reset();
  }
  if (leader)
    logger()->info("this node is the scheduler's leader now");
  else
    logger()->warn("this node is no longer the scheduler's leader");
}

/// A store request failed: leadership is in doubt when the session may be
/// gone or the lock is not held; confirm it at once.
void on_store_error(self_ptr self, const caf::error& err, const char* what) {
  auto& st = self->state;
  auto code = code_of(err);
  if (code == errc::database_unavailable || code == errc::conflict
      || code == errc::timeout || err == caf::sec::request_timeout) {
    logger()->warn("{} failed: {}", what, describe(err));
    set_leader(self, false);
    st.next_lead_check = steady::now();
  } else {
    logger()->error("{} failed: {}", what, describe(err));
  }
}

/// Sends one scheduling request to the store (one at a time: `busy`), then
/// calls `on_reply` or `on_error` and looks for the next piece of work.
template <class Reply, class Request, class OnReply>
void ask_store(self_ptr self, Request req, const char* what, OnReply on_reply,
               std::function<void(caf::error&)> on_error = {}) {
  auto& st = self->state;
  st.busy = true;
  self->request(st.store, st.options.store_timeout, std::move(req))
    .then(
      [self, on_reply](Reply& reply) mutable {
        self->state.busy = false;
        on_reply(reply);
        step(self);
      },
      [self, what, on_error](caf::error& err) mutable {
        self->state.busy = false;
        on_store_error(self, err, what);
        if (on_error)
          on_error(err);
        step(self);
      });
}

// -- leadership ---------------------------------------------------------------

void check_lead(self_ptr self) {
  auto& st = self->state;
  st.next_lead_check = steady::now() + st.options.lock_retry;
  ask_store<leadership>(self, lead_request{}, "taking the scheduler lock",
            [self](leadership& l) { set_leader(self, l.leader); });
}

// -- static entries -----------------------------------------------------------

/// Starts every entry from its stored state (see sched::start_static) and
/// writes back what changed: new or re-timed entries, and disabled ones
/// that were scheduled.
void on_static_states(self_ptr self, std::vector<static_state>& rows) {
  auto& st = self->state;
  if (!st.leader)
    return;
  auto now = now_seconds(st);
  save_static_states save;
  save.now_us = now_us(st);
  for (auto& e : st.entries) {
    std::optional<static_state> stored;
    for (auto& row : rows)
      if (row.entry == e.def.name)
        stored = row;
    if (stored && stored->last_fire_us != 0)
      e.last_fire = sched::slot_of_us(stored->last_fire_us);
    if (!e.active()) {
      // Not scheduled while disabled: re-enabling starts afresh.
      e.next.reset();
      if (stored && stored->next_fire_us != 0)
        save.states.push_back({e.def.name, e.def.cron, e.def.timezone, 0, 0});
      continue;
    }
    auto start = sched::start_static(*e.timing, e.def, stored, now);
    e.next = start.next;
    if (start.save)
      save.states.push_back({e.def.name, e.def.cron, e.def.timezone, 0,
                             sched::slot_us(start.next)});
  }
  if (save.states.empty()) {
    st.static_loaded = true;
    return;
  }
  ask_store<bool>(self, std::move(save), "saving the static schedule state",
                  [self](bool) { self->state.static_loaded = true; });
}

void load_static(self_ptr self) {
  auto& st = self->state;
  load_static_states req;
  for (const auto& e : st.entries)
    req.entries.push_back(e.def.name);
  ask_store<std::vector<static_state>>(
    self, std::move(req), "loading the static schedule state",
    [self](std::vector<static_state>& rows) { on_static_states(self, rows); });
}

void fire_entry(self_ptr self, size_t index, sys_seconds now) {
  auto& st = self->state;
  auto& e = st.entries[index];
  auto plan = sched::plan(*e.timing, *e.next, now);
  if (!plan.fire)
    return;
  fire_static req;
  req.entry = e.def.name;
  req.cron_expression = e.def.cron;
  req.timezone = e.def.timezone;
  req.expected_next_us = sched::slot_us(e.next);
  req.fire_us = sched::slot_us(plan.fire);
  req.next_us = sched::slot_us(plan.next);
  req.misfire = plan.misfire;
  req.task = task_for(st, e.def.task_name);
  req.task.args_json = e.def.args_json.empty() ? "{}" : e.def.args_json;
  if (!e.def.queue.empty())
    req.task.queue = e.def.queue;
  req.task.unique_key = sched::fire_key(e.def.name, *plan.fire);
  req.now_us = now_us(st);
  auto missed_from = *e.next;
  ask_store<fire_result>(
    self, std::move(req), "firing a static schedule entry",
    [self, index, plan, missed_from](fire_result& r) {
      auto& st = self->state;
      if (!st.leader || index >= st.entries.size())
        return;
      auto& e = st.entries[index];
      if (r.outcome == fire_outcome::stale) {
        logger()->info("schedule entry {} changed underneath; reloading its "
                       "state",
                       e.def.name);
        st.static_loaded = false;
        return;
      }
      e.next = plan.next;
      e.last_fire = plan.fire;
      ++st.fires;
      if (e.fires != nullptr)
        e.fires->inc();
      if (plan.misfire) {
        ++st.misfires;
        if (e.misfires != nullptr)
          e.misfires->inc();
        logger()->warn("schedule entry {} missed its slots from {} to {}; "
                       "fired once for the latest",
                       e.def.name, sched::utc_text(missed_from),
                       sched::utc_text(*plan.fire));
      }
      logger()->info("schedule entry {} fired for {}: task {}{}", e.def.name,
                     sched::utc_text(*plan.fire), r.task_id,
                     r.task_created ? "" : " (already queued)");
    },
    [self, index](caf::error&) {
      auto& st = self->state;
      if (index < st.entries.size())
        st.entries[index].retry_after = steady::now() + st.options.lock_retry;
    });
}

// -- dynamic jobs -------------------------------------------------------------

void load_jobs(self_ptr self) {
  auto& st = self->state;
  st.jobs_dirty = false;
  st.next_reload = steady::now() + st.options.reload_interval;
  ask_store<std::vector<job_info>>(
    self, load_active_jobs{now_us(st)}, "loading the scheduled jobs",
    [self](std::vector<job_info>& jobs) {
      auto& st = self->state;
      if (!st.leader)
        return;
      std::map<std::string, job_plan> plans;
      int64_t invalid = 0;
      for (auto& job : jobs) {
        auto compiled = sched::compile(job.cron_expression, job.timezone);
        if (auto* err = std::get_if<std::string>(&compiled)) {
          ++invalid;
          auto key = job.id + "|" + job.cron_expression + "|" + job.timezone;
          if (st.warned.insert(key).second)
            logger()->warn("skipping scheduled job {} (\"{}\"): {}", job.id,
                           job.name, *err);
          continue;
        }
        job_plan p;
        p.timing = std::get<sched::timing>(std::move(compiled));
        p.next = sched::slot_of_us(job.next_run_at_us);
        p.needs_next = !p.next || !sched::is_slot(p.timing, *p.next);
        if (p.needs_next) {
          if (p.next)
            logger()->info("scheduled job {}: next_run_at {} is no slot of "
                           "\"{}\" in {}; rescheduling from now",
                           job.id, sched::utc_text(*p.next),
                           job.cron_expression, job.timezone);
          p.next.reset();
        }
        if (auto old = st.jobs.find(job.id); old != st.jobs.end())
          p.retry_after = old->second.retry_after;
        p.job = std::move(job);
        auto id = p.job.id;
        plans.emplace(std::move(id), std::move(p));
      }
      st.jobs = std::move(plans);
      st.invalid_jobs = invalid;
      st.jobs_loaded = true;
    });
}

void init_job_next(self_ptr self, job_plan& p) {
  auto& st = self->state;
  p.needs_next = false;
  auto next = sched::next_slot(p.timing, now_seconds(st));
  if (!next)
    return;
  set_job_next req{p.job.id,           p.job.cron_expression,
                   p.job.timezone,      p.job.next_run_at_us,
                   sched::slot_us(next), now_us(st)};
  auto id = p.job.id;
  ask_store<bool>(self, std::move(req), "scheduling a job",
            [self, id, next](bool updated) {
              auto& st = self->state;
              auto i = st.jobs.find(id);
              if (i == st.jobs.end())
                return;
              if (updated) {
                i->second.next = next;
                i->second.job.next_run_at_us = sched::slot_us(next);
              } else
                st.jobs_dirty = true;
            });
}

void fire_job_now(self_ptr self, job_plan& p, sys_seconds now) {
  auto& st = self->state;
  auto plan = sched::plan(p.timing, *p.next, now);
  if (!plan.fire)
    return;
  fire_job req;
  req.job_id = p.job.id;
  req.cron_expression = p.job.cron_expression;
  req.timezone = p.job.timezone;
  req.expected_next_us = sched::slot_us(p.next);
  req.fire_us = sched::slot_us(plan.fire);
  req.next_us = sched::slot_us(plan.next);
  req.task = task_for(st, st.options.job_task_name);
  req.task.unique_key = sched::fire_key(sched::job_entry(p.job.id), *plan.fire);
  req.now_us = now_us(st);
  auto id = p.job.id;
  auto missed_from = *p.next;
  ask_store<fire_result>(
    self, std::move(req), "firing a scheduled job",
    [self, id, plan, missed_from](fire_result& r) {
      auto& st = self->state;
      auto i = st.jobs.find(id);
      if (!st.leader || i == st.jobs.end())
        return;
      if (r.outcome == fire_outcome::stale) {
        st.jobs_dirty = true;
        i->second.next.reset();
        return;
      }
      i->second.next = plan.next;
      if (r.outcome == fire_outcome::duplicate) {
        logger()->info("scheduled job {}: the slot {} was fired before", id,
                       sched::utc_text(*plan.fire));
        return;
      }
      ++st.fires;
      if (st.job_fires != nullptr)
        st.job_fires->inc();
      if (plan.misfire) {
        ++st.misfires;
        if (st.job_misfires != nullptr)
          st.job_misfires->inc();
        logger()->warn("scheduled job {} missed its slots from {} to {}; "
                       "fired once for the latest",
                       id, sched::utc_text(missed_from),
                       sched::utc_text(*plan.fire));
      }
      logger()->info("scheduled job {} fired for {}: run {}, task {}", id,
                     sched::utc_text(*plan.fire), r.run_id, r.task_id);
    },
    [self, id](caf::error&) {
      auto& st = self->state;
      if (auto i = st.jobs.find(id); i != st.jobs.end())
        i->second.retry_after = steady::now() + st.options.lock_retry;
    });
}

// -- the loop -----------------------------------------------------------------

/// The earliest slot after `now` the leader knows of.
std::optional<wall_time> next_future_slot(const scheduler_state& st,
                                          wall_time now) {
  std::optional<wall_time> result;
  auto consider = [&](const std::optional<sys_seconds>& t) {
    if (t && wall_time{*t} > now && (!result || wall_time{*t} < *result))
      result = wall_time{*t};
  };
  for (const auto& e : st.entries)
    if (e.active())
      consider(e.next);
  for (const auto& [id, p] : st.jobs)
    consider(p.next);
  return result;
}

/// Starts the next piece of work, if any: confirm or take the lock, load
/// the static state, (re)load the jobs, give a job its first slot, or fire
/// the earliest due entry.
void step(self_ptr self) {
  auto& st = self->state;
  if (st.busy)
    return;
  if (!st.options.lead)
    return;
  auto steady_now = steady::now();
  if (steady_now >= st.next_lead_check) {
    check_lead(self);
    return;
  }
  if (!st.leader)
    return;
  if (!st.static_loaded) {
    load_static(self);
    return;
  }
  if (st.jobs_dirty || steady_now >= st.next_reload) {
    load_jobs(self);
    return;
  }
  for (auto& [id, p] : st.jobs) {
    if (p.needs_next) {
      init_job_next(self, p);
      if (st.busy)
        return;
    }
  }
  auto now = now_seconds(st);
  // The earliest due slot first; static entries before jobs on a tie.
  std::optional<sys_seconds> best;
  std::optional<size_t> best_entry;
  job_plan* best_job = nullptr;
  for (size_t i = 0; i < st.entries.size(); ++i) {
    auto& e = st.entries[i];
    if (e.active() && e.next && *e.next <= now && e.retry_after <= steady_now
        && (!best || *e.next < *best)) {
      best = e.next;
      best_entry = i;
    }
  }
  for (auto& [id, p] : st.jobs) {
    if (p.next && *p.next <= now && p.retry_after <= steady_now
        && (!best || *p.next < *best)) {
      best = p.next;
      best_entry.reset();
      best_job = &p;
    }
  }
  if (best_entry)
    fire_entry(self, *best_entry, now);
  else if (best_job != nullptr)
    fire_job_now(self, *best_job, now);
}

void tick(self_ptr self) {
  auto& st = self->state;
  step(self);
  // Wake up for the next slot if it comes before the next regular look
  // (what is due already was started by step, or waits for a reply).
  auto delay = st.options.tick_interval;
  if (st.leader) {
    auto now = st.options.time->now();
    if (auto due = next_future_slot(st, now))
      delay = std::min(delay, std::chrono::ceil<std::chrono::milliseconds>(
                                *due - now));
  }
  self->delayed_send(self, delay, atom::tick_v);
}

// -- CRUD ---------------------------------------------------------------------

template <class Reply, class Request>
caf::typed_response_promise<Reply> forward(self_ptr self, Request req) {
  auto rp = self->template make_response_promise<Reply>();
  self->request(self->state.store, self->state.options.store_timeout,
                std::move(req))
    .then([rp](Reply& reply) mutable { rp.deliver(std::move(reply)); },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

void patch_attempt(self_ptr self, patch_job req,
                   caf::typed_response_promise<job_info> rp, int attempts) {
  auto& st = self->state;
  self->request(st.store, st.options.store_timeout, get_job{req.id})
    .then(
      [self, req, rp, attempts](job_info& current) mutable {
        auto& st = self->state;
        const auto& p = req.patch;
        auto cron = p.has_cron_expression ? p.cron_expression
                                          : current.cron_expression;
        auto zone = p.has_timezone ? p.timezone : current.timezone;
        auto active = p.has_is_active ? p.is_active : current.is_active;
        bool retimed = cron != current.cron_expression
                       || zone != current.timezone
                       || active != current.is_active;
        store_patch_job out;
        out.id = req.id;
        out.patch = p;
        out.expected_cron_expression = current.cron_expression;
        out.expected_timezone = current.timezone;
        out.expected_is_active = current.is_active;
        out.now_us = now_us(st);
        if (retimed) {
          out.set_next = true;
          if (active) {
            auto compiled = sched::compile(cron, zone);
            if (auto* err = std::get_if<std::string>(&compiled)) {
              rp.deliver(make_error(errc::invalid_argument, *err));
              return;
            }
            out.next_run_at_us = sched::slot_us(sched::next_slot(
              std::get<sched::timing>(compiled), now_seconds(st)));
          }
        }
        self->request(st.store, st.options.store_timeout, std::move(out))
          .then([rp](job_info& job) mutable { rp.deliver(std::move(job)); },
                [self, req, rp, attempts](caf::error& err) mutable {
                  if (code_of(err) == errc::conflict && attempts > 1)
                    patch_attempt(self, std::move(req), rp, attempts - 1);
                  else
                    rp.deliver(std::move(err));
                });
      },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

scheduler_status status_of(const scheduler_state& st) {
  scheduler_status s;
  s.leader = st.leader;
  s.ready = st.leader && st.static_loaded && st.jobs_loaded;
  for (const auto& e : st.entries) {
    entry_status es;
    es.name = e.def.name;
    es.task_name = e.def.task_name;
    es.cron_expression = e.def.cron;
    es.timezone = e.def.timezone;
    es.enabled = e.active();
    es.next_fire_us = sched::slot_us(e.next);
    es.last_fire_us = sched::slot_us(e.last_fire);
    s.entries.push_back(std::move(es));
  }
  s.jobs = static_cast<int64_t>(st.jobs.size());
  s.invalid_jobs = st.invalid_jobs;
  s.fires = st.fires;
  s.misfires = st.misfires;
  return s;
}

scheduler_actor::behavior_type scheduler(self_ptr self,
                                         scheduler_options options) {
  auto& st = self->state;
  st.options = std::move(options);
  auto* registry = st.options.metrics;
  constexpr auto fires_help = "Tasks the scheduler enqueued, by static entry "
                              "(dynamic jobs: entry=\"scheduled_jobs\").";
  constexpr auto misfires_help = "Fires that coalesced missed slots into one "
                                 "run, by static entry (dynamic jobs: "
                                 "entry=\"scheduled_jobs\").";
  for (const auto& def : st.options.entries) {
    entry_plan e;
    e.def = def;
    auto compiled = sched::compile(def.cron, def.timezone);
    if (auto* err = std::get_if<std::string>(&compiled))
      logger()->error("schedule entry {} never fires: {}", def.name, *err);
    else
      e.timing = std::get<sched::timing>(std::move(compiled));
    if (registry != nullptr && e.active()) {
      e.fires = &registry->get_counter("engram_schedule_fires_total",
                                       fires_help, {{"entry", def.name}});
      e.misfires = &registry->get_counter("engram_schedule_misfires_total",
                                          misfires_help, {{"entry", def.name}});
    }
    st.entries.push_back(std::move(e));
  }
  if (registry != nullptr) {
    st.job_fires = &registry->get_counter("engram_schedule_fires_total",
                                          fires_help,
                                          {{"entry", dynamic_jobs_entry}});
    st.job_misfires = &registry->get_counter(
      "engram_schedule_misfires_total", misfires_help,
      {{"entry", dynamic_jobs_entry}});
    st.leader_gauge = &registry->get_gauge(
      "engram_scheduler_leader",
      "1 while this node holds the scheduler lock and fires schedules.");
    st.leader_gauge->set(0);
    // A stopped scheduler leads no more (its session ended with it).
    self->attach_functor([gauge = st.leader_gauge] { gauge->set(0); });
  }
  auto& sys = self->system();
  st.store = st.options.spawn_store(sys);
  self->link_to(st.store);
  if (st.options.spawn_listener) {
    caf::weak_actor_ptr weak = self->ctrl();
    st.listener = st.options.spawn_listener(
      sys, [weak](const std::string&, const std::string&) {
        if (auto strong = weak.lock())
          caf::anon_send(caf::actor_cast<scheduler_actor>(strong), reload{});
      });
    self->link_to(st.listener);
  }
  size_t enabled = std::count_if(st.entries.begin(), st.entries.end(),
                                 [](const auto& e) { return e.active(); });
  if (st.options.lead)
    logger()->info("scheduler started with {} of {} static entries enabled",
                   enabled, st.entries.size());
  else
    logger()->info("scheduler started without competing for leadership: "
                   "this node fires no schedules");
  self->send(self, atom::tick_v);
  return {
    [self](atom::tick) { tick(self); },
    [self](reload) {
      self->state.jobs_dirty = true;
      step(self);
    },
    [self](status_request) { return status_of(self->state); },
    [self](create_job& req) -> caf::result<job_info> {
      auto& st = self->state;
      if (auto problem = sched::check_spec(req.spec))
        return make_error(errc::invalid_argument, *problem);
      auto timing = std::get<sched::timing>(
        sched::compile(req.spec.cron_expression, req.spec.timezone));
      store_create_job out;
      out.now_us = now_us(st);
      if (req.spec.is_active)
        out.next_run_at_us
          = sched::slot_us(sched::next_slot(timing, now_seconds(st)));
      if (req.spec.delivery_config_json.empty())
        req.spec.delivery_config_json = "{}";
      out.spec = std::move(req.spec);
      return forward<job_info>(self, std::move(out));
    },
    [self](get_job& req) { return forward<job_info>(self, std::move(req)); },
    [self](list_jobs& req) { return forward<job_page>(self, std::move(req)); },
    [self](patch_job& req) -> caf::result<job_info> {
      if (req.patch.empty())
        return forward<job_info>(self, get_job{req.id});
      if (auto problem = sched::check_patch(req.patch))
        return make_error(errc::invalid_argument, *problem);
      auto rp = self->make_response_promise<job_info>();
      patch_attempt(self, std::move(req), rp, patch_attempts);
      return rp;
    },
    [self](delete_job& req) { return forward<bool>(self, std::move(req)); },
    [self](run_job_now& req) {
      auto& st = self->state;
      store_run_now out;
      out.id = req.id;
      out.task = task_for(st, st.options.job_task_name);
      out.task.unique_key = sched::manual_key(req.id);
      out.now_us = now_us(st);
      return forward<manual_run>(self, std::move(out));
    },
    [self](list_job_runs& req) {
      return forward<run_page>(self, std::move(req));
    },
  };
}

} // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys,
                                scheduler_options options) {
  return sys.spawn(scheduler, std::move(options));
}

} // namespace engram
