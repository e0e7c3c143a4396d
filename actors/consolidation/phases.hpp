#pragma once

// The pure logic of consolidation's phases (DESIGN §6): each phase is a
// `plan_<phase>` function from a snapshot and the project's settings to a
// plan (what would change, with the phase's metrics), and an `apply_<phase>`
// function that applies a committed plan, with what the providers answered,
// to the snapshot so the next phase sees the result. No actors, no
// database, no providers: the consolidation actors wrap these.
//
// Rules every phase follows:
// - Only memories whose status is active are looked at or changed.
// - A cosine is the float the kernel computes (vector_kernel.hpp), compared
//   strictly: `cosine > float(threshold)`. Cosine is only computed within
//   one embedding space (model); a memory without an embedding (no space,
//   or an all-zero vector) never matches anything.
// - Clustering is the kernel's greedy rule (`vec::assign_leaders`): visit
//   the candidates in the phase's order; one joins the first leader, in
//   leader order, whose cosine with it is > the threshold, else it becomes
//   a leader itself.
// - Ages are strict: "more than N days before as_of" is
//   `as_of_us - t > N * 86'400'000'000` (7 days = 604'800'000'000 us),
//   evaluated at `snapshot::as_of_us`.
// - Memories created by this run (`memory::created_in_run`) take no part in
//   patterns, merge, summarize and decay.
//
// Indices in plans refer to `snapshot::memories` (and `snapshot::patterns`,
// `snapshot::playbook`); applying a plan only appends to those vectors, so
// indices stay valid. Every plan reports `memories_processed` (the
// candidates it looked at), its metric counts and `agents_changed`: the
// sorted, unique agent ids whose memories it changes (cache invalidation);
// a change to a project-wide memory is listed as "" (every agent of the
// project).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

#include "actors/consolidation/settings.hpp"
#include "actors/consolidation/snapshot.hpp"

