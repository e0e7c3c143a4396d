#include "http/consolidation_routes.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>

#include "actors/scheduler/cron.hpp"
#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"
#include "http/memory_routes.hpp"
#include "messages/cache.hpp"
#include "runtime/clock.hpp"
#include "runtime/uuid.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {



response json_reply(status code, const json::value& body) {
  return json_response(code, json::serialize(body));
}

/// What a POST …/consolidations asks for.
struct trigger {
  std::vector<std::string> phases;
  bool dry_run = false;
  int64_t as_of_us = 0;
};

trigger read_trigger(const request& req) {
  trigger t;
  if (req.body().empty())
    return t;
  read_body_object(req, [&](json_fields& f, const std::string& key,
                            simdjson::ondemand::value v) {
    if (key == "phases") {
      simdjson::ondemand::array arr;
      if (v.get_array().get(arr))
        throw body_error{"phases must be a list of phase names"};
      const auto& all = consolidation::phase_names();
      size_t i = 0;
      for (auto item : arr) {
        std::string_view name;
        auto field = "phases[" + std::to_string(i++) + "]";
        if (item.get_string().get(name))
          throw body_error{field + " must be a string"};
        if (std::find(all.begin(), all.end(), name) == all.end())
          throw body_error{field + ": unknown phase \"" + std::string{name}
                           + "\" (phases: patterns, merge, summarize, "
                             "hierarchy, playbook, decay, invalidate)"};
        if (std::find(t.phases.begin(), t.phases.end(), name)
            != t.phases.end())
          throw body_error{field + ": \"" + std::string{name}
                           + "\" is listed twice"};
        t.phases.emplace_back(name);
      }
      if (t.phases.empty())
        throw body_error{"phases must name at least one phase (omit it for "
                         "all)"};
    } else if (key == "dry_run") {
      t.dry_run = f.boolean(v, key);
    } else if (key == "as_of") {
      auto text = f.text(v, key);
      auto at = cron::parse_rfc3339(text);
      if (!at)
        throw body_error{"as_of must be an RFC 3339 date-time, e.g. "
                         "2024-03-09T12:00:00Z"};
      t.as_of_us = to_epoch_us(wall_time{*at});
    } else {
      throw body_error{"unknown field " + key
                       + " (accepted: phases, dry_run, as_of)"};
    }
  });
  return t;
}

consolidation_actor coordinator_of(caf::actor_system& sys) {
  return sys.registry().get<consolidation_actor>(
    caf::atom(consolidation_name));
}

hot_cache_actor cache_of(caf::actor_system& sys) {
  return sys.registry().get<hot_cache_actor>(caf::atom(hot_cache_name));
}

} // namespace

json::object consolidation_job_json(const consolidation::job_record& j) {
  json::object o;
  o["id"] = j.id;
  o["project_id"] = j.project_id;
  o["status"] = j.status;
  o["trigger_type"] = j.trigger_type;
  o["triggered_by"] = j.triggered_by.empty() ? json::value(nullptr)
                                             : json::value(j.triggered_by);
  o["options"] = json_or_empty_object(j.options_json);
  json::array phases;
  for (const auto& p : j.phases_completed)
    phases.emplace_back(p);
  o["phases_completed"] = std::move(phases);
  o["metrics"] = json_or_empty_object(j.metrics_json);
  o["memories_processed"] = j.memories_processed;
  o["memories_merged"] = j.memories_merged;
  o["memories_archived"] = j.memories_archived;
  o["error"] = j.error_message.empty() ? json::value(nullptr)
                                       : json::value(j.error_message);
  o["created_at"] = time_or_null(j.created_at_us);
  o["started_at"] = time_or_null(j.started_at_us);
  o["completed_at"] = time_or_null(j.completed_at_us);
  o["duration_ms"] = j.completed_at_us == 0 ? json::value(nullptr)
                                            : json::value(j.duration_ms);
  o["task_id"] = j.task_id == 0 ? json::value(nullptr)
                                : json::value(j.task_id);
  return o;
}

