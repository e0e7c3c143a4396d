#include "http/json_body.hpp"

#include <charconv>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace engram::http {

simdjson::padded_string padded_body(const request& req) {
  if (req.body().empty())
    throw body_error{"the request body is empty; a JSON document is expected"};
  return simdjson::padded_string{req.body()};
}

json_fields::json_fields(simdjson::ondemand::object obj, std::string prefix)
  : obj_(obj), prefix_(std::move(prefix)) {}

std::string json_fields::text(simdjson::ondemand::value v,
                              std::string_view key) const {
  std::string_view result;
  if (v.get_string().get(result))
    throw body_error{name(key) + " must be a string"};
  return std::string{result};
}

int64_t json_fields::integer(simdjson::ondemand::value v, std::string_view key,
                             int64_t min, int64_t max) const {
  int64_t result = 0;
  if (v.get_int64().get(result))
    throw body_error{name(key) + " must be an integer"};
  if (result < min || result > max)
    throw body_error{name(key) + " must be between " + std::to_string(min)
                     + " and " + std::to_string(max)};
  return result;
}

bool json_fields::boolean(simdjson::ondemand::value v,
                          std::string_view key) const {
  bool result = false;
  if (v.get_bool().get(result))
    throw body_error{name(key) + " must be true or false"};
  return result;
}

std::string json_fields::raw(simdjson::ondemand::value v, std::string_view key,
                             bool object_only) const {
  simdjson::ondemand::json_type type;
  if (v.type().get(type))
    throw body_error{"malformed JSON at " + name(key)};
  if (object_only && type != simdjson::ondemand::json_type::object)
    throw body_error{name(key) + " must be a JSON object"};
  std::string_view text;
  bool failed = false;
  if (type == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::object obj;
    failed = v.get_object().get(obj) || obj.raw_json().get(text);
  } else if (type == simdjson::ondemand::json_type::array) {
    simdjson::ondemand::array arr;
    failed = v.get_array().get(arr) || arr.raw_json().get(text);
  } else {
    text = v.raw_json_token();
    while (!text.empty()
           && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r'
               || text.back() == '\t'))
      text.remove_suffix(1);
  }
  if (failed)
    throw body_error{"malformed JSON at " + name(key)};
  return std::string{text};
}

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view x) {
  std::string result;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == '+') {
      result += ' ';
    } else if (x[i] == '%' && i + 2 < x.size()
               && hex(x[i + 1]) >= 0 && hex(x[i + 2]) >= 0) {
      result += static_cast<char>(hex(x[i + 1]) * 16 + hex(x[i + 2]));
      i += 2;
    } else {
      result += x[i];
    }
  }
  return result;
}

} // namespace

std::optional<std::string> query_param(std::string_view query,
                                       std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{}
                                          : query.substr(amp + 1);
    auto eq = item.find('=');
    auto key = decode(item.substr(0, eq));
    if (key == name)
      return eq == std::string_view::npos ? std::string{}
                                          : decode(item.substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<int64_t> query_integer(std::string_view query,
                                     std::string_view name, int64_t min,
                                     int64_t max) {
  auto text = query_param(query, name);
  if (!text)
    return std::nullopt;
  int64_t result = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(),
                                   result);
  if (ec != std::errc{} || end != text->data() + text->size() || result < min
      || result > max)
    throw body_error{"query parameter " + std::string{name}
                     + " must be an integer between " + std::to_string(min)
                     + " and " + std::to_string(max)};
  return result;
}

std::string json_quote(std::string_view s) {
  return boost::json::serialize(boost::json::string{s});
}

} // namespace engram::http
