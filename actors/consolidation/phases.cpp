#include "actors/consolidation/phases.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "messages/errc.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/memory_text.hpp"
#include "runtime/vector_kernel.hpp"

namespace engram::consolidation {

namespace {

constexpr double us_per_day = 86'400'000'000.0;

/// One greedy cluster: memory indices in visiting order, the seed first.
struct cluster {
  int32_t space = no_space;
  /// The seed's position in the visiting order.
  size_t seed_pos = 0;
  std::vector<uint32_t> members;
};

/// The greedy clusters (`vec::assign_leaders`) of `order`: memories with an
/// embedding in visiting order, clustered per space; returned in the order
/// of their seeds' positions in `order`.
std::vector<cluster> greedy_clusters(const snapshot& s,
                                     std::span<const uint32_t> order,
                                     double threshold) {
  std::map<int32_t, std::vector<size_t>> by_space;
  for (size_t pos = 0; pos < order.size(); ++pos)
    by_space[s.memories[order[pos]].space].push_back(pos);
  std::vector<cluster> result;
  for (const auto& [space, positions] : by_space) {
    const auto& vectors = s.spaces[space].vectors;
    vec::matrix rows{vectors.dim()};
    rows.reserve(positions.size());
    for (auto pos : positions)
      rows.append(vectors.row(s.memories[order[pos]].row));
    auto assigned = vec::assign_leaders(rows.view(),
                                        static_cast<float>(threshold));
    auto first = result.size();
    for (auto r : assigned.new_leader_rows)
      result.push_back(cluster{space, positions[r], {}});
    // Rows are in visiting order and a leader precedes its members, so each
    // cluster lists its seed first.
    for (size_t r = 0; r < positions.size(); ++r)
      result[first + assigned.leader_of[r]].members.push_back(
        order[positions[r]]);
  }
  std::sort(result.begin(), result.end(),
            [](const cluster& a, const cluster& b) {
              return a.seed_pos < b.seed_pos;
            });
  return result;
}

void sort_by(const snapshot& s, std::vector<uint32_t>& idx,
             bool (*less)(const memory&, const memory&)) {
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
    return less(s.memories[a], s.memories[b]);
  });
}

std::vector<std::string> sorted_unique(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  return xs;
}

/// Whether `v` normalises to a unit vector (finite, not all zeros).
bool usable(std::span<const float> v) {
  bool nonzero = false;
  for (float x : v) {
    if (!std::isfinite(x))
      return false;
    nonzero = nonzero || x != 0.0f;
  }
  return nonzero;
}

std::vector<float> unit(std::span<const float> v) {
  std::vector<float> out{v.begin(), v.end()};
  vec::normalize(out);
  return out;
}

/// Appends `v` (a unit vector) to space `space` and returns its row.
uint32_t append_row(snapshot& s, int32_t space, const std::vector<float>& v) {
  return static_cast<uint32_t>(s.spaces[space].vectors.append(v.data()));
}

caf::error invalid(std::string what) {
  return make_error(errc::invalid_argument, std::move(what));
}

/// Checks that `i` names an active memory of `s` not used before in the
/// same plan.
caf::error check_active(const snapshot& s, uint32_t i,
                        std::vector<bool>& used, std::string_view what) {
  if (i >= s.memories.size())
    return invalid(std::string{what} + ": memory index " + std::to_string(i)
                   + " is out of range");
  if (!s.memories[i].active())
    return invalid(std::string{what} + ": memory " + s.memories[i].id
                   + " is not active");
  if (used[i])
    return invalid(std::string{what} + ": memory " + s.memories[i].id
                   + " appears twice in the plan");
  used[i] = true;
  return {};
}

/// The dimension of a vector made by `model` once new spaces planned so
/// far (`planned`) exist; 0: no such space yet.
size_t planned_dim(const snapshot& s,
                   const std::map<std::string, size_t, std::less<>>& planned,
                   std::string_view model) {
  if (auto sp = s.find_space(model); sp != no_space)
    return s.spaces[sp].vectors.dim();
  if (auto i = planned.find(model); i != planned.end())
    return i->second;
  return 0;
}