void add_consolidation_routes(router& r, consolidation_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("consolidation routes need the actor system");
  auto shared = std::make_shared<const consolidation_route_deps>(deps);

  r.add(verb::post, "/api/projects/{id}/consolidations",
        [shared](request_context& ctx, responder respond) {
          auto project = ctx.params.at("id");
          if (!is_uuid(project)) {
            respond(error_response(errc::not_found,
                                   "no project with id " + project));
            return;
          }
          trigger t;
          try {
            t = read_trigger(ctx.req);
          } catch (const body_error& e) {
            respond(error_response(errc::invalid_argument, e.what()));
            return;
          }
          auto& sys = *shared->sys;
          // The project must exist: a job for an unknown one is a 404 here
          // (a job of a project deleted later is cancelled when it runs).
          ask_storage<memories::project_record>(
            sys, shared->timeout, memories::get_project_request{project},
            [shared, t, respond](memories::project_record& p) mutable {
              auto& sys = *shared->sys;
              if (t.dry_run) {
                consolidation::dry_run_request req{p.id, t.phases,
                                                   t.as_of_us};
                ask<consolidation::dry_run_result>(
                  sys, coordinator_of(sys), shared->dry_run_timeout,
                  std::move(req),
                  [respond](consolidation::dry_run_result& plan) mutable {
                    respond(json_response(status::ok, plan.json));
                  },
                  respond);
                return;
              }
              consolidation::create_job_request req;
              req.project_id = p.id;
              req.phases = t.phases;
              req.as_of_us = t.as_of_us;
              req.trigger_type = "manual";
              req.triggered_by = "api";
              req.now_us = to_epoch_us(real_clock().now());
              ask_storage<consolidation::job_record>(
                sys, shared->timeout, std::move(req),
                [respond](consolidation::job_record& job) mutable {
                  respond(json_reply(status::accepted,
                                     consolidation_job_json(job)));
                },
                respond);
            },
            respond);
        });

  r.add(verb::get, "/api/consolidations/{id}",
        [shared](request_context& ctx, responder respond) {
          ask_storage<consolidation::job_record>(
            *shared->sys, shared->timeout,
            consolidation::get_job_request{ctx.params.at("id")},
            [respond](consolidation::job_record& job) mutable {
              respond(json_reply(status::ok, consolidation_job_json(job)));
            },
            respond);
        });

  r.add(verb::get, "/api/projects/{id}/consolidations",
        [shared](request_context& ctx, responder respond) {
          consolidation::list_jobs_request req;
          req.project_id = ctx.params.at("id");
          try {
            req.cursor = query_param(ctx.query, "cursor").value_or("");
            req.limit = static_cast<int32_t>(
              query_integer(ctx.query, "limit", 1, 500).value_or(50));
          } catch (const body_error& e) {
            respond(error_response(errc::invalid_argument, e.what()));
            return;
          }
          if (!is_uuid(req.project_id)) {
            respond(error_response(errc::not_found,
                                   "no project with id " + req.project_id));
            return;
          }
          ask_storage<consolidation::job_page>(
            *shared->sys, shared->timeout, std::move(req),
            [respond](consolidation::job_page& page) mutable {
              json::array jobs;
              for (const auto& j : page.jobs)
                jobs.push_back(consolidation_job_json(j));
              json::object body;
              body["jobs"] = std::move(jobs);
              body["next_cursor"] = page.next_cursor.empty()
                                      ? json::value(nullptr)
                                      : json::value(page.next_cursor);
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::get, "/api/agents/{id}/memories/hot",
        [shared](request_context& ctx, responder respond) {
          auto agent = ctx.params.at("id");
          if (!is_uuid(agent)) {
            respond(error_response(errc::invalid_argument,
                                   "agent id: not a UUID"));
            return;
          }
          auto& sys = *shared->sys;
          ask<cache::hot_memories>(
            sys, cache_of(sys), shared->timeout,
            cache::hot_memories_request{agent},
            [respond](cache::hot_memories& hot) mutable {
              json::array items;
              for (const auto& m : hot.memories)
                items.push_back(memory_json(m));
              json::object body;
              body["agent_id"] = hot.agent_id;
              body["memories"] = std::move(items);
              body["cached"] = hot.cached;
              respond(json_reply(status::ok, body));
            },
            respond);
        });
}

} // namespace engram::http
