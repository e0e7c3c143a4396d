// /readyz against a real PostgreSQL: the admin routes, the readiness probe
// and the storage pool wired as the daemon wires them.

#include <thread>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "http/admin_routes.hpp"
#include "http/readiness_probe.hpp"
#include "http/server.hpp"
#include "messages/storage.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/metrics.hpp"
#include "storage/migration.hpp"
#include "storage/storage_actors.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/postgres_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

class readiness_test : public ::testing::Test {
protected:
  /// Serves the admin routes with a storage pool on `conninfo`.
  void serve(const std::string& conninfo) {
    pool = spawn_storage_pool(sys, test::fast_storage_options(conninfo), 2,
                              &registry);
    sys.registry().put(caf::atom(storage_pool_name), pool);
    http::router routes;
    http::admin_deps deps;
    deps.check_ready = [this](std::function<void(http::readiness)> done) {
      http::probe_readiness(sys, 2s, std::move(done));
    };
    deps.metrics = &registry;
    http::add_admin_routes(routes, deps);
    server = std::make_unique<http::server>(io.context(), http::server_options{},
                                            std::move(routes), registry);
    ASSERT_FALSE(server->start());
  }

  test::http_reply readyz() {
    return test::http_get(server->port(), "/readyz");
  }

  /// Polls /readyz until it answers `status` (up to 15 s).
  test::http_reply wait_for_readyz(int status) {
    auto reply = readyz();
    for (int i = 0; i < 150 && reply.status != status; ++i) {
      std::this_thread::sleep_for(100ms);
      reply = readyz();
    }
    return reply;
  }

  void TearDown() override {
    if (server)
      server->stop();
    io.stop();
    sys.registry().erase(caf::atom(storage_pool_name));
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  metrics::registry registry;
  io_threads io{1};
  storage_pool_actor pool;
  std::unique_ptr<http::server> server;
};

} // namespace

TEST_F(readiness_test, follows_the_database_down_and_up_again) {
  test::throwaway_postgres pg;
  ASSERT_TRUE(storage::apply_migrations(pg.connection_string(),
                                        storage::embedded_migrations()));
  serve(pg.connection_string());
  EXPECT_EQ(readyz().status, 200);
  pg.stop();
  auto down = wait_for_readyz(503);
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find(R"("code":"not_ready")"), std::string::npos)
    << down.body;
  EXPECT_NE(down.body.find("database not reachable"), std::string::npos)
    << down.body;
  pg.start();
  EXPECT_EQ(wait_for_readyz(200).status, 200);
}

TEST_F(readiness_test, is_not_ready_while_the_schema_is_behind) {
  auto db = test::shared_postgres().create_database("ready_schema");
  serve(db);
  auto reply = readyz();
  EXPECT_EQ(reply.status, 503);
  EXPECT_NE(reply.body.find("schema is at version 0"), std::string::npos)
    << reply.body;
  ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
  EXPECT_EQ(readyz().status, 200);
}
