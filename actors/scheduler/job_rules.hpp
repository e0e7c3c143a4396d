#pragma once

#include "runtime/uuid.hpp"

// What a dynamic schedule (DESIGN §5) may hold, checked before anything is
// stored: the API never stores an invalid expression, zone or delivery
// config. Pure functions; every problem names the field.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "messages/scheduler.hpp"

namespace engram::sched {

/// Size limits of a job's fields, in characters (code points).
inline constexpr size_t max_job_name_chars = 200;
inline constexpr size_t max_job_message_chars = 32768;
inline constexpr size_t max_cron_chars = 256;
inline constexpr size_t max_timezone_chars = 64;
inline constexpr size_t max_owner_id_chars = 256;
/// The delivery config's JSON text, in bytes.
inline constexpr size_t max_delivery_config_bytes = 16384;
inline constexpr size_t max_webhook_url_chars = 2048;

/// Number of code points of UTF-8 text.
[[nodiscard]] size_t utf8_length(std::string_view text) noexcept;

using engram::is_uuid;

/// Checks a delivery config: a JSON object with only these fields:
/// `webhook_url` (null, or an absolute http/https URL with a host) and
/// `webhook_headers` (an object of string values). The first problem,
/// e.g. "delivery_config.webhook_url must be an http or https URL with a
/// host: ...".
[[nodiscard]] std::optional<std::string>
check_delivery_config(std::string_view json);

/// The first problem of a new job: agent_id a UUID; name non-empty;
/// message non-empty; cron_expression and timezone valid (the cron error
/// is named); delivery config as above; sizes within the limits.
[[nodiscard]] std::optional<std::string>
check_spec(const schedules::job_spec& spec);

/// The first problem of a patch (each field that is set, as in check_spec).
[[nodiscard]] std::optional<std::string>
check_patch(const schedules::job_patch& patch);

} // namespace engram::sched
