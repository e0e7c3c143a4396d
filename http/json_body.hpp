#pragma once

// Reading request bodies and query strings. Bodies are parsed with
// simdjson's On-Demand API; every problem is reported as a `body_error`
// that names the field, so handlers answer 400 with it.

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "http/handler.hpp"

namespace engram::http {

/// A request body or parameter that is not what the endpoint accepts.
class body_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The body as a padded string simdjson can parse in place (throws
/// body_error for an empty body).
[[nodiscard]] simdjson::padded_string padded_body(const request& req);

/// Typed access to one JSON object of a request body; errors name the field
/// by its path (e.g. "tasks[3].priority").
class json_fields {
public:
  /// `prefix` is prepended to field names in errors ("" or "tasks[3].").
  json_fields(simdjson::ondemand::object obj, std::string prefix = {});

  /// Visits every field once, in document order. Fields the endpoint does
  /// not know are refused (typos must not pass silently).
  template <class F>
  void each(F&& f) {
    for (auto field : obj_) {
      std::string_view key;
      if (field.unescaped_key().get(key))
        throw body_error{"malformed JSON in the request body"};
      f(std::string{key}, field.value());
    }
  }

  [[nodiscard]] std::string name(std::string_view key) const {
    return prefix_ + std::string{key};
  }

  [[nodiscard]] std::string text(simdjson::ondemand::value v,
                                 std::string_view key) const;
  [[nodiscard]] int64_t integer(simdjson::ondemand::value v,
                                std::string_view key, int64_t min,
                                int64_t max) const;
  [[nodiscard]] bool boolean(simdjson::ondemand::value v,
                             std::string_view key) const;
  /// The value's JSON text as given (an object when `object_only`).
  [[nodiscard]] std::string raw(simdjson::ondemand::value v,
                                std::string_view key, bool object_only) const;

private:
  simdjson::ondemand::object obj_;
  std::string prefix_;
};

/// Whether `v` is JSON null.
[[nodiscard]] inline bool is_null(simdjson::ondemand::value& v) {
  simdjson::ondemand::json_type type;
  return !v.type().get(type) && type == simdjson::ondemand::json_type::null;
}

/// Parses the body as one JSON object and calls `f(fields, key, value)` for
/// each field in order, refusing a field given twice (throws body_error).
template <class F>
void read_body_object(const request& req, F&& f) {
  auto body = padded_body(req);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(body).get(doc))
    throw body_error{"the request body is not valid JSON"};
  simdjson::ondemand::json_type type;
  if (doc.type().get(type))
    throw body_error{"the request body is not valid JSON"};
  if (type != simdjson::ondemand::json_type::object)
    throw body_error{"the request body must be a JSON object"};
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj))
    throw body_error{"the request body is not valid JSON"};
  json_fields fields{obj};
  std::set<std::string> seen;
  fields.each([&](const std::string& key, simdjson::ondemand::value v) {
    if (!seen.insert(key).second)
      throw body_error{"field " + key + " is given more than once"};
    f(fields, key, v);
  });
}

/// One decoded query parameter, if present.
[[nodiscard]] std::optional<std::string>
query_param(std::string_view query, std::string_view name);

/// A query parameter as an integer within [min, max] (throws body_error).
[[nodiscard]] std::optional<int64_t> query_integer(std::string_view query,
                                                   std::string_view name,
                                                   int64_t min, int64_t max);

/// The JSON text of `s` as a string literal (quoted and escaped).
[[nodiscard]] std::string json_quote(std::string_view s);

} // namespace engram::http
