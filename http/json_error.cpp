#include "http/json_error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace engram::http {

std::string error_body(std::string_view code, std::string_view message) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = message;
  boost::json::object body;
  body["error"] = std::move(error);
  return boost::json::serialize(body);
}

status status_for(errc code) noexcept {
  // No default: a new code must get its status decided here (-Wswitch).
  switch (code) {
    case errc::invalid_argument:
    case errc::invalid_config:
      return status::bad_request;
    case errc::unauthorized:
      return status::unauthorized;
    case errc::not_found:
      return status::not_found;
    case errc::conflict:
      return status::conflict;
    case errc::too_large:
      return status::payload_too_large;
    case errc::unprocessable:
      return status::unprocessable_entity;
    case errc::database_unavailable:
    case errc::unavailable:
    case errc::schema_too_new:
    case errc::schema_outdated:
    case errc::shutting_down:
      return status::service_unavailable;
    case errc::timeout:
      return status::gateway_timeout;
    case errc::none:
    case errc::unspecified:
    case errc::database_error:
    case errc::process_failed:
    case errc::child_failed:
      return status::internal_server_error;
  }
  return status::internal_server_error;
}

} // namespace engram::http
