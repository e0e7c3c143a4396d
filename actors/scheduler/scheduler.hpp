#pragma once

// The scheduler actor (DESIGN §5): the cluster's one leader turns due static
// entries (the beat schedule) and dynamic scheduled_jobs into tasks; every
// node serves schedule CRUD for the HTTP API.
//
// Leadership: the scheduler's schedule store holds a PostgreSQL advisory
// lock on its own session. A standby tries the lock every `lock_retry` and
// takes over when the leader's session ends (its process, actor or
// connection stopped); the leader confirms the lock as often. Only the
// leader fires, and its store refuses to fire without the lock.
//
// Firing: each entry has a durable "first unfired slot" (schedule_state for
// static entries, scheduled_jobs.next_run_at for jobs). When it is due, the
// leader fires the latest due slot once (slots missed while no leader ran
// are coalesced into that one fire and counted as a misfire) in one
// transaction that records the fire, enqueues the task with the unique key
// "schedule:<entry>@<slot>" and stores the next slot (the first one after
// now). Dynamic jobs are reloaded on NOTIFY engram_schedules and every
// `reload_interval`; a job whose expression or zone is invalid is skipped
// with a warning.
//
// Time: what is due is judged by the injected clock; the actor looks at it
// on real-time timers (every `tick_interval` at most, sooner when a fire is
// due earlier), so tests move a manual clock and wait for the effects.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/scheduler/fire_plan.hpp"
#include "messages/scheduler.hpp"
#include "messages/storage.hpp"
#include "messages/tasks.hpp"
#include "runtime/clock.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram {

struct scheduler_options {
  /// The static entries (conf: the beat schedule). Invalid ones are logged
  /// and never fire (validate them with sched::validate_static_entries
  /// when loading the configuration).
  std::vector<sched::static_entry> entries = sched::default_static_entries();
  /// Whether this node competes for leadership and fires. False: it never
  /// takes the lock and only serves schedule CRUD.
  bool lead = true;
  /// Where "now" comes from; must outlive the actor.
  const clock* time = &real_clock();
  /// Longest real-time wait between two looks at the clock.
  std::chrono::milliseconds tick_interval{1000};
  /// How often a standby tries the lock and the leader confirms it.
  std::chrono::milliseconds lock_retry{5000};
  /// How often the leader reloads the jobs besides NOTIFY.
  std::chrono::milliseconds reload_interval{60000};
  /// Timeout of one request to the schedule store.
  std::chrono::milliseconds store_timeout{30000};
  /// The task a dynamic job's fire (or "run now") enqueues.
  std::string job_task_name = "agent.scheduled_run";
  /// The defaults (queue, priority, retries, limits) of a task name, e.g.
  /// the task registry's request_for; unset: enqueue_request's defaults.
  std::function<tasks::enqueue_request(const std::string& name)> task_defaults;
  /// Spawns the scheduler's schedule store (required); it is linked to the
  /// scheduler.
  std::function<schedule_store_actor(caf::actor_system&)> spawn_store;
  /// Spawns a listener on engram_schedules that calls the callback
  /// (optional: without one, jobs reload every `reload_interval` only); it
  /// is linked to the scheduler.
  std::function<notification_listener_actor(caf::actor_system&,
                                            notification_callback)>
    spawn_listener;
  /// Receives engram_schedule_fires_total{entry},
  /// engram_schedule_misfires_total{entry} and engram_scheduler_leader;
  /// may be null. Dynamic jobs count under entry="scheduled_jobs".
  metrics::registry* metrics = nullptr;
};

/// The metrics label of every dynamic job's fires and misfires.
inline constexpr char dynamic_jobs_entry[] = "scheduled_jobs";

/// Spawns the scheduler with its schedule store and listener. Stopping it
/// stops both (the store's session ends, releasing the lock).
[[nodiscard]] scheduler_actor spawn_scheduler(caf::actor_system& sys,
                                              scheduler_options options);

} // namespace engram
