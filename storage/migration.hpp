#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace engram::storage {

/// One schema change: `storage/migrations/NNN_name.sql`.
struct migration {
  int64_t version;
  std::string name;
  std::string sql;
};

/// Every migration compiled into this binary, ordered by version.
[[nodiscard]] const std::vector<migration>& embedded_migrations();

/// The highest version in `all` (0 if empty).
[[nodiscard]] int64_t latest_version(const std::vector<migration>& all);

/// A stable checksum of a migration's text (FNV-1a 64, hex), recorded with
/// it so an edited migration is noticed.
[[nodiscard]] std::string checksum(const std::string& sql);

/// What `apply_migrations` did.
struct migration_report {
  /// Version before and after.
  int64_t from_version = 0;
  int64_t to_version = 0;
  /// Versions this call applied (empty when the schema was current).
  std::vector<int64_t> applied;
};

/// Brings the database at `conninfo` up to `all`: creates schema `engram` and
/// `engram.schema_migrations` if needed, then applies each pending migration
/// in its own transaction, recording it. A session advisory lock serialises
/// concurrent callers across processes, so each migration is applied once.
/// Refuses (errc::schema_too_new) a database whose schema is newer than `all`.
[[nodiscard]] caf::expected<migration_report>
apply_migrations(const std::string& conninfo,
                 const std::vector<migration>& all);

} // namespace engram::storage