/// Checks a new memory's vector by `model`, recording a new space.
caf::error check_new_vector(const snapshot& s,
                            std::map<std::string, size_t, std::less<>>& planned,
                            std::span<const float> v, std::string_view model,
                            std::string_view what) {
  if (!usable(v))
    return {};
  if (model.empty())
    return invalid(std::string{what} + ": an embedding without a model");
  auto dim = planned_dim(s, planned, model);
  if (dim == 0)
    planned.emplace(std::string{model}, v.size());
  else if (dim != v.size())
    return invalid(std::string{what} + ": an embedding of "
                   + std::to_string(v.size()) + " dimensions for model "
                   + std::string{model} + " of " + std::to_string(dim));
  return {};
}

/// Principles in the order hierarchy and playbook visit them: active, type
/// principle, with an embedding; (created_at, id) order, then those this
/// run created in creation order.
std::vector<uint32_t> principles_in_order(const snapshot& s) {
  std::vector<uint32_t> result;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (m.active() && m.type == memory_type::principle && has_embedding(s, m))
      result.push_back(i);
  }
  std::stable_sort(result.begin(), result.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = s.memories[a];
    const auto& y = s.memories[b];
    if (x.created_in_run != y.created_in_run)
      return !x.created_in_run;
    if (x.created_in_run)
      return a < b;
    return age_order(x, y);
  });
  return result;
}

std::string trim(std::string_view x) {
  auto b = x.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return {};
  auto e = x.find_last_not_of(" \t\r\n");
  return std::string{x.substr(b, e - b + 1)};
}

} // namespace

// -- shared helpers ---------------------------------------------------------------

bool has_embedding(const snapshot& s, const memory& m) {
  if (m.space < 0 || static_cast<size_t>(m.space) >= s.spaces.size())
    return false;
  const auto& vectors = s.spaces[m.space].vectors;
  if (m.row >= vectors.rows())
    return false;
  const float* p = vectors.row(m.row);
  return std::any_of(p, p + vectors.dim(), [](float x) { return x != 0.0f; });
}

bool importance_order(const memory& a, const memory& b) {
  if (a.importance != b.importance)
    return a.importance > b.importance;
  if (a.created_at_us != b.created_at_us)
    return a.created_at_us < b.created_at_us;
  return a.id < b.id;
}

bool age_order(const memory& a, const memory& b) {
  if (a.created_at_us != b.created_at_us)
    return a.created_at_us < b.created_at_us;
  return a.id < b.id;
}

bool older_than(int64_t as_of_us, int64_t t, double days) {
  // Whole days are exact in double (7 days = 604'800'000'000 us), and so is
  // any difference of instants within 2^53 us (285 years).
  return static_cast<double>(as_of_us - t) > days * us_per_day;
}

std::vector<float> centroid_of(const snapshot& s,
                               std::span<const uint32_t> members,
                               int32_t space) {
  if (space < 0 || static_cast<size_t>(space) >= s.spaces.size())
    return {};
  const auto& vectors = s.spaces[space].vectors;
  std::vector<uint32_t> rows;
  for (auto i : members)
    if (i < s.memories.size() && s.memories[i].space == space
        && s.memories[i].row < vectors.rows())
      rows.push_back(s.memories[i].row);
  std::vector<float> out(vectors.dim(), 0.0f);
  if (!rows.empty())
    vec::normalized_mean(vectors.view(), rows, out);
  return out;
}

// -- patterns ----------------------------------------------------------------------

patterns_plan plan_patterns(const snapshot& s, const settings& cfg) {
  patterns_plan plan;
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (m.active() && m.type != memory_type::identity && !m.created_in_run
        && has_embedding(s, m))
      order.push_back(i);
  }
  plan.memories_processed = static_cast<int64_t>(order.size());
  sort_by(s, order, importance_order);
  auto clusters = greedy_clusters(s, order, cfg.pattern_threshold);
  // Spaces in index order, each by its seeds' visiting positions.
  std::stable_sort(clusters.begin(), clusters.end(),
                   [](const cluster& a, const cluster& b) {
                     return a.space < b.space;
                   });
  std::erase_if(clusters, [&](const cluster& c) {
    return c.members.size() < static_cast<size_t>(cfg.pattern_min_support);
  });
  // Each pattern's label and centroid are its own: made at once on the
  // kernel's threads.
  plan.patterns.resize(clusters.size());
  vec::in_parts(clusters.size(), 32, [&](size_t first, size_t last) {
    std::vector<std::string> contents;
    for (auto k = first; k < last; ++k) {
      auto& c = clusters[k];
      auto& p = plan.patterns[k];
      contents.clear();
      for (auto i : c.members)
        contents.push_back(s.memories[i].content);
      p.label = engram::pattern_label(contents);
      p.space = c.space;
      p.centroid = centroid_of(s, c.members, c.space);
      p.members = std::move(c.members);
    }
  });
  plan.patterns_extracted = static_cast<int64_t>(plan.patterns.size());
  return plan;
}

