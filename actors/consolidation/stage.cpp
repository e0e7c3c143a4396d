#include "actors/consolidation/stage.hpp"

#include <algorithm>
#include <atomic>
#include <unordered_map>

#include <boost/json.hpp>

#include "actors/consolidation/phases.hpp"
#include "actors/consolidation/plan_json.hpp"
#include "messages/errc.hpp"
#include "runtime/memory_text.hpp"
#include "runtime/uuid.hpp"
#include "runtime/vector_kernel.hpp"

namespace engram::consolidation {

namespace {

std::string json_text(const boost::json::value& v) {
  return boost::json::serialize(v);
}

boost::json::array id_array(const snapshot& s,
                            const std::vector<uint32_t>& members) {
  boost::json::array out;
  for (auto i : members)
    out.emplace_back(s.memories[i].id);
  return out;
}

std::vector<float> vector_copy(const snapshot& s, const memory& m) {
  auto* v = s.vector_of(m);
  if (v == nullptr)
    return {};
  auto dim = s.spaces[m.space].vectors.dim();
  return {v, v + dim};
}

/// Whether the embedder makes vectors of `space`'s model.
bool embeds_space(const phase_services& svc, const snapshot& s,
                  int32_t space) {
  return svc.embedder != nullptr && space != no_space
         && svc.embedder->model() == s.spaces[space].model;
}

/// New vectors for `texts` (all of the embedder's model) in one call.
caf::expected<std::vector<std::vector<float>>>
embed_all(const phase_services& svc, const std::vector<std::string>& texts) {
  std::vector<std::vector<float>> out;
  if (texts.empty())
    return out;
  auto batch = svc.embedder->embed(texts);
  if (!batch)
    return batch.error();
  if (batch->size() != texts.size())
    return make_error(errc::unspecified,
                      "the embedding provider answered "
                        + std::to_string(batch->size()) + " vectors for "
                        + std::to_string(texts.size()) + " texts");
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out.emplace_back(batch->row(i), batch->row(i) + batch->dimension);
  return out;
}

int64_t now_us(const phase_services& svc) {
  const clock& clk = svc.clk != nullptr ? *svc.clk : real_clock();
  return to_epoch_us(clk.now());
}

std::vector<std::string> contents_of(const snapshot& s,
                                     const std::vector<uint32_t>& members) {
  std::vector<std::string> out;
  out.reserve(members.size());
  for (auto i : members)
    out.push_back(s.memories[i].content);
  return out;
}

/// `text(k)` for k in [0, n) (each a provider's answer), at once on the
/// kernel's threads: LLM providers are safe to call from several threads,
/// the extractive one is CPU work per text, a remote one a request per
/// text. An error stops the calls not yet made (a remote provider that
/// fails is not asked n times) and fails them all: the first error in k
/// order among the calls made.
template <class Text>
caf::expected<std::vector<std::string>> texts_at_once(size_t n, Text text) {
  std::vector<caf::expected<std::string>> answers(n, std::string{});
  std::atomic<bool> failed{false};
  vec::in_parts(n, 16, [&](size_t first, size_t last) {
    for (auto k = first; k < last && !failed.load(); ++k) {
      answers[k] = text(k);
      if (!answers[k])
        failed = true;
    }
  });
  std::vector<std::string> out;
  out.reserve(n);
  for (auto& a : answers) {
    if (!a)
      return a.error();
    out.push_back(std::move(*a));
  }
  return out;
}

audit_entry audit(const std::string& memory_id, std::string action,
                  boost::json::object detail) {
  return {memory_id, std::move(action), json_text(detail)};
}

std::optional<std::string> time_or_null(std::optional<int64_t> us) {
  if (!us)
    return std::nullopt;
  return format_utc(from_epoch_us(*us));
}

boost::json::value json_time(std::optional<int64_t> us) {
  if (auto t = time_or_null(us))
    return boost::json::value(*t);
  return nullptr;
}

void set_metrics(phase_commit& c, const boost::json::object& metrics) {
  c.metrics_json = json_text(metrics);
}

/// A prepared phase with what every plan gives: its JSON, metrics, the
/// memories it looked at and the agents it changes.
template <class Plan>
prepared_phase started_phase(const snapshot& s, const Plan& plan) {
  prepared_phase out;
  out.plan_json = json_text(plan_json(s, plan));
  set_metrics(out.commit, metrics_json(plan));
  out.commit.memories_processed = plan.memories_processed;
  out.agents_changed = plan.agents_changed;
  return out;
}

/// `members` become superseded by `by`, each with its audit row.
void supersede_all(phase_commit& c, const snapshot& s,
                   const std::vector<uint32_t>& members, const std::string& by,
                   const char* phase) {
  for (auto i : members) {
    c.supersedes.push_back({s.memories[i].id, by});
    boost::json::object d;
    d["phase"] = phase;
    d["by"] = by;
    c.audits.push_back(audit(s.memories[i].id, "superseded", std::move(d)));
  }
}

// -- patterns --------------------------------------------------------------------

caf::expected<prepared_phase> prepare_patterns(const snapshot& s,
                                               const settings& cfg) {
  auto plan = plan_patterns(s, cfg);
  auto out = started_phase(s, plan);
  out.commit.replace_patterns = true;
  for (auto& p : plan.patterns) {
    p.id = random_uuid();
    pattern_write w;
    w.id = p.id;
    w.seed_memory_id = s.memories[p.members.front()].id;
    w.label = p.label;
    for (auto i : p.members)
      w.member_ids.push_back(s.memories[i].id);
    w.centroid = p.centroid;
    if (p.space != no_space)
      w.embedding_model = s.spaces[p.space].model;
    out.commit.patterns.push_back(std::move(w));
  }
  out.apply = [plan = std::move(plan)](snapshot& snap) mutable {
    apply_patterns(snap, std::move(plan));
    return caf::error{};
  };
  return out;
}

// -- merge -------------------------------------------------------------------------

caf::expected<prepared_phase> prepare_merge(const snapshot& s,
                                            const settings& cfg,
                                            const phase_services& svc) {
  auto plan = plan_merge(s, cfg);
  auto out = started_phase(s, plan);
  out.commit.memories_merged = plan.memories_merged;
  std::vector<merge_outcome> outcomes(plan.groups.size());
  std::vector<std::string> to_embed;
  std::vector<size_t> embedded_groups;
  auto texts = texts_at_once(plan.groups.size(), [&](size_t g) {
    const auto& group = plan.groups[g];
    std::vector<uint32_t> members{group.kept};
    members.insert(members.end(), group.absorbed.begin(),
                   group.absorbed.end());
    return merged_text(*svc.llm, contents_of(s, members));
  });
  if (!texts)
    return texts.error();
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const auto& group = plan.groups[g];
    outcomes[g].merged_content = std::move((*texts)[g]);
    if (embeds_space(svc, s, s.memories[group.kept].space)) {
      to_embed.push_back(outcomes[g].merged_content);
      embedded_groups.push_back(g);
    }
  }
  auto vectors = embed_all(svc, to_embed);
  if (!vectors)
    return vectors.error();
  for (size_t k = 0; k < embedded_groups.size(); ++k)
    outcomes[embedded_groups[k]].new_embedding = std::move((*vectors)[k]);
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const auto& group = plan.groups[g];
    const auto& kept = s.memories[group.kept];
    rewrite_change r;
    r.id = kept.id;
    r.content = outcomes[g].merged_content;
    if (outcomes[g].new_embedding) {
      r.embedding = *outcomes[g].new_embedding;
      r.embedding_model = s.spaces[kept.space].model;
    }
    out.commit.rewrites.push_back(std::move(r));
    boost::json::object detail;
    detail["phase"] = "merge";
    detail["absorbed"] = id_array(s, group.absorbed);
    detail["previous_content"] = kept.content;
    detail["reembedded"] = outcomes[g].new_embedding.has_value();
    out.commit.audits.push_back(audit(kept.id, "merged", std::move(detail)));
    supersede_all(out.commit, s, group.absorbed, kept.id, "merge");
  }
  out.apply = [plan = std::move(plan),
               outcomes = std::move(outcomes)](snapshot& snap) {
    return apply_merge(snap, plan, outcomes);
  };
  return out;
}

