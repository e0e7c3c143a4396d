#include "http/workflow_routes.hpp"

#include <algorithm>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>

#include "actors/workflows/step_process.hpp"
#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"
#include "runtime/uuid.hpp"

namespace engram::http {

namespace json = boost::json;
using namespace workflows;

namespace {

response json_reply(status code, const json::value& body) {
  return json_response(code, json::serialize(body));
}

workflow_actor workflows_of(caf::actor_system& sys) {
  return sys.registry().get<workflow_actor>(caf::atom(workflows_name));
}

json::value text_or_null_(const std::string& s) {
  return s.empty() ? json::value(nullptr) : json::value(s);
}

json::value json_or_null(const std::string& text) {
  if (text.empty())
    return nullptr;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}

json::object artifact_json(const artifact_record& a) {
  json::object o;
  o["id"] = a.id;
  o["run_id"] = a.run_id;
  o["step"] = a.step;
  o["step_state_id"] = a.step_state_id;
  o["name"] = a.name;
  o["relative_path"] = a.relative_path;
  o["size_bytes"] = a.size_bytes;
  o["sha256"] = a.sha256;
  o["content_type"] = a.content_type;
  o["created_at"] = time_or_null(a.created_at_us);
  return o;
}

json::object audit_json(const credential_audit& a) {
  json::object o;
  o["id"] = a.id;
  o["run_id"] = a.run_id;
  o["step"] = a.step;
  o["attempt"] = a.attempt;
  o["credential"] = a.credential;
  o["kind"] = a.kind;
  o["present"] = a.present;
  o["valid"] = a.valid;
  o["checked_at"] = time_or_null(a.checked_at_us);
  o["detail"] = a.detail;
  return o;
}

/// A run id from the path, or a 404 response.
bool run_id_ok(const std::string& id, responder& respond) {
  if (is_uuid(id))
    return true;
  respond(error_response(errc::not_found, "no workflow run with id " + id));
  return false;
}

/// The Idempotency-Key header: absent, or 1..200 visible ASCII characters.
std::string idempotency_key(const request& req) {
  auto i = req.find("Idempotency-Key");
  if (i == req.end())
    return {};
  std::string key{i->value()};
  if (key.empty() || key.size() > 200
      || !std::all_of(key.begin(), key.end(),
                      [](char c) { return c > 0x20 && c < 0x7f; }))
    throw body_error{"the Idempotency-Key header must be 1 to 200 visible "
                     "ASCII characters"};
  return key;
}

/// The run's input: the body as a JSON object (empty = {}).
std::string run_input(const request& req) {
  const auto& body = req.body();
  if (std::all_of(body.begin(), body.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
      }))
    return "{}";
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec)
    throw body_error{"the request body is not valid JSON: " + ec.message()};
  if (!v.is_object())
    throw body_error{"the request body (the run's input) must be a JSON "
                     "object"};
  return json::serialize(v);
}

/// The retry's body: {"note": "..."} or empty.
std::string retry_note(const request& req) {
  std::string note;
  if (req.body().empty())
    return note;
  read_body_object(req, [&](json_fields& f, const std::string& key,
                            simdjson::ondemand::value v) {
    if (key != "note")
      throw body_error{"unknown field " + key + " (accepted: note)"};
    note = f.text(v, key);
    if (note.size() > 4000)
      throw body_error{"note: at most 4000 characters"};
  });
  return note;
}

bool valid_name(const std::string& s) {
  return !s.empty() && s.size() <= 64
         && std::all_of(s.begin(), s.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '_' || c == '-';
            });
}

} // namespace

json::object workflow_run_json(const run_record& r) {
  json::object o;
  o["id"] = r.id;
  o["workflow"] = r.workflow;
  o["status"] = r.status;
  o["idempotency_key"] = text_or_null_(r.idempotency_key);
  o["branch_name"] = text_or_null_(r.branch_name);
  o["input"] = json_or_empty_object(r.input_json);
  json::array steps;
  for (const auto& s : r.steps)
    steps.emplace_back(s);
  o["step_names"] = std::move(steps);
  o["current_step_index"] = r.current_step_index;
  o["current_step"] = r.current_step_index >= 0
                          && r.current_step_index
                               < static_cast<int32_t>(r.steps.size())
                        ? json::value(r.steps[r.current_step_index])
                        : json::value(nullptr);
  o["attempt"] = r.attempt;
  o["error"] = text_or_null_(r.error);
  o["error_kind"] = text_or_null_(r.error_kind);
  json::array missing;
  for (const auto& m : r.missing_credentials)
    missing.emplace_back(m);
  o["missing_credentials"] = std::move(missing);
  o["note"] = text_or_null_(r.note);
  o["output"] = json_or_null(r.output_json);
  o["created_at"] = time_or_null(r.created_at_us);
  o["started_at"] = time_or_null(r.started_at_us);
  o["updated_at"] = time_or_null(r.updated_at_us);
  o["finished_at"] = time_or_null(r.finished_at_us);
  return o;
}

