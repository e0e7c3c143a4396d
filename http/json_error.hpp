#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/status.hpp>

#include "messages/errc.hpp"

namespace engram::http {

using status = boost::beast::http::status;

/// Returns `{"error":{"code":"<code>","message":"<message>"}}`, JSON-escaped:
/// the body of every error response.
[[nodiscard]] std::string error_body(std::string_view code,
                                     std::string_view message);

/// Returns the HTTP status for an error code. The one place that maps `errc`
/// to HTTP.
[[nodiscard]] status status_for(errc code) noexcept;

} // namespace engram::http
