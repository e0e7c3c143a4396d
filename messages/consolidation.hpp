#pragma once

// Consolidation jobs and the pipeline's protocol (DESIGN §6):
// - jobs as stored (`consolidation_jobs`) and the storage requests that
//   create, read and list them;
// - the PROJECT SESSION: a storage actor with its own connection that holds
//   one project's advisory lock (session level) for a whole job, loads the
//   project's snapshot and commits each phase's changes with their audit
//   rows and the job's progress in one transaction. The lock dies with the
//   session, so a node that dies frees its projects and a phase commit can
//   never run without the lock;
// - the COORDINATOR's interface (run a job, dry-run a plan) and the stage
//   message that carries a project from phase actor to phase actor.
//
// Conventions as messages/memories.hpp: empty id string = none, times are
// epoch microseconds with 0 = none, JSON travels as text.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"

namespace engram::consolidation {

struct snapshot;

/// The phases in their fixed order.
inline const std::vector<std::string>& phase_names() {
  static const std::vector<std::string> names{
    "patterns", "merge", "summarize", "hierarchy",
    "playbook", "decay", "invalidate"};
  return names;
}

// -- jobs ----------------------------------------------------------------------

/// A job as stored.
struct job_record {
  std::string id;
  std::string project_id;
  /// queued, running, completed, failed, cancelled.
  std::string status;
  /// scheduled or manual.
  std::string trigger_type;
  std::string triggered_by;
  /// {"phases": [...], "as_of": "...", "dry_run": false, ...}
  std::string options_json = "{}";
  std::vector<std::string> phases_completed;
  /// Per-phase metrics: {"merge": {...}, ...} plus totals.
  std::string metrics_json = "{}";
  int64_t memories_processed = 0;
  int64_t memories_merged = 0;
  int64_t memories_archived = 0;
  std::string error_message;
  int64_t created_at_us = 0;
  int64_t started_at_us = 0;
  int64_t completed_at_us = 0;
  int64_t duration_ms = 0;
  /// The durable task that runs it (0: none).
  int64_t task_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_record& x) {
  return f(caf::meta::type_name("job_record"), x.id, x.project_id, x.status,
           x.trigger_type, x.triggered_by, x.options_json, x.phases_completed,
           x.metrics_json, x.memories_processed, x.memories_merged,
           x.memories_archived, x.error_message, x.created_at_us,
           x.started_at_us, x.completed_at_us, x.duration_ms, x.task_id);
}

/// Creates a queued job and, in the same transaction, the durable task
/// `consolidation.run_project {project_id, job_id}` that runs it. With a
/// non-empty `id` the job is created or reused (an existing row with that
/// id is returned unchanged: a re-delivered scheduling task creates
/// nothing twice).
struct create_job_request {
  std::string id;
  std::string project_id;
  /// Phases to run (a subset of `phase_names()`, in that order).
  std::vector<std::string> phases;
  /// The instant the age rules are evaluated at; 0: when the job starts.
  int64_t as_of_us = 0;
  std::string trigger_type = "manual";
  std::string triggered_by;
  /// The task's queue and priority.
  std::string queue = "memory";
  int32_t priority = 0;
  /// False: no task is created (the caller is the task that runs the job).
  bool enqueue = true;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_job_request& x) {
  return f(caf::meta::type_name("create_job_request"), x.id, x.project_id,
           x.phases, x.as_of_us, x.trigger_type, x.triggered_by, x.queue,
           x.priority, x.enqueue, x.now_us);
}

/// Reads a job; not_found for an unknown id.
struct get_job_request {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_job_request& x) {
  return f(caf::meta::type_name("get_job_request"), x.id);
}

/// A page of a project's jobs, newest first (created_at desc, id desc);
/// `cursor` is the previous page's `next_cursor`.
struct list_jobs_request {
  std::string project_id;
  std::string cursor;
  int32_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_jobs_request& x) {
  return f(caf::meta::type_name("list_jobs_request"), x.project_id, x.cursor,
           x.limit);
}

struct job_page {
  std::vector<job_record> jobs;
  /// Empty: no further page.
  std::string next_cursor;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_page& x) {
  return f(caf::meta::type_name("job_page"), x.jobs, x.next_cursor);
}

/// The ids of the projects with consolidation enabled, in id order (the
/// scheduled `memory.consolidate` and `memory.decay_and_expire`).
struct enabled_projects_request {};

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, enabled_projects_request&) {
  return f(caf::meta::type_name("enabled_projects_request"));
}

