#include "storage/node_repository.hpp"

#include <pqxx/pqxx>

namespace engram::storage {

void record_heartbeat(pqxx::connection& conn, const node_info& node) {
  pqxx::work tx{conn};
  tx.exec_params("INSERT INTO engram.nodes (id, host, pid, version) "
                 "VALUES ($1::uuid, $2, $3, $4) "
                 "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now() "
                 "WHERE nodes.stopped_at IS NULL",
                 node.id, node.host, node.pid, node.version);
  tx.commit();
}

bool record_stopped(pqxx::connection& conn, const std::string& id) {
  pqxx::work tx{conn};
  auto result = tx.exec_params("UPDATE engram.nodes SET stopped_at = now() "
                               "WHERE id = $1::uuid",
                               id);
  tx.commit();
  return result.affected_rows() == 1;
}

} // namespace engram::storage
