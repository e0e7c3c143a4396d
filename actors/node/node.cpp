#include "actors/node/node.hpp"

#include <caf/actor_registry.hpp>

#include "messages/errc.hpp"
#include "runtime/log.hpp"

namespace engram {

namespace {

using self_ptr = node_actor::stateful_pointer<node_state>;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("node");
  return result;
}

storage_actor storage_of(self_ptr self) {
  return self->system().registry().get<storage_actor>(
    caf::atom(storage_pool_name));
}

void heartbeat(self_ptr self) {
  auto& st = self->state;
  auto storage = storage_of(self);
  auto next = [self] {
    self->delayed_send(self, self->state.interval, atom::tick_v);
  };
  if (!storage) {
    next();
    return;
  }
  self->request(storage, st.interval, storage::node_heartbeat{st.info})
    .then(
      [self, next](bool) {
        auto& st = self->state;
        if (!st.registered)
          logger()->info("node {} registered (host {}, pid {})", st.info.id,
                         st.info.host, st.info.pid);
        else if (st.failing)
          logger()->info("heartbeat recovered");
        st.registered = true;
        st.failing = false;
        next();
      },
      [self, next](caf::error& err) {
        if (!self->state.failing)
          logger()->warn("heartbeat failed: {}", describe(err));
        self->state.failing = true;
        next();
      });
}

} // namespace

node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               storage::node_info info,
                               std::chrono::milliseconds interval) {
  self->state.info = std::move(info);
  self->state.interval = interval;
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // No heartbeat after this point: one committing after node_stopped
    // would mark the node alive again.
    self->state.stopping = true;
    auto storage = storage_of(self);
    if (!storage || !self->state.registered) {
      self->quit(msg.reason);
      return;
    }
    auto reason = msg.reason;
    self->request(storage, std::chrono::seconds{2},
                  storage::node_stopped{self->state.info.id})
      .then([self, reason](bool) { self->quit(reason); },
            [self, reason](caf::error& err) {
              logger()->warn("could not mark the node stopped: {}",
                             describe(err));
              self->quit(reason);
            });
  });
  self->send(self, atom::tick_v);
  return {
    [self](atom::tick) {
      if (!self->state.stopping)
        heartbeat(self);
    },
  };
}

} // namespace engram