void apply_patterns(snapshot& s, patterns_plan plan) {
  s.patterns = std::move(plan.patterns);
}

// -- merge -------------------------------------------------------------------------

merge_plan plan_merge(const snapshot& s, const settings& cfg) {
  merge_plan plan;
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (!m.active() || m.type == memory_type::identity || m.pinned
        || m.created_in_run)
      continue;
    ++plan.memories_processed;
    if (has_embedding(s, m))
      order.push_back(i);
  }
  // Groups (type, agent_id) one after the other, each in visiting order.
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = s.memories[a];
    const auto& y = s.memories[b];
    if (x.type != y.type)
      return x.type < y.type;
    if (x.agent_id != y.agent_id)
      return x.agent_id < y.agent_id;
    return importance_order(x, y);
  });
  std::vector<std::span<const uint32_t>> groups;
  for (size_t first = 0; first < order.size();) {
    const auto& head = s.memories[order[first]];
    auto last = first + 1;
    while (last < order.size() && s.memories[order[last]].type == head.type
           && s.memories[order[last]].agent_id == head.agent_id)
      ++last;
    groups.push_back(
      std::span<const uint32_t>{order}.subspan(first, last - first));
    first = last;
  }
  // Groups are clustered each on their own (a few thousand in a large
  // project): at once on the kernel's threads, then taken in order.
  std::vector<std::vector<cluster>> clusters(groups.size());
  vec::in_parts(groups.size(), 8, [&](size_t first, size_t last) {
    for (auto g = first; g < last; ++g)
      clusters[g] = greedy_clusters(s, groups[g], cfg.merge_threshold);
  });
  std::vector<std::string> agents;
  for (size_t k = 0; k < groups.size(); ++k) {
    const auto& head = s.memories[groups[k].front()];
    auto before = plan.groups.size();
    for (auto& c : clusters[k]) {
      if (c.members.size() < 2)
        continue;
      merge_group g;
      g.kept = c.members.front();
      g.absorbed.assign(c.members.begin() + 1, c.members.end());
      plan.memories_merged += static_cast<int64_t>(g.absorbed.size());
      plan.groups.push_back(std::move(g));
    }
    if (plan.groups.size() > before)
      agents.push_back(head.agent_id);
  }
  plan.agents_changed = sorted_unique(std::move(agents));
  return plan;
}

caf::error apply_merge(snapshot& s, const merge_plan& plan,
                       const std::vector<merge_outcome>& outcomes) {
  if (outcomes.size() != plan.groups.size())
    return invalid("merge: " + std::to_string(outcomes.size())
                   + " outcomes for " + std::to_string(plan.groups.size())
                   + " groups");
  std::vector<bool> used(s.memories.size(), false);
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const auto& group = plan.groups[g];
    if (auto err = check_active(s, group.kept, used, "merge"))
      return err;
    for (auto i : group.absorbed)
      if (auto err = check_active(s, i, used, "merge"))
        return err;
    if (const auto& v = outcomes[g].new_embedding) {
      const auto& kept = s.memories[group.kept];
      if (kept.space == no_space)
        return invalid("merge: memory " + kept.id
                       + " has no embedding to replace");
      auto dim = s.spaces[kept.space].vectors.dim();
      if (v->size() != dim)
        return invalid("merge: the new embedding of memory " + kept.id
                       + " has " + std::to_string(v->size())
                       + " dimensions, its model "
                       + std::to_string(dim));
    }
  }
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const auto& group = plan.groups[g];
    auto& kept = s.memories[group.kept];
    kept.content = outcomes[g].merged_content;
    if (const auto& v = outcomes[g].new_embedding; v && usable(*v)) {
      auto u = unit(*v);
      std::copy(u.begin(), u.end(), s.spaces[kept.space].vectors.row(kept.row));
    }
    for (auto i : group.absorbed) {
      auto& m = s.memories[i];
      // The visiting order puts the group's most important memory first.
      assert(m.importance <= kept.importance);
      m.status = memory_status::superseded;
      m.superseded_by = kept.id;
    }
  }
  return {};
}

