#pragma once

// Projects as the API puts and reads them (DESIGN §3, §8). The rows are
// the platform repository's (storage/platform_repository.hpp); this adds
// the idempotent put and the mapping to the protocol's project_record.

#include <caf/expected.hpp>
#include <pqxx/transaction_base>

#include "messages/memories.hpp"
#include "runtime/clock.hpp"
#include "storage/platform_repository.hpp"

namespace engram::storage {

/// Creates project `req.id` at `now`, or replaces the name, the flag and
/// the config of the existing one (created_at stays, updated_at becomes
/// `now`); `created` says which. Concurrent puts of one id serialise on the
/// row. invalid_argument (nothing written) for a malformed id, an empty
/// name, or a config that is not a JSON object; the caller checks the
/// config's keys and values (http/project_routes.hpp).
[[nodiscard]] caf::expected<memories::put_project_result>
put_project(pqxx::transaction_base& tx, const memories::put_project_request& req,
            wall_time now);

/// Project `id`; not_found naming it for an unknown or malformed id.
[[nodiscard]] caf::expected<memories::project_record>
read_project(pqxx::transaction_base& tx, const std::string& id);

/// A project row as the protocol carries it.
[[nodiscard]] memories::project_record to_record(const project_row& row);

} // namespace engram::storage
