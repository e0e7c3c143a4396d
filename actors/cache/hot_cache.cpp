#include "actors/cache/hot_cache.hpp"

#include <list>
#include <set>
#include <unordered_map>

#include <caf/actor_registry.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/uuid.hpp"

namespace engram {

namespace {

struct entry {
  std::vector<memories::memory_record> memories;
  /// The projects of the agent's hot memories (an agent's memories may
  /// span projects).
  std::set<std::string> projects;
  std::list<std::string>::iterator lru;
};

struct cache_state {
  hot_cache_options options;
  std::unordered_map<std::string, entry> entries;
  /// Most recently used first.
  std::list<std::string> lru;
  /// Bumped at every invalidation; a load only lands when no invalidation
  /// came while it was in flight (conservative, and no state per agent
  /// that could grow without bound).
  uint64_t invalidations = 0;
  cache::cache_stats stats;
  static inline const char* name = "hot_cache";
};

using cache_ptr = hot_cache_actor::stateful_pointer<cache_state>;

void drop(cache_state& st, const std::string& agent) {
  auto it = st.entries.find(agent);
  if (it == st.entries.end())
    return;
  st.lru.erase(it->second.lru);
  st.entries.erase(it);
}

void store(cache_state& st, const std::string& agent,
           std::vector<memories::memory_record> list) {
  drop(st, agent);
  entry e;
  for (const auto& m : list)
    e.projects.insert(m.project_id);
  e.memories = std::move(list);
  st.lru.push_front(agent);
  e.lru = st.lru.begin();
  st.entries.emplace(agent, std::move(e));
  while (st.entries.size() > st.options.max_agents && !st.lru.empty())
    drop(st, st.lru.back());
}

/// The configured storage, else the pool in the actor registry (looked up
/// at each load, so a restarted pool is found).
storage_actor storage_of(cache_ptr self) {
  if (self->state.options.storage)
    return self->state.options.storage;
  return self->system().registry().get<storage_actor>(
    caf::atom(storage_pool_name));
}

hot_cache_actor::behavior_type hot_cache(cache_ptr self,
                                         hot_cache_options options) {
  self->state.options = std::move(options);
  return {
    [self](cache::hot_memories_request& req)
      -> caf::result<cache::hot_memories> {
      auto& st = self->state;
      if (!is_uuid(req.agent_id))
        return make_error(errc::invalid_argument, "agent_id: not a UUID");
      auto agent = ascii_lower(req.agent_id);
      if (auto it = st.entries.find(agent); it != st.entries.end()) {
        ++st.stats.hits;
        st.lru.splice(st.lru.begin(), st.lru, it->second.lru);
        return cache::hot_memories{agent, it->second.memories, true};
      }
      ++st.stats.misses;
      auto rp = self->make_response_promise<cache::hot_memories>();
      auto invalidations = st.invalidations;
      self
        ->request(storage_of(self), caf::infinite,
                  cache::load_hot_memories{agent, st.options.per_agent})
        .then(
          [self, rp, agent, invalidations](
            std::vector<memories::memory_record>& list) mutable {
            auto& st = self->state;
            if (st.invalidations == invalidations)
              store(st, agent, list);
            rp.deliver(cache::hot_memories{agent, std::move(list), false});
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](cache::invalidate_agents& msg) {
      auto& st = self->state;
      ++st.stats.invalidations;
      ++st.invalidations;
      auto project = ascii_lower(msg.project_id);
      for (const auto& a : msg.agent_ids) {
        if (!a.empty()) {
          drop(st, ascii_lower(a));
          continue;
        }
        // A project-wide memory changed: every agent with hot memories in
        // the project (and agents whose list is empty).
        std::vector<std::string> gone;
        for (const auto& [agent, e] : st.entries)
          if (e.projects.empty() || e.projects.count(project) > 0)
            gone.push_back(agent);
        for (const auto& agent : gone)
          drop(st, agent);
      }
    },
    [self](atom::stats) {
      auto out = self->state.stats;
      out.agents = static_cast<int64_t>(self->state.entries.size());
      return out;
    },
  };
}

} // namespace

hot_cache_actor spawn_hot_cache(caf::actor_system& sys,
                                hot_cache_options options) {
  return sys.spawn(hot_cache, std::move(options));
}

} // namespace engram
