#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/cache.hpp"
#include "messages/consolidation.hpp"
#include "messages/import_stream.hpp"
#include "messages/memories.hpp"
#include "messages/platform.hpp"
#include "messages/tasks.hpp"
#include "messages/workflows.hpp"

namespace engram::storage {

// -- schema -------------------------------------------------------------------

/// Asks whether the database is reachable and its schema current.
struct schema_status_request {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, schema_status_request&) {
  return f(caf::meta::type_name("schema_status_request"));
}

/// The schema version found in the database next to the one this binary
/// knows.
struct schema_status {
  /// Highest applied migration (0 = none).
  int64_t applied_version = 0;
  /// Highest migration compiled into this binary.
  int64_t known_version = 0;

  [[nodiscard]] bool current() const noexcept {
    return applied_version == known_version;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, schema_status& x) {
  return f(caf::meta::type_name("schema_status"), x.applied_version,
           x.known_version);
}

// -- nodes --------------------------------------------------------------------

/// One daemon process of the cluster, as recorded in `engram.nodes`.
struct node_info {
  /// UUID chosen by the node at start.
  std::string id;
  std::string host;
  int64_t pid = 0;
  std::string version;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("node_info"), x.id, x.host, x.pid, x.version);
}

/// Records the node as alive now (inserting its row on first use).
struct node_heartbeat {
  node_info node;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_heartbeat& x) {
  return f(caf::meta::type_name("node_heartbeat"), x.node);
}

/// Records that the node stopped cleanly.
struct node_stopped {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_stopped& x) {
  return f(caf::meta::type_name("node_stopped"), x.id);
}

/// Counts of the storage pool, for /metrics.
struct pool_stats {
  int64_t size = 0;
  int64_t in_use = 0;
  int64_t queued = 0;
  int64_t errors = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_stats& x) {
  return f(caf::meta::type_name("pool_stats"), x.size, x.in_use, x.queued,
           x.errors);
}

} // namespace engram::storage