// -- summarize ---------------------------------------------------------------------

summary_plan plan_summaries(const snapshot& s, const settings& cfg) {
  summary_plan plan;
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (!m.active() || m.type != memory_type::episodic || m.pinned
        || m.created_in_run
        || !older_than(s.as_of_us, m.created_at_us, cfg.summarize_min_age_days)
        || m.access_count >= cfg.summarize_max_access_count)
      continue;
    ++plan.memories_processed;
    if (has_embedding(s, m))
      order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = s.memories[a];
    const auto& y = s.memories[b];
    if (x.agent_id != y.agent_id)
      return x.agent_id < y.agent_id;
    return age_order(x, y);
  });
  std::vector<std::string> agents;
  for (size_t first = 0; first < order.size();) {
    const auto& agent = s.memories[order[first]].agent_id;
    auto last = first + 1;
    while (last < order.size() && s.memories[order[last]].agent_id == agent)
      ++last;
    auto group = std::span<const uint32_t>{order}.subspan(first, last - first);
    for (auto& c : greedy_clusters(s, group, cfg.summarize_threshold)) {
      // DESIGN §6: a cluster of more than 2 members.
      if (c.members.size() <= 2)
        continue;
      summary_cluster sc;
      sc.agent_id = agent;
      sc.space = c.space;
      sc.importance = 0;
      for (auto i : c.members)
        sc.importance = std::max(sc.importance, s.memories[i].importance);
      sc.members = std::move(c.members);
      plan.memories_summarized += static_cast<int64_t>(sc.members.size());
      agents.push_back(agent);
      plan.clusters.push_back(std::move(sc));
    }
    first = last;
  }
  plan.summaries_created = static_cast<int64_t>(plan.clusters.size());
  plan.agents_changed = sorted_unique(std::move(agents));
  return plan;
}

caf::error apply_summaries(snapshot& s, const summary_plan& plan,
                           const std::vector<summary_outcome>& outcomes) {
  if (outcomes.size() != plan.clusters.size())
    return invalid("summarize: " + std::to_string(outcomes.size())
                   + " outcomes for " + std::to_string(plan.clusters.size())
                   + " clusters");
  std::vector<bool> used(s.memories.size(), false);
  std::map<std::string, size_t, std::less<>> planned;
  for (size_t c = 0; c < plan.clusters.size(); ++c) {
    for (auto i : plan.clusters[c].members)
      if (auto err = check_active(s, i, used, "summarize"))
        return err;
    const auto& o = outcomes[c];
    if (o.id.empty())
      return invalid("summarize: a summary without an id");
    if (auto err = check_new_vector(s, planned, o.embedding, o.model,
                                    "summarize: summary " + o.id))
      return err;
  }
  for (size_t c = 0; c < plan.clusters.size(); ++c) {
    const auto& cl = plan.clusters[c];
    const auto& o = outcomes[c];
    memory m;
    m.id = o.id;
    m.agent_id = cl.agent_id;
    m.type = memory_type::semantic;
    m.tier = memory_tier::warm;
    m.status = memory_status::active;
    m.importance = cl.importance;
    m.source_type = "consolidation";
    m.created_at_us = o.created_at_us;
    m.content = o.content;
    m.created_in_run = true;
    if (usable(o.embedding)) {
      m.space = s.space_for(o.model, o.embedding.size());
      m.row = append_row(s, m.space, unit(o.embedding));
    } else if (auto mean = centroid_of(s, cl.members, cl.space);
               usable(mean)) {
      m.space = cl.space;
      m.row = append_row(s, m.space, mean);
    }
    for (auto i : cl.members) {
      s.memories[i].status = memory_status::superseded;
      s.memories[i].superseded_by = o.id;
    }
    s.memories.push_back(std::move(m));
  }
  return {};
}

// -- hierarchy ---------------------------------------------------------------------

