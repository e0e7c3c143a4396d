#include "storage/storage_actors.hpp"

#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <pqxx/pqxx>

#include "messages/errc.hpp"
#include "runtime/metrics.hpp"
#include "storage/migration.hpp"
#include "tests/support/postgres_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

class storage_test : public ::testing::Test {
protected:
  /// Sends `req` and waits for the answer.
  template <class Reply, class Handle, class Request>
  caf::expected<Reply> ask(const Handle& dest, Request req) {
    caf::scoped_actor self{sys};
    caf::expected<Reply> result{caf::error{}};
    self->request(dest, 10s, std::move(req))
      .receive([&](Reply& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
};

} // namespace

TEST_F(storage_test, reports_the_schema_status) {
  auto db = test::shared_postgres().create_database("storage_status");
  auto pool = spawn_storage_pool(sys, test::fast_storage_options(db), 2, nullptr);
  auto before = ask<storage::schema_status>(pool, storage::schema_status_request{});
  ASSERT_TRUE(before) << describe(before.error());
  EXPECT_EQ(before->applied_version, 0);
  EXPECT_FALSE(before->current());
  ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
  auto after = ask<storage::schema_status>(pool, storage::schema_status_request{});
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_TRUE(after->current());
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
}

TEST_F(storage_test, records_node_heartbeats_and_stops) {
  auto db = test::shared_postgres().create_database("storage_nodes");
  ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
  metrics::registry registry;
  auto pool = spawn_storage_pool(sys, test::fast_storage_options(db), 2, &registry);
  storage::node_info node{"6f1c1a52-4a0e-4c1e-9d55-1b2f1f0e7a10", "host-a", 42,
                          "0.1.0"};
  ASSERT_TRUE(ask<bool>(pool, storage::node_heartbeat{node}));
  ASSERT_TRUE(ask<bool>(pool, storage::node_heartbeat{node}));
  auto stopped = ask<bool>(pool, storage::node_stopped{node.id});
  ASSERT_TRUE(stopped);
  EXPECT_TRUE(*stopped);
  auto unknown = ask<bool>(pool, storage::node_stopped{
                                   "00000000-0000-0000-0000-000000000000"});
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  pqxx::connection conn{db};
  pqxx::nontransaction tx{conn};
  auto row = tx.exec1("SELECT count(*), bool_and(stopped_at IS NOT NULL), "
                      "max(host) FROM engram.nodes");
  EXPECT_EQ(row[0].as<int64_t>(), 1);
  EXPECT_TRUE(row[1].as<bool>());
  EXPECT_EQ(row[2].as<std::string>(), "host-a");
  // A malformed id is a database error, not a crash.
  auto bad = ask<bool>(pool, storage::node_stopped{"not-a-uuid"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::database_error);
  EXPECT_NE(registry.render().find(
              "engram_storage_errors_total{code=\"database_error\"} 1"),
            std::string::npos)
    << registry.render();
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
}

TEST_F(storage_test, a_worker_survives_a_server_restart) {
  // Its own server: this test stops and starts it.
  test::throwaway_postgres pg;
  auto db = pg.connection_string();
  ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
  auto worker = spawn_storage_worker(sys, test::fast_storage_options(db));
  ASSERT_TRUE(ask<storage::schema_status>(worker, storage::schema_status_request{}));
  pg.stop();
  auto down = ask<storage::schema_status>(worker, storage::schema_status_request{});
  ASSERT_FALSE(down);
  EXPECT_EQ(code_of(down.error()), errc::database_unavailable)
    << describe(down.error());
  EXPECT_TRUE(is_retryable(down.error()));
  pg.start();
  // The same worker reconnects (with backoff) once the server is back.
  caf::expected<storage::schema_status> up{caf::error{}};
  for (int i = 0; i < 100 && !up; ++i) {
    up = ask<storage::schema_status>(worker, storage::schema_status_request{});
    if (!up)
      std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(up) << describe(up.error());
  EXPECT_TRUE(up->current());
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
}
