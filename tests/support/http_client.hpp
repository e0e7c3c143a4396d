#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace engram::test {

/// What a test sees of an HTTP response.
struct http_reply {
  int status = 0;
  std::map<std::string, std::string> headers; // lower-case names
  std::string body;
};

/// Sends one HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection and
/// reads the reply (synchronous; for tests). Throws on connection errors.
http_reply http_request(uint16_t port, const std::string& method,
                        const std::string& target, const std::string& body = {},
                        const std::map<std::string, std::string>& headers = {},
                        std::chrono::milliseconds timeout
                        = std::chrono::seconds{10});

/// GET shorthand.
inline http_reply http_get(uint16_t port, const std::string& target,
                           const std::map<std::string, std::string>& headers
                           = {}) {
  return http_request(port, "GET", target, {}, headers);
}

} // namespace engram::test
