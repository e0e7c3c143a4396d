#include "runtime/log.hpp"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace engram::log {

namespace {

/// Writes the payload JSON-escaped, so a JSON line stays one valid object
/// whatever the message holds.
class escaped_payload final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    auto escaped = json_escape({msg.payload.data(), msg.payload.size()});
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<escaped_payload>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(format fmt);

struct state {
  state() {
    sink->set_formatter(make_formatter(fmt));
  }
  std::mutex mtx;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
  format fmt = format::text;
};

state& global() {
  static state instance;
  return instance;
}

std::unique_ptr<spdlog::formatter> make_formatter(format fmt) {
  auto result = std::make_unique<spdlog::pattern_formatter>(
    spdlog::pattern_time_type::utc);
  if (fmt == format::json) {
    result->add_flag<escaped_payload>('*');
    result->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",)"
                        R"("component":"%n","msg":"%*"})");
  } else {
    result->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v");
  }
  return result;
}

} // namespace

void setup(std::string_view level, format fmt) {
  auto& st = global();
  std::lock_guard guard{st.mtx};
  st.level = spdlog::level::from_str(std::string{level});
  st.fmt = fmt;
  st.sink->set_formatter(make_formatter(fmt));
  spdlog::set_level(st.level);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->set_level(st.level);
  });
}

std::shared_ptr<spdlog::logger> get(const std::string& component) {
  if (auto existing = spdlog::get(component))
    return existing;
  auto& st = global();
  std::lock_guard guard{st.mtx};
  if (auto existing = spdlog::get(component))
    return existing;
  auto result = std::make_shared<spdlog::logger>(component, st.sink);
  result->set_level(st.level);
  // Errors must reach the operator even if the process dies right after.
  result->flush_on(spdlog::level::warn);
  spdlog::register_logger(result);
  return result;
}

std::string json_escape(std::string_view x) {
  std::string result;
  result.reserve(x.size() + 8);
  for (unsigned char c : x) {
    switch (c) {
      case '"': result += "\\\""; break;
      case '\\': result += "\\\\"; break;
      case '\n': result += "\\n"; break;
      case '\r': result += "\\r"; break;
      case '\t': result += "\\t"; break;
      default:
        if (c < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          result += "\\u00";
          result += hex[c >> 4];
          result += hex[c & 0xf];
        } else {
          result += static_cast<char>(c);
        }
    }
  }
  return result;
}

} // namespace engram::log
