#include "actors/tasks/task_queue.hpp"

#include <algorithm>
#include <deque>
#include <random>
#include <unordered_map>

#include <boost/json.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"

namespace engram {

namespace {

using namespace std::chrono_literals;
using tasks::attempt_result;
using tasks::attempt_status;
using tasks::claimed_task;
using tasks::task_outcome;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("tasks");
  return result;
}

// -- worker slot ---------------------------------------------------------------

struct slot_state {
  const tasks::task_registry* registry = nullptr;
  const tasks::task_services* services = nullptr;

  static inline const char* name = "task_slot";
};

task_slot_actor::behavior_type
task_slot(task_slot_actor::stateful_pointer<slot_state> self,
          const tasks::task_registry* registry,
          const tasks::task_services* services) {
  self->state.registry = registry;
  self->state.services = services;
  return {
    [self](tasks::run_attempt& req) {
      return run_attempt_now(req.task, *self->state.registry,
                             *self->state.services, req.stop);
    },
  };
}

// -- queue ---------------------------------------------------------------------

/// Why the queue asked a running attempt to stop.
enum class stop_reason { none, soft_limit, cancel, lease_lost, shutdown };

struct running_attempt {
  claimed_task task;
  size_t slot = 0;
  wall_time started;
  /// Zero = no limit.
  wall_time soft_deadline{};
  wall_time hard_deadline{};
  std::stop_source stop;
  stop_reason reason = stop_reason::none;
};

/// Metrics of one task name, looked up once.
struct name_metrics {
  metrics::counter* started = nullptr;
  metrics::counter* succeeded = nullptr;
  metrics::counter* retried = nullptr;
  metrics::counter* dead = nullptr;
  metrics::counter* cancelled = nullptr;
  metrics::histogram* run_time = nullptr;
};

struct queue_state {
  task_queue_options options;
  task_queue_storage storage;
  const tasks::task_registry* registry = nullptr;
  const tasks::task_services* services = nullptr;
  metrics::registry* metrics = nullptr;
  std::string worker;

  std::vector<task_slot_actor> slots;
  std::vector<size_t> idle_slots;
  std::deque<claimed_task> prefetched;
  std::unordered_map<int64_t, running_attempt> running;
  std::vector<task_outcome> unacked;
  /// Leases to hand back at the end of a drain (attempts stopped by it).
  std::vector<tasks::lease_ref> to_release;

  /// Claims under way, and the room they reserved (a claim rides on every
  /// batch commit, so one may run beside a standalone claim).
  int claims_in_flight = 0;
  int64_t reserved = 0;
  bool releasing = false;
  bool ack_in_flight = false;
  bool renew_in_flight = false;
  /// The claimer waits for a notification for us (claim_on_notify).
  bool waiting = false;
  /// That wait failed: none until a claim succeeds again.
  bool wait_failed = false;
  /// A wake arrived, or the last claim came back full: more may be due.
  bool more_due = true;
  bool draining = false;
  wall_time next_poll{};
  wall_time next_heartbeat{};
  wall_time drain_deadline{};
  /// No ack retry before this instant after a failed commit.
  wall_time next_ack_attempt{};

  tasks::queue_stats counters;
  std::unordered_map<std::string, name_metrics> by_name;
  metrics::histogram* claim_latency = nullptr;
  metrics::counter* refused = nullptr;
  std::minstd_rand rng{std::random_device{}()};

