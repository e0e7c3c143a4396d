#include "http/task_routes.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>

#include "actors/scheduler/cron.hpp"
#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {

using shared_deps = std::shared_ptr<const task_route_deps>;



json::value json_or_null(const std::string& text) {
  if (text.empty())
    return nullptr;
  json::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? json::value(json::string(text)) : v;
}

/// Reads one task object of a POST body into a request (throws body_error).
tasks::enqueue_request read_task(simdjson::ondemand::object obj,
                                 const std::string& prefix,
                                 const task_route_deps& deps, wall_time now) {
  json_fields fields{obj, prefix};
  std::optional<std::string> name;
  std::optional<std::string> args;
  std::optional<std::string> queue;
  std::optional<int64_t> priority;
  std::optional<int64_t> max_retries;
  std::optional<int64_t> countdown_ms;
  std::optional<int64_t> run_at_us;
  std::optional<int64_t> soft_ms;
  std::optional<int64_t> hard_ms;
  std::string unique_key;
  fields.each([&](const std::string& key, simdjson::ondemand::value v) {
    if (key == "name")
      name = fields.text(v, key);
    else if (key == "args")
      args = fields.raw(v, key, true);
    else if (key == "queue")
      queue = fields.text(v, key);
    else if (key == "priority")
      priority = fields.integer(v, key, -1000000, 1000000);
    else if (key == "max_retries")
      max_retries = fields.integer(v, key, 0, 1000);
    else if (key == "countdown")
      // Seconds, like Celery's countdown.
      countdown_ms = fields.integer(v, key, 0, 10LL * 365 * 86400) * 1000;
    else if (key == "run_at") {
      auto text = fields.text(v, key);
      auto t = cron::parse_rfc3339(text);
      if (!t)
        throw body_error{fields.name(key)
                         + " must be an RFC 3339 date-time, e.g. "
                           "2024-03-10T08:00:00Z"};
      run_at_us = to_epoch_us(wall_time{*t});
    } else if (key == "unique_key")
      unique_key = fields.text(v, key);
    else if (key == "soft_time_limit_ms")
      soft_ms = fields.integer(v, key, 0, 7LL * 86400 * 1000);
    else if (key == "time_limit_ms")
      hard_ms = fields.integer(v, key, 0, 7LL * 86400 * 1000);
    else
      throw body_error{"unknown field " + fields.name(key)
                       + " (accepted: name, args, queue, priority, "
                         "max_retries, countdown, run_at, unique_key, "
                         "soft_time_limit_ms, time_limit_ms)"};
  });
  if (!name || name->empty())
    throw body_error{fields.name("name") + " is required"};
  if (countdown_ms && run_at_us)
    throw body_error{"give either " + fields.name("run_at") + " or "
                     + fields.name("countdown") + ", not both"};
  auto req = deps.registry->request_for(*name, args.value_or("{}"));
  if (queue) {
    if (queue->empty() || queue->size() > 63)
      throw body_error{fields.name("queue") + " must be 1 to 63 characters"};
    req.queue = *queue;
  }
  if (unique_key.size() > 512)
    throw body_error{fields.name("unique_key") + " is longer than 512 bytes"};
  req.unique_key = std::move(unique_key);
  if (priority)
    req.priority = static_cast<int32_t>(*priority);
  if (max_retries)
    req.max_retries = static_cast<int32_t>(*max_retries);
  if (soft_ms)
    req.soft_time_limit_ms = *soft_ms;
  if (hard_ms)
    req.time_limit_ms = *hard_ms;
  if (countdown_ms)
    req.run_at_us = to_epoch_us(now) + *countdown_ms * 1000;
  if (run_at_us)
    req.run_at_us = *run_at_us;
  if (auto problem = deps.registry->check(req))
    throw body_error{prefix.empty() ? *problem : prefix + " " + *problem};
  return req;
}