// -- the project session ----------------------------------------------------------

/// Starts (or resumes) job `job_id` on a session: takes the project's
/// advisory lock without waiting (errc::conflict when another session holds
/// it), reads the job and the project. A job that is already completed,
/// failed for good or cancelled is answered as it is. Otherwise the job
/// becomes running (started_at set on its first start).
struct begin_job {
  std::string job_id;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, begin_job& x) {
  return f(caf::meta::type_name("begin_job"), x.job_id, x.now_us);
}

/// What a session knows at the start of a job.
struct job_start {
  job_record job;
  /// False: the project does not exist.
  bool project_found = false;
  bool consolidation_enabled = false;
  /// The project's consolidation_config.
  std::string config_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_start& x) {
  return f(caf::meta::type_name("job_start"), x.job, x.project_found,
           x.consolidation_enabled, x.config_json);
}

/// One memory as loaded for a snapshot.
struct memory_state {
  std::string id;
  std::string agent_id;
  std::string type;
  std::string tier;
  int32_t importance = 5;
  bool pinned = false;
  int32_t access_count = 0;
  std::string source_type;
  int64_t created_at_us = 0;
  int64_t last_accessed_at_us = 0;
  int64_t expires_at_us = 0;
  std::string content;
  std::string parent_id;
  std::string embedding_model;
  /// Its vector: `snapshot_data::floats[offset, offset + dim)`; dim 0 = none.
  uint64_t offset = 0;
  uint32_t dim = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_state& x) {
  return f(caf::meta::type_name("memory_state"), x.id, x.agent_id, x.type,
           x.tier, x.importance, x.pinned, x.access_count, x.source_type,
           x.created_at_us, x.last_accessed_at_us, x.expires_at_us, x.content,
           x.parent_id, x.embedding_model, x.offset, x.dim);
}

/// A stored pattern (the hierarchy phase of a resumed job reads them).
struct pattern_state {
  std::string id;
  std::string seed_memory_id;
  std::string label;
  std::vector<std::string> member_ids;
  std::string embedding_model;
  /// `snapshot_data::floats[offset, offset + dim)`.
  uint64_t offset = 0;
  uint32_t dim = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pattern_state& x) {
  return f(caf::meta::type_name("pattern_state"), x.id, x.seed_memory_id,
           x.label, x.member_ids, x.embedding_model, x.offset, x.dim);
}

/// A stored playbook entry.
struct playbook_state {
  std::string id;
  std::string agent_id;
  std::string principle_id;
  std::string title;
  std::string content;
  int64_t created_at_us = 0;
  std::string embedding_model;
  uint64_t offset = 0;
  uint32_t dim = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, playbook_state& x) {
  return f(caf::meta::type_name("playbook_state"), x.id, x.agent_id,
           x.principle_id, x.title, x.content, x.created_at_us,
           x.embedding_model, x.offset, x.dim);
}

/// Loads the project's snapshot on the session that holds its lock: active
/// memories in (created_at, id) order, the project's stored patterns and
/// playbook entries (created_at, id), every vector in one float buffer.
struct load_snapshot {
  std::string project_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_snapshot& x) {
  return f(caf::meta::type_name("load_snapshot"), x.project_id);
}

struct snapshot_data {
  std::vector<memory_state> memories;
  std::vector<pattern_state> patterns;
  std::vector<playbook_state> playbook;
  std::vector<float> floats;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_data& x) {
  return f(caf::meta::type_name("snapshot_data"), x.memories, x.patterns,
           x.playbook, x.floats);
}

// -- a phase's changes -------------------------------------------------------------

/// An active memory becomes superseded by `by`.
struct supersede_change {
  std::string id;
  std::string by;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supersede_change& x) {
  return f(caf::meta::type_name("supersede_change"), x.id, x.by);
}