  static inline const char* name = "task_queue";
};

using queue_ptr = task_queue_actor::stateful_pointer<queue_state>;

wall_time now_of(const queue_state& st) {
  return st.services->time->now();
}

name_metrics& metrics_for(queue_state& st, const std::string& task_name) {
  auto i = st.by_name.find(task_name);
  if (i != st.by_name.end())
    return i->second;
  name_metrics m;
  if (st.metrics != nullptr) {
    constexpr auto help = "Task attempts by task name and what became of them.";
    auto count = [&](const char* state) {
      return &st.metrics->get_counter("engram_tasks_total", help,
                                      {{"name", task_name}, {"state", state}});
    };
    m.started = count("started");
    m.succeeded = count("succeeded");
    m.retried = count("retried");
    m.dead = count("dead");
    m.cancelled = count("cancelled");
    m.run_time = &st.metrics->get_histogram(
      "engram_task_run_seconds", "Run time of task attempts by task name.",
      {{"name", task_name}});
  }
  return st.by_name.emplace(task_name, m).first->second;
}

void inc(metrics::counter* c) {
  if (c != nullptr)
    c->inc();
}

task_slot_actor spawn_slot(queue_ptr self) {
  auto& st = self->state;
  auto slot = self->system().spawn<caf::detached>(task_slot, st.registry,
                                                  st.services);
  self->link_to(slot);
  return slot;
}

void maybe_claim(queue_ptr self);
void dispatch(queue_ptr self);
void flush_acks(queue_ptr self);
void maybe_finish_drain(queue_ptr self);

/// Records how an attempt ended and queues its outcome for the next batch.
void finish_attempt(queue_ptr self, running_attempt& run,
                    attempt_result result) {
  auto& st = self->state;
  auto& m = metrics_for(st, run.task.name);
  auto now = now_of(st);
  if (m.run_time != nullptr)
    m.run_time->observe(
      std::chrono::duration<double>(now - run.started).count());
  if (run.reason == stop_reason::lease_lost) {
    // Someone else holds the task now; a completion would be refused.
    logger()->info("task {} ({}) finished after its lease was lost; "
                   "dropping the result",
                   run.task.id, run.task.name);
    return;
  }
  task_outcome o;
  o.id = run.task.id;
  o.lease_token = run.task.lease_token;
  switch (result.status) {
    case attempt_status::succeeded:
      o.succeeded = true;
      o.result_json = std::move(result.result_json);
      o.followups = std::move(result.followups);
      ++st.counters.succeeded;
      inc(m.succeeded);
      break;
    case attempt_status::stopped:
      if (run.reason == stop_reason::cancel) {
        o.cancelled = true;
        o.error = "cancelled by an operator while running";
        inc(m.cancelled);
        break;
      }
      if (run.reason == stop_reason::shutdown) {
        // Not an attempt that counts: handed back at the end of the drain.
        st.to_release.push_back({run.task.id, run.task.lease_token});
        return;
      }
      [[fallthrough]];
    case attempt_status::failed:
    case attempt_status::permanent: {
      if (result.status == attempt_status::stopped)
        o.error = "soft time limit of "
                  + std::to_string(run.task.soft_time_limit_ms)
                  + " ms exceeded";
      else
        o.error = std::move(result.error);
      o.permanent = result.status == attempt_status::permanent;
      tasks::retry_policy policy;
      if (auto* def = st.registry->find(run.task.name))
        policy = def->options.retry;
      std::uniform_real_distribution<double> unit{0.0, 1.0};
      o.retry_delay_ms
        = tasks::retry_delay(policy, run.task.attempts, unit(st.rng)).count();
      ++st.counters.failed;
      bool last = o.permanent || run.task.attempts > run.task.max_retries;
      inc(last ? m.dead : m.retried);
      logger()->log(last ? spdlog::level::warn : spdlog::level::info,
                    "task {} ({}) attempt {} failed{}: {}", run.task.id,
                    run.task.name, run.task.attempts,
                    last ? " for good" : "", o.error);
      break;
    }
  }
  st.unacked.push_back(std::move(o));
}

void on_attempt_done(queue_ptr self, size_t slot, int64_t id,
                     const std::string& token, attempt_result result) {
  auto& st = self->state;
  auto i = st.running.find(id);
  // Abandoned at its hard limit: the slot was replaced, the outcome written.
  if (i == st.running.end() || i->second.task.lease_token != token)
    return;
  finish_attempt(self, i->second, std::move(result));
  st.running.erase(i);
  st.idle_slots.push_back(slot);
  flush_acks(self);
  dispatch(self);
  maybe_claim(self);
  maybe_finish_drain(self);
}

void start_attempt(queue_ptr self, claimed_task task, size_t slot) {
  auto& st = self->state;
  auto now = now_of(st);
  running_attempt run;
  run.task = std::move(task);
  run.slot = slot;
  run.started = now;
  if (run.task.soft_time_limit_ms > 0)
    run.soft_deadline = now + std::chrono::milliseconds{run.task.soft_time_limit_ms};
  if (run.task.time_limit_ms > 0)
    run.hard_deadline = now + std::chrono::milliseconds{run.task.time_limit_ms};
  auto id = run.task.id;
  auto token = run.task.lease_token;
  tasks::run_attempt msg{run.task, run.stop.get_token()};
  ++st.counters.started;
  inc(metrics_for(st, run.task.name).started);
  st.running.emplace(id, std::move(run));
  self->request(st.slots[slot], caf::infinite, std::move(msg))
    .then(
      [self, slot, id, token](attempt_result& result) {
        on_attempt_done(self, slot, id, token, std::move(result));
      },
      [self, slot, id, token](caf::error& err) {
        attempt_result result;
        result.id = id;
        result.error = "worker slot failed: " + describe(err);
        on_attempt_done(self, slot, id, token, std::move(result));
      });
}

void dispatch(queue_ptr self) {
  auto& st = self->state;
  while (!st.draining && !st.prefetched.empty() && !st.idle_slots.empty()) {
    auto slot = st.idle_slots.back();
    st.idle_slots.pop_back();
    auto task = std::move(st.prefetched.front());
    st.prefetched.pop_front();
    start_attempt(self, std::move(task), slot);
  }
}

int64_t room(const queue_state& st) {
  return static_cast<int64_t>(st.options.concurrency) + st.options.prefetch
         - static_cast<int64_t>(st.prefetched.size() + st.running.size())
         - st.reserved;
}

/// Takes the tasks a claim returned (`want` asked for).
void on_claimed(queue_ptr self, int64_t want, std::vector<claimed_task>& claimed) {
  auto& st = self->state;
  --st.claims_in_flight;
  st.reserved -= want;
  if (static_cast<int64_t>(claimed.size()) == want)
    st.more_due = true;
  if (st.claim_latency != nullptr) {
    auto now = now_of(st);
    for (const auto& t : claimed)
      st.claim_latency->observe(
        std::max(0.0, static_cast<double>(to_epoch_us(now) - t.due_us) / 1e6));
  }
  for (auto& t : claimed)
    st.prefetched.push_back(std::move(t));
  if (st.draining) {
    maybe_finish_drain(self);
    return;
  }
  dispatch(self);
  maybe_claim(self);
}

/// Nothing is due as far as the queue knows: asks the claimer to claim as
/// soon as a notification names the queue (it listens on its own
/// connection), instead of waiting for the listener to wake the queue and
/// asking the claimer then.
void claim_on_notify(queue_ptr self, int64_t want) {
  auto& st = self->state;
  if (!st.storage.waiter || st.wait_failed)
    return;
  ++st.claims_in_flight;
  st.reserved += want;
  st.waiting = true;
  tasks::claim_on_notify req{{st.options.queue, st.worker, want,
                              st.options.lease.count(),
                              to_epoch_us(now_of(st))},
                             st.options.notify_wait.count()};
  self->request(st.storage.waiter, st.options.notify_wait + 30s, std::move(req))
    .then(
      [self, want](std::vector<claimed_task>& claimed) {
        self->state.waiting = false;
        on_claimed(self, want, claimed);
      },
      [self, want](caf::error& err) {
        auto& st = self->state;
        st.waiting = false;
        st.wait_failed = true;
        --st.claims_in_flight;
        st.reserved -= want;
        // The listener's wakes and the polls claim meanwhile (and log
        // their own failures).
        logger()->info("queue '{}' claims on the listener's wakes until a "
                       "claim succeeds again: waiting for a notification "
                       "failed: {}",
                       st.options.queue, describe(err));
        maybe_finish_drain(self);
      });
}

void maybe_claim(queue_ptr self) {
  auto& st = self->state;
  if (st.draining || st.claims_in_flight > 0)
    return;
  auto want = std::min(room(st), st.options.max_claim_batch);
  if (want <= 0)
    return;
  auto now = now_of(st);
  if (!st.more_due && now < st.next_poll) {
    claim_on_notify(self, want);
    return;
  }
  ++st.claims_in_flight;
  st.reserved += want;
  st.more_due = false;
  st.next_poll = now + st.options.poll_interval;
  tasks::claim_tasks req{st.options.queue, st.worker, want,
                         st.options.lease.count(), to_epoch_us(now)};
  self->request(st.storage.claimer, 30s, std::move(req))
    .then(
      [self, want](std::vector<claimed_task>& claimed) {
        self->state.wait_failed = false;
        on_claimed(self, want, claimed);
      },
      [self, want](caf::error& err) {
        auto& st = self->state;
        --st.claims_in_flight;
        st.reserved -= want;
        logger()->warn("claiming from queue '{}' failed: {}", st.options.queue,
                       describe(err));
        maybe_finish_drain(self);
      });
}

void flush_acks(queue_ptr self) {
  auto& st = self->state;
  if (st.ack_in_flight || st.unacked.empty())
    return;
  auto now = now_of(st);
  if (now < st.next_ack_attempt)
    return;
  std::vector<task_outcome> batch;
  auto n = std::min<size_t>(st.unacked.size(),
                            static_cast<size_t>(st.options.max_ack_batch));
  batch.assign(std::make_move_iterator(st.unacked.begin()),
               std::make_move_iterator(st.unacked.begin() + static_cast<long>(n)));
  st.unacked.erase(st.unacked.begin(), st.unacked.begin() + static_cast<long>(n));
  st.ack_in_flight = true;
  // Claim in the same transaction when there is room and no claim runs: a
  // chain's next step (a followup of this batch) is claimed by the commit
  // that creates it, and under load every batch commit also refills.
  tasks::complete_tasks req{{}, to_epoch_us(now), {}};
  auto want = std::min(room(st), st.options.max_claim_batch);
  bool claims = !st.draining && want > 0;
  if (claims) {
    ++st.claims_in_flight;
    st.reserved += want;
    st.more_due = false;
    st.next_poll = now + st.options.poll_interval;
    req.claim = tasks::claim_tasks{st.options.queue, st.worker, want,
                                   st.options.lease.count(), to_epoch_us(now)};
  }
  auto keep = std::make_shared<std::vector<task_outcome>>(batch);
  req.outcomes = std::move(batch);
  self->request(st.storage.acker, 60s, std::move(req))
    .then(
      [self, claims, want](tasks::completion_result& result) {
        auto& st = self->state;
        st.ack_in_flight = false;
        if (claims)
          on_claimed(self, want, result.claimed);
        st.counters.refused += static_cast<int64_t>(result.refused.size());
        for (auto id : result.refused) {
          if (st.refused != nullptr)
            st.refused->inc();
          logger()->info("completion of task {} refused: its lease was lost "
                         "(it will run or has run elsewhere)",
                         id);
        }
        flush_acks(self);
        maybe_finish_drain(self);
      },
      [self, keep, claims, want](caf::error& err) {
        auto& st = self->state;
        st.ack_in_flight = false;
        if (claims) {
          --st.claims_in_flight;
          st.reserved -= want;
        }
        logger()->warn("recording {} task outcomes failed: {}; retrying",
                       keep->size(), describe(err));
        // Keep them (first) and try again shortly; leases that expire in the
        // meantime are refused and the tasks run again (at least once).
        st.unacked.insert(st.unacked.begin(),
                          std::make_move_iterator(keep->begin()),
                          std::make_move_iterator(keep->end()));
        st.next_ack_attempt = now_of(st) + 200ms;
        maybe_finish_drain(self);
      });
}

void request_stop(running_attempt& run, stop_reason reason) {
  if (run.reason != stop_reason::none && run.reason != stop_reason::soft_limit)
    return;
  if (run.reason == stop_reason::soft_limit && reason == stop_reason::soft_limit)
    return;
  run.reason = reason;
  run.stop.request_stop();
}

void renew(queue_ptr self) {
  auto& st = self->state;
  if (st.renew_in_flight)
    return;
  std::vector<tasks::lease_ref> leases;
  for (const auto& t : st.prefetched)
    leases.push_back({t.id, t.lease_token});
  for (const auto& [id, run] : st.running)
    if (run.reason != stop_reason::lease_lost)
      leases.push_back({id, run.task.lease_token});
  if (leases.empty())
    return;
  st.renew_in_flight = true;
  self->request(st.storage.claimer, 30s,
                tasks::renew_leases{std::move(leases), st.options.lease.count(),
                                    to_epoch_us(now_of(st))})
    .then(
      [self](tasks::renewal_result& result) {
        auto& st = self->state;
        st.renew_in_flight = false;
        auto drop_prefetched = [&](int64_t id) -> std::optional<claimed_task> {
          auto i = std::find_if(st.prefetched.begin(), st.prefetched.end(),
                                [id](const claimed_task& t) { return t.id == id; });
          if (i == st.prefetched.end())
            return std::nullopt;
          auto t = std::move(*i);
          st.prefetched.erase(i);
          return t;
        };
        for (auto id : result.lost) {
          if (auto i = st.running.find(id); i != st.running.end()) {
            logger()->warn("task {} ({}) lost its lease while running; asking "
                           "it to stop",
                           id, i->second.task.name);
            request_stop(i->second, stop_reason::lease_lost);
          } else {
            (void) drop_prefetched(id);
          }
        }
        for (auto id : result.cancel_requested) {
          if (auto i = st.running.find(id); i != st.running.end()) {
            logger()->info("task {} ({}) cancelled; asking it to stop", id,
                           i->second.task.name);
            request_stop(i->second, stop_reason::cancel);
          } else if (auto t = drop_prefetched(id)) {
            task_outcome o;
            o.id = t->id;
            o.lease_token = t->lease_token;
            o.cancelled = true;
            o.error = "cancelled by an operator before it started";
            st.unacked.push_back(std::move(o));
          }
        }
        flush_acks(self);
        maybe_claim(self);
      },
      [self](caf::error& err) {
        self->state.renew_in_flight = false;
        logger()->warn("renewing leases failed: {}", describe(err));
      });
}

/// Abandons an attempt past its hard limit: fails it now and replaces its
/// slot (the old one finishes in the background and exits).
void abandon(queue_ptr self, running_attempt& run) {
  auto& st = self->state;
  auto slot = run.slot;
  logger()->warn("task {} ({}) passed its hard time limit of {} ms; "
                 "abandoning the attempt",
                 run.task.id, run.task.name, run.task.time_limit_ms);
  run.stop.request_stop();
  attempt_result result;
  result.id = run.task.id;
  result.status = attempt_status::failed;
  result.error = "hard time limit of " + std::to_string(run.task.time_limit_ms)
                 + " ms exceeded; attempt abandoned";
  auto reason = run.reason;
  run.reason = stop_reason::none;
  finish_attempt(self, run, std::move(result));
  (void) reason;
  auto old = st.slots[slot];
  self->unlink_from(old);
  self->send_exit(old, caf::exit_reason::user_shutdown);
  st.slots[slot] = spawn_slot(self);
  st.idle_slots.push_back(slot);
}

void on_tick(queue_ptr self) {
  auto& st = self->state;
  auto now = now_of(st);
  std::vector<int64_t> abandoned;
  for (auto& [id, run] : st.running) {
    if (run.hard_deadline != wall_time{} && now >= run.hard_deadline) {
      abandoned.push_back(id);
    } else if (run.soft_deadline != wall_time{} && now >= run.soft_deadline) {
      request_stop(run, stop_reason::soft_limit);
    }
  }
  for (auto id : abandoned) {
    abandon(self, st.running.at(id));
    st.running.erase(id);
  }
  if (now >= st.next_heartbeat) {
    st.next_heartbeat = now + st.options.heartbeat_interval;
    renew(self);
  }
  if (st.draining && now >= st.drain_deadline)
    for (auto& [id, run] : st.running)
      request_stop(run, stop_reason::shutdown);
  flush_acks(self);
  dispatch(self);
  maybe_claim(self);
  maybe_finish_drain(self);
  self->delayed_send(self, st.options.tick, atom::tick_v);
}

/// Stops the slots and storage actors (a normal exit does not reach linked
/// actors) and quits.
void quit_queue(queue_ptr self) {
  auto& st = self->state;
  for (const auto& slot : st.slots)
    self->send_exit(slot, caf::exit_reason::user_shutdown);
  self->send_exit(st.storage.claimer, caf::exit_reason::user_shutdown);
  self->send_exit(st.storage.acker, caf::exit_reason::user_shutdown);
  self->quit();
}

/// Quits once a drain has nothing left: no attempt running (or all of them
/// asked to stop past the deadline), every outcome recorded and prefetched
/// tasks handed back.
void maybe_finish_drain(queue_ptr self) {
  auto& st = self->state;
  if (!st.draining || st.releasing || st.claims_in_flight > 0
      || st.ack_in_flight)
    return;
  if (!st.unacked.empty()) {
    flush_acks(self);
    return;
  }
  auto now = now_of(st);
  bool past_deadline = now >= st.drain_deadline + 2s;
  if (!st.running.empty() && !past_deadline)
    return;
  auto held = std::move(st.to_release);
  for (const auto& t : st.prefetched)
    held.push_back({t.id, t.lease_token});
  for (const auto& [id, run] : st.running)
    held.push_back({id, run.task.lease_token});
  st.prefetched.clear();
  st.running.clear();
  if (held.empty()) {
    quit_queue(self);
    return;
  }
  st.releasing = true;
  auto n = held.size();
  self->request(st.storage.acker, 10s,
                tasks::release_tasks{std::move(held), to_epoch_us(now)})
    .then(
      [self, n](int64_t released) {
        logger()->info("queue '{}' handed back {} of {} claimed tasks",
                       self->state.options.queue, released, n);
        quit_queue(self);
      },
      [self](caf::error& err) {
        logger()->warn("queue '{}' could not hand back its tasks ({}); their "
                       "leases will expire and they will run again",
                       self->state.options.queue, describe(err));
        quit_queue(self);
      });
}

void begin_drain(queue_ptr self) {
  auto& st = self->state;
  if (st.draining)
    return;
  st.draining = true;
  st.drain_deadline = now_of(st) + st.options.drain_timeout;
  logger()->info("queue '{}' stops claiming: {} running, {} prefetched",
                 st.options.queue, st.running.size(), st.prefetched.size());
  maybe_finish_drain(self);
}

task_queue_actor::behavior_type
task_queue(queue_ptr self, task_queue_options options,
           task_queue_storage storage, const tasks::task_registry* registry,
           const tasks::task_services* services, metrics::registry* metrics) {
  auto& st = self->state;
  st.options = std::move(options);
  st.storage = std::move(storage);
  st.registry = registry;
  st.services = services;
  st.metrics = metrics;
  st.worker = st.options.worker_id + "/" + st.options.queue;
  st.counters.queue = st.options.queue;
  st.counters.concurrency = st.options.concurrency;
  if (metrics != nullptr) {
    st.claim_latency = &metrics->get_histogram(
      "engram_task_claim_latency_seconds",
      "Time from a task being due (its run_at) to its claim, by queue.",
      {{"queue", st.options.queue}});
    st.refused = &metrics->get_counter(
      "engram_task_completions_refused_total",
      "Completions refused because the worker's lease had been lost.",
      {{"queue", st.options.queue}});
  }
  self->link_to(st.storage.claimer);
  self->link_to(st.storage.acker);
  for (int i = 0; i < std::max(st.options.concurrency, 1); ++i) {
    st.slots.push_back(spawn_slot(self));
    st.idle_slots.push_back(static_cast<size_t>(i));
  }
  std::reverse(st.idle_slots.begin(), st.idle_slots.end());
  st.next_heartbeat = now_of(st) + st.options.heartbeat_interval;
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (msg.reason == caf::exit_reason::user_shutdown
        || msg.reason == caf::exit_reason::normal) {
      begin_drain(self);
      return;
    }
    self->quit(msg.reason);
  });
  self->send(self, atom::tick_v);
  return {
    [self](tasks::wake) {
      // A waiting claimer hears the same notification on its own
      // connection and claims already.
      if (self->state.waiting)
        return;
      self->state.more_due = true;
      maybe_claim(self);
    },
    [self](atom::tick) { on_tick(self); },
    [self](atom::shutdown) { begin_drain(self); },
    [self](atom::stats) {
      auto& st = self->state;
      auto result = st.counters;
      result.running = static_cast<int64_t>(st.running.size());
      result.prefetched = static_cast<int64_t>(st.prefetched.size());
      result.unacknowledged = static_cast<int64_t>(st.unacked.size());
      return result;
    },
  };
}

} // namespace

