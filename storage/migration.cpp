#include "storage/migration.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include <pqxx/pqxx>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "storage/connection.hpp"

namespace engram::storage {

namespace {

/// Advisory lock key that serialises migrations ("engram" + 0x01).
constexpr int64_t migration_lock_key = 0x656e6772616d0001;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("migrate");
  return result;
}

} // namespace

int64_t latest_version(const std::vector<migration>& all) {
  int64_t result = 0;
  for (const auto& m : all)
    result = std::max(result, m.version);
  return result;
}

std::string checksum(const std::string& sql) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : sql) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(hash));
  return buf;
}

caf::expected<migration_report>
apply_migrations(const std::string& conninfo,
                 const std::vector<migration>& all) {
  try {
    auto conn = open_connection(conninfo, std::chrono::seconds{10},
                                std::chrono::milliseconds{0});
    pqxx::nontransaction session{*conn};
    // Held for the whole run; released by unlock or when the session ends.
    session.exec("SELECT pg_advisory_lock(" + std::to_string(migration_lock_key)
                 + ")");
    session.exec("CREATE SCHEMA IF NOT EXISTS engram");
    session.exec("CREATE TABLE IF NOT EXISTS engram.schema_migrations ("
                 " version bigint PRIMARY KEY,"
                 " name text NOT NULL,"
                 " checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())");
    std::map<int64_t, std::string> applied;
    for (const auto& row : session.exec(
           "SELECT version, checksum FROM engram.schema_migrations"))
      applied.emplace(row[0].as<int64_t>(), row[1].as<std::string>());
    session.commit();
    migration_report report;
    report.from_version = applied.empty() ? 0 : applied.rbegin()->first;
    auto known = latest_version(all);
    if (report.from_version > known)
      return make_error(
        errc::schema_too_new,
        "the database schema is at version "
          + std::to_string(report.from_version)
          + " but this engram binary knows migrations only up to version "
          + std::to_string(known)
          + "; run a newer engram against this database, or point this one "
            "at another database");
    auto sorted = all;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.version < b.version; });
    for (const auto& m : sorted) {
      if (auto i = applied.find(m.version); i != applied.end()) {
        if (i->second != checksum(m.sql))
          logger()->warn("migration {:03}_{} changed after it was applied "
                         "(checksum {} in the database, {} in this binary); "
                         "it is not applied again",
                         m.version, m.name, i->second, checksum(m.sql));
        continue;
      }
      try {
        pqxx::work tx{*conn};
        tx.exec(m.sql);
        tx.exec_params("INSERT INTO engram.schema_migrations "
                       "(version, name, checksum) VALUES ($1, $2, $3)",
                       m.version, m.name, checksum(m.sql));
        tx.commit();
      } catch (const std::exception& e) {
        auto err = to_error(e);
        return make_error(code_of(err),
                          fmt::format("migration {:03}_{} failed: {}",
                                      m.version, m.name, message_of(err)));
      }
      logger()->info("applied migration {:03}_{}", m.version, m.name);
      report.applied.push_back(m.version);
    }
    pqxx::nontransaction unlock{*conn};
    unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key)
                + ")");
    report.to_version = std::max(report.from_version, known);
    return report;
  } catch (const std::exception& e) {
    return to_error(e);
  }
}

} // namespace engram::storage
