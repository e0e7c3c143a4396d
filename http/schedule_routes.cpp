#include "http/schedule_routes.hpp"

#include <memory>
#include <set>
#include <stdexcept>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>

#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"
#include "http/task_routes.hpp"
#include "runtime/clock.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {




scheduler_actor scheduler_of(const schedule_route_deps& deps) {
  if (deps.scheduler)
    return deps.scheduler();
  return deps.sys->registry().get<scheduler_actor>(caf::atom(scheduler_name));
}

response bad_request(const std::exception& e) {
  return error_response(errc::invalid_argument, e.what());
}

/// Asks the scheduler and answers with `code` and the reply as JSON
/// (errors with the status their errc maps to).
template <class Reply, class Request, class ToJson>
void ask_scheduler(const schedule_route_deps& deps, Request req,
                   http::status code, ToJson to_json, responder respond) {
  ask<Reply>(
    *deps.sys, scheduler_of(deps), deps.timeout, std::move(req),
    [respond, code, to_json](Reply& reply) {
      respond(json_response(code, json::serialize(to_json(reply))));
    },
    respond);
}

constexpr auto create_fields
  = "agent_id, name, message, cron_expression, timezone, is_active, "
    "delivery_config, team_id, user_id";
constexpr auto patch_fields
  = "name, message, cron_expression, timezone, is_active, delivery_config";

schedules::job_spec read_spec(const request& req) {
  schedules::job_spec spec;
  std::set<std::string> given;
  read_body_object(req, [&](json_fields& f, const std::string& key,
                       simdjson::ondemand::value v) {
    given.insert(key);
    if (key == "agent_id")
      spec.agent_id = f.text(v, key);
    else if (key == "team_id")
      spec.team_id = is_null(v) ? std::string{} : f.text(v, key);
    else if (key == "user_id")
      spec.user_id = is_null(v) ? std::string{} : f.text(v, key);
    else if (key == "name")
      spec.name = f.text(v, key);
    else if (key == "message")
      spec.message = f.text(v, key);
    else if (key == "cron_expression")
      spec.cron_expression = f.text(v, key);
    else if (key == "timezone")
      spec.timezone = f.text(v, key);
    else if (key == "is_active")
      spec.is_active = f.boolean(v, key);
    else if (key == "delivery_config")
      spec.delivery_config_json = is_null(v) ? std::string{"{}"}
                                             : f.raw(v, key, true);
    else
      throw body_error{"unknown field " + key + " (accepted: "
                       + std::string{create_fields} + ")"};
  });
  for (auto required : {"agent_id", "name", "message", "cron_expression"})
    if (given.count(required) == 0)
      throw body_error{std::string{required} + " is required"};
  return spec;
}

schedules::job_patch read_patch(const request& req) {
  schedules::job_patch patch;
  read_body_object(req, [&](json_fields& f, const std::string& key,
                       simdjson::ondemand::value v) {
    if (key == "name") {
      patch.has_name = true;
      patch.name = f.text(v, key);
    } else if (key == "message") {
      patch.has_message = true;
      patch.message = f.text(v, key);
    } else if (key == "cron_expression") {
      patch.has_cron_expression = true;
      patch.cron_expression = f.text(v, key);
    } else if (key == "timezone") {
      patch.has_timezone = true;
      patch.timezone = f.text(v, key);
    } else if (key == "is_active") {
      patch.has_is_active = true;
      patch.is_active = f.boolean(v, key);
    } else if (key == "delivery_config") {
      patch.has_delivery_config = true;
      patch.delivery_config_json = is_null(v) ? std::string{"{}"}
                                              : f.raw(v, key, true);
    } else if (key == "agent_id" || key == "team_id" || key == "user_id") {
      throw body_error{key + " cannot be changed; create a new schedule "
                             "instead"};
    } else {
      throw body_error{"unknown field " + key + " (accepted: "
                       + std::string{patch_fields} + ")"};
    }
  });
  return patch;
}

} // namespace

json::object schedule_json(const schedules::job_info& j) {
  json::object o;
  o["id"] = j.id;
  o["team_id"] = text_or_null(j.team_id);
  o["agent_id"] = j.agent_id;
  o["user_id"] = text_or_null(j.user_id);
  o["name"] = j.name;
  o["message"] = j.message;
  o["cron_expression"] = j.cron_expression;
  o["timezone"] = j.timezone;
  o["is_active"] = j.is_active;
  o["last_run_at"] = time_or_null(j.last_run_at_us);
  o["next_run_at"] = time_or_null(j.next_run_at_us);
  o["run_count"] = j.run_count;
  o["consecutive_failures"] = j.consecutive_failures;
  o["last_error"] = text_or_null(j.last_error);
  o["delivery_config"] = json_or_empty_object(j.delivery_config_json);
  o["created_at"] = time_or_null(j.created_at_us);
  o["updated_at"] = time_or_null(j.updated_at_us);
  return o;
}

