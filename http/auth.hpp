#pragma once

#include <string_view>

#include "http/handler.hpp"

namespace engram::http {

/// Returns whether `given` equals `expected` in time that depends only on the
/// length of `expected`, so a client cannot guess a token byte by byte.
[[nodiscard]] bool constant_time_equal(std::string_view given,
                                       std::string_view expected) noexcept;

/// Returns whether `req` carries `Authorization: Bearer <token>` (scheme
/// case-insensitive).
[[nodiscard]] bool has_bearer_token(const request& req,
                                    std::string_view token) noexcept;

/// Returns whether `path` is served without a token: the probes `/healthz`
/// and `/readyz`, which orchestrators call without credentials.
[[nodiscard]] bool is_public_path(std::string_view path) noexcept;

} // namespace engram::http
