#pragma once

// Writing response bodies: the values every resource shows the same way.

#include <cstdint>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "runtime/clock.hpp"

namespace engram::http {

/// An epoch-microsecond time as RFC 3339 UTC, or null for 0 (none).
[[nodiscard]] inline boost::json::value time_or_null(int64_t us) {
  if (us == 0)
    return nullptr;
  return boost::json::value(format_utc(from_epoch_us(us)));
}

/// A string, or null when empty (none).
[[nodiscard]] inline boost::json::value text_or_null(const std::string& s) {
  if (s.empty())
    return nullptr;
  return boost::json::value(s);
}

/// Stored JSON text as a value; {} when it does not parse.
[[nodiscard]] inline boost::json::value
json_or_empty_object(const std::string& text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  return ec ? boost::json::value(boost::json::object{}) : v;
}

} // namespace engram::http
