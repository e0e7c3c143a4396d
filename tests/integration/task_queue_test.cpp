// The task runtime against a real PostgreSQL: queue actors claim, run,
// retry, stop and acknowledge tasks. Time that matters to the rules
// (backoff, limits, leases, polls) comes from a manual clock the tests move;
// the tests wait only for effects to show up in the database.

#include <future>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <pqxx/pqxx>

#include "actors/tasks/builtin_tasks.hpp"
#include "actors/tasks/task_system.hpp"
#include "runtime/clock.hpp"
#include "runtime/log.hpp"
#include "storage/migration.hpp"
#include "storage/notification_listener.hpp"
#include "storage/task_repository.hpp"
#include "storage/task_store.hpp"
#include "tests/support/postgres_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

class task_queue_test : public ::testing::Test {
protected:
  void SetUp() override {
    db = test::shared_postgres().create_database(
      test::database_name_for_current_test());
    ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
    conn = std::make_unique<pqxx::connection>(db);
    tasks::register_builtin_tasks(registry);
    services.system = &sys;
    services.time = &clock;
  }

  void TearDown() override {
    if (system_handle)
      caf::anon_send_exit(system_handle, caf::exit_reason::kill);
  }

  /// `channel`: what the shared listener listens on.
  task_system_options system_options(std::string queues = "default=2",
                                     std::string channel = "engram_tasks") {
    task_system_options opts;
    opts.queues = std::get<std::vector<queue_spec>>(parse_queue_list(queues));
    opts.queue_defaults.worker_id = "test-node";
    opts.queue_defaults.lease = 30s;
    opts.queue_defaults.heartbeat_interval = 10s;
    opts.queue_defaults.poll_interval = 1s;
    opts.queue_defaults.drain_timeout = 2s;
    opts.reclaim_interval = 50ms;
    auto storage = test::fast_storage_options(db);
    opts.spawn_storage = [storage](caf::actor_system& sys) {
      return spawn_storage_worker(sys, storage);
    };
    opts.spawn_task_store = [this, storage](caf::actor_system& sys) {
      return spawn_task_store(sys, storage, clock);
    };
    opts.spawn_listener = [storage, channel](caf::actor_system& sys,
                                             notification_callback cb) {
      listener_options lopts;
      lopts.storage = storage;
      lopts.channels = {channel};
      lopts.wait_slice = 20ms;
      return spawn_notification_listener(sys, lopts, std::move(cb));
    };
    return opts;
  }

  void start(std::string queues = "default=2") {
    system_handle
      = spawn_task_system(sys, system_options(std::move(queues)), registry,
                          services, nullptr);
  }

  int64_t enqueue(tasks::enqueue_request req) {
    pqxx::work tx{*conn};
    auto result = storage::enqueue_task(tx, req, clock.now());
    tx.commit();
    return result.id;
  }

  tasks::enqueue_request named(std::string name, std::string args = "{}") {
    return registry.request_for(name, std::move(args));
  }

  std::string query(const std::string& sql) {
    pqxx::nontransaction tx{*conn};
    auto row = tx.exec1(sql);
    return row[0].is_null() ? "NULL" : row[0].as<std::string>();
  }

