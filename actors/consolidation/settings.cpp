#include "actors/consolidation/settings.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "messages/errc.hpp"

namespace engram::consolidation {

namespace json = boost::json;

namespace {

/// Shortest text that reads back as `x` ("0.8", "7", "0.92").
std::string number_text(double x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  if (ec != std::errc{})
    return std::to_string(x);
  return std::string{buf, end};
}

std::string value_text(const json::value& v) {
  if (v.is_double())
    return number_text(v.get_double());
  return json::serialize(v);
}

caf::error invalid(std::string_view key, std::string_view what,
                   const json::value& got) {
  return make_error(errc::invalid_argument,
                    "consolidation_config." + std::string{key} + " must be "
                      + std::string{what} + ", got " + value_text(got));
}

/// `v` as a finite double, if it is a number.
std::optional<double> number_of(const json::value& v) {
  double x = 0;
  if (v.is_int64())
    x = static_cast<double>(v.get_int64());
  else if (v.is_uint64())
    x = static_cast<double>(v.get_uint64());
  else if (v.is_double())
    x = v.get_double();
  else
    return std::nullopt;
  if (!std::isfinite(x))
    return std::nullopt;
  return x;
}

/// `v` as an integer, if it is an integral number (3 and 3.0, not 3.5).
std::optional<int64_t> integer_of(const json::value& v) {
  if (v.is_int64())
    return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > uint64_t{std::numeric_limits<int64_t>::max()})
      return std::nullopt;
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    auto x = v.get_double();
    // 2^62 keeps the conversion exact and in range.
    if (!std::isfinite(x) || x != std::trunc(x) || std::fabs(x) > 0x1p62)
      return std::nullopt;
    return static_cast<int64_t>(x);
  }
  return std::nullopt;
}

caf::error read_threshold(std::string_view key, const json::value& v,
                          double& out) {
  auto x = number_of(v);
  if (!x || !(*x > 0.0) || *x > 1.0)
    return invalid(key, "a number in (0, 1]", v);
  out = *x;
  return {};
}

caf::error read_days(std::string_view key, const json::value& v,
                     double& out) {
  auto x = number_of(v);
  if (!x || !(*x > 0.0))
    return invalid(key, "a number of days > 0", v);
  out = *x;
  return {};
}

caf::error read_integer(std::string_view key, const json::value& v,
                        int64_t min, int64_t max, std::string_view what,
                        int32_t& out) {
  auto x = integer_of(v);
  if (!x || *x < min || *x > max)
    return invalid(key, what, v);
  out = static_cast<int32_t>(*x);
  return {};
}

constexpr int64_t int32_max = std::numeric_limits<int32_t>::max();

} // namespace

caf::expected<settings> settings_from_json(std::string_view config_json) {
  settings result;
  auto blank = config_json.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank)
    return result;
  json::error_code ec;
  auto root = json::parse(config_json, ec);
  if (ec)
    return make_error(errc::invalid_argument,
                      "consolidation_config is not valid JSON: "
                        + ec.message());
  if (root.is_null())
    return result;
  if (!root.is_object())
    return make_error(errc::invalid_argument,
                      "consolidation_config must be a JSON object, got "
                        + value_text(root));
  for (const auto& kv : root.get_object()) {
    std::string_view key = kv.key();
    const auto& v = kv.value();
    caf::error err;
    if (key == "pattern_threshold")
      err = read_threshold(key, v, result.pattern_threshold);
    else if (key == "pattern_min_support")
      err = read_integer(key, v, 2, int32_max, "an integer >= 2",
                         result.pattern_min_support);
    else if (key == "merge_threshold")
      err = read_threshold(key, v, result.merge_threshold);
    else if (key == "summarize_threshold")
      err = read_threshold(key, v, result.summarize_threshold);
    else if (key == "summarize_min_age_days")
      err = read_days(key, v, result.summarize_min_age_days);
    else if (key == "summarize_max_access_count")
      err = read_integer(key, v, 0, int32_max, "an integer >= 0",
                         result.summarize_max_access_count);
    else if (key == "principle_min_support")
      err = read_integer(key, v, 2, int32_max, "an integer >= 2",
                         result.principle_min_support);
    else if (key == "principle_threshold")
      err = read_threshold(key, v, result.principle_threshold);
    else if (key == "playbook_threshold")
      err = read_threshold(key, v, result.playbook_threshold);
    else if (key == "demote_after_days")
      err = read_days(key, v, result.demote_after_days);
    else if (key == "demote_importance_floor")
      err = read_integer(key, v, 1, 10, "an integer from 1 to 10",
                         result.demote_importance_floor);
    else
      err = make_error(errc::invalid_argument,
                       "consolidation_config." + std::string{key}
                         + " is not a consolidation setting");
    if (err)
      return err;
  }
  return result;
}

std::string to_json(const settings& s) {
  // Written by hand: Boost.JSON would print 0.8 as 8E-1.
  std::string out = "{";
  auto add = [&out](std::string_view key, std::string value) {
    if (out.size() > 1)
      out += ',';
    out += '"';
    out += key;
    out += "\":";
    out += value;
  };
  add("pattern_threshold", number_text(s.pattern_threshold));
  add("pattern_min_support", std::to_string(s.pattern_min_support));
  add("merge_threshold", number_text(s.merge_threshold));
  add("summarize_threshold", number_text(s.summarize_threshold));
  add("summarize_min_age_days", number_text(s.summarize_min_age_days));
  add("summarize_max_access_count",
      std::to_string(s.summarize_max_access_count));
  add("principle_min_support", std::to_string(s.principle_min_support));
  add("principle_threshold", number_text(s.principle_threshold));
  add("playbook_threshold", number_text(s.playbook_threshold));
  add("demote_after_days", number_text(s.demote_after_days));
  add("demote_importance_floor", std::to_string(s.demote_importance_floor));
  out += '}';
  return out;
}

} // namespace engram::consolidation
