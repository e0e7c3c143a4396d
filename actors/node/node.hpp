#pragma once

#include <chrono>

#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>

#include "messages/storage.hpp"

namespace engram {

/// The NODE actor interface: keeps this process's row in `engram.nodes`.
using node_actor = caf::typed_actor<
  // Internal: time for the next heartbeat.
  caf::reacts_to<atom::tick>>;

struct node_state {
  storage::node_info info;
  std::chrono::milliseconds interval{5000};
  /// Whether the last heartbeat failed (to log the change once, not each time).
  bool failing = false;
  bool registered = false;
  /// Set once shutdown began: no more heartbeats.
  bool stopping = false;

  static inline const char* name = "node";
};

/// Upserts the node's row at once and then every `interval` through the
/// storage pool (looked up in the registry each time, so a restarted pool is
/// found). On shutdown it marks the row stopped (bounded wait) and quits.
node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               storage::node_info info,
                               std::chrono::milliseconds interval);

} // namespace engram