/// An active memory gets new text (and, when `embedding` is not empty, a
/// new vector of `embedding_model`); `importance` 0 = unchanged.
struct rewrite_change {
  std::string id;
  std::string content;
  std::vector<float> embedding;
  std::string embedding_model;
  int32_t importance = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rewrite_change& x) {
  return f(caf::meta::type_name("rewrite_change"), x.id, x.content,
           x.embedding, x.embedding_model, x.importance);
}

/// An active memory gets a status and/or tier (decay: archived + cold, or
/// demoted to cold) or a parent (hierarchy). Empty field = unchanged.
struct state_change {
  std::string id;
  std::string status;
  std::string tier;
  std::string parent_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_change& x) {
  return f(caf::meta::type_name("state_change"), x.id, x.status, x.tier,
           x.parent_id);
}

/// A memory the phase creates (a summary or a principle): always active.
struct new_memory {
  std::string id;
  std::string agent_id;
  std::string type;
  std::string tier = "warm";
  std::string source_type = "consolidation";
  int32_t importance = 5;
  std::string content;
  std::vector<float> embedding;
  std::string embedding_model;
  int64_t created_at_us = 0;
  std::string metadata_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_memory& x) {
  return f(caf::meta::type_name("new_memory"), x.id, x.agent_id, x.type,
           x.tier, x.source_type, x.importance, x.content, x.embedding,
           x.embedding_model, x.created_at_us, x.metadata_json);
}

/// One row of memory_audit.
struct audit_entry {
  std::string memory_id;
  std::string action;
  std::string detail_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, audit_entry& x) {
  return f(caf::meta::type_name("audit_entry"), x.memory_id, x.action,
           x.detail_json);
}

/// A pattern to store (upserted by (project, seed_memory_id)).
struct pattern_write {
  std::string id;
  std::string seed_memory_id;
  std::string label;
  std::vector<std::string> member_ids;
  std::vector<float> centroid;
  std::string embedding_model;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pattern_write& x) {
  return f(caf::meta::type_name("pattern_write"), x.id, x.seed_memory_id,
           x.label, x.member_ids, x.centroid, x.embedding_model);
}

/// A playbook entry to create or update (by id).
struct playbook_write {
  std::string id;
  bool create = false;
  std::string agent_id;
  std::string principle_id;
  std::string title;
  std::string content;
  std::vector<float> embedding;
  std::string embedding_model;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, playbook_write& x) {
  return f(caf::meta::type_name("playbook_write"), x.id, x.create, x.agent_id,
           x.principle_id, x.title, x.content, x.embedding, x.embedding_model);
}

/// Everything one phase changes, committed in one transaction together with
/// the job's progress (phase appended to phases_completed, its metrics
/// merged). Every change to a memory requires it to be active still; when
/// one is not, the transaction rolls back with errc::conflict. Each of
/// `rewrites`, `supersedes` and `state_changes` names a memory at most once
/// (errc::invalid_argument otherwise).
struct phase_commit {
  std::string job_id;
  std::string project_id;
  std::string phase;
  /// This phase's metrics (a JSON object), stored under metrics[phase].
  std::string metrics_json = "{}";
  int64_t memories_processed = 0;
  int64_t memories_merged = 0;
  int64_t memories_archived = 0;
  std::vector<new_memory> inserts;
  std::vector<rewrite_change> rewrites;
  std::vector<supersede_change> supersedes;
  std::vector<state_change> state_changes;
  std::vector<audit_entry> audits;
  /// patterns phase: the project's pattern set is replaced by these.
  bool replace_patterns = false;
  std::vector<pattern_write> patterns;
  std::vector<playbook_write> playbook;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, phase_commit& x) {
  return f(caf::meta::type_name("phase_commit"), x.job_id, x.project_id,
           x.phase, x.metrics_json, x.memories_processed, x.memories_merged,
           x.memories_archived, x.inserts, x.rewrites, x.supersedes,
           x.state_changes, x.audits, x.replace_patterns, x.patterns,
           x.playbook, x.now_us);
}

/// Ends a job: status completed, failed (with `error`) or cancelled;
/// completed_at and duration set; then the project's lock is released.
struct finish_job {
  std::string job_id;
  std::string project_id;
  std::string status;
  std::string error;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, finish_job& x) {
  return f(caf::meta::type_name("finish_job"), x.job_id, x.project_id,
           x.status, x.error, x.now_us);
}