namespace engram {

/// The STORAGE actor interface: one storage worker (owning one connection) and
/// the pool in front of the workers speak it alike. Every request is answered
/// with its result or an `errc` error (`database_unavailable` is retryable).
using storage_actor = caf::typed_actor<
  // Returns the applied and known schema versions (readiness).
  caf::replies_to<storage::schema_status_request>::with<storage::schema_status>,
  // Upserts the node row and sets heartbeat_at = now().
  caf::replies_to<storage::node_heartbeat>::with<bool>,
  // Marks the node row as stopped.
  caf::replies_to<storage::node_stopped>::with<bool>,
  // -- the task queue (DESIGN §4); see storage/task_repository.hpp --
  // Enqueues tasks in one transaction; results in request order.
  caf::replies_to<tasks::enqueue_tasks>::with<std::vector<tasks::enqueue_result>>,
  // Claims due tasks of a queue under fresh leases.
  caf::replies_to<tasks::claim_tasks>::with<std::vector<tasks::claimed_task>>,
  // Records finished attempts (and their followups) in one transaction.
  caf::replies_to<tasks::complete_tasks>::with<tasks::completion_result>,
  // Extends leases; reports lost ones and cancel requests.
  caf::replies_to<tasks::renew_leases>::with<tasks::renewal_result>,
  // Hands claimed tasks back without counting the attempt.
  caf::replies_to<tasks::release_tasks>::with<int64_t>,
  // Requeues tasks whose lease expired; returns their ids.
  caf::replies_to<tasks::reclaim_expired>::with<std::vector<int64_t>>,
  // Cancels a task: "cancelled", "cancelling", or its terminal status;
  // not_found for an unknown id.
  caf::replies_to<tasks::cancel_task>::with<std::string>,
  // Requeues a dead or cancelled task: its new status; not_found, or
  // conflict when it is not dead or cancelled or its unique key is taken.
  caf::replies_to<tasks::retry_task>::with<std::string>,
  // One task; not_found for an unknown id.
  caf::replies_to<tasks::get_task>::with<tasks::task_info>,
  // A page of tasks, newest first.
  caf::replies_to<tasks::list_tasks>::with<tasks::task_page>,
  // Depth and oldest age per queue.
  caf::replies_to<tasks::queue_depths_request>::with<std::vector<tasks::queue_depth>>,
  // Deletes finished tasks past their retention; how many.
  caf::replies_to<tasks::purge_finished_tasks>::with<int64_t>,
  // -- the agent platform (DESIGN §3-§5); see messages/platform.hpp --
  // The cleanups: one bounded batch each; the number of rows changed.
  caf::replies_to<platform::expire_tokens>::with<int64_t>,
  caf::replies_to<platform::close_stale_sessions>::with<int64_t>,
  caf::replies_to<platform::archive_old_conversations>::with<int64_t>,
  caf::replies_to<platform::archive_expired_memories>::with<int64_t>,
  // Creates a conversation with its first messages.
  caf::replies_to<platform::create_conversation>::with<platform::conversation_detail>,
  // A conversation with its messages; not_found for an unknown id.
  caf::replies_to<platform::get_conversation>::with<platform::conversation_detail>,
  // Appends messages; not_found, or conflict for a closed conversation.
  caf::replies_to<platform::add_messages>::with<std::vector<platform::message_info>>,
  // Inserts extracted facts as memories, skipping exact duplicates.
  caf::replies_to<platform::insert_extracted_memories>::with<platform::extraction_info>,
  // Enqueues memory.extract with the check that its conversation exists.
  caf::replies_to<platform::request_extraction>::with<tasks::task_info>,
  // Creates an agent; reads one (not_found for an unknown id).
  caf::replies_to<platform::create_agent>::with<platform::agent_info>,
  caf::replies_to<platform::get_agent>::with<platform::agent_info>,
  // A scheduled job; not_found for an unknown id.
  caf::replies_to<platform::get_scheduled_job>::with<platform::scheduled_job_info>,
  // A scheduled run starts (false: it finished already), ends, or is skipped.
  caf::replies_to<platform::record_run_start>::with<bool>,
  caf::replies_to<platform::record_run_result>::with<platform::run_tracking_info>,
  caf::replies_to<platform::record_run_skipped>::with<bool>,
  // -- projects and memories (DESIGN §3, §8); see messages/memories.hpp --
  // Creates or replaces a project; reads one (not_found for an unknown id).
  caf::replies_to<memories::put_project_request>::with<memories::put_project_result>,
  caf::replies_to<memories::get_project_request>::with<memories::project_record>,
  // Imports memories in one transaction (all or nothing); their ids.
  caf::replies_to<memories::import_memories_request>::with<memories::import_result>,
  // The same, the rows arriving in chunks as the HTTP handler parses them
  // (local only; see messages/import_stream.hpp).
  caf::replies_to<memories::import_stream_request>::with<memories::import_result>,
  // A page of a project's memories, newest first.
  caf::replies_to<memories::list_memories_request>::with<memories::memory_page>,
  // A memory with its audit history; not_found for an unknown id.
  caf::replies_to<memories::get_memory_request>::with<memories::memory_detail>,
  // Makes a superseded or archived memory active again; conflict for an
  // active one.
  caf::replies_to<memories::restore_memory_request>::with<memories::memory_record>,
  // An agent's hot memories (the hot-memory cache fills from it).
  caf::replies_to<cache::load_hot_memories>::with<std::vector<memories::memory_record>>,
  // -- consolidation jobs (DESIGN §6); see messages/consolidation.hpp --
  // Creates (or reuses) a job together with the task that runs it.
  caf::replies_to<consolidation::create_job_request>::with<consolidation::job_record>,
  // A job; not_found for an unknown id.
  caf::replies_to<consolidation::get_job_request>::with<consolidation::job_record>,
  // A page of a project's jobs, newest first.
  caf::replies_to<consolidation::list_jobs_request>::with<consolidation::job_page>,
  // The projects with consolidation enabled.
  caf::replies_to<consolidation::enabled_projects_request>::with<std::vector<std::string>>,
  // -- workflow chains (DESIGN §7); see messages/workflows.hpp --
  // Creates a run with its first step's task, or returns the existing run
  // with the same idempotency key or branch name.
  caf::replies_to<workflows::create_run>::with<workflows::create_run_result>,
  // A step attempt starts (or is refused: stale, cancelled, credentials).
  caf::replies_to<workflows::begin_step>::with<workflows::step_start>,
  // A step attempt ends, with its artifacts and the next task.
  caf::replies_to<workflows::finish_step>::with<workflows::run_record>,
  // Cancels a run; retries a failed run from its failed step.
  caf::replies_to<workflows::cancel_run>::with<workflows::run_record>,
  caf::replies_to<workflows::retry_run>::with<workflows::run_record>,
  // Records credential checks (a refused retry).
  caf::replies_to<workflows::record_audits>::with<int64_t>,
  // Reads: a run with its steps, a page of runs, artifacts, audits.
  caf::replies_to<workflows::get_run>::with<workflows::run_detail>,
  caf::replies_to<workflows::list_runs>::with<workflows::run_page>,
  caf::replies_to<workflows::list_artifacts>::with<std::vector<workflows::artifact_record>>,
  caf::replies_to<workflows::get_artifact>::with<workflows::artifact_record>,
  caf::replies_to<workflows::list_audits>::with<std::vector<workflows::credential_audit>>>;

/// The name of the storage pool among the supervised actors, and its key in
/// the actor registry.
inline constexpr char storage_pool_name[] = "storage";

/// The STORAGE POOL interface: the storage interface plus pool statistics.
using storage_pool_actor = storage_actor::extend<
  // Returns the pool's counters.
  caf::replies_to<atom::stats>::with<storage::pool_stats>>;

/// A NOTIFICATION LISTENER: a detached actor that owns one connection,
/// LISTENs on channels and turns PostgreSQL notifications into calls of a
/// callback (which should only send messages). It never blocks longer than
/// one wait slice, so exit messages are handled promptly.
using notification_listener_actor
  = caf::typed_actor<caf::reacts_to<atom::tick>>;

/// Called with (channel, payload) on the listener's thread. After every
/// (re)connect it is called once per channel with an empty payload:
/// notifications may have been missed, so the consumer should look for work
/// itself.
using notification_callback
  = std::function<void(const std::string& channel, const std::string& payload)>;

} // namespace engram