tasks::attempt_result run_attempt_now(const tasks::claimed_task& task,
                                      const tasks::task_registry& registry,
                                      const tasks::task_services& services,
                                      std::stop_token stop) {
  attempt_result result;
  result.id = task.id;
  auto* def = registry.find(task.name);
  if (def == nullptr) {
    result.status = attempt_status::permanent;
    result.error = "no handler is registered for task name '" + task.name + "'";
    return result;
  }
  try {
    auto args = tasks::parse_args(task.args_json);
    if (def->validate)
      def->validate(tasks::args_reader{args});
    tasks::task_context ctx{task, args, services, std::move(stop)};
    auto value = def->run(ctx);
    result.status = attempt_status::succeeded;
    result.result_json = boost::json::serialize(value);
    result.followups = std::move(ctx.followups());
  } catch (const tasks::invalid_args& e) {
    result.status = attempt_status::permanent;
    result.error = std::string{"invalid arguments: "} + e.what();
  } catch (const tasks::permanent_failure& e) {
    result.status = attempt_status::permanent;
    result.error = e.what();
  } catch (const tasks::task_stopped&) {
    result.status = attempt_status::stopped;
    result.error = "stopped on request";
  } catch (const std::exception& e) {
    result.status = attempt_status::failed;
    result.error = e.what();
  } catch (...) {
    result.status = attempt_status::failed;
    result.error = "unknown exception";
  }
  return result;
}

task_queue_actor spawn_task_queue(caf::actor_system& sys,
                                  task_queue_options options,
                                  task_queue_storage storage,
                                  const tasks::task_registry& registry,
                                  const tasks::task_services& services,
                                  metrics::registry* metrics) {
  return sys.spawn(task_queue, std::move(options), std::move(storage),
                   &registry, &services, metrics);
}

} // namespace engram
