#include "storage/migration.hpp"

#include <future>
#include <set>

#include <pqxx/pqxx>

#include "messages/errc.hpp"
#include "tests/support/postgres_fixture.hpp"

using namespace engram;

namespace {

int64_t count(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn{conninfo};
  pqxx::nontransaction tx{conn};
  return tx.exec1(sql)[0].as<int64_t>();
}

bool table_exists(const std::string& conninfo, const std::string& name) {
  return count(conninfo, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                         "'engram' AND tablename = '"
                           + name + "'")
         == 1;
}

} // namespace

TEST(migrations, embedded_ones_apply_and_a_second_run_applies_nothing) {
  auto db = test::shared_postgres().create_database("mig_embedded");
  const auto& all = storage::embedded_migrations();
  ASSERT_FALSE(all.empty());
  auto first = storage::apply_migrations(db, all);
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->to_version, storage::latest_version(all));
  EXPECT_EQ(first->applied.size(), all.size());
  EXPECT_TRUE(table_exists(db, "nodes"));
  auto second = storage::apply_migrations(db, all);
  ASSERT_TRUE(second) << describe(second.error());
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(count(db, "SELECT count(*) FROM engram.schema_migrations"),
            static_cast<int64_t>(all.size()));
}

TEST(migrations, clock_functions_round_trip_every_microsecond_and_are_inlined) {
  auto db = test::shared_postgres().create_database("mig_clock");
  auto applied = storage::apply_migrations(db, storage::embedded_migrations());
  ASSERT_TRUE(applied) << describe(applied.error());
  // Before and after the epoch, odd microseconds, far in both directions,
  // and under a session time zone that is not UTC.
  pqxx::connection conn{db};
  pqxx::nontransaction tx{conn};
  tx.exec0("SET TIME ZONE 'America/New_York'");
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM (SELECT g * 7919000013::bigint "
                     "  + (g % 1000000) AS us "
                     "  FROM generate_series(-200000, 200000) g) x "
                     "WHERE engram.to_us(engram.from_us(us)) <> us "
                     "   OR engram.from_us(us) <> 'epoch'::timestamptz "
                     "        + us * interval '1 microsecond'")[0]
              .as<int64_t>(),
            0);
  EXPECT_EQ(tx.exec1("SELECT engram.from_us(1796596324729567)::text")[0]
              .as<std::string>(),
            "2026-12-06 17:32:04.729567-05");
  EXPECT_EQ(tx.exec1("SELECT engram.to_us('2026-12-06 22:32:04.729567+00')")[0]
              .as<int64_t>(),
            1796596324729567);
  // Inlined: the plan shows the expression, not a call of the function
  // (a call runs the SQL-function executor per row, ~5x slower).
  auto plan = [&](const std::string& expr) {
    std::string text;
    for (const auto& row : tx.exec("EXPLAIN (VERBOSE) SELECT " + expr
                                   + " FROM generate_series(1, 3) g"))
      text += row[0].as<std::string>() + "\n";
    return text;
  };
  auto from = plan("engram.from_us(g::bigint)");
  EXPECT_EQ(from.find("from_us"), std::string::npos) << from;
  auto to = plan("engram.to_us(now() + g * interval '1 s')");
  EXPECT_EQ(to.find("to_us"), std::string::npos) << to;
}

TEST(migrations, two_concurrent_starters_apply_each_migration_once) {
  auto db = test::shared_postgres().create_database("mig_concurrent");
  // The first migration sleeps so both starters overlap; without the lock
  // the second CREATE TABLE of the same name would fail.
  std::vector<storage::migration> all{
    {1, "slow", "CREATE TABLE engram.t1 (x int); SELECT pg_sleep(0.5);"},
    {2, "second", "CREATE TABLE engram.t2 (x int);"},
  };
  auto run = [&] { return storage::apply_migrations(db, all); };
  auto a = std::async(std::launch::async, run);
  auto b = std::async(std::launch::async, run);
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_TRUE(ra) << describe(ra.error());
  ASSERT_TRUE(rb) << describe(rb.error());
  std::multiset<int64_t> applied(ra->applied.begin(), ra->applied.end());
  applied.insert(rb->applied.begin(), rb->applied.end());
  EXPECT_EQ(applied, (std::multiset<int64_t>{1, 2}));
  EXPECT_EQ(count(db, "SELECT count(*) FROM engram.schema_migrations"), 2);
}

TEST(migrations, a_newer_schema_is_refused) {
  auto db = test::shared_postgres().create_database("mig_newer");
  std::vector<storage::migration> v1{{1, "one", "CREATE TABLE engram.a (x int);"}};
  std::vector<storage::migration> v2 = v1;
  v2.push_back({2, "two", "CREATE TABLE engram.b (x int);"});
  ASSERT_TRUE(storage::apply_migrations(db, v2));
  // An older binary (knowing only version 1) meets the version-2 schema.
  auto res = storage::apply_migrations(db, v1);
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::schema_too_new);
  EXPECT_NE(message_of(res.error()).find("version 2"), std::string::npos)
    << message_of(res.error());
  EXPECT_NE(message_of(res.error()).find("up to version 1"), std::string::npos)
    << message_of(res.error());
}

TEST(migrations, a_failing_migration_is_named_and_rolled_back) {
  auto db = test::shared_postgres().create_database("mig_failing");
  std::vector<storage::migration> all{
    {1, "good", "CREATE TABLE engram.good (x int);"},
    {2, "bad", "CREATE TABLE engram.half (x int); SELECT no_such_function();"},
    {3, "later", "CREATE TABLE engram.later (x int);"},
  };
  auto res = storage::apply_migrations(db, all);
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::database_error);
  EXPECT_NE(message_of(res.error()).find("002_bad"), std::string::npos)
    << message_of(res.error());
  EXPECT_TRUE(table_exists(db, "good"));
  EXPECT_FALSE(table_exists(db, "half")) << "the failed migration's own "
                                            "transaction must roll back";
  EXPECT_FALSE(table_exists(db, "later"));
  EXPECT_EQ(count(db, "SELECT max(version) FROM engram.schema_migrations"), 1);
}

TEST(migrations, an_unreachable_server_is_a_retryable_error) {
  auto res = storage::apply_migrations(
    "host=/nonexistent-engram-socket-dir user=engram dbname=engram",
    storage::embedded_migrations());
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::database_unavailable);
  EXPECT_TRUE(is_retryable(res.error()));
}
