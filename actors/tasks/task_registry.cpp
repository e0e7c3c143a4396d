#include "actors/tasks/task_registry.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json.hpp>

#include "runtime/uuid.hpp"

namespace engram::tasks {

namespace json = boost::json;

namespace {

std::string field(std::string_view key) {
  return "args." + std::string{key};
}

const json::value* lookup(const json::object& args, std::string_view key) {
  auto i = args.find(key);
  if (i == args.end() || i->value().is_null())
    return nullptr;
  return &i->value();
}

} // namespace

bool args_reader::has(std::string_view key) const {
  return lookup(args_, key) != nullptr;
}

std::string args_reader::text(std::string_view key) const {
  auto* v = lookup(args_, key);
  if (v == nullptr)
    throw invalid_args{field(key) + " is required"};
  if (!v->is_string())
    throw invalid_args{field(key) + " must be a string"};
  return std::string{v->get_string()};
}

std::string args_reader::text(std::string_view key, std::string fallback) const {
  return has(key) ? text(key) : std::move(fallback);
}

int64_t args_reader::integer(std::string_view key, int64_t min,
                             int64_t max) const {
  auto* v = lookup(args_, key);
  if (v == nullptr)
    throw invalid_args{field(key) + " is required"};
  int64_t result = 0;
  if (v->is_int64())
    result = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= uint64_t{INT64_MAX})
    result = static_cast<int64_t>(v->get_uint64());
  else
    throw invalid_args{field(key) + " must be an integer"};
  if (result < min || result > max)
    throw invalid_args{field(key) + " must be between " + std::to_string(min)
                       + " and " + std::to_string(max) + ", got "
                       + std::to_string(result)};
  return result;
}

int64_t args_reader::integer(std::string_view key, int64_t fallback,
                             int64_t min, int64_t max) const {
  return has(key) ? integer(key, min, max) : fallback;
}

bool args_reader::boolean(std::string_view key, bool fallback) const {
  auto* v = lookup(args_, key);
  if (v == nullptr)
    return fallback;
  if (!v->is_bool())
    throw invalid_args{field(key) + " must be true or false"};
  return v->get_bool();
}

std::string args_reader::uuid(std::string_view key) const {
  auto result = text(key);
  if (!is_uuid(result))
    throw invalid_args{field(key) + " must be a UUID, got '" + result + "'"};
  std::transform(result.begin(), result.end(), result.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return result;
}

void args_reader::only(std::initializer_list<std::string_view> known) const {
  for (const auto& kv : args_)
    if (std::find(known.begin(), known.end(), std::string_view{kv.key()})
        == known.end())
      throw invalid_args{"unknown argument " + field(kv.key())};
}

json::object parse_args(std::string_view json_text) {
  if (json_text.empty())
    return {};
  json::error_code ec;
  auto value = json::parse(json_text, ec);
  if (ec)
    throw invalid_args{"args is not valid JSON: " + ec.message()};
  if (!value.is_object())
    throw invalid_args{"args must be a JSON object"};
  return std::move(value.get_object());
}

void task_registry::add(std::string name, args_validator validate,
                        task_handler run, task_options options) {
  task_definition def{name, std::move(validate), std::move(run),
                      std::move(options)};
  defs_.insert_or_assign(std::move(name), std::move(def));
}

const task_definition* task_registry::find(std::string_view name) const {
  auto i = defs_.find(name);
  return i == defs_.end() ? nullptr : &i->second;
}

std::vector<std::string> task_registry::names() const {
  std::vector<std::string> result;
  for (const auto& [name, def] : defs_)
    result.push_back(name);
  return result;
}

enqueue_request task_registry::request_for(std::string_view name,
                                           std::string args_json) const {
  enqueue_request req;
  req.name = std::string{name};
  req.args_json = std::move(args_json);
  if (auto* def = find(name)) {
    req.queue = def->options.queue;
    req.priority = def->options.priority;
    req.max_retries = def->options.retry.max_retries;
    req.soft_time_limit_ms = def->options.soft_time_limit.count();
    req.time_limit_ms = def->options.time_limit.count();
  }
  return req;
}

std::optional<std::string>
task_registry::check(const enqueue_request& req) const {
  auto* def = find(req.name);
  if (def == nullptr)
    return "unknown task name '" + req.name + "'";
  try {
    auto args = parse_args(req.args_json);
    if (def->validate)
      def->validate(args_reader{args});
  } catch (const invalid_args& e) {
    return std::string{e.what()};
  }
  return std::nullopt;
}

} // namespace engram::tasks