// -- summarize -----------------------------------------------------------------------

caf::expected<prepared_phase> prepare_summaries(const snapshot& s,
                                                const settings& cfg,
                                                const phase_services& svc) {
  auto plan = plan_summaries(s, cfg);
  auto out = started_phase(s, plan);
  auto created = now_us(svc);
  std::vector<summary_outcome> outcomes(plan.clusters.size());
  std::vector<std::string> to_embed;
  std::vector<size_t> embedded;
  auto texts = texts_at_once(plan.clusters.size(), [&](size_t c) {
    return summary_text(*svc.llm, contents_of(s, plan.clusters[c].members));
  });
  if (!texts)
    return texts.error();
  for (size_t c = 0; c < plan.clusters.size(); ++c) {
    const auto& cluster = plan.clusters[c];
    auto& o = outcomes[c];
    o.id = random_uuid();
    o.content = std::move((*texts)[c]);
    o.created_at_us = created;
    if (embeds_space(svc, s, cluster.space)) {
      to_embed.push_back(o.content);
      embedded.push_back(c);
    } else {
      o.embedding = centroid_of(s, cluster.members, cluster.space);
      if (cluster.space != no_space)
        o.model = s.spaces[cluster.space].model;
    }
  }
  auto vectors = embed_all(svc, to_embed);
  if (!vectors)
    return vectors.error();
  for (size_t k = 0; k < embedded.size(); ++k) {
    auto& o = outcomes[embedded[k]];
    o.embedding = std::move((*vectors)[k]);
    o.model = svc.embedder->model();
  }
  for (size_t c = 0; c < plan.clusters.size(); ++c) {
    const auto& cluster = plan.clusters[c];
    const auto& o = outcomes[c];
    new_memory m;
    m.id = o.id;
    m.agent_id = cluster.agent_id;
    m.type = "semantic";
    m.tier = "warm";
    m.source_type = "consolidation";
    m.importance = cluster.importance;
    m.content = o.content;
    m.embedding = o.embedding;
    m.embedding_model = o.model;
    m.created_at_us = o.created_at_us;
    boost::json::object metadata;
    metadata["summarized_from"] = id_array(s, cluster.members);
    m.metadata_json = json_text(metadata);
    out.commit.inserts.push_back(std::move(m));
    boost::json::object detail;
    detail["phase"] = "summarize";
    detail["members"] = id_array(s, cluster.members);
    out.commit.audits.push_back(audit(o.id, "created", std::move(detail)));
    supersede_all(out.commit, s, cluster.members, o.id, "summarize");
  }
  out.apply = [plan = std::move(plan),
               outcomes = std::move(outcomes)](snapshot& snap) {
    return apply_summaries(snap, plan, outcomes);
  };
  return out;
}

