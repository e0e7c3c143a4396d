#pragma once

// The HOT-MEMORY CACHE (DESIGN §1, §6): each agent's hot memories (active,
// tier hot), loaded on first request and kept until a consolidation phase,
// a restore or an import changes that agent's memories.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/memories.hpp"

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>

namespace engram::cache {

/// An agent's hot memories (errc::invalid_argument for a malformed id).
struct hot_memories_request {
  std::string agent_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hot_memories_request& x) {
  return f(caf::meta::type_name("hot_memories_request"), x.agent_id);
}

struct hot_memories {
  std::string agent_id;
  /// By importance desc, last access desc, id.
  std::vector<memories::memory_record> memories;
  /// Whether the answer came from the cache.
  bool cached = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hot_memories& x) {
  return f(caf::meta::type_name("hot_memories"), x.agent_id, x.memories,
           x.cached);
}

/// Drops the cached memories of `agent_ids` of project `project_id`; an
/// empty agent id stands for every agent of the project (a project-wide
/// memory changed).
struct invalidate_agents {
  std::string project_id;
  std::vector<std::string> agent_ids;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, invalidate_agents& x) {
  return f(caf::meta::type_name("invalidate_agents"), x.project_id,
           x.agent_ids);
}

struct cache_stats {
  int64_t agents = 0;
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t invalidations = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_stats& x) {
  return f(caf::meta::type_name("cache_stats"), x.agents, x.hits, x.misses,
           x.invalidations);
}

/// Reads an agent's hot memories from the database (storage worker).
struct load_hot_memories {
  std::string agent_id;
  int32_t limit = 20;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_hot_memories& x) {
  return f(caf::meta::type_name("load_hot_memories"), x.agent_id, x.limit);
}

} // namespace engram::cache

namespace engram {

/// The hot cache's key in the actor registry.
inline constexpr char hot_cache_name[] = "hot_cache";

using hot_cache_actor = caf::typed_actor<
  caf::replies_to<cache::hot_memories_request>::with<cache::hot_memories>,
  caf::reacts_to<cache::invalidate_agents>,
  caf::replies_to<atom::stats>::with<cache::cache_stats>>;

/// Tells this node's hot cache (when it runs) that the memories of `agents`
/// of `project` changed ("" = a project-wide memory: every agent).
inline void invalidate_hot_memories(caf::actor_system& sys,
                                    std::string project,
                                    std::vector<std::string> agents) {
  if (agents.empty())
    return;
  if (auto cache
      = sys.registry().get<hot_cache_actor>(caf::atom(hot_cache_name)))
    caf::anon_send(cache, cache::invalidate_agents{std::move(project),
                                                   std::move(agents)});
}

} // namespace engram
