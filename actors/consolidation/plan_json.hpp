#pragma once

// Consolidation plans as JSON (DESIGN §6, §8): the answer of a dry run
// (which memories would merge into which, which a summary would supersede,
// which would be archived or demoted and why, the patterns, principles and
// playbook entries) and the per-phase metrics of a job. Memories, patterns
// and entries appear by id, never by index; agent ids of project-wide
// memories are null; instants are epoch microseconds (keys ending in
// "_us").
//
// Each `plan_json` is an object {"phase": "<name>", "metrics": {...},
// <details>}, where "metrics" is `metrics_json` of the plan. Call it on
// the snapshot the plan was made from, before or after applying it.

#include <boost/json/object.hpp>

#include "actors/consolidation/phases.hpp"

namespace engram::consolidation {

/// {"memories_processed", "patterns_extracted"}.
[[nodiscard]] boost::json::object metrics_json(const patterns_plan& plan);
/// {"memories_processed", "memories_merged", "groups"}.
[[nodiscard]] boost::json::object metrics_json(const merge_plan& plan);
/// {"memories_processed", "summaries_created", "memories_summarized"}.
[[nodiscard]] boost::json::object metrics_json(const summary_plan& plan);
/// {"memories_processed", "principles_created", "principles_updated",
/// "memories_linked"}.
[[nodiscard]] boost::json::object metrics_json(const hierarchy_plan& plan);
/// {"memories_processed", "playbook_entries_created",
/// "playbook_entries_updated"}.
[[nodiscard]] boost::json::object metrics_json(const playbook_plan& plan);
/// {"memories_processed", "memories_archived", "memories_demoted"}.
[[nodiscard]] boost::json::object metrics_json(const decay_plan& plan);

/// "patterns": [{"seed_id", "label", "support", "model", "member_ids"}],
/// members in visiting order (the seed first).
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const patterns_plan& plan);

/// "groups": [{"kept_id", "type", "agent_id", "absorbed_ids"}]: the
/// absorbed memories become superseded by the kept one.
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const merge_plan& plan);

/// "summaries": [{"agent_id", "importance", "model", "superseded_ids"}].
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const summary_plan& plan);

/// "principles": [{"action": "create" | "update", "principle_id" (the
/// principle updated; null for one this plan creates), "new_principle"
/// (its number among those this plan creates, else null), "pattern_id"
/// (null until stored), "pattern_seed_id", "pattern_label", "support",
/// "importance", "agent_id", "member_ids" (the members that get it as
/// parent)}].
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const hierarchy_plan& plan);

/// "entries": [{"action": "create" | "update", "entry_id" (the entry
/// updated; null for one this plan creates), "new_entry" (its number among
/// those this plan creates, else null), "principle_id", "title" (creates),
/// "changes" (updates: whether content or principle_id change)}].
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const playbook_plan& plan);

/// "archived": [{"id", "agent_id", "reason": "expired", "expires_at_us",
/// "previous_tier"}], "demoted": [{"id", "agent_id", "reason":
/// "not_accessed", "last_used_at_us", "idle_days" (whole days since last
/// use), "previous_tier"}].
[[nodiscard]] boost::json::object plan_json(const snapshot& s,
                                            const decay_plan& plan);

} // namespace engram::consolidation
