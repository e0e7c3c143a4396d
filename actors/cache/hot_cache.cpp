#include "actors/cache/hot_cache.hpp"

#include <list>
#include <unordered_map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/uuid.hpp"

namespace engram {

namespace {

struct entry {
  std::vector<memories::memory_record> memories;
  /// The project of the agent's memories ("" when it has none).
  std::string project_id;
  std::list<std::string>::iterator lru;
};

struct cache_state {
  hot_cache_options options;
  std::unordered_map<std::string, entry> entries;
  /// Most recently used first.
  std::list<std::string> lru;
  /// Bumped per agent at every invalidation; a load only lands when its
  /// agent's generation did not move meanwhile.
  std::unordered_map<std::string, uint64_t> generation;
  uint64_t project_generation = 0;
  cache::cache_stats stats;
  static inline const char* name = "hot_cache";
};

using cache_ptr = hot_cache_actor::stateful_pointer<cache_state>;

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

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
  if (!list.empty())
    e.project_id = list.front().project_id;
  e.memories = std::move(list);
  st.lru.push_front(agent);
  e.lru = st.lru.begin();
  st.entries.emplace(agent, std::move(e));
  while (st.entries.size() > st.options.max_agents && !st.lru.empty())
    drop(st, st.lru.back());
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
      auto agent = lower(req.agent_id);
      if (auto it = st.entries.find(agent); it != st.entries.end()) {
        ++st.stats.hits;
        st.lru.splice(st.lru.begin(), st.lru, it->second.lru);
        return cache::hot_memories{agent, it->second.memories, true};
      }
      ++st.stats.misses;
      auto rp = self->make_response_promise<cache::hot_memories>();
      auto generation = st.generation[agent];
      auto project_generation = st.project_generation;
      self
        ->request(st.options.storage, caf::infinite,
                  cache::load_hot_memories{agent, st.options.per_agent})
        .then(
          [self, rp, agent, generation, project_generation](
            std::vector<memories::memory_record>& list) mutable {
            auto& st = self->state;
            if (st.generation[agent] == generation
                && st.project_generation == project_generation)
              store(st, agent, list);
            rp.deliver(cache::hot_memories{agent, std::move(list), false});
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](cache::invalidate_agents& msg) {
      auto& st = self->state;
      ++st.stats.invalidations;
      bool whole_project = false;
      for (const auto& a : msg.agent_ids) {
        if (a.empty()) {
          whole_project = true;
          continue;
        }
        auto agent = lower(a);
        ++st.generation[agent];
        drop(st, agent);
      }
      if (whole_project) {
        // Loads in flight cannot be told apart by project: none lands.
        ++st.project_generation;
        auto project = lower(msg.project_id);
        std::vector<std::string> gone;
        for (const auto& [agent, e] : st.entries)
          if (e.project_id == project || e.project_id.empty())
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
