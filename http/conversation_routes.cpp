#include "http/conversation_routes.hpp"

#include "http/task_routes.hpp"
#include "runtime/uuid.hpp"

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>
#include <stop_token>

#include <boost/json.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <date/date.h>

#include "actors/tasks/task_queue.hpp"
#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"
#include "messages/platform.hpp"
#include "runtime/llm_provider.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {

using shared_deps = std::shared_ptr<const conversation_route_deps>;
/// Inline extractions in flight (each holds a thread of its own).
using inline_slots = std::shared_ptr<std::atomic<size_t>>;
using simdjson::ondemand::json_type;

constexpr std::string_view extract_task = "memory.extract";

// -- rendering -------------------------------------------------------------------

json::value time_json(int64_t us) {
  if (us == 0)
    return nullptr;
  return json::string{date::format(
    "%FT%TZ", std::chrono::floor<std::chrono::microseconds>(from_epoch_us(us)))};
}


json::value json_or_null(const std::string& text) {
  if (text.empty())
    return nullptr;
  json::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? json::value(json::string{text}) : v;
}

json::object conversation_json(const platform::conversation_info& c) {
  return json::object{{"id", c.id},
                      {"project_id", text_or_null(c.project_id)},
                      {"agent_id", text_or_null(c.agent_id)},
                      {"user_id", text_or_null(c.user_id)},
                      {"title", c.title},
                      {"status", c.status},
                      {"created_at", time_json(c.created_at_us)},
                      {"updated_at", time_json(c.updated_at_us)},
                      {"last_message_at", time_json(c.last_message_at_us)}};
}

json::object message_json(const platform::message_info& m) {
  return json::object{
    {"id", m.id},
    {"conversation_id", m.conversation_id},
    {"role", m.role},
    {"content", m.content},
    {"token_count",
     m.token_count < 0 ? json::value(nullptr) : json::value(m.token_count)},
    {"created_at", time_json(m.created_at_us)}};
}

json::array messages_json(const std::vector<platform::message_info>& ms) {
  json::array result;
  result.reserve(ms.size());
  for (const auto& m : ms)
    result.emplace_back(message_json(m));
  return result;
}

json::object detail_json(const platform::conversation_detail& d) {
  auto result = conversation_json(d.conversation);
  result["messages"] = messages_json(d.messages);
  return result;
}


response json_ok(status code, const json::object& body) {
  return json_response(code, json::serialize(body));
}

// -- reading requests ----------------------------------------------------------------


/// A UUID in canonical form (lower-cased), or body_error naming `what`.
std::string uuid_of(const std::string& text, const std::string& what) {
  if (!is_uuid(text))
    throw body_error{what + " must be a UUID (8-4-4-4-12 hex digits), got '"
                     + text.substr(0, 64) + "'"};
  return ascii_lower(text);
}

/// The `{id}` of the path as a conversation id.
std::string conversation_id_of(const request_context& ctx) {
  return uuid_of(ctx.params.at("id"), "conversation id");
}

/// Whether `v` is JSON null (consumed then); throws for malformed tokens.
bool null_value(simdjson::ondemand::value& v, const std::string& name) {
  bool result = false;
  if (v.is_null().get(result))
    throw body_error{"malformed JSON at " + name};
  return result;
}

/// A string of at most `max_bytes` bytes.
std::string bounded_text(json_fields& fields, simdjson::ondemand::value v,
                         const std::string& key, size_t max_bytes) {
  auto result = fields.text(v, key);
  if (result.size() > max_bytes)
    throw body_error{fields.name(key) + " is longer than "
                     + std::to_string(max_bytes) + " bytes"};
  return result;
}

/// Refuses a field that appeared before in the same object.
void once(std::set<std::string>& seen, const json_fields& fields,
          const std::string& key) {
  if (!seen.insert(key).second)
    throw body_error{"field " + fields.name(key) + " appears twice"};
}