// -- the coordinator ---------------------------------------------------------------

/// Runs stored job `job_id` to its end (the task `consolidation.run_project`
/// asks this); answers the final job row. An error (a failed phase, the
/// project busy on another node) fails the task attempt, so the task's retry
/// policy applies; the job row says why.
struct run_job {
  std::string job_id;
  /// The job's project: jobs of one project run one after the other on a
  /// node (and, through the advisory lock, in the cluster).
  std::string project_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_job& x) {
  return f(caf::meta::type_name("run_job"), x.job_id, x.project_id);
}

/// Plans the phases on the project's current memories and changes nothing.
struct dry_run_request {
  std::string project_id;
  std::vector<std::string> phases;
  /// 0: now.
  int64_t as_of_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dry_run_request& x) {
  return f(caf::meta::type_name("dry_run_request"), x.project_id, x.phases,
           x.as_of_us);
}

/// {"project_id", "as_of", "phases": [...], "plan": {phase: ...},
///  "metrics": {phase: {...}}}
struct dry_run_result {
  std::string json;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dry_run_result& x) {
  return f(caf::meta::type_name("dry_run_result"), x.json);
}

/// The coordinator's counters on this node.
struct coordinator_stats {
  int64_t in_flight = 0;
  int64_t waiting = 0;
  int64_t capacity = 0;
  int64_t completed = 0;
  int64_t failed = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, coordinator_stats& x) {
  return f(caf::meta::type_name("coordinator_stats"), x.in_flight, x.waiting,
           x.capacity, x.completed, x.failed);
}

/// A project between stages: the job, its snapshot (local only, not
/// serialized) and where it is in its phases.
struct stage_work {
  job_record job;
  std::vector<std::string> phases;
  /// Index into `phases` of the phase to run.
  uint32_t next = 0;
  int64_t as_of_us = 0;
  bool dry_run = false;
  /// The project's effective settings (JSON of `settings`).
  std::string settings_json = "{}";
  std::shared_ptr<snapshot> snap;
  /// What the session loaded, until the first phase actor turns it into
  /// `snap` (off the coordinator's thread).
  std::shared_ptr<snapshot_data> loaded;
  /// Dry run: the plans so far ({phase: plan}); real run: unused.
  std::string plan_json = "{}";
  /// Agents whose memories changed so far (for invalidation).
  std::vector<std::string> agents_changed;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_work& x) {
  return f(caf::meta::type_name("stage_work"), x.job, x.phases, x.next,
           x.as_of_us, x.dry_run, x.settings_json, x.plan_json,
           x.agents_changed);
}

} // namespace engram::consolidation

namespace engram {

/// The coordinator's key in the actor registry (CAF 0.17 atoms: at most
/// 10 characters).
inline constexpr char consolidation_name[] = "consolidat";

/// A PROJECT SESSION: one connection, one project's lock at a time.
using project_session_actor = caf::typed_actor<
  caf::replies_to<consolidation::begin_job>::with<consolidation::job_start>,
  caf::replies_to<consolidation::load_snapshot>::with<consolidation::snapshot_data>,
  caf::replies_to<consolidation::phase_commit>::with<consolidation::job_record>,
  caf::replies_to<consolidation::finish_job>::with<consolidation::job_record>>;

/// A PHASE ACTOR: runs its phase on a project and hands back the project
/// (with its snapshot updated and the commit done on `session`).
using phase_actor = caf::typed_actor<
  caf::replies_to<consolidation::stage_work, project_session_actor>::with<
    consolidation::stage_work>>;

/// The CONSOLIDATION COORDINATOR: admits jobs (a bounded number of projects
/// in flight, the rest wait in order) and moves each project through the
/// phase actors.
using consolidation_actor = caf::typed_actor<
  caf::replies_to<consolidation::run_job>::with<consolidation::job_record>,
  caf::replies_to<consolidation::dry_run_request>::with<
    consolidation::dry_run_result>,
  caf::replies_to<atom::stats>::with<consolidation::coordinator_stats>>;

} // namespace engram
