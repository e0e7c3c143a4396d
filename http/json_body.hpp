#pragma once

// Reading request bodies and query strings. Bodies are parsed with
// simdjson's On-Demand API; every problem is reported as a `body_error`
// that names the field, so handlers answer 400 with it.

#include <cstdint>
#include <optional>
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