/// Reads one message object.
platform::new_message read_message(simdjson::ondemand::object obj,
                                   const std::string& prefix) {
  json_fields fields{obj, prefix};
  std::set<std::string> seen;
  platform::new_message result;
  bool has_role = false;
  bool has_content = false;
  fields.each([&](const std::string& key, simdjson::ondemand::value v) {
    once(seen, fields, key);
    if (key == "role") {
      result.role = fields.text(v, key);
      if (result.role != "system" && result.role != "user"
          && result.role != "assistant" && result.role != "tool")
        throw body_error{fields.name(key)
                         + " must be system, user, assistant or tool, got '"
                         + result.role.substr(0, 64) + "'"};
      has_role = true;
    } else if (key == "content") {
      result.content = bounded_text(fields, v, key, max_message_bytes);
      if (result.content.empty())
        throw body_error{fields.name(key) + " must not be empty"};
      has_content = true;
    } else if (key == "token_count") {
      if (!null_value(v, fields.name(key)))
        result.token_count = static_cast<int32_t>(
          fields.integer(v, key, 0, std::numeric_limits<int32_t>::max()));
    } else {
      throw body_error{"unknown field " + fields.name(key)
                       + " (accepted: role, content, token_count)"};
    }
  });
  if (!has_role)
    throw body_error{fields.name("role") + " is required"};
  if (!has_content)
    throw body_error{fields.name("content") + " is required"};
  if (result.token_count < 0)
    result.token_count = static_cast<int32_t>(std::min<int64_t>(
      count_tokens(result.content), std::numeric_limits<int32_t>::max()));
  return result;
}

/// Messages of an array value (1 to max_messages_per_request).
std::vector<platform::new_message> read_message_array(simdjson::ondemand::array arr,
                                                      const std::string& name) {
  std::vector<platform::new_message> result;
  for (auto element : arr) {
    auto prefix = name + "[" + std::to_string(result.size()) + "]";
    if (result.size() == max_messages_per_request)
      throw body_error{"at most " + std::to_string(max_messages_per_request)
                       + " messages per request"};
    simdjson::ondemand::object obj;
    if (element.get_object().get(obj))
      throw body_error{prefix + " must be an object"};
    result.push_back(read_message(obj, prefix + "."));
  }
  return result;
}

/// The parsed body of a request: `f(doc)` reads it, then nothing may follow.
template <class F>
void read_body(const request& req, F&& f) {
  auto body = padded_body(req);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(body).get(doc))
    throw body_error{"the request body is not valid JSON"};
  try {
    f(doc);
  } catch (const simdjson::simdjson_error& e) {
    throw body_error{std::string{"the request body is not valid JSON: "}
                     + e.what()};
  }
  const char* rest = nullptr;
  if (!doc.current_location().get(rest))
    throw body_error{"unexpected content after the JSON document"};
}

/// The root of `doc` as an object (body_error naming what was expected).
simdjson::ondemand::object root_object(simdjson::ondemand::document& doc,
                                       const char* expected) {
  json_type type;
  if (doc.type().get(type))
    throw body_error{"the request body is not valid JSON"};
  if (type != json_type::object)
    throw body_error{std::string{"the request body must be "} + expected};
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj))
    throw body_error{"the request body is not valid JSON"};
  return obj;
}

platform::create_conversation read_new_conversation(const request& req) {
  platform::create_conversation result;
  read_body(req, [&](simdjson::ondemand::document& doc) {
    json_fields fields{root_object(doc, "a conversation object")};
    std::set<std::string> seen;
    fields.each([&](const std::string& key, simdjson::ondemand::value v) {
      once(seen, fields, key);
      if (key == "project_id" || key == "agent_id") {
        if (!null_value(v, key))
          (key == "project_id" ? result.project_id : result.agent_id)
            = uuid_of(fields.text(v, key), key);
      } else if (key == "user_id") {
        if (!null_value(v, key)) {
          result.user_id = bounded_text(fields, v, key, max_user_id_bytes);
          if (result.user_id.empty())
            throw body_error{"user_id must not be empty (leave it out or "
                             "send null for none)"};
        }
      } else if (key == "title") {
        if (!null_value(v, key))
          result.title = bounded_text(fields, v, key, max_title_bytes);
      } else if (key == "messages") {
        simdjson::ondemand::array arr;
        if (v.get_array().get(arr))
          throw body_error{"messages must be an array of message objects"};
        result.messages = read_message_array(arr, "messages");
      } else {
        throw body_error{"unknown field " + fields.name(key)
                         + " (accepted: project_id, agent_id, user_id, "
                           "title, messages)"};
      }
    });
  });
  return result;
}

