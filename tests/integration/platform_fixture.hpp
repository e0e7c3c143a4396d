#pragma once

// A fresh database with every migration for the platform repository tests
// (cleanup, conversation, schedule, platform), and fixed instants: these
// tests never sleep, they pass the time they mean.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "runtime/clock.hpp"
#include "storage/migration.hpp"
#include "tests/support/postgres_fixture.hpp"

namespace engram::test {

class platform_test : public ::testing::Test {
protected:
  void SetUp() override {
    db = shared_postgres().create_database(database_name_for_current_test());
    ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
    conn = std::make_unique<pqxx::connection>(db);
  }

  /// Runs `f(tx)` in a transaction that commits, and returns what f returns.
  template <class F>
  auto in_tx(F&& f) {
    pqxx::work tx{*conn};
    if constexpr (std::is_void_v<decltype(f(tx))>) {
      f(tx);
      tx.commit();
    } else {
      auto result = f(tx);
      tx.commit();
      return result;
    }
  }

  /// The first column of the one row `sql` returns, as text ("NULL" for
  /// null).
  std::string query(const std::string& sql) {
    pqxx::nontransaction tx{*conn};
    auto row = tx.exec1(sql);
    return row[0].is_null() ? "NULL" : row[0].as<std::string>();
  }

  int64_t count(const std::string& sql) { return std::stoll(query(sql)); }

  /// Runs a statement that returns nothing, in its own transaction.
  void exec(const std::string& sql) {
    pqxx::work tx{*conn};
    tx.exec(sql);
    tx.commit();
  }

  /// `t` as an SQL timestamptz literal expression.
  static std::string sql_time(wall_time t) {
    return "engram.from_us(" + std::to_string(to_epoch_us(t)) + ")";
  }

  static std::string quoted(const std::string& s) { return "'" + s + "'"; }

  /// 2024-03-10T12:00:00Z, the "now" of most tests.
  static wall_time noon() {
    using namespace std::chrono;
    return sys_days{year{2024} / 3 / 10} + hours{12};
  }

  std::string db;
  std::unique_ptr<pqxx::connection> conn;
};

} // namespace engram::test