/// The tasks of a POST body and whether it was an array.
std::pair<std::vector<tasks::enqueue_request>, bool>
read_tasks(const request& req, const task_route_deps& deps, wall_time now) {
  auto body = padded_body(req);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(body).get(doc))
    throw body_error{"the request body is not valid JSON"};
  simdjson::ondemand::json_type type;
  if (doc.type().get(type))
    throw body_error{"the request body is not valid JSON"};
  std::vector<tasks::enqueue_request> result;
  if (type == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj))
      throw body_error{"the request body is not valid JSON"};
    result.push_back(read_task(obj, "", deps, now));
    return {std::move(result), false};
  }
  if (type != simdjson::ondemand::json_type::array)
    throw body_error{"the body must be a task object or an array of tasks"};
  simdjson::ondemand::array arr;
  if (doc.get_array().get(arr))
    throw body_error{"the request body is not valid JSON"};
  size_t i = 0;
  for (auto element : arr) {
    if (i == max_task_batch)
      throw body_error{"at most " + std::to_string(max_task_batch)
                       + " tasks per request"};
    simdjson::ondemand::object obj;
    if (element.get_object().get(obj))
      throw body_error{"tasks[" + std::to_string(i) + "] must be an object"};
    result.push_back(
      read_task(obj, "tasks[" + std::to_string(i) + "].", deps, now));
    ++i;
  }
  if (result.empty())
    throw body_error{"the array holds no tasks"};
  return {std::move(result), true};
}

/// The {id} path parameter as a task id.
int64_t task_id(const request_context& ctx) {
  const auto& text = ctx.params.at("id");
  int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size() || id <= 0)
    throw body_error{"task id must be a positive integer, got '" + text + "'"};
  return id;
}

response bad_request(const std::exception& e) {
  return error_response(errc::invalid_argument, e.what());
}

/// The {id} path parameter, or 0 after answering 400.
int64_t task_id_or_answer(const request_context& ctx, responder& respond) {
  try {
    return task_id(ctx);
  } catch (const body_error& e) {
    respond(bad_request(e));
    return 0;
  }
}

constexpr std::string_view statuses[] = {"queued", "running", "succeeded",
                                         "failed", "dead", "cancelled"};

} // namespace

json::object task_json(const tasks::task_info& t) {
  json::object o;
  o["id"] = t.id;
  o["name"] = t.name;
  o["queue"] = t.queue;
  o["status"] = t.status;
  o["args"] = json_or_null(t.args_json);
  o["priority"] = t.priority;
  o["attempts"] = t.attempts;
  o["max_retries"] = t.max_retries;
  o["unique_key"] = text_or_null(t.unique_key);
  o["soft_time_limit_ms"] = t.soft_time_limit_ms;
  o["time_limit_ms"] = t.time_limit_ms;
  o["cancel_requested"] = t.cancel_requested;
  o["locked_by"] = text_or_null(t.locked_by);
  o["run_at"] = time_or_null(t.run_at_us);
  o["lease_until"] = time_or_null(t.lease_until_us);
  o["created_at"] = time_or_null(t.created_at_us);
  o["started_at"] = time_or_null(t.started_at_us);
  o["finished_at"] = time_or_null(t.finished_at_us);
  o["result"] = json_or_null(t.result_json);
  o["last_error"] = text_or_null(t.last_error);
  o["errors"] = json_or_null(t.errors_json);
  return o;
}