std::vector<platform::new_message> read_new_messages(const request& req) {
  std::vector<platform::new_message> result;
  read_body(req, [&](simdjson::ondemand::document& doc) {
    json_type type;
    if (doc.type().get(type))
      throw body_error{"the request body is not valid JSON"};
    if (type == json_type::object) {
      simdjson::ondemand::object obj;
      if (doc.get_object().get(obj))
        throw body_error{"the request body is not valid JSON"};
      result.push_back(read_message(obj, ""));
      return;
    }
    if (type != json_type::array)
      throw body_error{"the body must be a message object or an array of "
                       "message objects"};
    simdjson::ondemand::array arr;
    if (doc.get_array().get(arr))
      throw body_error{"the request body is not valid JSON"};
    result = read_message_array(arr, "messages");
    if (result.empty())
      throw body_error{"the array holds no messages"};
  });
  return result;
}

/// An extract request carries no options: no body, or an empty object.
void read_extract_body(const request& req) {
  if (req.body().empty())
    return;
  read_body(req, [&](simdjson::ondemand::document& doc) {
    json_fields fields{root_object(doc, "empty or an empty JSON object")};
    fields.each([&](const std::string& key, simdjson::ondemand::value) {
      throw body_error{"unknown field " + fields.name(key)
                       + " (extract takes no options)"};
    });
  });
}

int64_t now_us(const conversation_route_deps& deps) {
  return to_epoch_us(deps.services->time->now());
}

/// Runs `f`, answering 400 for what it refuses.
template <class F>
void guard(responder& respond, F&& f) {
  try {
    f();
  } catch (const body_error& e) {
    respond(error_response(errc::invalid_argument, e.what()));
  }
}

// -- extraction ----------------------------------------------------------------------

/// Whether an enqueue failed because the queue path is away (as opposed to
/// a refusal of the request): then the extraction runs inline.
bool queue_unavailable(const caf::error& err) {
  if (err.category() == caf::atom("system"))
    return true; // request timeout, dead storage pool
  switch (code_of(err)) {
    case errc::database_unavailable:
    case errc::timeout:
    case errc::shutting_down:
      return true;
    default:
      return false;
  }
}

/// Runs memory.extract for `conversation_id` on a blocking actor of its own
/// (never on an I/O thread) and answers with its result.
void run_inline(shared_deps deps, inline_slots slots, std::string conversation_id,
                std::string args_json, std::string reason, responder respond) {
  if (slots->fetch_add(1) >= max_inline_extractions) {
    slots->fetch_sub(1);
    respond(error_response(errc::unavailable,
                           "too many inline extractions in progress ("
                             + std::to_string(max_inline_extractions)
                             + "); try again shortly"));
    return;
  }
  deps->sys->spawn([deps, slots, conversation_id = std::move(conversation_id),
                    args_json = std::move(args_json), reason = std::move(reason),
                    respond = std::move(respond)](caf::blocking_actor* self) {
    // Frees the slot however this ends.
    struct slot_guard {
      inline_slots slots;
      ~slot_guard() {
        slots->fetch_sub(1);
      }
    } held{slots};
    auto storage = storage_of(*deps->sys);
    if (!storage) {
      respond(error_response(errc::shutting_down,
                             "the storage pool is not running"));
      return;
    }
    // A missing conversation is a 404, not a failed extraction.
    caf::error err;
    bool found = false;
    self->request(storage, deps->timeout, platform::get_conversation{conversation_id})
      .receive([&](platform::conversation_detail&) { found = true; },
               [&](caf::error& e) { err = std::move(e); });
    if (!found) {
      respond(error_response(code_of(err), message_of(err)));
      return;
    }
    tasks::claimed_task task;
    task.name = std::string{extract_task};
    task.queue = deps->registry->request_for(extract_task).queue;
    task.args_json = args_json;
    task.attempts = 1;
    task.max_retries = 0;
    auto result = run_attempt_now(task, *deps->registry, *deps->services,
                                  std::stop_token{});
    switch (result.status) {
      case tasks::attempt_status::succeeded:
        respond(json_ok(status::ok, json::object{{"mode", "inline"},
                                                 {"reason", reason},
                                                 {"result", json_or_null(
                                                              result.result_json)}}));
        return;
      case tasks::attempt_status::permanent:
        respond(error_response(status::unprocessable_entity, "extraction_failed",
                               result.error));
        return;
      default:
        respond(error_response(status::service_unavailable, "extraction_failed",
                               result.error + " (try again later)"));
        return;
    }
  });
}