json::object workflow_step_json(const step_record& s) {
  json::object o;
  o["id"] = s.id;
  o["step"] = s.step;
  o["step_index"] = s.step_index;
  o["attempt"] = s.attempt;
  o["run_attempt"] = s.run_attempt;
  o["try"] = s.try_number;
  o["status"] = s.status;
  o["started_at"] = time_or_null(s.started_at_us);
  o["finished_at"] = time_or_null(s.finished_at_us);
  o["duration_ms"] = s.finished_at_us == 0 ? json::value(nullptr)
                                           : json::value(s.duration_ms);
  o["exit_code"] = s.exit_code < 0 ? json::value(nullptr)
                                   : json::value(s.exit_code);
  o["term_signal"] = s.term_signal == 0 ? json::value(nullptr)
                                        : json::value(s.term_signal);
  o["payload"] = json_or_null(s.payload_json);
  o["error"] = text_or_null_(s.error);
  o["error_kind"] = text_or_null_(s.error_kind);
  json::array artifacts;
  for (auto id : s.artifact_ids)
    artifacts.emplace_back(id);
  o["artifact_ids"] = std::move(artifacts);
  o["task_id"] = s.task_id == 0 ? json::value(nullptr)
                                : json::value(s.task_id);
  return o;
}

void add_workflow_routes(router& r, workflow_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("workflow routes need the actor system");
  auto shared = std::make_shared<const workflow_route_deps>(deps);

  r.add(verb::get, "/api/workflows",
        [shared](request_context&, responder respond) {
          auto& sys = *shared->sys;
          ask<std::string>(
            sys, workflows_of(sys), shared->timeout, list_definitions{},
            [respond](std::string& body) mutable {
              respond(json_response(status::ok, std::move(body)));
            },
            respond);
        });

  r.add(verb::post, "/api/workflows/{name}/runs",
        [shared](request_context& ctx, responder respond) {
          start_run req;
          req.workflow = ctx.params.at("name");
          if (!valid_name(req.workflow)) {
            respond(error_response(errc::not_found, "no workflow named \""
                                                      + req.workflow + "\""));
            return;
          }
          try {
            req.idempotency_key = idempotency_key(ctx.req);
            req.input_json = run_input(ctx.req);
          } catch (const body_error& e) {
            respond(error_response(errc::invalid_argument, e.what()));
            return;
          }
          auto& sys = *shared->sys;
          ask<create_run_result>(
            sys, workflows_of(sys), shared->timeout, std::move(req),
            [respond](create_run_result& r) mutable {
              auto body = workflow_run_json(r.run);
              body["created"] = r.created;
              respond(json_reply(r.created ? status::accepted : status::ok,
                                 body));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs",
        [shared](request_context& ctx, responder respond) {
          list_runs req;
          try {
            req.workflow = query_param(ctx.query, "workflow").value_or("");
            if (!req.workflow.empty() && !valid_name(req.workflow))
              throw body_error{"workflow: not a workflow name"};
            req.status = query_param(ctx.query, "status").value_or("");
            const auto& all = run_statuses();
            if (!req.status.empty()
                && std::find(all.begin(), all.end(), req.status) == all.end())
              throw body_error{"status: one of pending, running, succeeded, "
                               "failed, retrying, cancelled"};
            req.before_seq = query_integer(ctx.query, "cursor", 1,
                                           std::numeric_limits<int64_t>::max())
                               .value_or(0);
            req.limit = static_cast<int32_t>(
              query_integer(ctx.query, "limit", 1, 500).value_or(50));
          } catch (const body_error& e) {
            respond(error_response(errc::invalid_argument, e.what()));
            return;
          }
          ask_storage<run_page>(
            *shared->sys, shared->timeout, std::move(req),
            [respond](run_page& page) mutable {
              json::array runs;
              for (const auto& run : page.runs)
                runs.push_back(workflow_run_json(run));
              json::object body;
              body["runs"] = std::move(runs);
              body["next_cursor"]
                = page.next_before_seq == 0
                    ? json::value(nullptr)
                    : json::value(std::to_string(page.next_before_seq));
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs/{id}",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          ask_storage<run_detail>(
            *shared->sys, shared->timeout, get_run{id},
            [respond](run_detail& d) mutable {
              auto body = workflow_run_json(d.run);
              json::array steps;
              for (const auto& s : d.steps)
                steps.push_back(workflow_step_json(s));
              body["steps"] = std::move(steps);
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs/{id}/tasks",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          ask_storage<run_detail>(
            *shared->sys, shared->timeout, get_run{id},
            [respond](run_detail& d) mutable {
              json::array steps;
              for (const auto& s : d.steps)
                steps.push_back(workflow_step_json(s));
              json::object body;
              body["run_id"] = d.run.id;
              body["tasks"] = std::move(steps);
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs/{id}/artifacts",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          ask_storage<std::vector<artifact_record>>(
            *shared->sys, shared->timeout, list_artifacts{id},
            [respond, id](std::vector<artifact_record>& list) mutable {
              json::array items;
              for (const auto& a : list)
                items.push_back(artifact_json(a));
              json::object body;
              body["run_id"] = id;
              body["artifacts"] = std::move(items);
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs/{id}/artifacts/{artifact_id}",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          const auto& text = ctx.params.at("artifact_id");
          int64_t artifact_id = 0;
          if (text.empty() || text.size() > 18
              || !std::all_of(text.begin(), text.end(),
                              [](char c) { return c >= '0' && c <= '9'; })
              || (artifact_id = std::stoll(text)) <= 0) {
            respond(error_response(errc::not_found,
                                   "no artifact with id " + text));
            return;
          }
          ask_storage<artifact_record>(
            *shared->sys, shared->timeout, get_artifact{id, artifact_id},
            [shared, respond, id](artifact_record& a) mutable {
              auto path = resolve_artifact(shared->artifact_root, id,
                                           a.relative_path);
              if (!path) {
                respond(error_response(code_of(path.error()),
                                       message_of(path.error())));
                return;
              }
              std::ifstream in(*path, std::ios::binary);
              std::string content{std::istreambuf_iterator<char>(in), {}};
              if (!in.good() && !in.eof()) {
                respond(error_response(errc::not_found,
                                       "the artifact's file cannot be read"));
                return;
              }
              response res{status::ok, 11};
              res.set(boost::beast::http::field::content_type, a.content_type);
              auto file_name = a.name.substr(a.name.rfind('/') + 1);
              res.set(boost::beast::http::field::content_disposition,
                      "attachment; filename=\"" + file_name + "\"");
              res.set("X-Engram-SHA256", a.sha256);
              res.body() = std::move(content);
              respond(std::move(res));
            },
            respond);
        });

  r.add(verb::get, "/api/workflows/runs/{id}/audits",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          ask_storage<std::vector<credential_audit>>(
            *shared->sys, shared->timeout, list_audits{id},
            [respond, id](std::vector<credential_audit>& list) mutable {
              json::array items;
              for (const auto& a : list)
                items.push_back(audit_json(a));
              json::object body;
              body["run_id"] = id;
              body["audits"] = std::move(items);
              respond(json_reply(status::ok, body));
            },
            respond);
        });

  r.add(verb::post, "/api/workflows/runs/{id}/cancel",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          auto& sys = *shared->sys;
          ask<run_record>(
            sys, workflows_of(sys), shared->timeout, cancel_request{id},
            [respond](run_record& run) mutable {
              respond(json_reply(status::ok, workflow_run_json(run)));
            },
            respond);
        });

  r.add(verb::post, "/api/workflows/runs/{id}/retry",
        [shared](request_context& ctx, responder respond) {
          auto id = ctx.params.at("id");
          if (!run_id_ok(id, respond))
            return;
          retry_request req;
          req.run_id = id;
          try {
            req.note = retry_note(ctx.req);
          } catch (const body_error& e) {
            respond(error_response(errc::invalid_argument, e.what()));
            return;
          }
          auto& sys = *shared->sys;
          ask<run_record>(
            sys, workflows_of(sys), shared->timeout, std::move(req),
            [respond](run_record& run) mutable {
              respond(json_reply(status::accepted, workflow_run_json(run)));
            },
            respond);
        });
}

} // namespace engram::http