hierarchy_plan plan_hierarchy(const snapshot& s, const settings& cfg) {
  hierarchy_plan plan;
  auto principles = principles_in_order(s);
  // The qualifying patterns of each space, in pattern order.
  std::map<int32_t, std::vector<uint32_t>> by_space;
  for (uint32_t p = 0; p < s.patterns.size(); ++p) {
    const auto& pat = s.patterns[p];
    if (pat.members.size() < static_cast<size_t>(cfg.principle_min_support))
      continue;
    if (pat.space < 0 || static_cast<size_t>(pat.space) >= s.spaces.size()
        || pat.centroid.empty()
        || pat.centroid.size() != s.spaces[pat.space].vectors.dim())
      continue;
    by_space[pat.space].push_back(p);
    plan.memories_processed += static_cast<int64_t>(pat.members.size());
  }
  // For each qualifying pattern: the principle it targets, as (existing
  // memory index) or (space, new leader number).
  struct target {
    std::optional<uint32_t> existing;
    int32_t space = no_space;
    size_t new_leader = 0;
    bool creates = false;
  };
  std::map<uint32_t, target> targets;
  for (const auto& [space, pats] : by_space) {
    const auto& vectors = s.spaces[space].vectors;
    vec::matrix initial{vectors.dim()};
    std::vector<uint32_t> initial_idx;
    for (auto i : principles)
      if (s.memories[i].space == space) {
        initial.append(vectors.row(s.memories[i].row));
        initial_idx.push_back(i);
      }
    vec::matrix rows{vectors.dim()};
    for (auto p : pats)
      rows.append(s.patterns[p].centroid.data());
    auto assigned = vec::assign_leaders(
      rows.view(), static_cast<float>(cfg.principle_threshold),
      initial.view());
    for (size_t r = 0; r < pats.size(); ++r) {
      target t;
      t.space = space;
      auto leader = assigned.leader_of[r];
      if (leader < assigned.initial_count) {
        t.existing = initial_idx[leader];
      } else {
        t.new_leader = leader - assigned.initial_count;
        t.creates = assigned.is_leader_row(r);
      }
      targets.emplace(pats[r], t);
    }
  }
  std::map<std::pair<int32_t, size_t>, uint32_t> new_numbers;
  std::vector<std::string> new_agents;
  std::vector<std::string> agents;
  std::vector<uint32_t> updated;
  // A member is linked once, by the first pattern that lists it (patterns
  // loaded from storage may overlap).
  std::vector<bool> linked(s.memories.size(), false);
  for (const auto& [p, t] : targets) {
    const auto& pat = s.patterns[p];
    principle_action a;
    a.pattern = p;
    a.space = pat.space;
    a.creates = t.creates;
    a.existing = t.existing;
    for (auto i : pat.members)
      if (i < s.memories.size())
        a.importance = std::max(a.importance, s.memories[i].importance);
    if (t.existing) {
      a.agent_id = s.memories[*t.existing].agent_id;
      updated.push_back(*t.existing);
    } else if (t.creates) {
      a.new_number = static_cast<uint32_t>(new_agents.size());
      new_numbers.emplace(std::pair{t.space, t.new_leader}, a.new_number);
      // The members' agent when they share one, else project-wide.
      std::optional<std::string> shared;
      for (auto i : pat.members) {
        if (i >= s.memories.size())
          continue;
        const auto& agent = s.memories[i].agent_id;
        if (!shared)
          shared = agent;
        else if (*shared != agent)
          shared = std::string{};
      }
      a.agent_id = shared.value_or(std::string{});
      new_agents.push_back(a.agent_id);
    } else {
      // A leader precedes its followers, so its number is known.
      a.new_number = new_numbers.at(std::pair{t.space, t.new_leader});
      a.agent_id = new_agents[a.new_number];
    }
    const std::string* target_id = t.existing ? &s.memories[*t.existing].id
                                              : nullptr;
    for (auto i : pat.members) {
      if (i >= s.memories.size())
        continue;
      const auto& m = s.memories[i];
      if (!m.active() || m.type == memory_type::principle)
        continue;
      if (linked[i] || (target_id != nullptr && m.parent_id == *target_id))
        continue;
      linked[i] = true;
      a.members_to_link.push_back(i);
      agents.push_back(m.agent_id);
    }
    agents.push_back(a.agent_id);
    if (a.creates)
      ++plan.principles_created;
    plan.actions.push_back(std::move(a));
  }
  std::sort(updated.begin(), updated.end());
  plan.principles_updated = std::unique(updated.begin(), updated.end())
                            - updated.begin();
  plan.agents_changed = sorted_unique(std::move(agents));
  return plan;
}

