#pragma once

// The consolidation tasks (DESIGN §4, §6), registered with
// `register_consolidation_tasks(registry)`, all on queue "memory" with the
// memory tasks' retry policy (base 30 s):
//
// - `consolidation.run_project` {project_id, job_id?, phases?, as_of?}:
//   runs one consolidation job on the coordinator (registry key
//   `consolidation_name`). With `job_id` it runs that job (created by the
//   API or a scheduled fan-out, which also enqueued this task); without, it
//   first creates its own job (id derived from the task id, so a retry
//   reuses it; trigger "manual", triggered by "task:<id>") with the given
//   phases (default all) and as_of (RFC 3339). Result: the job's id,
//   status, phases_completed, metrics, duration and error. A cancelled job
//   (missing or disabled project) is a success with that status; a failed
//   phase fails the attempt, so the retry policy applies and the retry
//   resumes after the last committed phase; a job another node runs
//   (errc::conflict) is retried later.
//
// - `memory.consolidate` {} (daily 02:00): for every project with
//   consolidation enabled, a scheduled job of the phases patterns, merge,
//   summarize, hierarchy, playbook and invalidate, each run by its own
//   `consolidation.run_project` task (so projects spread over the workers
//   and nodes, and each retries on its own). Job ids derive from this
//   task's id and the project, so a redelivered task creates nothing twice.
//   Result: {"projects": n, "jobs": [ids]}.
//
// - `memory.decay_and_expire` {} (daily 05:00): the same with the phases
//   decay and invalidate.

#include <chrono>

#include "actors/tasks/task_registry.hpp"

namespace engram::tasks {

struct consolidation_task_settings {
  /// Longest wait for one job (also the task's hard time limit).
  std::chrono::milliseconds job_timeout{std::chrono::hours{1}};
};

void register_consolidation_tasks(task_registry& registry,
                                  consolidation_task_settings settings = {});

} // namespace engram::tasks
