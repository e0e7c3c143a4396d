#pragma once

#include <string>

#include <pqxx/connection>

#include "messages/storage.hpp"

namespace engram::storage {

/// Inserts the node's row or, if present, refreshes heartbeat_at (and clears
/// stopped_at: a node id is never reused, but a heartbeat after a stop means
/// the node is alive after all).
void record_heartbeat(pqxx::connection& conn, const node_info& node);

/// Sets stopped_at = now() for the node. Returns false for an unknown id.
[[nodiscard]] bool record_stopped(pqxx::connection& conn,
                                  const std::string& id);

} // namespace engram::storage