void add_task_routes(router& r, task_route_deps deps) {
  if (deps.sys == nullptr || deps.registry == nullptr)
    throw std::logic_error("task routes need the actor system and registry");
  auto shared = std::make_shared<const task_route_deps>(std::move(deps));

  r.add(verb::post, "/api/tasks", [shared](request_context& ctx,
                                           responder respond) {
    auto now = shared->time->now();
    std::vector<tasks::enqueue_request> reqs;
    bool batch = false;
    try {
      std::tie(reqs, batch) = read_tasks(ctx.req, *shared, now);
    } catch (const body_error& e) {
      respond(bad_request(e));
      return;
    }
    auto names = std::make_shared<std::vector<tasks::enqueue_request>>(reqs);
    ask_storage<std::vector<tasks::enqueue_result>>(
      *shared->sys, shared->timeout,
      tasks::enqueue_tasks{std::move(reqs), to_epoch_us(now)},
      [respond, names, batch](std::vector<tasks::enqueue_result>& results) {
        json::array out;
        for (size_t i = 0; i < results.size(); ++i) {
          const auto& req = (*names)[i];
          json::object t;
          t["id"] = results[i].id;
          t["name"] = req.name;
          t["queue"] = req.queue;
          t["created"] = results[i].created;
          if (results[i].created)
            t["status"] = "queued";
          out.push_back(std::move(t));
        }
        json::object body;
        if (batch) {
          body["count"] = out.size();
          body["tasks"] = std::move(out);
        } else {
          body["task"] = std::move(out[0]);
        }
        respond(json_response(status::accepted, json::serialize(body)));
      },
      respond);
  });

  r.add(verb::get, "/api/tasks/{id}", [shared](request_context& ctx,
                                               responder respond) {
    auto id = task_id_or_answer(ctx, respond);
    if (id == 0)
      return;
    ask_storage<tasks::task_info>(
      *shared->sys, shared->timeout, tasks::get_task{id},
      [respond](tasks::task_info& t) {
        respond(json_response(status::ok, json::serialize(task_json(t))));
      },
      respond);
  });

  r.add(verb::get, "/api/tasks", [shared](request_context& ctx,
                                          responder respond) {
    tasks::list_tasks filter;
    try {
      filter.status = query_param(ctx.query, "status").value_or("");
      if (!filter.status.empty()
          && std::find(std::begin(statuses), std::end(statuses), filter.status)
               == std::end(statuses))
        throw body_error{"status must be one of queued, running, succeeded, "
                         "failed, dead, cancelled"};
      filter.name = query_param(ctx.query, "name").value_or("");
      filter.queue = query_param(ctx.query, "queue").value_or("");
      filter.before_id
        = query_integer(ctx.query, "cursor", 1, INT64_MAX).value_or(0);
      filter.limit = query_integer(ctx.query, "limit", 1, 1000).value_or(50);
    } catch (const body_error& e) {
      respond(bad_request(e));
      return;
    }
    ask_storage<tasks::task_page>(
      *shared->sys, shared->timeout, std::move(filter),
      [respond](tasks::task_page& page) {
        json::array items;
        for (const auto& t : page.tasks)
          items.push_back(task_json(t));
        json::object body;
        body["tasks"] = std::move(items);
        body["next_cursor"] = text_or_null(
          page.next_before_id == 0 ? std::string{}
                                   : std::to_string(page.next_before_id));
        respond(json_response(status::ok, json::serialize(body)));
      },
      respond);
  });

  r.add(verb::post, "/api/tasks/{id}/cancel", [shared](request_context& ctx,
                                                       responder respond) {
    auto id = task_id_or_answer(ctx, respond);
    if (id == 0)
      return;
    ask_storage<std::string>(
      *shared->sys, shared->timeout,
      tasks::cancel_task{id, to_epoch_us(shared->time->now())},
      [respond, id](std::string& result) {
        if (result != "cancelled" && result != "cancelling") {
          respond(error_response(errc::conflict,
                                 "task " + std::to_string(id) + " is "
                                   + result + " and cannot be cancelled"));
          return;
        }
        json::object body{{"id", id}, {"status", result}};
        respond(json_response(status::ok, json::serialize(body)));
      },
      respond);
  });

  r.add(verb::post, "/api/tasks/{id}/retry", [shared](request_context& ctx,
                                                      responder respond) {
    auto id = task_id_or_answer(ctx, respond);
    if (id == 0)
      return;
    ask_storage<std::string>(
      *shared->sys, shared->timeout,
      tasks::retry_task{id, to_epoch_us(shared->time->now())},
      [respond, id](std::string& result) {
        json::object body{{"id", id}, {"status", result}};
        respond(json_response(status::ok, json::serialize(body)));
      },
      respond);
  });
}

} // namespace engram::http
