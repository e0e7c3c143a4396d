#pragma once

// How error messages name a TOML value's type, the same for the daemon's
// configuration file (runtime/config.cpp) and the workflow definitions
// (actors/workflows/definition.cpp). Not in config.hpp, which does not
// include toml++.

#include <string_view>

#include <toml++/toml.h>

namespace engram {

/// "a table", "an integer", ...: `type` as in "expected a string, got an
/// integer".
inline std::string_view toml_type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "an unknown type";
}

} // namespace engram
