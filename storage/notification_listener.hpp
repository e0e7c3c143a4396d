#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "storage/storage_actors.hpp"

namespace engram {

struct listener_options {
  /// Connection and reconnect settings (statement_timeout is not used).
  storage_options storage;
  std::vector<std::string> channels;
  /// Longest wait for a notification before the mailbox is looked at again.
  std::chrono::milliseconds wait_slice{100};
};

/// Spawns a notification listener (see notification_listener_actor).
[[nodiscard]] notification_listener_actor
spawn_notification_listener(caf::actor_system& sys, listener_options options,
                            notification_callback on_notify);

} // namespace engram
