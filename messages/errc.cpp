#include "messages/errc.hpp"

#include <caf/atom.hpp>
#include <caf/sec.hpp>

namespace engram {

std::string_view to_string(errc x) noexcept {
  switch (x) {
    case errc::none: return "none";
    case errc::unspecified: return "unspecified";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::conflict: return "conflict";
    case errc::database_unavailable: return "database_unavailable";
    case errc::database_error: return "database_error";
    case errc::schema_too_new: return "schema_too_new";
    case errc::schema_outdated: return "schema_outdated";
    case errc::timeout: return "timeout";
    case errc::shutting_down: return "shutting_down";
    case errc::invalid_config: return "invalid_config";
    case errc::process_failed: return "process_failed";
    case errc::unauthorized: return "unauthorized";
    case errc::too_large: return "too_large";
    case errc::child_failed: return "child_failed";
    case errc::unavailable: return "unavailable";
    case errc::unprocessable: return "unprocessable";
  }
  return "unknown";
}

bool is_retryable(errc x) noexcept {
  return x == errc::database_unavailable || x == errc::timeout
         || x == errc::shutting_down || x == errc::unavailable;
}

errc code_of(const caf::error& err) noexcept {
  if (!err)
    return errc::none;
  if (err.category() == caf::atom("engram"))
    return static_cast<errc>(err.code());
  if (err.category() == caf::atom("system")
      && static_cast<caf::sec>(err.code()) == caf::sec::request_timeout)
    return errc::timeout;
  return errc::unspecified;
}

std::string message_of(const caf::error& err) {
  if (!err)
    return {};
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  if (err.category() == caf::atom("system"))
    return to_string(static_cast<caf::sec>(err.code()));
  return ctx.empty() ? std::string{} : to_string(ctx);
}

std::string describe(const caf::error& err) {
  if (!err)
    return "none";
  std::string result;
  if (err.category() == caf::atom("engram"))
    result = to_string(static_cast<errc>(err.code()));
  else
    result = to_string(err.category()) + ":" + std::to_string(err.code());
  if (auto msg = message_of(err); !msg.empty()) {
    result += ": ";
    result += msg;
  }
  return result;
}

caf::error make_error(errc code, std::string context) {
  if (context.empty())
    return caf::error{static_cast<uint8_t>(code), caf::atom("engram")};
  return caf::error{static_cast<uint8_t>(code), caf::atom("engram"),
                    caf::make_message(std::move(context))};
}

bool is_retryable(const caf::error& err) noexcept {
  return is_retryable(code_of(err));
}

} // namespace engram
