#pragma once

// The HOT-MEMORY CACHE (DESIGN §1, §6): per agent, its hot memories (active,
// tier hot; see storage's hot_memories for the order), loaded from storage
// on the first request and served from memory until invalidated. Every
// consolidation phase that changes an agent's memories invalidates that
// agent (the coordinator's invalidate phase); an invalidation for a
// project-wide memory drops every cached agent of that project. A load that
// was in flight during any invalidation answers its requester but is not
// cached, so a stale list never outlives an invalidation.
//
// The cache holds at most `max_agents` agents; the least recently used one
// goes first.

#include <cstddef>
#include <cstdint>

#include <caf/actor_system.hpp>

#include "messages/cache.hpp"
#include "messages/storage.hpp"

namespace engram {

struct hot_cache_options {
  /// Unset: the storage pool in the actor registry, looked up at each load.
  storage_actor storage;
  /// Memories per agent.
  int32_t per_agent = 20;
  /// Agents kept.
  size_t max_agents = 10000;
};

[[nodiscard]] hot_cache_actor spawn_hot_cache(caf::actor_system& sys,
                                              hot_cache_options options);

} // namespace engram