caf::error apply_hierarchy(snapshot& s, const hierarchy_plan& plan,
                           const std::vector<principle_outcome>& outcomes) {
  if (outcomes.size() != plan.actions.size())
    return invalid("hierarchy: " + std::to_string(outcomes.size())
                   + " outcomes for " + std::to_string(plan.actions.size())
                   + " actions");
  std::vector<bool> used(s.memories.size(), false);
  std::map<std::string, size_t, std::less<>> planned;
  // Model and dimension of each new principle's vector ("" and 0: none).
  std::vector<std::pair<std::string, size_t>> new_vectors;
  for (size_t k = 0; k < plan.actions.size(); ++k) {
    const auto& a = plan.actions[k];
    const auto& o = outcomes[k];
    if (a.pattern >= s.patterns.size())
      return invalid("hierarchy: pattern index " + std::to_string(a.pattern)
                     + " is out of range");
    for (auto i : a.members_to_link)
      if (auto err = check_active(s, i, used, "hierarchy"))
        return err;
    if (a.creates) {
      if (a.existing || a.new_number != new_vectors.size())
        return invalid("hierarchy: new principles must be numbered in order");
      if (o.id.empty())
        return invalid("hierarchy: a new principle without an id");
      if (auto err = check_new_vector(s, planned, o.embedding, o.model,
                                      "hierarchy: principle " + o.id))
        return err;
      const auto& pat = s.patterns[a.pattern];
      if (usable(o.embedding))
        new_vectors.emplace_back(o.model, o.embedding.size());
      else if (pat.space >= 0
               && static_cast<size_t>(pat.space) < s.spaces.size()
               && pat.centroid.size() == s.spaces[pat.space].vectors.dim()
               && usable(pat.centroid))
        new_vectors.emplace_back(s.spaces[pat.space].model,
                                 pat.centroid.size());
      else
        new_vectors.emplace_back(std::string{}, 0);
      continue;
    }
    std::string model;
    size_t dim = 0;
    if (a.existing) {
      auto i = *a.existing;
      if (i >= s.memories.size() || !s.memories[i].active()
          || s.memories[i].type != memory_type::principle)
        return invalid("hierarchy: memory index " + std::to_string(i)
                       + " is not an active principle");
      const auto& m = s.memories[i];
      if (m.space != no_space) {
        model = s.spaces[m.space].model;
        dim = s.spaces[m.space].vectors.dim();
      }
    } else {
      if (a.new_number >= new_vectors.size())
        return invalid("hierarchy: an update of principle #"
                       + std::to_string(a.new_number)
                       + " before its creation");
      std::tie(model, dim) = new_vectors[a.new_number];
    }
    if (usable(o.embedding)) {
      if (dim == 0)
        return invalid("hierarchy: an embedding for a principle without one");
      if ((!o.model.empty() && o.model != model) || o.embedding.size() != dim)
        return invalid("hierarchy: the new embedding of a principle must be"
                       " of its model " + model + " ("
                       + std::to_string(dim) + " dimensions)");
    }
  }
  std::vector<uint32_t> created;
  for (size_t k = 0; k < plan.actions.size(); ++k) {
    const auto& a = plan.actions[k];
    const auto& o = outcomes[k];
    uint32_t target = 0;
    if (a.creates) {
      const auto& pat = s.patterns[a.pattern];
      memory m;
      m.id = o.id;
      m.agent_id = a.agent_id;
      m.type = memory_type::principle;
      m.tier = memory_tier::warm;
      m.status = memory_status::active;
      m.importance = a.importance;
      m.source_type = "consolidation";
      m.created_at_us = o.created_at_us;
      m.content = o.content;
      m.created_in_run = true;
      if (usable(o.embedding)) {
        m.space = s.space_for(o.model, o.embedding.size());
        m.row = append_row(s, m.space, unit(o.embedding));
      } else if (new_vectors[a.new_number].second != 0) {
        m.space = pat.space;
        m.row = append_row(s, m.space, unit(pat.centroid));
      }
      target = static_cast<uint32_t>(s.memories.size());
      s.memories.push_back(std::move(m));
      created.push_back(target);
    } else {
      target = a.existing ? *a.existing : created[a.new_number];
      auto& m = s.memories[target];
      m.content = o.content;
      m.importance = std::max(m.importance, a.importance);
      if (usable(o.embedding)) {
        auto u = unit(o.embedding);
        std::copy(u.begin(), u.end(), s.spaces[m.space].vectors.row(m.row));
      }
    }
    const auto id = s.memories[target].id;
    for (auto i : a.members_to_link)
      s.memories[i].parent_id = id;
  }
  return {};
}