namespace engram::consolidation {

// -- shared helpers ---------------------------------------------------------------

/// Whether `m` can match anything: it has a space and a non-zero vector.
[[nodiscard]] bool has_embedding(const snapshot& s, const memory& m);

/// The deterministic order of patterns and merge: importance descending,
/// then created_at ascending, then id ascending.
[[nodiscard]] bool importance_order(const memory& a, const memory& b);

/// The order of summarize: created_at ascending, then id ascending.
[[nodiscard]] bool age_order(const memory& a, const memory& b);

/// Whether instant `t` is more than `days` days before `as_of_us` (all
/// epoch microseconds; strict).
[[nodiscard]] bool older_than(int64_t as_of_us, int64_t t, double days);

/// The normalised mean of the vectors of `members` in `space` (members in
/// other spaces or without one are skipped): `dim` floats, all zeros when
/// there is no such vector; empty for an unknown space.
[[nodiscard]] std::vector<float>
centroid_of(const snapshot& s, std::span<const uint32_t> members,
            int32_t space);

// -- patterns ----------------------------------------------------------------------

/// What the patterns phase found. `patterns` have no id yet.
struct patterns_plan {
  /// Ordered by space (index order), then by their seed's visiting position.
  std::vector<pattern> patterns;
  /// Active, non-identity memories with an embedding (not created by this
  /// run).
  int64_t memories_processed = 0;
  /// `patterns.size()`.
  int64_t patterns_extracted = 0;
  /// Always empty: finding patterns changes no memory.
  std::vector<std::string> agents_changed;
};

/// Clusters the candidates (active, non-identity memories with an
/// embedding, not created by this run), visited in the deterministic order
/// (`importance_order`), per embedding space by cosine with a cluster's seed
/// > `pattern_threshold`. A cluster of at least `pattern_min_support`
/// members is a pattern: its members in visiting order (seed first), a
/// label (`pattern_label` of runtime/memory_text.hpp over the members'
/// contents) and its centroid (`vec::normalized_mean`).
[[nodiscard]] patterns_plan plan_patterns(const snapshot& s,
                                          const settings& cfg);

/// Replaces `s.patterns` with the plan's patterns (each pattern's `id` as
/// stored, when the caller filled it in).
void apply_patterns(snapshot& s, patterns_plan plan);

// -- merge -------------------------------------------------------------------------

/// A kept memory and the near-duplicates it absorbs.
struct merge_group {
  /// The kept memory: the first of the group in visiting order, so its
  /// importance is the group's maximum.
  uint32_t kept = 0;
  /// The absorbed memories, in visiting order.
  std::vector<uint32_t> absorbed;
};

/// What the merge phase would do.
struct merge_plan {
  /// Ordered by (type, agent_id, kept's visiting position).
  std::vector<merge_group> groups;
  /// Active memories that are not identity, not pinned and not created by
  /// this run (those without an embedding included: looked at, never
  /// merged).
  int64_t memories_processed = 0;
  /// The number of absorbed memories.
  int64_t memories_merged = 0;
  std::vector<std::string> agents_changed;
};

/// Candidates are grouped by (type, agent_id) and, since cosine is never
/// computed across models, by space. Each group is visited by
/// (importance desc, created_at asc, id asc); a memory whose cosine with a
/// kept memory is > `merge_threshold` joins the first such kept memory, in
/// keeping order, else it is appended to the kept list. Cosines are those
/// of the vectors at the start of the phase. Only kept memories that
/// absorbed at least one are in the plan.
[[nodiscard]] merge_plan plan_merge(const snapshot& s, const settings& cfg);

/// What the providers made of one merge group.
struct merge_outcome {
  /// The kept memory's new content.
  std::string merged_content;
  /// The kept memory's new vector in its own space (not normalised yet);
  /// none: it keeps its vector (the provider is another model).
  std::optional<std::vector<float>> new_embedding;
};

/// Applies a committed merge plan, one outcome per group: the kept memory
/// gets the merged content (and the new vector, normalised, in place of
/// its row; an all-zero one leaves the old vector), its importance stays
/// (already the group's maximum); the absorbed ones become superseded with
/// `superseded_by` = the kept id. Checks everything first and changes
/// nothing on error (invalid_argument: outcome count, an index out of
/// range or not active, a vector of the wrong dimension).
[[nodiscard]] caf::error apply_merge(snapshot& s, const merge_plan& plan,
                                     const std::vector<merge_outcome>& outcomes);

// -- summarize ---------------------------------------------------------------------

/// Old episodic memories of one agent that become one summary.
struct summary_cluster {
  std::string agent_id;
  /// In visiting order; the first is the seed. More than 2.
  std::vector<uint32_t> members;
  /// The members' maximum.
  int32_t importance = 0;
  /// The space the members were compared in.
  int32_t space = no_space;
};

/// What the summarize phase would do.
struct summary_plan {
  /// Ordered by agent_id, then by their seed's visiting position.
  std::vector<summary_cluster> clusters;
  /// The candidates (see `plan_summaries`).
  int64_t memories_processed = 0;
  /// `clusters.size()`.
  int64_t summaries_created = 0;
  /// The members of all clusters (they become superseded).
  int64_t memories_summarized = 0;
  std::vector<std::string> agents_changed;
};

/// Candidates: active episodic memories, not pinned, not created by this
/// run, created more than `summarize_min_age_days` before as_of, with
/// access_count < `summarize_max_access_count`. Per agent (and per space),
/// visited by (created_at asc, id asc), a memory joins the first cluster
/// whose seed has cosine > `summarize_threshold` with it, else it seeds a
/// new cluster. Clusters of more than 2 members are summarised; memories
/// without an embedding are looked at but never clustered.
[[nodiscard]] summary_plan plan_summaries(const snapshot& s,
                                          const settings& cfg);

/// What the providers made of one cluster.
struct summary_outcome {
  /// The new memory's id.
  std::string id;
  std::string content;
  int64_t created_at_us = 0;
  /// The summary's vector (not normalised yet) made by `model`. Empty (or
  /// all zeros): the normalised mean of the members' vectors in the
  /// cluster's space (DESIGN §6 Providers).
  std::vector<float> embedding;
  std::string model;
};

/// Applies a committed summary plan, one outcome per cluster: appends the
/// summary (type semantic, tier warm, status active, source_type
/// "consolidation", importance = the cluster's, the cluster's agent,
/// `created_in_run`) and marks the members superseded by it. Checks
/// everything first and changes nothing on error (invalid_argument).
[[nodiscard]] caf::error
apply_summaries(snapshot& s, const summary_plan& plan,
                const std::vector<summary_outcome>& outcomes);

// -- hierarchy ---------------------------------------------------------------------

/// What one pattern does in the hierarchy phase.
struct principle_action {
  /// The pattern (index into `snapshot::patterns`).
  uint32_t pattern = 0;
  /// True: creates principle number `new_number`. False: updates a
  /// principle, `existing` or (when `existing` is none) principle number
  /// `new_number` created earlier by this plan.
  bool creates = false;
  /// The principle that existed before the plan (index into
  /// `snapshot::memories`).
  std::optional<uint32_t> existing;
  /// Principles this plan creates are numbered 0, 1, ... in creation order.
  uint32_t new_number = 0;
  /// The pattern's members that are still active, are not principles and
  /// whose parent_id is not already the target: they get it as parent. A
  /// member two patterns share is linked by the first only.
  std::vector<uint32_t> members_to_link;
  /// The maximum importance of the pattern's members.
  int32_t importance = 0;
  /// The pattern's space.
  int32_t space = no_space;
  /// The target principle's agent. A new principle's: the pattern members'
  /// agent when they all share one, else "" (project-wide).
  std::string agent_id;
};

/// What the hierarchy phase would do.
struct hierarchy_plan {
  /// In pattern order.
  std::vector<principle_action> actions;
  /// The members of the patterns that qualified.
  int64_t memories_processed = 0;
  /// Actions that create.
  int64_t principles_created = 0;
  /// Distinct principles that existed before the plan and are updated (an
  /// update of a principle created earlier by the same plan is part of
  /// its creation).
  int64_t principles_updated = 0;
  std::vector<std::string> agents_changed;
};

/// Every pattern of `s.patterns` with at least `principle_min_support`
/// members, in order, becomes a principle: its centroid is matched against
/// the active principles of its space, in (created_at asc, id asc) order
/// (those created by this run after the others, in creation order), then
/// those this plan creates earlier; the first with cosine >
/// `principle_threshold` is updated, else a new principle is created.
/// Patterns without a centroid in a known space are skipped.
[[nodiscard]] hierarchy_plan plan_hierarchy(const snapshot& s,
                                            const settings& cfg);

/// What the providers made of one principle action.
struct principle_outcome {
  /// creates: the new principle's id and creation instant (ignored for
  /// updates).
  std::string id;
  int64_t created_at_us = 0;
  /// The principle's (new) content.
  std::string content;
  /// creates: the principle's vector by `model` (not normalised yet);
  /// empty or all zeros: the pattern's centroid in the pattern's space.
  /// updates: empty keeps the principle's vector, else replaces it in
  /// place (`model` must be empty or the principle's model).
  std::vector<float> embedding;
  std::string model;
};

/// Applies a committed hierarchy plan, one outcome per action: creates
/// principles (type principle, tier warm, source_type "consolidation",
/// `created_in_run`, importance and agent of the action) or updates them
/// (content; importance raised to the action's when higher), and sets
/// `parent_id` of `members_to_link`. Checks everything first and changes
/// nothing on error (invalid_argument).
[[nodiscard]] caf::error
apply_hierarchy(snapshot& s, const hierarchy_plan& plan,
                const std::vector<principle_outcome>& outcomes);

// -- playbook ----------------------------------------------------------------------

/// What one principle does in the playbook phase.
struct playbook_action {
  /// The principle (index into `snapshot::memories`).
  uint32_t principle = 0;
  /// True: creates entry number `new_number`. False: updates an entry,
  /// `existing` or (when `existing` is none) entry number `new_number`
  /// created earlier by this plan.
  bool creates = false;
  /// The entry that existed before the plan (index into
  /// `snapshot::playbook`).
  std::optional<uint32_t> existing;
  /// Entries this plan creates are numbered 0, 1, ... in creation order.
  uint32_t new_number = 0;
  /// updates: whether the entry's content or principle_id change (an
  /// update that changes neither is a no-op, not counted).
  bool changes = false;
  /// creates: the entry's title (`playbook_title` of the principle).
  std::string title;
};

/// What the playbook phase would do.
struct playbook_plan {
  /// In the principles' visiting order.
  std::vector<playbook_action> actions;
  /// The principles visited.
  int64_t memories_processed = 0;
  int64_t playbook_entries_created = 0;
  /// Distinct entries that existed before the plan whose content or
  /// principle_id the plan changes.
  int64_t playbook_entries_updated = 0;
  /// Always empty: the playbook holds no memories.
  std::vector<std::string> agents_changed;
};

/// A playbook entry's title: the first sentence of `content`, cut to at
/// most 80 bytes at a word boundary (then ending in "...") when longer.
[[nodiscard]] std::string playbook_title(std::string_view content);

/// Every active principle with an embedding, visited by (created_at asc,
/// id asc) (those created by this run after the others, in creation
/// order), is matched against the entries of its space (`s.playbook` in
/// order, then those this plan creates earlier): the first with cosine >
/// `playbook_threshold` is updated (content := the principle's content,
/// principle_id := the principle's id), else a new entry is created (title
/// `playbook_title`, the principle's content, agent and vector).
[[nodiscard]] playbook_plan plan_playbook(const snapshot& s,
                                          const settings& cfg);

/// The stored identity of one entry a playbook plan creates.
struct playbook_created {
  std::string id;
  int64_t created_at_us = 0;
};

/// Applies a committed playbook plan, one `playbook_created` per creating
/// action in order: appends the new entries to `s.playbook` (their vector
/// copied from the principle) and updates the changed ones. Checks
/// everything first and changes nothing on error (invalid_argument).
[[nodiscard]] caf::error
apply_playbook(snapshot& s, const playbook_plan& plan,
               const std::vector<playbook_created>& created);

// -- decay -------------------------------------------------------------------------

/// Why decay changes a memory.
enum class decay_reason : uint8_t {
  /// expires_at is before as_of: archived.
  expired,
  /// A warm memory not used (accessed, else created) for more than
  /// demote_after_days: demoted to cold.
  not_accessed,
};

[[nodiscard]] std::string_view to_string(decay_reason x);

/// One memory decay changes.
struct decay_change {
  uint32_t memory = 0;
  decay_reason reason = decay_reason::expired;
  memory_tier previous_tier = memory_tier::warm;
};

/// What the decay phase would do.
struct decay_plan {
  /// Archived memories, in snapshot order.
  std::vector<decay_change> archived;
  /// Demoted memories, in snapshot order.
  std::vector<decay_change> demoted;
  /// Active memories not created by this run.
  int64_t memories_processed = 0;
  int64_t memories_archived = 0;
  int64_t memories_demoted = 0;
  std::vector<std::string> agents_changed;
};

/// (a) Every active memory with expires_at < as_of (strictly past) is
/// archived, whatever its type, pin, importance or tier. (b) Of the rest,
/// warm memories whose last access (else creation) is more than
/// `demote_after_days` before as_of are demoted to cold, except identity,
/// pinned, and importance >= `demote_importance_floor`. Hot and cold ones
/// are not demoted; memories created by this run are not touched.
[[nodiscard]] decay_plan plan_decay(const snapshot& s, const settings& cfg);

/// Applies a committed decay plan: archived → status archived, tier cold;
/// demoted → tier cold. Checks everything first and changes nothing on
/// error (invalid_argument).
[[nodiscard]] caf::error apply_decay(snapshot& s, const decay_plan& plan);

} // namespace engram::consolidation
