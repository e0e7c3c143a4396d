#include "actors/consolidation/plan_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

namespace engram::consolidation {

namespace json = boost::json;

namespace {

/// The id of memory `i`, or null when out of range.
json::value memory_id(const snapshot& s, uint32_t i) {
  if (i >= s.memories.size())
    return nullptr;
  return json::value(s.memories[i].id);
}

json::array memory_ids(const snapshot& s, std::span<const uint32_t> idx) {
  json::array out;
  out.reserve(idx.size());
  for (auto i : idx)
    out.push_back(memory_id(s, i));
  return out;
}

json::value agent(std::string_view agent_id) {
  if (agent_id.empty())
    return nullptr;
  return json::value(agent_id);
}

json::value model_of(const snapshot& s, int32_t space) {
  if (space < 0 || static_cast<size_t>(space) >= s.spaces.size())
    return nullptr;
  return json::value(s.spaces[space].model);
}

json::object with_metrics(std::string_view phase, json::object metrics) {
  json::object out;
  out["phase"] = phase;
  out["metrics"] = std::move(metrics);
  return out;
}

} // namespace

json::object metrics_json(const patterns_plan& plan) {
  return {{"memories_processed", plan.memories_processed},
          {"patterns_extracted", plan.patterns_extracted}};
}

json::object metrics_json(const merge_plan& plan) {
  return {{"memories_processed", plan.memories_processed},
          {"memories_merged", plan.memories_merged},
          {"groups", static_cast<int64_t>(plan.groups.size())}};
}

json::object metrics_json(const summary_plan& plan) {
  return {{"memories_processed", plan.memories_processed},
          {"summaries_created", plan.summaries_created},
          {"memories_summarized", plan.memories_summarized}};
}

json::object metrics_json(const hierarchy_plan& plan) {
  int64_t linked = 0;
  for (const auto& a : plan.actions)
    linked += static_cast<int64_t>(a.members_to_link.size());
  return {{"memories_processed", plan.memories_processed},
          {"principles_created", plan.principles_created},
          {"principles_updated", plan.principles_updated},
          {"memories_linked", linked}};
}

json::object metrics_json(const playbook_plan& plan) {
  return {{"memories_processed", plan.memories_processed},
          {"playbook_entries_created", plan.playbook_entries_created},
          {"playbook_entries_updated", plan.playbook_entries_updated}};
}

json::object metrics_json(const decay_plan& plan) {
  return {{"memories_processed", plan.memories_processed},
          {"memories_archived", plan.memories_archived},
          {"memories_demoted", plan.memories_demoted}};
}

json::object plan_json(const snapshot& s, const patterns_plan& plan) {
  auto out = with_metrics("patterns", metrics_json(plan));
  json::array patterns;
  for (const auto& p : plan.patterns) {
    json::object x;
    x["seed_id"] = p.members.empty() ? json::value(nullptr)
                                     : memory_id(s, p.members.front());
    x["label"] = p.label;
    x["support"] = static_cast<int64_t>(p.members.size());
    x["model"] = model_of(s, p.space);
    x["member_ids"] = memory_ids(s, p.members);
    patterns.push_back(std::move(x));
  }
  out["patterns"] = std::move(patterns);
  return out;
}

json::object plan_json(const snapshot& s, const merge_plan& plan) {
  auto out = with_metrics("merge", metrics_json(plan));
  json::array groups;
  for (const auto& g : plan.groups) {
    json::object x;
    x["kept_id"] = memory_id(s, g.kept);
    if (g.kept < s.memories.size()) {
      x["type"] = to_string(s.memories[g.kept].type);
      x["agent_id"] = agent(s.memories[g.kept].agent_id);
    }
    x["absorbed_ids"] = memory_ids(s, g.absorbed);
    groups.push_back(std::move(x));
  }
  out["groups"] = std::move(groups);
  return out;
}

json::object plan_json(const snapshot& s, const summary_plan& plan) {
  auto out = with_metrics("summarize", metrics_json(plan));
  json::array summaries;
  for (const auto& c : plan.clusters) {
    json::object x;
    x["agent_id"] = agent(c.agent_id);
    x["importance"] = c.importance;
    x["model"] = model_of(s, c.space);
    x["superseded_ids"] = memory_ids(s, c.members);
    summaries.push_back(std::move(x));
  }
  out["summaries"] = std::move(summaries);
  return out;
}

json::object plan_json(const snapshot& s, const hierarchy_plan& plan) {
  auto out = with_metrics("hierarchy", metrics_json(plan));
  json::array principles;
  for (const auto& a : plan.actions) {
    json::object x;
    x["action"] = a.creates ? "create" : "update";
    x["principle_id"] = a.existing ? memory_id(s, *a.existing)
                                   : json::value(nullptr);
    x["new_principle"] = a.existing ? json::value(nullptr)
                                    : json::value(static_cast<int64_t>(a.new_number));
    if (a.pattern < s.patterns.size()) {
      const auto& p = s.patterns[a.pattern];
      x["pattern_id"] = p.id.empty() ? json::value(nullptr)
                                     : json::value(p.id);
      x["pattern_seed_id"] = p.members.empty()
                               ? json::value(nullptr)
                               : memory_id(s, p.members.front());
      x["pattern_label"] = p.label;
      x["support"] = static_cast<int64_t>(p.members.size());
    }
    x["importance"] = a.importance;
    x["agent_id"] = agent(a.agent_id);
    x["member_ids"] = memory_ids(s, a.members_to_link);
    principles.push_back(std::move(x));
  }
  out["principles"] = std::move(principles);
  return out;
}

json::object plan_json(const snapshot& s, const playbook_plan& plan) {
  auto out = with_metrics("playbook", metrics_json(plan));
  json::array entries;
  for (const auto& a : plan.actions) {
    json::object x;
    x["action"] = a.creates ? "create" : "update";
    x["entry_id"] = a.existing && *a.existing < s.playbook.size()
                      ? json::value(s.playbook[*a.existing].id)
                      : json::value(nullptr);
    x["new_entry"] = a.existing ? json::value(nullptr)
                                : json::value(static_cast<int64_t>(a.new_number));
    x["principle_id"] = memory_id(s, a.principle);
    if (a.creates)
      x["title"] = a.title;
    else
      x["changes"] = a.changes;
    entries.push_back(std::move(x));
  }
  out["entries"] = std::move(entries);
  return out;
}

json::object plan_json(const snapshot& s, const decay_plan& plan) {
  auto out = with_metrics("decay", metrics_json(plan));
  json::array archived;
  for (const auto& c : plan.archived) {
    json::object x;
    x["id"] = memory_id(s, c.memory);
    x["reason"] = to_string(c.reason);
    x["previous_tier"] = to_string(c.previous_tier);
    if (c.memory < s.memories.size()) {
      const auto& m = s.memories[c.memory];
      x["agent_id"] = agent(m.agent_id);
      if (m.expires_at_us)
        x["expires_at_us"] = *m.expires_at_us;
    }
    archived.push_back(std::move(x));
  }
  json::array demoted;
  for (const auto& c : plan.demoted) {
    json::object x;
    x["id"] = memory_id(s, c.memory);
    x["reason"] = to_string(c.reason);
    x["previous_tier"] = to_string(c.previous_tier);
    if (c.memory < s.memories.size()) {
      const auto& m = s.memories[c.memory];
      x["agent_id"] = agent(m.agent_id);
      auto last = m.last_accessed_at_us.value_or(m.created_at_us);
      x["last_used_at_us"] = last;
      x["idle_days"] = (s.as_of_us - last) / int64_t{86'400'000'000};
    }
    demoted.push_back(std::move(x));
  }
  out["archived"] = std::move(archived);
  out["demoted"] = std::move(demoted);
  return out;
}

} // namespace engram::consolidation
