#include "actors/tasks/consolidation_tasks.hpp"

#include <boost/json.hpp>

#include "actors/scheduler/cron.hpp"
#include "messages/consolidation.hpp"
#include "runtime/uuid.hpp"

namespace engram::tasks {

namespace {

namespace json = boost::json;
using consolidation::job_record;

task_options consolidation_options(const consolidation_task_settings& s) {
  task_options result;
  result.queue = "memory";
  result.retry.max_retries = 3;
  result.retry.base = std::chrono::seconds{30};
  result.retry.cap = std::chrono::minutes{30};
  result.time_limit = s.job_timeout;
  return result;
}

/// The `phases` argument: a list of known phase names (default: none =
/// every phase).
std::vector<std::string> phases_arg(const args_reader& args) {
  std::vector<std::string> out;
  if (!args.has("phases"))
    return out;
  const auto* v = args.object().if_contains("phases");
  if (!v->is_array())
    throw invalid_args("phases: expected a list of phase names");
  const auto& all = consolidation::phase_names();
  for (const auto& x : v->as_array()) {
    if (!x.is_string()
        || std::find(all.begin(), all.end(), std::string{x.as_string()})
             == all.end())
      throw invalid_args("phases: expected phase names among patterns, "
                         "merge, summarize, hierarchy, playbook, decay, "
                         "invalidate");
    out.emplace_back(x.as_string());
  }
  return out;
}

int64_t as_of_arg(const args_reader& args) {
  if (!args.has("as_of"))
    return 0;
  auto t = cron::parse_rfc3339(args.text("as_of"));
  if (!t)
    throw invalid_args("as_of: expected an RFC 3339 date-time");
  return to_epoch_us(wall_time{*t});
}

void validate_run(const args_reader& args) {
  args.only({"project_id", "job_id", "phases", "as_of"});
  (void) args.uuid("project_id");
  if (args.has("job_id"))
    (void) args.uuid("job_id");
  (void) phases_arg(args);
  (void) as_of_arg(args);
}

json::value job_json(const job_record& job) {
  json::object out;
  out["job_id"] = job.id;
  out["project_id"] = job.project_id;
  out["status"] = job.status;
  json::array phases;
  for (const auto& p : job.phases_completed)
    phases.emplace_back(p);
  out["phases_completed"] = std::move(phases);
  boost::system::error_code ec;
  auto metrics = json::parse(job.metrics_json, ec);
  out["metrics"] = ec ? json::value(json::object{}) : metrics;
  out["duration_ms"] = job.duration_ms;
  if (!job.error_message.empty())
    out["error"] = job.error_message;
  return out;
}

consolidation_actor coordinator(const task_context& ctx) {
  return ctx.services().system->registry().get<consolidation_actor>(
    caf::atom(consolidation_name));
}

json::value run_project(task_context& ctx,
                        const consolidation_task_settings& settings) {
  auto args = ctx.args();
  auto project = args.uuid("project_id");
  std::string job_id;
  if (args.has("job_id")) {
    job_id = args.uuid("job_id");
  } else {
    consolidation::create_job_request req;
    req.id = name_uuid("consolidation.run_project:"
                       + std::to_string(ctx.task().id));
    req.project_id = project;
    req.phases = phases_arg(args);
    req.as_of_us = as_of_arg(args);
    req.trigger_type = "manual";
    req.triggered_by = "task:" + std::to_string(ctx.task().id);
    req.enqueue = false;
    req.now_us = to_epoch_us(ctx.now());
    job_id = ctx.ask_storage<job_record>(std::move(req)).id;
  }
  ctx.check_stop();
  auto job = ctx.try_ask<job_record>(coordinator(ctx),
                                     consolidation::run_job{job_id, project},
                                     settings.job_timeout);
  if (!job) {
    // A failed phase, a project another node runs (conflict), a database
    // away: the retry resumes the job. Only a job that does not exist or
    // arguments the coordinator refuses cannot be helped by a retry.
    auto code = code_of(job.error());
    if (code == errc::not_found || code == errc::invalid_argument)
      throw permanent_failure(describe(job.error()));
    throw std::runtime_error(describe(job.error()));
  }
  return job_json(*job);
}

/// One scheduled job per enabled project, each with its own task.
json::value fan_out(task_context& ctx, const std::string& task_name,
                    std::vector<std::string> phases) {
  ctx.args().only({});
  auto projects = ctx.ask_storage<std::vector<std::string>>(
    consolidation::enabled_projects_request{});
  json::array jobs;
  for (const auto& project : projects) {
    ctx.check_stop();
    consolidation::create_job_request req;
    req.id = name_uuid(task_name + ":" + std::to_string(ctx.task().id) + ":"
                       + project);
    req.project_id = project;
    req.phases = phases;
    req.trigger_type = "scheduled";
    req.triggered_by = task_name;
    req.now_us = to_epoch_us(ctx.now());
    jobs.emplace_back(ctx.ask_storage<job_record>(std::move(req)).id);
  }
  json::object out;
  out["projects"] = projects.size();
  out["jobs"] = std::move(jobs);
  return out;
}

} // namespace

void register_consolidation_tasks(task_registry& registry,
                                  consolidation_task_settings settings) {
  registry.add(
    "consolidation.run_project", validate_run,
    [settings](task_context& ctx) { return run_project(ctx, settings); },
    consolidation_options(settings));
  auto fan_out_options = consolidation_options(settings);
  fan_out_options.time_limit = std::chrono::minutes{10};
  registry.add(
    "memory.consolidate", [](const args_reader& args) { args.only({}); },
    [](task_context& ctx) {
      return fan_out(ctx, "memory.consolidate",
                     {"patterns", "merge", "summarize", "hierarchy",
                      "playbook", "invalidate"});
    },
    fan_out_options);
  registry.add(
    "memory.decay_and_expire", [](const args_reader& args) { args.only({}); },
    [](task_context& ctx) {
      return fan_out(ctx, "memory.decay_and_expire", {"decay", "invalidate"});
    },
    fan_out_options);
}

} // namespace engram::tasks
