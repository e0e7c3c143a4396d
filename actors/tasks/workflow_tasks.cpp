#include "actors/tasks/workflow_tasks.hpp"

#include <stop_token>

#include <boost/json.hpp>
#include <caf/send.hpp>

#include "actors/workflows/step_outcome.hpp"
#include "messages/workflows.hpp"

namespace engram::tasks {

namespace {

namespace json = boost::json;

void validate_step(const args_reader& args) {
  args.only({"run_id", "step_index", "run_attempt", "try"});
  (void) args.uuid("run_id");
  (void) args.integer("step_index", 0, 10000);
  (void) args.integer("run_attempt", 1, 1000000);
  (void) args.integer("try", 1, 1000);
}

json::value run_step(task_context& ctx) {
  auto args = ctx.args();
  workflows::run_step req;
  req.run_id = args.uuid("run_id");
  req.step_index = static_cast<int32_t>(args.integer("step_index", 0, 10000));
  req.run_attempt
    = static_cast<int32_t>(args.integer("run_attempt", 1, 1000000));
  req.try_number = static_cast<int32_t>(args.integer("try", 1, 1000));
  req.task_id = ctx.task().id;
  auto dest = ctx.services().system->registry().get<workflow_actor>(
    caf::atom(workflows_name));
  // A stop of this task (shutdown, lost lease, cancel) stops the step.
  std::stop_callback on_stop(ctx.stop_token(), [dest, run = req.run_id] {
    if (dest)
      caf::anon_send(dest, workflows::stop_step{run});
  });
  // The task's hard time limit bounds the step; this wait only must not be
  // shorter than it.
  auto limit = std::chrono::milliseconds{ctx.task().time_limit_ms > 0
                                           ? ctx.task().time_limit_ms
                                           : 24 * 3600 * 1000};
  auto report = ctx.try_ask<workflows::step_report>(dest, req, limit);
  if (!report) {
    if (code_of(report.error()) == errc::invalid_argument)
      throw permanent_failure(describe(report.error()));
    // Anything else is the machinery's (database, a chain that died, the
    // worker stopping): the task runs again and the step with it.
    throw std::runtime_error(describe(report.error()));
  }
  json::object out;
  out["run_id"] = req.run_id;
  out["step"] = report->step;
  out["attempt"] = report->attempt;
  out["outcome"] = report->outcome;
  out["run_status"] = report->run_status;
  out["duration_ms"] = report->duration_ms;
  if (report->exit_code >= 0)
    out["exit_code"] = report->exit_code;
  if (!report->error.empty())
    out["error"] = report->error;
  return out;
}

} // namespace

void register_workflow_tasks(task_registry& registry,
                             const std::string& queue) {
  task_options options;
  options.queue = queue;
  options.retry.max_retries = 10;
  options.retry.base = std::chrono::seconds{1};
  options.retry.cap = std::chrono::minutes{1};
  registry.add(workflows::step_task_name, validate_step, run_step, options);
}

} // namespace engram::tasks
