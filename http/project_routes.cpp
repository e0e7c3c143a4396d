#include "http/project_routes.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>

#include <boost/json.hpp>

#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_values.hpp"
#include "runtime/uuid.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {

using shared_deps = std::shared_ptr<const project_route_deps>;
using simdjson::ondemand::json_type;



/// The `{id}` of the path as a project id (lower-case), or body_error.
std::string project_id_of(const request_context& ctx) {
  auto id = ctx.params.at("id");
  if (!is_uuid(id))
    throw body_error{"project id must be a UUID (8-4-4-4-12 hex digits), got '"
                     + id.substr(0, 64) + "'"};
  for (auto& c : id)
    if (c >= 'A' && c <= 'F')
      c = static_cast<char>(c - 'A' + 'a');
  return id;
}

// -- consolidation_config --------------------------------------------------------

enum class config_kind {
  /// A number in (0, 1].
  fraction,
  /// An integer >= 2.
  support,
  /// A number > 0.
  days,
  /// An integer >= 0.
  count,
  /// An integer 1-10.
  importance,
};

struct config_key {
  const char* name;
  config_kind kind;
};

constexpr config_key config_keys[] = {
  {"pattern_threshold", config_kind::fraction},
  {"merge_threshold", config_kind::fraction},
  {"summarize_threshold", config_kind::fraction},
  {"principle_threshold", config_kind::fraction},
  {"playbook_threshold", config_kind::fraction},
  {"pattern_min_support", config_kind::support},
  {"principle_min_support", config_kind::support},
  {"summarize_min_age_days", config_kind::days},
  {"demote_after_days", config_kind::days},
  {"summarize_max_access_count", config_kind::count},
  {"demote_importance_floor", config_kind::importance},
};

std::string accepted_config_keys() {
  std::string result;
  for (const auto& k : config_keys) {
    if (!result.empty())
      result += ", ";
    result += k.name;
  }
  return result;
}

/// A JSON number (integer or not) as a double, or body_error.
double number(json_fields& fields, simdjson::ondemand::value v,
              const std::string& key, const char* expected) {
  double result = 0;
  json_type type;
  if (v.type().get(type) || type != json_type::number
      || v.get_double().get(result) || !std::isfinite(result))
    throw body_error{fields.name(key) + " must be " + expected};
  return result;
}

/// A JSON integer at least `min` (and at most `max`), or body_error.
int64_t whole(json_fields& fields, simdjson::ondemand::value v,
              const std::string& key, int64_t min, int64_t max,
              const char* expected) {
  json_type type;
  int64_t result = 0;
  if (v.type().get(type) || type != json_type::number
      || v.get_int64().get(result) || result < min || result > max)
    throw body_error{fields.name(key) + " must be " + expected};
  return result;
}

/// Reads and checks the config object; returns it as stored (the accepted
/// keys with their values, in the order given).
json::object read_config(simdjson::ondemand::value v) {
  simdjson::ondemand::object obj;
  json_type type;
  if (v.type().get(type) || type != json_type::object
      || v.get_object().get(obj))
    throw body_error{"consolidation_config must be a JSON object"};
  json_fields fields{obj, "consolidation_config."};
  json::object result;
  std::set<std::string> seen;
  constexpr auto int_max = std::numeric_limits<int32_t>::max();
  fields.each([&](const std::string& key, simdjson::ondemand::value value) {
    if (!seen.insert(key).second)
      throw body_error{"field " + fields.name(key) + " appears twice"};
    const config_key* known = nullptr;
    for (const auto& k : config_keys)
      if (key == k.name)
        known = &k;
    if (known == nullptr)
      throw body_error{"unknown field " + fields.name(key) + " (accepted: "
                       + accepted_config_keys() + ")"};
    switch (known->kind) {
      case config_kind::fraction: {
        auto x = number(fields, value, key, "a number in (0, 1]");
        if (!(x > 0 && x <= 1))
          throw body_error{fields.name(key) + " must be a number in (0, 1]"};
        result[key] = x;
        break;
      }
      case config_kind::support:
        result[key] = whole(fields, value, key, 2, int_max,
                            "an integer of at least 2");
        break;
      case config_kind::days: {
        auto x = number(fields, value, key, "a number greater than 0");
        if (!(x > 0) || x > 36500)
          throw body_error{fields.name(key)
                           + " must be a number greater than 0 (at most "
                             "36500)"};
        result[key] = x;
        break;
      }
      case config_kind::count:
        result[key] = whole(fields, value, key, 0, int_max,
                            "an integer of at least 0");
        break;
      case config_kind::importance:
        result[key] = whole(fields, value, key, 1, 10,
                            "an integer between 1 and 10");
        break;
    }
  });
  return result;
}

