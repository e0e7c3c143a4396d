#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace engram::log {

/// Output format of every log line.
enum class format { text, json };

/// Configures the process-wide logging once at start: level (trace, debug,
/// info, warn, error, critical, off) and format. Text lines look like
/// `2026-11-22T10:00:00.123Z info  [http] listening on 127.0.0.1:8080`;
/// JSON lines are one object per line with ts, level, component and msg.
void setup(std::string_view level, format fmt);

/// Returns the logger of one component ("http", "storage", "supervisor",
/// "postgres", ...), creating it on first use with the configured sinks.
[[nodiscard]] std::shared_ptr<spdlog::logger> get(const std::string& component);

/// Escapes `x` for inclusion in a JSON string (without the quotes).
[[nodiscard]] std::string json_escape(std::string_view x);

} // namespace engram::log
