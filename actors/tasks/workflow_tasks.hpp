#pragma once

// The workflow step task (DESIGN §4, §7), registered with
// `register_workflow_tasks(registry, queue)`:
//
// - `workflow.step` {run_id, step_index, run_attempt, try}: runs one try of
//   one step of a workflow run on the workflow actor (registry key
//   `workflows_name`) and waits until its outcome is committed (the run's
//   next task is enqueued with it). Enqueued by the run's creation, by the
//   step before, by a failed try that has tries left, and by an operator
//   retry; never by hand. A try whose run moved on is a success that does
//   nothing ("skipped"). When the worker stops the task (shutdown, lost
//   lease, cancel), the step's process group is stopped; unless the run was
//   cancelled, the attempt stays running and the redelivered task runs it
//   again. Failures of the machinery (database away, a chain that died) are
//   retried by the task's own policy (short backoff); a failed step is not
//   a failed task: its retries are the step's own.

#include <string>

#include "actors/tasks/task_registry.hpp"

namespace engram::tasks {

void register_workflow_tasks(task_registry& registry,
                             const std::string& queue = "workflows");

} // namespace engram::tasks