// -- hierarchy -----------------------------------------------------------------------

caf::expected<prepared_phase> prepare_hierarchy(const snapshot& s,
                                                const settings& cfg,
                                                const phase_services& svc) {
  auto plan = plan_hierarchy(s, cfg);
  auto out = started_phase(s, plan);
  auto created = now_us(svc);
  std::vector<principle_outcome> outcomes(plan.actions.size());
  // The ids of the principles this plan creates, by creation number.
  std::vector<std::string> new_ids;
  auto texts = texts_at_once(plan.actions.size(), [&](size_t a) {
    const auto& pat = s.patterns[plan.actions[a].pattern];
    std::vector<uint32_t> sources;
    for (auto i : pat.members)
      if (s.memories[i].active())
        sources.push_back(i);
    if (sources.empty())
      sources = pat.members;
    return summary_text(*svc.llm, contents_of(s, sources));
  });
  if (!texts)
    return texts.error();
  for (size_t a = 0; a < plan.actions.size(); ++a) {
    const auto& action = plan.actions[a];
    const auto& pat = s.patterns[action.pattern];
    auto& o = outcomes[a];
    o.content = std::move((*texts)[a]);
    if (action.creates) {
      o.id = random_uuid();
      o.created_at_us = created;
      if (new_ids.size() <= action.new_number)
        new_ids.resize(action.new_number + 1);
      new_ids[action.new_number] = o.id;
    }
    // A principle stands for its pattern: its vector is the pattern's
    // centroid (not an embedding of its text), so the next run's pattern
    // finds it again (cosine > principle_threshold) and updates it instead
    // of adding a duplicate.
    o.embedding = pat.centroid;
    if (action.space != no_space)
      o.model = s.spaces[action.space].model;
  }
  for (size_t a = 0; a < plan.actions.size(); ++a) {
    const auto& action = plan.actions[a];
    const auto& pat = s.patterns[action.pattern];
    const auto& o = outcomes[a];
    std::string target;
    if (action.creates) {
      target = o.id;
      new_memory m;
      m.id = o.id;
      m.agent_id = action.agent_id;
      m.type = "principle";
      m.tier = "warm";
      m.source_type = "consolidation";
      m.importance = action.importance;
      m.content = o.content;
      m.embedding = o.embedding;
      m.embedding_model = o.model;
      m.created_at_us = o.created_at_us;
      boost::json::object metadata;
      metadata["pattern"] = pat.label;
      metadata["support"] = pat.members.size();
      m.metadata_json = json_text(metadata);
      out.commit.inserts.push_back(std::move(m));
      boost::json::object detail;
      detail["phase"] = "hierarchy";
      detail["pattern"] = pat.label;
      detail["members"] = id_array(s, pat.members);
      out.commit.audits.push_back(audit(o.id, "created", std::move(detail)));
    } else {
      std::string previous;
      int32_t importance = action.importance;
      if (action.existing) {
        const auto& p = s.memories[*action.existing];
        target = p.id;
        previous = p.content;
        importance = std::max(importance, p.importance);
      } else {
        target = new_ids.at(action.new_number);
      }
      // A principle this commit creates is updated in its insert: the
      // commit writes it as apply_hierarchy leaves it (the last action's
      // text and vector, importance raised, never lowered).
      auto inserted = std::find_if(out.commit.inserts.begin(),
                                   out.commit.inserts.end(),
                                   [&](const new_memory& x) {
                                     return x.id == target;
                                   });
      if (inserted != out.commit.inserts.end()) {
        previous = inserted->content;
        inserted->content = o.content;
        inserted->importance = std::max(inserted->importance, importance);
        if (!o.embedding.empty()) {
          inserted->embedding = o.embedding;
          inserted->embedding_model = o.model;
        }
      } else {
        // Several patterns may update one existing principle: the commit
        // rewrites it once, as apply_hierarchy leaves it. Two rows of one
        // id would make the guarded UPDATE count fewer rows than it was
        // given: a false conflict that failed the phase at every retry.
        rewrite_change r;
        r.id = target;
        r.content = o.content;
        r.embedding = o.embedding;
        r.embedding_model = o.embedding.empty() ? std::string{} : o.model;
        r.importance = importance;
        auto seen = std::find_if(out.commit.rewrites.begin(),
                                 out.commit.rewrites.end(),
                                 [&](const rewrite_change& x) {
                                   return x.id == target;
                                 });
        if (seen != out.commit.rewrites.end()) {
          r.importance = std::max(r.importance, seen->importance);
          if (r.embedding.empty()) {
            r.embedding = std::move(seen->embedding);
            r.embedding_model = std::move(seen->embedding_model);
          }
          *seen = std::move(r);
        } else {
          out.commit.rewrites.push_back(std::move(r));
        }
      }
      boost::json::object detail;
      detail["phase"] = "hierarchy";
      detail["pattern"] = pat.label;
      detail["previous_content"] = previous;
      out.commit.audits.push_back(
        audit(target, "principle_updated", std::move(detail)));
    }
    for (auto i : action.members_to_link) {
      const auto& m = s.memories[i];
      out.commit.state_changes.push_back({m.id, "", "", target});
      boost::json::object d;
      d["phase"] = "hierarchy";
      d["parent"] = target;
      d["previous_parent"] = m.parent_id.empty()
                               ? boost::json::value(nullptr)
                               : boost::json::value(m.parent_id);
      out.commit.audits.push_back(audit(m.id, "parent_set", std::move(d)));
    }
  }
  out.apply = [plan = std::move(plan),
               outcomes = std::move(outcomes)](snapshot& snap) {
    return apply_hierarchy(snap, plan, outcomes);
  };
  return out;
}

