#pragma once

#include <string>

#include <pqxx/connection>

#include "messages/storage.hpp"

namespace engram::storage {

/// Inserts the node's row or, if present and not stopped, refreshes
/// heartbeat_at. A stopped node stays stopped: node ids are never reused, and
/// a heartbeat that lost the race with the stop must not revive the row.
void record_heartbeat(pqxx::connection& conn, const node_info& node);

/// Sets stopped_at = now() for the node. Returns false for an unknown id.
[[nodiscard]] bool record_stopped(pqxx::connection& conn,
                                  const std::string& id);

} // namespace engram::storage