// -- the body ---------------------------------------------------------------------

memories::put_project_request read_put(const request& req) {
  auto body = padded_body(req);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(body).get(doc))
    throw body_error{"the request body is not valid JSON"};
  memories::put_project_request result;
  bool has_name = false;
  try {
    json_type type;
    if (doc.type().get(type))
      throw body_error{"the request body is not valid JSON"};
    if (type != json_type::object)
      throw body_error{"the request body must be a project object"};
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj))
      throw body_error{"the request body is not valid JSON"};
    json_fields fields{obj};
    std::set<std::string> seen;
    fields.each([&](const std::string& key, simdjson::ondemand::value v) {
      if (!seen.insert(key).second)
        throw body_error{"field " + key + " appears twice"};
      if (key == "name") {
        result.name = fields.text(v, key);
        if (result.name.empty())
          throw body_error{"name must not be empty"};
        if (result.name.size() > 1000)
          throw body_error{"name is longer than 1000 bytes"};
        has_name = true;
      } else if (key == "consolidation_enabled") {
        result.consolidation_enabled = fields.boolean(v, key);
      } else if (key == "consolidation_config") {
        result.consolidation_config_json = json::serialize(read_config(v));
      } else {
        throw body_error{"unknown field " + key
                         + " (accepted: name, consolidation_enabled, "
                           "consolidation_config)"};
      }
    });
  } catch (const simdjson::simdjson_error& e) {
    throw body_error{std::string{"the request body is not valid JSON: "}
                     + e.what()};
  }
  const char* rest = nullptr;
  if (!doc.current_location().get(rest))
    throw body_error{"unexpected content after the JSON document"};
  if (!has_name)
    throw body_error{"name is required"};
  return result;
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

} // namespace

json::object project_json(const memories::project_record& p) {
  json::object o;
  o["id"] = p.id;
  o["name"] = p.name;
  o["consolidation_enabled"] = p.consolidation_enabled;
  o["consolidation_config"] = json_or_empty_object(p.consolidation_config_json);
  o["created_at"] = time_or_null(p.created_at_us);
  o["updated_at"] = time_or_null(p.updated_at_us);
  return o;
}

void add_project_routes(router& r, project_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("project routes need an actor system");
  if (deps.time == nullptr)
    throw std::logic_error("project routes need a clock");
  auto shared = std::make_shared<const project_route_deps>(deps);

  r.add(verb::put, "/api/projects/{id}",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            auto id = project_id_of(ctx);
            auto req = read_put(ctx.req);
            req.id = id;
            req.now_us = to_epoch_us(shared->time->now());
            ask_storage<memories::put_project_result>(
              *shared->sys, shared->timeout, std::move(req),
              [respond](memories::put_project_result& put) mutable {
                respond(json_response(put.created ? status::created
                                                  : status::ok,
                                      json::serialize(project_json(put.project))));
              },
              respond);
          });
        });

  r.add(verb::get, "/api/projects/{id}",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            ask_storage<memories::project_record>(
              *shared->sys, shared->timeout,
              memories::get_project_request{project_id_of(ctx)},
              [respond](memories::project_record& p) mutable {
                respond(json_response(status::ok,
                                      json::serialize(project_json(p))));
              },
              respond);
          });
        });
}

} // namespace engram::http
