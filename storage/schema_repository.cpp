#include "storage/schema_repository.hpp"

#include <pqxx/pqxx>

namespace engram::storage {

int64_t applied_schema_version(pqxx::connection& conn) {
  pqxx::nontransaction tx{conn};
  auto exists = tx.exec1(
    "SELECT to_regclass('engram.schema_migrations') IS NOT NULL")[0];
  if (!exists.as<bool>())
    return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) "
                  "FROM engram.schema_migrations")[0]
    .as<int64_t>();
}

} // namespace engram::storage