// -- playbook ----------------------------------------------------------------------

std::string playbook_title(std::string_view content) {
  constexpr size_t max_bytes = 80;
  constexpr std::string_view ellipsis = "...";
  auto sentences = split_sentences(content);
  auto title = sentences.empty() ? trim(content) : sentences.front();
  if (title.size() <= max_bytes)
    return title;
  auto cut = max_bytes - ellipsis.size();
  // Never split a UTF-8 sequence.
  while (cut > 0 && (static_cast<unsigned char>(title[cut]) & 0xC0) == 0x80)
    --cut;
  // Prefer a word boundary when it does not lose half the title.
  if (auto space = title.rfind(' ', cut);
      space != std::string::npos && space >= cut / 2)
    cut = space;
  title.resize(cut);
  title = trim(title);
  return title + std::string{ellipsis};
}

playbook_plan plan_playbook(const snapshot& s, const settings& cfg) {
  playbook_plan plan;
  auto principles = principles_in_order(s);
  plan.memories_processed = static_cast<int64_t>(principles.size());
  struct target {
    std::optional<uint32_t> existing;
    size_t new_leader = 0;
    bool creates = false;
  };
  std::map<int32_t, std::vector<uint32_t>> by_space;
  for (auto i : principles)
    by_space[s.memories[i].space].push_back(i);
  std::map<uint32_t, target> targets;
  for (const auto& [space, members] : by_space) {
    const auto& vectors = s.spaces[space].vectors;
    vec::matrix initial{vectors.dim()};
    std::vector<uint32_t> initial_idx;
    for (uint32_t e = 0; e < s.playbook.size(); ++e)
      if (s.playbook[e].space == space
          && s.playbook[e].row < vectors.rows()) {
        initial.append(vectors.row(s.playbook[e].row));
        initial_idx.push_back(e);
      }
    vec::matrix rows{vectors.dim()};
    for (auto i : members)
      rows.append(vectors.row(s.memories[i].row));
    auto assigned = vec::assign_leaders(
      rows.view(), static_cast<float>(cfg.playbook_threshold), initial.view());
    for (size_t r = 0; r < members.size(); ++r) {
      target t;
      auto leader = assigned.leader_of[r];
      if (leader < assigned.initial_count) {
        t.existing = initial_idx[leader];
      } else {
        t.new_leader = leader - assigned.initial_count;
        t.creates = assigned.is_leader_row(r);
      }
      targets.emplace(members[r], t);
    }
  }
  // Each entry's (content, principle_id) as the plan leaves it so far.
  std::map<uint32_t, std::pair<std::string, std::string>> existing_state;
  std::vector<std::pair<std::string, std::string>> new_state;
  std::map<std::pair<int32_t, size_t>, uint32_t> new_numbers;
  std::vector<uint32_t> changed;
  for (auto i : principles) {
    const auto& p = s.memories[i];
    const auto& t = targets.at(i);
    playbook_action a;
    a.principle = i;
    a.creates = t.creates;
    a.existing = t.existing;
    auto now = std::pair{p.content, p.id};
    if (t.creates) {
      a.new_number = static_cast<uint32_t>(new_state.size());
      new_numbers.emplace(std::pair{p.space, t.new_leader}, a.new_number);
      a.title = playbook_title(p.content);
      new_state.push_back(std::move(now));
      ++plan.playbook_entries_created;
    } else if (t.existing) {
      auto [at, fresh] = existing_state.try_emplace(
        *t.existing, s.playbook[*t.existing].content,
        s.playbook[*t.existing].principle_id);
      a.changes = at->second != now;
      if (a.changes) {
        at->second = std::move(now);
        changed.push_back(*t.existing);
      }
    } else {
      a.new_number = new_numbers.at(std::pair{p.space, t.new_leader});
      a.changes = new_state[a.new_number] != now;
      if (a.changes)
        new_state[a.new_number] = std::move(now);
    }
    plan.actions.push_back(std::move(a));
  }
  std::sort(changed.begin(), changed.end());
  plan.playbook_entries_updated = std::unique(changed.begin(), changed.end())
                                  - changed.begin();
  return plan;
}

