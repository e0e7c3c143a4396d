#include "actors/scheduler/job_rules.hpp"

#include <variant>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "actors/scheduler/fire_plan.hpp"
#include "messages/errc.hpp"
#include "runtime/outbound_http.hpp"

namespace engram::sched {

namespace {

std::optional<std::string> check_length(std::string_view field,
                                        std::string_view value, size_t max) {
  if (utf8_length(value) > max)
    return std::string{field} + " is longer than " + std::to_string(max)
           + " characters";
  return std::nullopt;
}

std::optional<std::string> check_text(std::string_view field,
                                      std::string_view value, size_t max,
                                      bool required) {
  if (required && value.empty())
    return std::string{field} + " must not be empty";
  return check_length(field, value, max);
}

std::optional<std::string> check_timing(std::string_view cron,
                                        std::string_view zone) {
  if (auto err = check_text("cron_expression", cron, max_cron_chars, true))
    return err;
  if (auto err = check_text("timezone", zone, max_timezone_chars, true))
    return err;
  auto compiled = compile(cron, zone);
  if (auto* err = std::get_if<std::string>(&compiled))
    return *err;
  return std::nullopt;
}

} // namespace

size_t utf8_length(std::string_view text) noexcept {
  size_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80)
      ++n;
  return n;
}


std::optional<std::string> check_delivery_config(std::string_view json) {
  if (json.size() > max_delivery_config_bytes)
    return "delivery_config is larger than "
           + std::to_string(max_delivery_config_bytes) + " bytes";
  boost::system::error_code ec;
  auto value = boost::json::parse(json.empty() ? "{}" : json, ec);
  if (ec || !value.is_object())
    return std::string{"delivery_config must be a JSON object"};
  for (const auto& [key, v] : value.as_object()) {
    if (key == "webhook_url") {
      if (v.is_null())
        continue;
      if (!v.is_string())
        return std::string{"delivery_config.webhook_url must be a string"};
      std::string_view url = v.as_string();
      if (auto err = check_length("delivery_config.webhook_url", url,
                                  max_webhook_url_chars))
        return err;
      auto parsed = parse_url(url);
      if (!parsed)
        return "delivery_config.webhook_url must be an http or https URL "
               "with a host: "
               + message_of(parsed.error());
      if (parsed->host.empty())
        return std::string{"delivery_config.webhook_url must name a host"};
    } else if (key == "webhook_headers") {
      if (!v.is_object())
        return std::string{
          "delivery_config.webhook_headers must be an object of strings"};
      for (const auto& [name, header] : v.as_object()) {
        if (!header.is_string())
          return "delivery_config.webhook_headers." + std::string{name}
                 + " must be a string";
      }
    } else {
      return "unknown field delivery_config." + std::string{key}
             + " (accepted: webhook_url, webhook_headers)";
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_spec(const schedules::job_spec& spec) {
  if (spec.agent_id.empty())
    return std::string{"agent_id is required"};
  if (!is_uuid(spec.agent_id))
    return "agent_id must be a UUID, got \"" + spec.agent_id + "\"";
  if (auto err = check_text("team_id", spec.team_id, max_owner_id_chars, false))
    return err;
  if (auto err = check_text("user_id", spec.user_id, max_owner_id_chars, false))
    return err;
  if (auto err = check_text("name", spec.name, max_job_name_chars, true))
    return err;
  if (auto err = check_text("message", spec.message, max_job_message_chars,
                            true))
    return err;
  if (auto err = check_timing(spec.cron_expression, spec.timezone))
    return err;
  return check_delivery_config(spec.delivery_config_json);
}

std::optional<std::string> check_patch(const schedules::job_patch& patch) {
  if (patch.has_name)
    if (auto err = check_text("name", patch.name, max_job_name_chars, true))
      return err;
  if (patch.has_message)
    if (auto err = check_text("message", patch.message, max_job_message_chars,
                              true))
      return err;
  if (patch.has_cron_expression)
    if (auto err = check_text("cron_expression", patch.cron_expression,
                              max_cron_chars, true))
      return err;
  if (patch.has_timezone)
    if (auto err = check_text("timezone", patch.timezone, max_timezone_chars,
                              true))
      return err;
  // The expression and the zone are checked together once merged with the
  // stored job (a patch may change one of them only); check what can be
  // checked alone here.
  if (patch.has_cron_expression) {
    auto parsed = cron::parse(patch.cron_expression);
    if (auto* err = std::get_if<cron::parse_error>(&parsed))
      return "cron_expression: " + err->to_string();
  }
  if (patch.has_timezone && cron::find_zone(patch.timezone) == nullptr)
    return "timezone: unknown time zone \"" + patch.timezone
           + "\" (an IANA name such as \"UTC\" or \"Europe/Berlin\" is "
             "expected)";
  if (patch.has_delivery_config)
    return check_delivery_config(patch.delivery_config_json);
  return std::nullopt;
}

} // namespace engram::sched
