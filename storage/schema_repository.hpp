#pragma once

#include <cstdint>

#include <pqxx/connection>

namespace engram::storage {

/// The highest applied migration (0 when none, or when the bookkeeping table
/// does not exist yet).
[[nodiscard]] int64_t applied_schema_version(pqxx::connection& conn);

} // namespace engram::storage
