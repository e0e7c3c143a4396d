#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include "http/json_error.hpp"
#include "messages/errc.hpp"

namespace engram::http {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
using verb = boost::beast::http::verb;

/// Path parameters by name, e.g. {"id", "42"} for `/api/projects/{id}`
/// matched by `/api/projects/42` (percent-decoded).
using path_params = std::map<std::string, std::string, std::less<>>;

/// What a handler sees of one request. The context, and everything it refers
/// to, stays valid until the handler's responder is called or destroyed.
struct request_context {
  /// The complete request.
  const request& req;
  /// Values of the pattern's `{param}` segments.
  path_params params;
  /// The target's path, before any `?`, not decoded.
  std::string_view path;
  /// The target's query, after the `?` (empty if none), not decoded.
  std::string_view query;
  /// The matched route pattern, e.g. `/api/projects/{id}`.
  std::string_view route;
};

/// Sends the response of one request. Call it exactly once, from any thread;
/// later calls are ignored. Destroying every copy without calling it sends a
/// 500. If the connection is gone by then, the response is dropped.
using responder = std::function<void(response)>;

/// Handles one request: calls the responder now or later, from any thread.
/// The server adds `Server`, `Content-Length` and `Connection`, sets
/// `Content-Type: application/json` if the response has none, and drops the
/// body of responses to HEAD. Exceptions become a 500.
using handler = std::function<void(request_context&, responder)>;

/// Content type of every JSON response.
inline constexpr std::string_view json_content_type = "application/json";

/// Returns a response with status `code` and `body` as JSON.
[[nodiscard]] response json_response(status code, std::string body);

/// Returns an error response: status `code`, body
/// `{"error":{"code":"<error_code>","message":"<message>"}}`.
[[nodiscard]] response error_response(status code, std::string_view error_code,
                                      std::string_view message);

/// Returns the error response for `code`: its status from status_for() and
/// its name as error code.
[[nodiscard]] response error_response(errc code, std::string_view message);

} // namespace engram::http
