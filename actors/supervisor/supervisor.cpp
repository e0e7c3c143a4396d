#include "actors/supervisor/supervisor.hpp"

#include <caf/actor_registry.hpp>
#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"

namespace engram {

bool admit_restart(std::deque<caf::actor_clock::time_point>& history,
                   caf::actor_clock::time_point now,
                   uint64_t max_restarts, caf::timespan window) {
  while (!history.empty() && now - history.front() > window)
    history.pop_front();
  history.push_back(now);
  return history.size() <= max_restarts;
}

namespace {

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("supervisor");
  return result;
}

void count_restart(self_ptr self, const std::string& name) {
  if (auto* registry = self->state.options.metrics)
    registry
      ->get_counter("engram_actor_restarts_total",
                    "Restarts of supervised actors after an abnormal exit.",
                    {{"actor", name}})
      .inc();
}

void start_child(self_ptr self, supervisor_state::child& c) {
  c.handle = c.spec.start(self->system());
  c.running = true;
  self->monitor(c.handle);
  self->system().registry().put(caf::atom_from_string(c.spec.name), c.handle);
}

void finish(self_ptr self) {
  logger()->info("all children stopped");
  self->quit(self->state.exit_reason);
}

/// Stops the running child with the highest index below `stop_index`, or
/// finishes when none is left.
void stop_next(self_ptr self) {
  auto& st = self->state;
  while (st.stop_index > 0) {
    auto i = st.stop_index - 1;
    auto& c = st.children[i];
    if (!c.running) {
      st.stop_index = i;
      continue;
    }
    logger()->info("stopping {}", c.spec.name);
    self->send_exit(c.handle, caf::exit_reason::user_shutdown);
    self->delayed_send(self, c.spec.stop_timeout, atom::shutdown_v,
                       static_cast<uint64_t>(i));
    return;
  }
  finish(self);
}

void begin_shutdown(self_ptr self, caf::error reason) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = true;
  st.exit_reason = std::move(reason);
  st.stop_index = st.children.size();
  stop_next(self);
}

void on_child_down(self_ptr self, size_t index, const caf::error& reason) {
  auto& st = self->state;
  auto& c = st.children[index];
  c.running = false;
  self->system().registry().erase(caf::atom_from_string(c.spec.name));
  if (st.stopping) {
    // Only the child being stopped advances the sequence; one that crashed
    // meanwhile is skipped when its turn comes.
    if (index + 1 == st.stop_index) {
      st.stop_index = index;
      stop_next(self);
    }
    return;
  }
  if (!reason || reason == caf::exit_reason::normal) {
    logger()->info("{} exited normally; not restarting it", c.spec.name);
    return;
  }
  auto why = describe(reason);
  if (!admit_restart(c.restart_history, self->clock().now(),
                     st.options.max_restarts, st.options.restart_window)) {
    auto window_s
      = std::chrono::duration_cast<std::chrono::milliseconds>(
          st.options.restart_window)
          .count()
        / 1000.0;
    auto msg = fmt::format("{} failed more than {} times within {}s (last: "
                           "{}); escalating: shutting down",
                           c.spec.name, st.options.max_restarts, window_s, why);
    logger()->critical("{}", msg);
    begin_shutdown(self, make_error(errc::child_failed, std::move(msg)));
    return;
  }
  ++c.restarts;
  count_restart(self, c.spec.name);
  logger()->warn("{} exited abnormally ({}); restarting it (restart {})",
                 c.spec.name, why, c.restarts);
  start_child(self, c);
}

} // namespace

supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
           std::vector<child_spec> specs, supervisor_options options) {
  auto& st = self->state;
  st.options = options;
  for (auto& spec : specs)
    st.children.push_back({std::move(spec), {}, false, 0, {}});
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& children = self->state.children;
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i].running && children[i].handle.address() == msg.source) {
        on_child_down(self, i, msg.reason);
        return;
      }
  });
  // A shutdown request from outside arrives as a message; an exit message
  // (e.g. the actor system shutting down) means the same.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    begin_shutdown(self, {});
  });
  for (auto& c : st.children) {
    if (st.options.metrics)
      st.options.metrics->get_counter(
        "engram_actor_restarts_total",
        "Restarts of supervised actors after an abnormal exit.",
        {{"actor", c.spec.name}});
    logger()->info("starting {}", c.spec.name);
    start_child(self, c);
  }
  return {
    [self](atom::stats) {
      std::vector<child_status> result;
      for (auto& c : self->state.children)
        result.push_back({c.spec.name, c.restarts, c.running});
      return result;
    },
    [self](atom::shutdown) { begin_shutdown(self, {}); },
    [self](atom::shutdown, uint64_t index) {
      auto& st = self->state;
      if (index >= st.children.size())
        return;
      auto& c = st.children[index];
      if (c.running && st.stopping && index + 1 == st.stop_index) {
        logger()->warn("{} did not stop within its stop timeout; killing it",
                       c.spec.name);
        self->send_exit(c.handle, caf::exit_reason::kill);
      }
    },
  };
}

} // namespace engram
