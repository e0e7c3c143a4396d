#pragma once

// Internal helpers of the platform repositories (cleanup, conversation,
// schedule, platform): reading columns into plain values. Not an API.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/uuid.hpp"

#include <pqxx/field>

#include "runtime/clock.hpp"

namespace engram::storage::platform_detail {

using engram::is_uuid;

/// A NOT NULL column selected as `engram.to_us(col)`.
[[nodiscard]] inline wall_time time_of(const pqxx::field& f) {
  return from_epoch_us(f.as<int64_t>());
}

/// A nullable column selected as `engram.to_us(col)`.
[[nodiscard]] inline std::optional<wall_time>
optional_time_of(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return from_epoch_us(f.as<int64_t>());
}

[[nodiscard]] inline std::optional<std::string>
optional_string_of(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return f.as<std::string>();
}

template <class T>
[[nodiscard]] std::optional<T> optional_of(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return f.as<T>();
}

/// An optional time as an SQL parameter (epoch microseconds or NULL).
[[nodiscard]] inline std::optional<int64_t>
us_param(const std::optional<wall_time>& t) {
  if (!t)
    return std::nullopt;
  return to_epoch_us(*t);
}

/// LIMIT parameter: NULL (no limit) when `limit` <= 0.
[[nodiscard]] inline std::optional<int64_t> limit_param(int64_t limit) {
  if (limit <= 0)
    return std::nullopt;
  return limit;
}

} // namespace engram::storage::platform_detail
