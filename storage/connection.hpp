#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/error.hpp>
#include <pqxx/connection>

namespace engram::storage {

/// Adds libpq parameters to a connection string in either form (URI or
/// key=value), e.g. with_param("host=/x", "connect_timeout", "5").
[[nodiscard]] std::string with_param(const std::string& conninfo,
                                     const std::string& key,
                                     const std::string& value);

/// Opens a connection with a bounded connect time and the given statement
/// timeout (0 = none). Throws what libpqxx throws.
[[nodiscard]] std::unique_ptr<pqxx::connection>
open_connection(const std::string& conninfo,
                std::chrono::milliseconds connect_timeout,
                std::chrono::milliseconds statement_timeout);

/// Whether a libpqxx exception means the connection is gone or the server is
/// not accepting work (SQLSTATE classes 08 and 57P), so a retry may succeed.
[[nodiscard]] bool is_connection_failure(const std::exception& e);

/// Maps a libpqxx exception to an error: connection failures become
/// `database_unavailable` (retryable), SQL errors `database_error`.
[[nodiscard]] caf::error to_error(const std::exception& e);

} // namespace engram::storage