void extract(const shared_deps& deps, const inline_slots& slots,
             request_context& ctx, responder respond) {
  auto conversation_id = conversation_id_of(ctx);
  read_extract_body(ctx.req);
  if (deps->registry->find(extract_task) == nullptr) {
    respond(error_response(errc::unspecified,
                           "memory.extract is not registered in this daemon"));
    return;
  }
  auto args = json::serialize(json::object{{"conversation_id", conversation_id}});
  if (!deps->background_enabled) {
    run_inline(deps, slots, conversation_id, args, "background.enabled is off",
               std::move(respond));
    return;
  }
  platform::request_extraction req;
  req.conversation_id = conversation_id;
  req.task = deps->registry->request_for(extract_task, args);
  req.now_us = now_us(*deps);
  auto storage = storage_of(*deps->sys);
  if (!storage) {
    run_inline(deps, slots, conversation_id, args,
               "the task queue is unavailable: the storage pool is not running",
               std::move(respond));
    return;
  }
  deps->sys->spawn([deps, slots, storage, req = std::move(req), args,
                    respond = std::move(respond)](caf::event_based_actor* self) {
    self->request(storage, deps->timeout, req)
      .then(
        [respond](tasks::task_info& task) mutable {
          respond(json_ok(status::accepted,
                          json::object{{"mode", "queued"},
                                       {"task", task_json(task)}}));
        },
        [deps, slots, req, args, respond](caf::error& err) mutable {
          if (queue_unavailable(err))
            run_inline(deps, slots, req.conversation_id, args,
                       "the task queue is unavailable: " + describe(err),
                       std::move(respond));
          else
            respond(error_response(code_of(err), message_of(err)));
        });
  });
}

} // namespace

void add_conversation_routes(router& r, conversation_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("conversation routes need an actor system");
  if (deps.registry == nullptr)
    throw std::logic_error("conversation routes need the task registry");
  if (deps.services == nullptr || deps.services->time == nullptr)
    throw std::logic_error("conversation routes need the task services");
  auto shared = std::make_shared<const conversation_route_deps>(deps);
  auto slots = std::make_shared<std::atomic<size_t>>(0);

  r.add(verb::post, "/api/conversations",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            auto req = read_new_conversation(ctx.req);
            req.now_us = now_us(*shared);
            ask_storage<platform::conversation_detail>(
              *shared->sys, shared->timeout, std::move(req),
              [respond](platform::conversation_detail& d) mutable {
                respond(json_ok(status::created, detail_json(d)));
              },
              respond);
          });
        });

  r.add(verb::get, "/api/conversations/{id}",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            ask_storage<platform::conversation_detail>(
              *shared->sys, shared->timeout,
              platform::get_conversation{conversation_id_of(ctx)},
              [respond](platform::conversation_detail& d) mutable {
                respond(json_ok(status::ok, detail_json(d)));
              },
              respond);
          });
        });

  r.add(verb::post, "/api/conversations/{id}/messages",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            platform::add_messages req;
            req.conversation_id = conversation_id_of(ctx);
            req.messages = read_new_messages(ctx.req);
            req.now_us = now_us(*shared);
            auto id = req.conversation_id;
            ask_storage<std::vector<platform::message_info>>(
              *shared->sys, shared->timeout, std::move(req),
              [respond, id](std::vector<platform::message_info>& ms) mutable {
                respond(json_ok(status::created,
                                json::object{{"conversation_id", id},
                                             {"messages", messages_json(ms)}}));
              },
              respond);
          });
        });

  r.add(verb::post, "/api/conversations/{id}/extract",
        [shared, slots](request_context& ctx, responder respond) {
          guard(respond, [&] { extract(shared, slots, ctx, respond); });
        });
}

} // namespace engram::http