json::object schedule_run_json(const schedules::run_info& r) {
  json::object o;
  o["id"] = r.id;
  o["schedule_id"] = r.job_id;
  o["task_id"] = r.task_id == 0 ? json::value(nullptr) : json::value(r.task_id);
  o["fire_time"] = time_or_null(r.fire_time_us);
  o["manual"] = r.fire_time_us == 0;
  o["status"] = r.status;
  o["conversation_id"] = text_or_null(r.conversation_id);
  o["error"] = text_or_null(r.error);
  o["started_at"] = time_or_null(r.started_at_us);
  o["finished_at"] = time_or_null(r.finished_at_us);
  o["created_at"] = time_or_null(r.created_at_us);
  return o;
}

void add_schedule_routes(router& r, schedule_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("schedule routes need the actor system");
  auto shared = std::make_shared<const schedule_route_deps>(std::move(deps));

  r.add(verb::post, "/api/schedules",
        [shared](request_context& ctx, responder respond) {
          schedules::create_job req;
          try {
            req.spec = read_spec(ctx.req);
          } catch (const body_error& e) {
            respond(bad_request(e));
            return;
          }
          ask_scheduler<schedules::job_info>(
            *shared, std::move(req), status::created,
            [](schedules::job_info& j) { return schedule_json(j); },
            std::move(respond));
        });

  r.add(verb::get, "/api/schedules",
        [shared](request_context& ctx, responder respond) {
          schedules::list_jobs req;
          try {
            req.cursor = query_param(ctx.query, "cursor").value_or("");
            req.limit = query_integer(ctx.query, "limit", 1, 1000).value_or(50);
            req.agent_id = query_param(ctx.query, "agent_id").value_or("");
            req.team_id = query_param(ctx.query, "team_id").value_or("");
            req.user_id = query_param(ctx.query, "user_id").value_or("");
            if (auto active = query_param(ctx.query, "is_active")) {
              if (*active == "true")
                req.active = 1;
              else if (*active == "false")
                req.active = 0;
              else
                throw body_error{"query parameter is_active must be true or "
                                 "false"};
            }
          } catch (const body_error& e) {
            respond(bad_request(e));
            return;
          }
          ask_scheduler<schedules::job_page>(
            *shared, std::move(req), status::ok,
            [](schedules::job_page& page) {
              json::array items;
              for (const auto& j : page.jobs)
                items.push_back(schedule_json(j));
              json::object body;
              body["schedules"] = std::move(items);
              body["next_cursor"] = text_or_null(page.next_cursor);
              return body;
            },
            std::move(respond));
        });

  r.add(verb::get, "/api/schedules/{id}",
        [shared](request_context& ctx, responder respond) {
          ask_scheduler<schedules::job_info>(
            *shared, schedules::get_job{ctx.params.at("id")}, status::ok,
            [](schedules::job_info& j) { return schedule_json(j); },
            std::move(respond));
        });

  r.add(verb::patch, "/api/schedules/{id}",
        [shared](request_context& ctx, responder respond) {
          schedules::patch_job req;
          req.id = ctx.params.at("id");
          try {
            req.patch = read_patch(ctx.req);
          } catch (const body_error& e) {
            respond(bad_request(e));
            return;
          }
          ask_scheduler<schedules::job_info>(
            *shared, std::move(req), status::ok,
            [](schedules::job_info& j) { return schedule_json(j); },
            std::move(respond));
        });

  r.add(verb::delete_, "/api/schedules/{id}",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          ask_scheduler<bool>(
            *shared, schedules::delete_job{id}, status::ok,
            [id](bool) {
              return json::object{{"id", id}, {"deleted", true}};
            },
            std::move(respond));
        });

  r.add(verb::post, "/api/schedules/{id}/run",
        [shared](request_context& ctx, responder respond) {
          ask_scheduler<schedules::manual_run>(
            *shared, schedules::run_job_now{ctx.params.at("id")},
            status::accepted,
            [](schedules::manual_run& run) {
              json::object body;
              body["task"] = task_json(run.task);
              body["run"] = run.run.id == 0
                              ? json::value(nullptr)
                              : json::value(schedule_run_json(run.run));
              body["created"] = run.created;
              return body;
            },
            std::move(respond));
        });

  r.add(verb::get, "/api/schedules/{id}/runs",
        [shared](request_context& ctx, responder respond) {
          schedules::list_job_runs req;
          req.id = ctx.params.at("id");
          try {
            req.before_run_id
              = query_integer(ctx.query, "cursor", 1, INT64_MAX).value_or(0);
            req.limit = query_integer(ctx.query, "limit", 1, 1000).value_or(50);
          } catch (const body_error& e) {
            respond(bad_request(e));
            return;
          }
          ask_scheduler<schedules::run_page>(
            *shared, std::move(req), status::ok,
            [](schedules::run_page& page) {
              json::array items;
              for (const auto& run : page.runs)
                items.push_back(schedule_run_json(run));
              json::object body;
              body["runs"] = std::move(items);
              body["next_cursor"]
                = page.next_before_run_id == 0
                    ? json::value(nullptr)
                    : json::value(std::to_string(page.next_before_run_id));
              return body;
            },
            std::move(respond));
        });
}

} // namespace engram::http
