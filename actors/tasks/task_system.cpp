#include "actors/tasks/task_system.hpp"

#include <algorithm>
#include <map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"

namespace engram {

namespace {

using namespace std::chrono_literals;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("tasks");
  return result;
}

struct system_state {
  task_system_options options;
  const tasks::task_services* services = nullptr;
  metrics::registry* metrics = nullptr;
  std::map<std::string, task_queue_actor> queues;
  storage_actor maintenance;
  notification_listener_actor listener;
  bool stopping = false;
  bool reclaim_in_flight = false;
  size_t queues_down = 0;
  metrics::counter* reclaimed = nullptr;

  static inline const char* name = "task_system";
};

using self_ptr = task_system_actor::stateful_pointer<system_state>;

void refresh_depths(self_ptr self) {
  auto& st = self->state;
  if (st.metrics == nullptr)
    return;
  self
    ->request(st.maintenance, 30s,
              tasks::queue_depths_request{to_epoch_us(st.services->time->now())})
    .then(
      [self](std::vector<tasks::queue_depth>& depths) {
        auto& st = self->state;
        std::map<std::string, tasks::queue_depth> by_queue;
        for (auto& d : depths)
          by_queue[d.queue] = d;
        // Every served queue gets a value (0 when empty), and so does any
        // queue that has work but no worker here.
        for (const auto& [name, q] : st.queues)
          by_queue.try_emplace(name, tasks::queue_depth{name, 0, 0, 0});
        for (const auto& [name, d] : by_queue) {
          constexpr auto help = "Tasks in the queue by state (queued or "
                                "running).";
          st.metrics
            ->get_gauge("engram_task_queue_depth", help,
                        {{"queue", name}, {"state", "queued"}})
            .set(static_cast<double>(d.queued));
          st.metrics
            ->get_gauge("engram_task_queue_depth", help,
                        {{"queue", name}, {"state", "running"}})
            .set(static_cast<double>(d.running));
          st.metrics
            ->get_gauge("engram_task_queue_oldest_age_seconds",
                        "Age of the oldest due queued task by queue.",
                        {{"queue", name}})
            .set(static_cast<double>(d.oldest_age_ms) / 1000.0);
        }
      },
      [](caf::error& err) {
        logger()->debug("reading queue depths failed: {}", describe(err));
      });
}

void reclaim(self_ptr self) {
  auto& st = self->state;
  if (st.reclaim_in_flight)
    return;
  st.reclaim_in_flight = true;
  self
    ->request(st.maintenance, 30s,
              tasks::reclaim_expired{1000, to_epoch_us(st.services->time->now())})
    .then(
      [self](std::vector<int64_t>& ids) {
        auto& st = self->state;
        st.reclaim_in_flight = false;
        if (ids.empty())
          return;
        if (st.reclaimed != nullptr)
          st.reclaimed->inc(static_cast<double>(ids.size()));
        logger()->warn("reclaimed {} task(s) whose worker stopped renewing "
                       "the lease (first id {})",
                       ids.size(), ids.front());
        if (ids.size() == 1000)
          reclaim(self); // more may be waiting
      },
      [self](caf::error& err) {
        self->state.reclaim_in_flight = false;
        logger()->warn("reclaiming expired leases failed: {}", describe(err));
      });
}

task_system_actor::behavior_type
task_system(self_ptr self, task_system_options options,
            const tasks::task_registry* registry,
            const tasks::task_services* services, metrics::registry* metrics) {
  auto& st = self->state;
  st.options = std::move(options);
  st.services = services;
  st.metrics = metrics;
  if (metrics != nullptr)
    st.reclaimed = &metrics->get_counter(
      "engram_task_lease_reclaims_total",
      "Running tasks returned to their queue because their lease expired.");
  auto& sys = self->system();
  for (const auto& q : st.options.queues) {
    auto opts = st.options.queue_defaults;
    opts.queue = q.name;
    opts.concurrency = q.concurrency;
    task_queue_storage storage;
    if (st.options.spawn_task_store) {
      storage.waiter = st.options.spawn_task_store(sys);
      storage.claimer = storage.waiter;
      storage.acker = st.options.spawn_task_store(sys);
    } else {
      storage.claimer = st.options.spawn_storage(sys);
      storage.acker = st.options.spawn_storage(sys);
    }
    auto queue = spawn_task_queue(sys, std::move(opts), std::move(storage),
                                  *registry, *services, metrics);
    // Linked, so a failure on either side takes the other down; monitored,
    // because a normal exit (the end of a drain) reaches monitors only.
    self->link_to(queue);
    self->monitor(queue);
    st.queues.emplace(q.name, queue);
  }
  st.maintenance = st.options.spawn_storage(sys);
  self->link_to(st.maintenance);
  // The listener wakes the queue a notification names; an empty payload
  // (after a reconnect) wakes them all.
  std::map<std::string, task_queue_actor> routes = st.queues;
  st.listener = st.options.spawn_listener(
    sys,
    [routes](const std::string&, const std::string& payload) {
      if (payload.empty()) {
        for (const auto& [name, q] : routes)
          caf::anon_send(q, tasks::wake{});
      } else if (auto i = routes.find(payload); i != routes.end()) {
        caf::anon_send(i->second, tasks::wake{});
      }
    });
  self->link_to(st.listener);
  self->set_down_handler([self](caf::down_msg& msg) {
    logger()->error("a task queue stopped: {}", describe(msg.reason));
    self->quit(make_error(errc::child_failed, "a task queue stopped"));
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    bool from_queue = std::any_of(st.queues.begin(), st.queues.end(),
                                  [&](const auto& kv) {
                                    return kv.second.address() == msg.source;
                                  });
    if (from_queue) {
      logger()->error("a task queue failed: {}", describe(msg.reason));
      self->quit(msg.reason ? msg.reason
                            : make_error(errc::child_failed,
                                         "a task queue stopped unexpectedly"));
      return;
    }
    if (msg.reason != caf::exit_reason::user_shutdown
        && msg.reason != caf::exit_reason::normal) {
      self->quit(msg.reason);
      return;
    }
    if (st.stopping)
      return;
    st.stopping = true;
    self->set_down_handler([self](caf::down_msg&) {
      auto& st = self->state;
      if (++st.queues_down == st.queues.size()) {
        self->send_exit(st.maintenance, caf::exit_reason::user_shutdown);
        self->quit();
      }
    });
    // Stop waking queues at once; then let every queue drain.
    self->unlink_from(st.listener);
    self->send_exit(st.listener, caf::exit_reason::user_shutdown);
    for (const auto& [name, q] : st.queues)
      self->send_exit(q, caf::exit_reason::user_shutdown);
    if (st.queues.empty())
      self->quit();
  });
  logger()->info("task workers started: {}", [&] {
    std::string text;
    for (const auto& q : st.options.queues)
      text += (text.empty() ? "" : ", ") + q.name + "="
              + std::to_string(q.concurrency);
    return text;
  }());
  self->send(self, atom::tick_v);
  return {
    [self](atom::tick) {
      auto& st = self->state;
      if (st.stopping)
        return;
      reclaim(self);
      refresh_depths(self);
      self->delayed_send(self, st.options.reclaim_interval, atom::tick_v);
    },
    [self](atom::stats) -> caf::result<std::vector<tasks::queue_stats>> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::vector<tasks::queue_stats>>();
      auto collected = std::make_shared<std::vector<tasks::queue_stats>>();
      auto pending = std::make_shared<size_t>(st.queues.size());
      if (*pending == 0)
        return std::vector<tasks::queue_stats>{};
      for (const auto& [name, q] : st.queues)
        self->request(q, 5s, atom::stats_v)
          .then(
            [rp, collected, pending](tasks::queue_stats& s) mutable {
              collected->push_back(std::move(s));
              if (--*pending == 0)
                rp.deliver(std::move(*collected));
            },
            [rp, pending](caf::error& err) mutable {
              if (*pending != 0) {
                *pending = 0;
                rp.deliver(std::move(err));
              }
            });
      return rp;
    },
  };
}

} // namespace

task_system_actor spawn_task_system(caf::actor_system& sys,
                                    task_system_options options,
                                    const tasks::task_registry& registry,
                                    const tasks::task_services& services,
                                    metrics::registry* metrics) {
  return sys.spawn(task_system, std::move(options), &registry, &services,
                   metrics);
}

} // namespace engram