// -- playbook ------------------------------------------------------------------------

caf::expected<prepared_phase> prepare_playbook(const snapshot& s,
                                               const settings& cfg,
                                               const phase_services& svc) {
  auto plan = plan_playbook(s, cfg);
  auto out = started_phase(s, plan);
  auto created = now_us(svc);
  std::vector<playbook_created> made;
  std::vector<std::string> new_ids;
  for (const auto& action : plan.actions) {
    const auto& principle = s.memories[action.principle];
    if (action.creates) {
      auto id = random_uuid();
      made.push_back({id, created});
      new_ids.push_back(id);
      playbook_write w;
      w.id = id;
      w.create = true;
      w.agent_id = principle.agent_id;
      w.principle_id = principle.id;
      w.title = action.title;
      w.content = principle.content;
      w.embedding = vector_copy(s, principle);
      if (principle.space != no_space)
        w.embedding_model = s.spaces[principle.space].model;
      out.commit.playbook.push_back(std::move(w));
    } else if (action.changes) {
      playbook_write w;
      w.id = action.existing ? s.playbook[*action.existing].id
                             : new_ids.at(action.new_number);
      w.principle_id = principle.id;
      w.content = principle.content;
      out.commit.playbook.push_back(std::move(w));
    }
  }
  out.apply = [plan = std::move(plan), made = std::move(made)](snapshot& snap) {
    return apply_playbook(snap, plan, made);
  };
  return out;
}

