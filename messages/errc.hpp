#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/message.hpp>

namespace engram {

/// The project's error codes. Values are part of the wire protocol between
/// nodes and of the HTTP error codes: never renumber, only append.
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  /// A failure without a more specific code.
  unspecified = 1,
  /// The caller sent something malformed or out of range.
  invalid_argument = 2,
  /// The named object does not exist.
  not_found = 3,
  /// The request conflicts with the current state.
  conflict = 4,
  /// The database cannot be reached right now; retrying later may succeed.
  database_unavailable = 5,
  /// The database refused the statement (constraint, syntax, ...).
  database_error = 6,
  /// The database schema is newer than this binary knows.
  schema_too_new = 7,
  /// The database schema is older than this binary needs.
  schema_outdated = 8,
  /// An operation did not finish in its time limit.
  timeout = 9,
  /// The daemon is shutting down and takes no new work.
  shutting_down = 10,
  /// A configuration value was refused.
  invalid_config = 11,
  /// An external process (initdb, postgres, ...) failed.
  process_failed = 12,
  /// Authentication is missing or wrong.
  unauthorized = 13,
  /// The request is larger than the configured limit.
  too_large = 14,
  /// A supervised child failed more often than its restart limit allows.
  child_failed = 15,
  /// A remote service (LLM provider, webhook) cannot be reached right now.
  unavailable = 16,
  /// The request is well-formed, but something outside it must change first
  /// (a credential a retry needs is still missing).
  unprocessable = 17,
};

/// Returns the stable, snake_case name of `x`, used in logs and as the HTTP
/// error code.
[[nodiscard]] std::string_view to_string(errc x) noexcept;

/// Returns whether a caller may retry an operation that failed with `x`.
[[nodiscard]] bool is_retryable(errc x) noexcept;

/// Returns the `errc` of `err`, `errc::unspecified` for errors of another
/// category and `errc::none` for no error.
[[nodiscard]] errc code_of(const caf::error& err) noexcept;

/// Returns the context string of `err` (empty if none).
[[nodiscard]] std::string message_of(const caf::error& err);

/// Returns "code: message" for logs, for any category.
[[nodiscard]] std::string describe(const caf::error& err);

/// Creates an error of our category with a human-readable context.
[[nodiscard]] caf::error make_error(errc code, std::string context = {});

/// Returns whether a caller may retry an operation that failed with `err`.
[[nodiscard]] bool is_retryable(const caf::error& err) noexcept;

} // namespace engram

CAF_ERROR_CODE_ENUM(engram::errc, "engram")
