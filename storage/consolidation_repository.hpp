#pragma once

// Consolidation jobs and the project session's work (DESIGN §6): creating
// a job together with the durable task that runs it, reading and listing
// jobs, starting a job under the project's advisory lock, loading a
// project's snapshot, committing one phase's changes with their audit rows
// and the job's progress, and ending a job.
//
// Refusals are `errc` errors (and write nothing); libpqxx exceptions are
// left to the caller, which rolls back.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "messages/consolidation.hpp"
#include "runtime/clock.hpp"

namespace engram::storage {

/// Class id of the session-level advisory lock a job holds on its project
/// ("eng" + 0x03; extraction uses 0x01, imports 0x02).
inline constexpr int32_t consolidation_lock_class = 0x656e6703;

/// Page size of list_jobs when none is given, and its maximum.
inline constexpr int32_t default_consolidation_page = 50;
inline constexpr int32_t max_consolidation_page = 500;

/// Creates the job and its task (see consolidation::create_job_request).
/// Refusals: invalid_argument (malformed id or project id, unknown phase).
[[nodiscard]] caf::expected<consolidation::job_record>
create_job(pqxx::transaction_base& tx,
           const consolidation::create_job_request& req, wall_time now);

/// not_found for an unknown (or malformed) id.
[[nodiscard]] caf::expected<consolidation::job_record>
get_job(pqxx::transaction_base& tx, const std::string& id);

/// invalid_argument for a malformed project id or cursor.
[[nodiscard]] caf::expected<consolidation::job_page>
list_jobs(pqxx::transaction_base& tx,
          const consolidation::list_jobs_request& req);

/// The projects with consolidation enabled, in id order.
[[nodiscard]] std::vector<std::string>
enabled_projects(pqxx::transaction_base& tx);

/// Starts job `job_id` (see consolidation::begin_job). The advisory lock is
/// taken on `tx`'s session and outlives the transaction. Refusals:
/// not_found (job), conflict (another session holds the project).
[[nodiscard]] caf::expected<consolidation::job_start>
begin_job(pqxx::transaction_base& tx, const std::string& job_id,
          wall_time now);

/// The project's active memories, patterns and playbook entries.
[[nodiscard]] consolidation::snapshot_data
load_snapshot(pqxx::transaction_base& tx, const std::string& project_id);

/// Commits one phase (see consolidation::phase_commit). Refusals: conflict
/// (a memory the phase changes is no longer active, or the job is no longer
/// running), not_found (job).
[[nodiscard]] caf::expected<consolidation::job_record>
commit_phase(pqxx::transaction_base& tx,
             const consolidation::phase_commit& commit);

/// Ends a job (see consolidation::finish_job); the lock is released by
/// `release_project` afterwards. A job that ended already is answered as it
/// is; a status other than completed, failed or cancelled is
/// invalid_argument.
[[nodiscard]] caf::expected<consolidation::job_record>
finish_job(pqxx::transaction_base& tx, const consolidation::finish_job& req);

/// Releases this session's lock on `project_id` (no-op when not held).
void release_project(pqxx::transaction_base& tx, const std::string& project_id);

} // namespace engram::storage