// -- decay ---------------------------------------------------------------------------

caf::expected<prepared_phase> prepare_decay(const snapshot& s,
                                            const settings& cfg) {
  auto plan = plan_decay(s, cfg);
  auto out = started_phase(s, plan);
  out.commit.memories_archived = plan.memories_archived;
  for (const auto& change : plan.archived) {
    const auto& m = s.memories[change.memory];
    out.commit.state_changes.push_back({m.id, "archived", "cold", ""});
    boost::json::object d;
    d["phase"] = "decay";
    d["reason"] = std::string{to_string(change.reason)};
    d["previous_tier"] = std::string{to_string(change.previous_tier)};
    d["expires_at"] = json_time(m.expires_at_us);
    out.commit.audits.push_back(audit(m.id, "archived", std::move(d)));
  }
  for (const auto& change : plan.demoted) {
    const auto& m = s.memories[change.memory];
    out.commit.state_changes.push_back({m.id, "", "cold", ""});
    boost::json::object d;
    d["phase"] = "decay";
    d["reason"] = std::string{to_string(change.reason)};
    d["previous_tier"] = std::string{to_string(change.previous_tier)};
    d["last_used_at"] = json_time(m.last_accessed_at_us
                                    ? m.last_accessed_at_us
                                    : std::optional<int64_t>{m.created_at_us});
    out.commit.audits.push_back(audit(m.id, "demoted", std::move(d)));
  }
  out.apply = [plan = std::move(plan)](snapshot& snap) {
    return apply_decay(snap, plan);
  };
  return out;
}

} // namespace