  std::string column(int64_t id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.tasks WHERE id = "
                 + std::to_string(id));
  }

  /// Waits (real time, polling) until the task reaches `status`.
  bool wait_for_status(int64_t id, const std::string& status,
                       std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (column(id, "status") == status)
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  /// Waits until the workers run `n` attempts: the database says "running"
  /// as soon as the claim commits, but limits start when the attempt does,
  /// so a test must not move the clock before that.
  bool wait_for_running(int64_t n, std::chrono::milliseconds timeout = 10s) {
    caf::scoped_actor self{sys};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int64_t running = -1;
      self->request(system_handle, 5s, atom::stats_v)
        .receive(
          [&](std::vector<tasks::queue_stats>& stats) {
            running = 0;
            for (const auto& q : stats)
              running += q.running;
          },
          [](caf::error&) {});
      if (running == n)
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  /// Waits until `sql` returns `expected`.
  bool wait_for(const std::string& sql, const std::string& expected,
                std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (query(sql) == expected)
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::string db;
  std::unique_ptr<pqxx::connection> conn;
  manual_clock clock{from_epoch_us(1'700'000'000'000'000)};
  tasks::task_registry registry;
  tasks::task_services services;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  task_system_actor system_handle;
};

} // namespace

TEST_F(task_queue_test, a_task_runs_once_and_its_result_is_stored) {
  start();
  auto id = enqueue(named("engram.noop"));
  ASSERT_TRUE(wait_for_status(id, "succeeded"));
  EXPECT_EQ(column(id, "result::text"), R"({"ok": true})");
  EXPECT_EQ(column(id, "attempts"), "1");
  EXPECT_EQ(column(id, "lease_token IS NULL AND locked_by IS NULL"), "t");
}

TEST_F(task_queue_test, an_idle_queues_claimer_claims_on_its_own_notification) {
  // The listener hears nothing (another channel) and the clock stands
  // still (no poll falls due): only the claimer's own LISTEN can start the
  // tasks enqueued while the queue is idle.
  auto opts = system_options("default=2", "engram_tests_silent");
  system_handle = spawn_task_system(sys, opts, registry, services, nullptr);
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(100ms); // idle again
    auto id = enqueue(named("engram.noop"));
    ASSERT_TRUE(wait_for_status(id, "succeeded", 5s)) << "task " << i;
  }
  // A notification for another queue wakes nothing up: its task waits.
  auto other = named("engram.noop");
  other.queue = "elsewhere";
  auto id = enqueue(other);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(column(id, "status"), "queued");
}

TEST_F(task_queue_test, a_waiting_claimer_that_loses_its_connection_drops_no_task) {
  start();
  auto first = enqueue(named("engram.noop"));
  ASSERT_TRUE(wait_for_status(first, "succeeded"));
  std::this_thread::sleep_for(100ms); // idle: the claimer waits
  // Every connection of the task system goes (the claimer's mid-wait).
  EXPECT_NE(query("SELECT count(pg_terminate_backend(pid)) FROM "
                  "pg_stat_activity WHERE datname = current_database() "
                  "AND pid <> pg_backend_pid()"),
            "0");
  // Time moves (reconnects and the retry of a failed completion are timed
  // on the clock); each task still runs once and is recorded.
  auto run_while_time_moves = [&](int64_t id) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (column(id, "status") == "succeeded")
        return true;
      clock.advance(50ms);
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  for (int i = 0; i < 3; ++i) {
    auto id = enqueue(named("engram.noop"));
    ASSERT_TRUE(run_while_time_moves(id)) << "task " << i;
    EXPECT_EQ(column(id, "attempts"), "1") << "task " << i;
  }
}

TEST_F(task_queue_test, many_tasks_finish_in_batches) {
  start("default=4");
  std::vector<tasks::enqueue_request> batch(500, named("engram.noop"));
  pqxx::work tx{*conn};
  (void) storage::enqueue_tasks(tx, batch, clock.now());
  tx.commit();
  EXPECT_TRUE(wait_for("SELECT count(*) FROM engram.tasks WHERE status = "
                       "'succeeded'",
                       "500"));
  EXPECT_EQ(query("SELECT max(attempts) FROM engram.tasks"), "1");
}

TEST_F(task_queue_test, failures_back_off_on_the_clock_then_succeed) {
  start();
  auto req = named("engram.fail", R"({"failures":2})");
  auto id = enqueue(req);
  ASSERT_TRUE(wait_for(
    "SELECT attempts || status FROM engram.tasks", "1queued"));
  // Backoff after attempt 1: 1 s base with equal jitter = 0.5..1 s.
  auto run_at_us = std::stoll(column(id, "engram.to_us(run_at)"));
  auto delay = run_at_us - to_epoch_us(clock.now());
  EXPECT_GE(delay, 500'000);
  EXPECT_LE(delay, 1'000'000);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(column(id, "attempts"), "1") << "not retried before its backoff";
  clock.advance(2s); // past the backoff and the next poll
  ASSERT_TRUE(wait_for("SELECT attempts || status FROM engram.tasks",
                       "2queued"));
  clock.advance(3s); // attempt 2 backs off 1..2 s
  ASSERT_TRUE(wait_for_status(id, "succeeded"));
  EXPECT_EQ(column(id, "attempts"), "3");
  EXPECT_EQ(column(id, "jsonb_array_length(errors)"), "2");
  EXPECT_EQ(column(id, "result::text"), R"({"attempts": 3})");
}

TEST_F(task_queue_test, retries_run_out_and_the_task_is_dead_with_every_error) {
  start();
  auto req = named("engram.fail", R"({"failures":5,"message":"broken"})");
  req.max_retries = 1;
  auto id = enqueue(req);
  ASSERT_TRUE(wait_for("SELECT attempts || status FROM engram.tasks",
                       "1queued"));
  clock.advance(2s);
  ASSERT_TRUE(wait_for_status(id, "dead"));
  EXPECT_EQ(column(id, "attempts"), "2");
  EXPECT_EQ(column(id, "jsonb_path_query_array(errors, '$[*].attempt')::text"),
            "[1, 2]");
  EXPECT_EQ(column(id, "last_error"),
            "broken (attempt 2 of 5 planned failures)");
}

TEST_F(task_queue_test, bad_args_are_dead_at_once_without_retries) {
  start();
  auto id = enqueue(named("engram.sleep", R"({"ms":"long"})"));
  ASSERT_TRUE(wait_for_status(id, "dead"));
  EXPECT_EQ(column(id, "attempts"), "1");
  EXPECT_EQ(column(id, "last_error"),
            "invalid arguments: args.ms must be an integer");
  auto unknown = enqueue(named("no.such.task"));
  ASSERT_TRUE(wait_for_status(unknown, "dead"));
  EXPECT_EQ(column(unknown, "last_error"),
            "no handler is registered for task name 'no.such.task'");
}

TEST_F(task_queue_test, a_soft_limit_asks_the_handler_to_stop) {
  start();
  auto req = named("engram.sleep", R"({"ms":3600000})");
  req.soft_time_limit_ms = 5000;
  req.max_retries = 0;
  auto id = enqueue(req);
  ASSERT_TRUE(wait_for_status(id, "running"));
  ASSERT_TRUE(wait_for_running(1));
  clock.advance(4s);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(column(id, "status"), "running") << "before its soft limit";
  clock.advance(1s);
  ASSERT_TRUE(wait_for_status(id, "dead"));
  EXPECT_EQ(column(id, "last_error"), "soft time limit of 5000 ms exceeded");
}

TEST_F(task_queue_test, a_hard_limit_abandons_an_attempt_that_ignores_stop) {
  std::promise<void> release;
  auto released = release.get_future().share();
  registry.add("test.stubborn", nullptr,
               [released](tasks::task_context&) -> json::value {
                 released.wait(); // ignores stop requests
                 return json::object{{"late", true}};
               });
  start("default=1");
  auto req = named("test.stubborn");
  req.time_limit_ms = 3000;
  req.max_retries = 0;
  auto id = enqueue(req);
  ASSERT_TRUE(wait_for_status(id, "running"));
  ASSERT_TRUE(wait_for_running(1));
  clock.advance(3s);
  ASSERT_TRUE(wait_for_status(id, "dead"));
  EXPECT_EQ(column(id, "last_error"),
            "hard time limit of 3000 ms exceeded; attempt abandoned");
  // The only slot was replaced: the queue keeps working.
  auto next = enqueue(named("engram.noop"));
  EXPECT_TRUE(wait_for_status(next, "succeeded"));
  release.set_value();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(column(id, "status"), "dead") << "the abandoned result is ignored";
}

TEST_F(task_queue_test, a_dead_workers_task_runs_again_and_its_late_completion_is_refused) {
  auto id = enqueue(named("engram.noop"));
  std::vector<tasks::claimed_task> stale;
  {
    // A worker on another node claims the task and dies.
    pqxx::work tx{*conn};
    stale = storage::claim_tasks(tx, "default", "dead-node/default", 1, 30s,
                                 clock.now());
    tx.commit();
  }
  ASSERT_EQ(stale.size(), 1u);
  start();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(column(id, "status"), "running") << "its lease is still valid";
  clock.advance(31s);
  ASSERT_TRUE(wait_for_status(id, "succeeded"));
  EXPECT_EQ(column(id, "attempts"), "2");
  EXPECT_EQ(column(id, "errors->0->>'error'"),
            "lease expired: worker dead-node/default stopped renewing it");
  // The dead worker comes back and reports: refused, nothing changes.
  tasks::task_outcome late;
  late.id = id;
  late.lease_token = stale[0].lease_token;
  late.succeeded = true;
  late.result_json = R"({"late":true})";
  pqxx::work tx{*conn};
  auto result = storage::complete_tasks(tx, {late}, clock.now());
  tx.commit();
  EXPECT_EQ(result.refused, std::vector<int64_t>{id});
  EXPECT_EQ(column(id, "result::text"), R"({"ok": true})");
}

TEST_F(task_queue_test, cancelling_a_running_task_stops_it_cooperatively) {
  start();
  auto id = enqueue(named("engram.sleep", R"({"ms":3600000})"));
  ASSERT_TRUE(wait_for_status(id, "running"));
  ASSERT_TRUE(wait_for_running(1));
  {
    pqxx::work tx{*conn};
    EXPECT_EQ(storage::cancel_task(tx, id, clock.now()), "cancelling");
    tx.commit();
  }
  clock.advance(10s); // the next heartbeat brings the news
  ASSERT_TRUE(wait_for_status(id, "cancelled"));
  EXPECT_EQ(column(id, "last_error"), "cancelled by an operator while running");
}

TEST_F(task_queue_test, a_handler_can_enqueue_its_successor_atomically) {
  registry.add("test.step", nullptr, [](tasks::task_context& ctx) -> json::value {
    auto left = ctx.args().integer("left", 0, 100);
    if (left > 0) {
      tasks::enqueue_request next;
      next.name = "test.step";
      next.args_json = json::serialize(json::object{{"left", left - 1}});
      ctx.enqueue_on_success(std::move(next));
    }
    return json::object{{"left", left}};
  });
  start();
  enqueue(named("test.step", R"({"left":4})"));
  EXPECT_TRUE(wait_for("SELECT count(*) FILTER (WHERE status = 'succeeded') "
                       "|| '/' || count(*) FROM engram.tasks",
                       "5/5"));
}

TEST_F(task_queue_test, a_shutdown_hands_back_what_it_holds_without_counting_attempts) {
  start("default=1");
  auto sleeper = enqueue(named("engram.sleep", R"({"ms":3600000})"));
  ASSERT_TRUE(wait_for_status(sleeper, "running"));
  auto waiting = enqueue(named("engram.noop"));
  ASSERT_TRUE(wait_for_status(waiting, "running")) << "prefetched";
  caf::scoped_actor self{sys};
  self->monitor(system_handle);
  self->send_exit(system_handle, caf::exit_reason::user_shutdown);
  // The drain waits drain_timeout (2 s on the clock) for running attempts,
  // then stops them and hands everything back.
  bool down = false;
  for (int i = 0; i < 200 && !down; ++i) {
    self->receive([&](caf::down_msg&) { down = true; },
                  caf::after(50ms) >> [&] { clock.advance(500ms); });
  }
  ASSERT_TRUE(down);
  system_handle = nullptr;
  EXPECT_EQ(column(sleeper, "status || attempts || jsonb_array_length(errors)"),
            "queued00")
    << "stopped by the shutdown: handed back, no attempt or error counted";
  EXPECT_EQ(column(waiting, "status || attempts"), "queued0");
}