caf::error apply_playbook(snapshot& s, const playbook_plan& plan,
                          const std::vector<playbook_created>& created) {
  size_t creates = 0;
  for (const auto& a : plan.actions) {
    if (a.principle >= s.memories.size()
        || s.memories[a.principle].type != memory_type::principle)
      return invalid("playbook: memory index " + std::to_string(a.principle)
                     + " is not a principle");
    if (a.creates) {
      if (a.existing || a.new_number != creates)
        return invalid("playbook: new entries must be numbered in order");
      ++creates;
    } else if (a.existing) {
      if (*a.existing >= s.playbook.size())
        return invalid("playbook: entry index " + std::to_string(*a.existing)
                       + " is out of range");
    } else if (a.new_number >= creates) {
      return invalid("playbook: an update of entry #"
                     + std::to_string(a.new_number) + " before its creation");
    }
  }
  if (created.size() != creates)
    return invalid("playbook: " + std::to_string(created.size())
                   + " created entries for " + std::to_string(creates)
                   + " creations");
  for (const auto& c : created)
    if (c.id.empty())
      return invalid("playbook: a new entry without an id");
  std::vector<size_t> new_index;
  for (const auto& a : plan.actions) {
    const auto& p = s.memories[a.principle];
    if (a.creates) {
      const auto& c = created[new_index.size()];
      playbook_entry e;
      e.id = c.id;
      e.agent_id = p.agent_id;
      e.principle_id = p.id;
      e.title = a.title;
      e.content = p.content;
      e.created_at_us = c.created_at_us;
      if (has_embedding(s, p)) {
        // A copy first: appending may move the row it is read from.
        const auto& vectors = s.spaces[p.space].vectors;
        std::vector<float> v{vectors.row(p.row),
                             vectors.row(p.row) + vectors.dim()};
        e.space = p.space;
        e.row = append_row(s, p.space, v);
      }
      new_index.push_back(s.playbook.size());
      s.playbook.push_back(std::move(e));
    } else if (a.changes) {
      auto& e = s.playbook[a.existing ? *a.existing : new_index[a.new_number]];
      e.content = p.content;
      e.principle_id = p.id;
    }
  }
  return {};
}

// -- decay -------------------------------------------------------------------------

std::string_view to_string(decay_reason x) {
  switch (x) {
    case decay_reason::expired:
      return "expired";
    case decay_reason::not_accessed:
      return "not_accessed";
  }
  return "expired";
}

decay_plan plan_decay(const snapshot& s, const settings& cfg) {
  decay_plan plan;
  std::vector<std::string> agents;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (!m.active() || m.created_in_run)
      continue;
    ++plan.memories_processed;
    if (m.expires_at_us && *m.expires_at_us < s.as_of_us) {
      plan.archived.push_back({i, decay_reason::expired, m.tier});
      agents.push_back(m.agent_id);
      continue;
    }
    if (m.tier != memory_tier::warm || m.type == memory_type::identity
        || m.pinned || m.importance >= cfg.demote_importance_floor)
      continue;
    auto last_used = m.last_accessed_at_us.value_or(m.created_at_us);
    if (older_than(s.as_of_us, last_used, cfg.demote_after_days)) {
      plan.demoted.push_back({i, decay_reason::not_accessed, m.tier});
      agents.push_back(m.agent_id);
    }
  }
  plan.memories_archived = static_cast<int64_t>(plan.archived.size());
  plan.memories_demoted = static_cast<int64_t>(plan.demoted.size());
  plan.agents_changed = sorted_unique(std::move(agents));
  return plan;
}

caf::error apply_decay(snapshot& s, const decay_plan& plan) {
  std::vector<bool> used(s.memories.size(), false);
  for (const auto& c : plan.archived)
    if (auto err = check_active(s, c.memory, used, "decay"))
      return err;
  for (const auto& c : plan.demoted)
    if (auto err = check_active(s, c.memory, used, "decay"))
      return err;
  for (const auto& c : plan.archived) {
    auto& m = s.memories[c.memory];
    m.status = memory_status::archived;
    m.tier = memory_tier::cold;
  }
  for (const auto& c : plan.demoted)
    s.memories[c.memory].tier = memory_tier::cold;
  return {};
}

} // namespace engram::consolidation