snapshot make_snapshot(std::string project_id, int64_t as_of_us,
                       snapshot_data data) {
  snapshot s;
  s.project_id = std::move(project_id);
  s.as_of_us = as_of_us;
  s.memories.reserve(data.memories.size());
  std::unordered_map<std::string, uint32_t> index;
  index.reserve(data.memories.size());
  // The loaded vectors, wherever they end up (patterns' centroids are
  // copied from here too).
  const float* loaded = data.floats.data();
  // When every vector is of one model and dimension (the usual project),
  // the loaded buffer holds whole rows: its space's matrix takes it over
  // and normalises it in place, instead of copying 150 MB per 100,000
  // memories into fresh pages (storage::load_snapshot leaves room in it
  // for the vectors the phases add).
  bool adopted = false;
  size_t adopted_space = 0;
  {
    std::string_view model;
    uint32_t dim = 0;
    bool one_space = true;
    auto consider = [&](const std::string& m, uint64_t offset, uint32_t d) {
      if (d == 0)
        return;
      if (dim == 0) {
        model = m;
        dim = d;
      }
      one_space = one_space && !m.empty() && m == model && d == dim
                  && offset % dim == 0;
    };
    for (const auto& st : data.memories)
      consider(st.embedding_model, st.offset, st.dim);
    for (const auto& es : data.playbook)
      consider(es.embedding_model, es.offset, es.dim);
    if (one_space && dim != 0 && data.floats.size() % dim == 0) {
      auto space = s.space_for(model, dim);
      s.spaces[space].vectors = vec::matrix{dim, std::move(data.floats)};
      adopted = true;
      adopted_space = static_cast<size_t>(space);
    }
  }
  // An adopted matrix holds only loaded vectors, one per row: its rows are
  // normalised in place at once on the kernel's threads (rows are
  // independent), and `usable` says which are not zero or non-finite.
  std::vector<char> usable;
  if (adopted) {
    auto& vectors = s.spaces[adopted_space].vectors;
    usable.resize(vectors.rows());
    vec::in_parts(vectors.rows(), 4096, [&](size_t first, size_t last) {
      for (auto r = first; r < last; ++r)
        usable[r] = vec::normalize({vectors.row(r), vectors.dim()});
    });
  }
  // Places a loaded vector in its model's space; no_space when unusable.
  auto place = [&](const std::string& model, uint64_t offset, uint32_t dim,
                   uint32_t& row) -> int32_t {
    if (dim == 0 || model.empty())
      return no_space;
    auto space = s.space_for(model, dim);
    auto& vectors = s.spaces[space].vectors;
    if (vectors.dim() != dim)
      return no_space;
    if (adopted) {
      row = static_cast<uint32_t>(offset / dim);
      return usable[row] != 0 ? space : no_space;
    }
    std::span<float> v{data.floats.data() + offset, dim};
    if (!vec::normalize(v))
      return no_space;
    row = static_cast<uint32_t>(vectors.append(v.data()));
    return space;
  };
  // Each space's matrix sized once (a 100k project's is 150 MB: growing it
  // row by row costs copies and page faults). Spaces are made in the order
  // their models first appear, as `place` would.
  if (!adopted) {
    std::unordered_map<std::string_view, size_t> rows_of;
    for (const auto& st : data.memories)
      if (st.dim != 0 && !st.embedding_model.empty()
          && rows_of[st.embedding_model]++ == 0)
        s.space_for(st.embedding_model, st.dim);
    for (auto& space : s.spaces)
      space.vectors.reserve(rows_of[space.model] + rows_of[space.model] / 2
                            + data.playbook.size() + 1024);
  }
  for (auto& st : data.memories) {
    memory m;
    m.id = std::move(st.id);
    m.agent_id = std::move(st.agent_id);
    m.type = parse_memory_type(st.type).value_or(memory_type::semantic);
    m.tier = parse_memory_tier(st.tier).value_or(memory_tier::warm);
    m.status = memory_status::active;
    m.importance = st.importance;
    m.pinned = st.pinned;
    m.access_count = st.access_count;
    m.source_type = std::move(st.source_type);
    m.created_at_us = st.created_at_us;
    if (st.last_accessed_at_us != 0)
      m.last_accessed_at_us = st.last_accessed_at_us;
    if (st.expires_at_us != 0)
      m.expires_at_us = st.expires_at_us;
    m.content = std::move(st.content);
    m.parent_id = std::move(st.parent_id);
    m.space = place(st.embedding_model, st.offset, st.dim, m.row);
    index.emplace(m.id, static_cast<uint32_t>(s.memories.size()));
    s.memories.push_back(std::move(m));
  }
  for (auto& ps : data.patterns) {
    pattern p;
    p.id = std::move(ps.id);
    p.label = std::move(ps.label);
    for (const auto& id : ps.member_ids)
      if (auto found = index.find(id); found != index.end())
        p.members.push_back(found->second);
    if (p.members.empty())
      continue;
    p.space = ps.dim == 0 ? no_space : s.find_space(ps.embedding_model);
    if (p.space != no_space && s.spaces[p.space].vectors.dim() == ps.dim) {
      p.centroid.assign(loaded + ps.offset, loaded + ps.offset + ps.dim);
      vec::normalize(p.centroid);
    } else {
      p.space = no_space;
    }
    s.patterns.push_back(std::move(p));
  }
  for (auto& es : data.playbook) {
    playbook_entry e;
    e.id = std::move(es.id);
    e.agent_id = std::move(es.agent_id);
    e.principle_id = std::move(es.principle_id);
    e.title = std::move(es.title);
    e.content = std::move(es.content);
    e.created_at_us = es.created_at_us;
    e.space = place(es.embedding_model, es.offset, es.dim, e.row);
    s.playbook.push_back(std::move(e));
  }
  return s;
}

caf::expected<prepared_phase> prepare_phase(std::string_view phase,
                                            const snapshot& s,
                                            const settings& cfg,
                                            const phase_services& services) {
  if (services.llm == nullptr)
    return make_error(errc::invalid_config,
                      "consolidation needs an LLM provider");
  caf::expected<prepared_phase> out{caf::error{}};
  if (phase == "patterns")
    out = prepare_patterns(s, cfg);
  else if (phase == "merge")
    out = prepare_merge(s, cfg, services);
  else if (phase == "summarize")
    out = prepare_summaries(s, cfg, services);
  else if (phase == "hierarchy")
    out = prepare_hierarchy(s, cfg, services);
  else if (phase == "playbook")
    out = prepare_playbook(s, cfg, services);
  else if (phase == "decay")
    out = prepare_decay(s, cfg);
  else
    return make_error(errc::invalid_argument,
                      "unknown phase \"" + std::string{phase} + "\"");
  if (out)
    out->commit.phase = std::string{phase};
  return out;
}

} // namespace engram::consolidation
