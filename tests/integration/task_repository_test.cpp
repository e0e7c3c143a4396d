#include "storage/task_repository.hpp"

#include <thread>

#include <pqxx/pqxx>

#include "storage/migration.hpp"
#include "tests/support/postgres_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

class task_repository_test : public ::testing::Test {
protected:
  void SetUp() override {
    db = test::shared_postgres().create_database(
      test::database_name_for_current_test());
    ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
    conn = std::make_unique<pqxx::connection>(db);
  }

  tasks::enqueue_result enqueue(tasks::enqueue_request req) {
    pqxx::work tx{*conn};
    auto result = storage::enqueue_task(tx, req);
    tx.commit();
    return result;
  }

  std::vector<tasks::claimed_task> claim(int64_t limit,
                                         std::chrono::milliseconds lease = 30s,
                                         const std::string& queue = "default") {
    pqxx::work tx{*conn};
    auto result = storage::claim_tasks(tx, queue, "worker-1", limit, lease);
    tx.commit();
    return result;
  }

  bool finish(const tasks::task_outcome& outcome) {
    pqxx::work tx{*conn};
    auto result = storage::apply_outcome(tx, outcome);
    tx.commit();
    return result;
  }

  std::string query(const std::string& sql) {
    pqxx::nontransaction tx{*conn};
    auto row = tx.exec1(sql);
    return row[0].is_null() ? "NULL" : row[0].as<std::string>();
  }

  std::string status_of(int64_t id) {
    return query("SELECT status FROM engram.tasks WHERE id = "
                 + std::to_string(id));
  }

  static tasks::enqueue_request named(std::string name, int32_t priority = 0) {
    tasks::enqueue_request req;
    req.name = std::move(name);
    req.priority = priority;
    return req;
  }

  static tasks::task_outcome succeeded(const tasks::claimed_task& t,
                                       std::string result = "{}") {
    tasks::task_outcome o;
    o.id = t.id;
    o.lease_token = t.lease_token;
    o.succeeded = true;
    o.result_json = std::move(result);
    return o;
  }

  static tasks::task_outcome failed(const tasks::claimed_task& t,
                                    std::string error, int64_t delay_ms = 0,
                                    bool permanent = false) {
    tasks::task_outcome o;
    o.id = t.id;
    o.lease_token = t.lease_token;
    o.error = std::move(error);
    o.retry_delay_ms = delay_ms;
    o.permanent = permanent;
    return o;
  }

  std::string db;
  std::unique_ptr<pqxx::connection> conn;
};

} // namespace

TEST_F(task_repository_test, claims_due_tasks_by_priority_then_age) {
  auto low = enqueue(named("a")).id;
  auto high = enqueue(named("b", 5)).id;
  auto later = named("c", 9);
  later.delay_ms = 60000; // not due for a minute
  enqueue(later);
  auto first = claim(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].id, high);
  EXPECT_EQ(first[0].attempts, 1);
  EXPECT_FALSE(first[0].lease_token.empty());
  auto rest = claim(10);
  ASSERT_EQ(rest.size(), 1u) << "the delayed task is not due yet";
  EXPECT_EQ(rest[0].id, low);
  EXPECT_EQ(status_of(low), "running");
}

TEST_F(task_repository_test, other_queues_are_not_claimed) {
  auto req = named("x");
  req.queue = "memory";
  enqueue(req);
  EXPECT_TRUE(claim(10).empty());
  EXPECT_EQ(claim(10, 30s, "memory").size(), 1u);
}

TEST_F(task_repository_test, a_unique_key_admits_one_queued_or_running_task) {
  auto req = named("cleanup.expire_tokens");
  req.unique_key = "cleanup.expire_tokens@2024-03-10T03:00:00Z";
  auto first = enqueue(req);
  auto second = enqueue(req);
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(first.id, second.id);
  // Still one while it runs.
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_FALSE(enqueue(req).created);
  // Once finished, the key is free again.
  ASSERT_TRUE(finish(succeeded(claimed[0])));
  auto third = enqueue(req);
  EXPECT_TRUE(third.created);
  EXPECT_NE(third.id, first.id);
}

TEST_F(task_repository_test, concurrent_claims_skip_locked_rows) {
  enqueue(named("a"));
  enqueue(named("b"));
  pqxx::connection other{db};
  pqxx::work tx1{*conn};
  auto mine = storage::claim_tasks(tx1, "default", "w1", 1, 30s);
  // tx1 has not committed: a second worker neither blocks nor gets its row.
  pqxx::work tx2{other};
  auto theirs = storage::claim_tasks(tx2, "default", "w2", 10, 30s);
  ASSERT_EQ(mine.size(), 1u);
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_NE(mine[0].id, theirs[0].id);
  tx2.commit();
  tx1.commit();
}

TEST_F(task_repository_test, only_the_current_lease_holder_can_complete) {
  auto id = enqueue(named("engram.sleep")).id;
  auto stale = claim(1, 1ms);
  ASSERT_EQ(stale.size(), 1u);
  std::this_thread::sleep_for(20ms);
  {
    pqxx::work tx{*conn};
    EXPECT_EQ(storage::reclaim_expired(tx, 100), std::vector<int64_t>{id});
    tx.commit();
  }
  EXPECT_EQ(status_of(id), "queued");
  EXPECT_EQ(query("SELECT last_error FROM engram.tasks"),
            "lease expired: worker worker-1 stopped renewing it");
  auto fresh = claim(1);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].attempts, 2);
  EXPECT_NE(fresh[0].lease_token, stale[0].lease_token);
  // The worker that lost its lease comes back late: refused, nothing changes.
  EXPECT_FALSE(finish(succeeded(stale[0], R"({"late":true})")));
  bool cancel = true;
  pqxx::work renew{*conn};
  EXPECT_FALSE(storage::renew_lease(renew, id, stale[0].lease_token, 30s, cancel));
  EXPECT_TRUE(storage::renew_lease(renew, id, fresh[0].lease_token, 30s, cancel));
  EXPECT_FALSE(cancel);
  renew.commit();
  EXPECT_TRUE(finish(succeeded(fresh[0], R"({"n":1})")));
  EXPECT_EQ(status_of(id), "succeeded");
  EXPECT_EQ(query("SELECT result::text FROM engram.tasks"), R"({"n": 1})");
}

TEST_F(task_repository_test, failures_retry_with_backoff_then_die_with_every_error) {
  auto req = named("engram.fail");
  req.max_retries = 1; // two attempts in all
  auto id = enqueue(req).id;
  auto first = claim(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(finish(failed(first[0], "boom 1", 60000)));
  EXPECT_EQ(status_of(id), "queued");
  EXPECT_EQ(query("SELECT run_at > now() + interval '50 seconds' "
                  "FROM engram.tasks"),
            "t");
  EXPECT_TRUE(claim(1).empty()) << "not due before its backoff";
  ASSERT_EQ(query("UPDATE engram.tasks SET run_at = now() RETURNING 1"), "1");
  auto second = claim(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempts, 2);
  ASSERT_TRUE(finish(failed(second[0], "boom 2")));
  EXPECT_EQ(status_of(id), "dead");
  EXPECT_EQ(query("SELECT jsonb_path_query_array(errors, '$[*].error')::text "
                  "FROM engram.tasks"),
            R"(["boom 1", "boom 2"])");
  EXPECT_EQ(query("SELECT finished_at IS NOT NULL FROM engram.tasks"), "t");
}

TEST_F(task_repository_test, a_permanent_failure_is_dead_at_once) {
  auto id = enqueue(named("memory.extract")).id;
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(
    finish(failed(claimed[0], "args: conversation_id is required", 0, true)));
  EXPECT_EQ(status_of(id), "dead");
}

TEST_F(task_repository_test, an_expired_last_attempt_is_dead) {
  auto req = named("engram.sleep");
  req.max_retries = 0;
  auto id = enqueue(req).id;
  ASSERT_EQ(claim(1, 1ms).size(), 1u);
  std::this_thread::sleep_for(20ms);
  pqxx::work tx{*conn};
  EXPECT_EQ(storage::reclaim_expired(tx, 100), std::vector<int64_t>{id});
  tx.commit();
  EXPECT_EQ(status_of(id), "dead");
}

TEST_F(task_repository_test, cancel_is_immediate_when_queued_and_cooperative_when_running) {
  auto queued = enqueue(named("a")).id;
  auto running = enqueue(named("b", 1)).id;
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed[0].id, running);
  pqxx::work tx{*conn};
  EXPECT_EQ(storage::cancel_task(tx, queued), "cancelled");
  EXPECT_EQ(storage::cancel_task(tx, running), "cancelling");
  EXPECT_EQ(storage::cancel_task(tx, queued), "cancelled");
  EXPECT_EQ(storage::cancel_task(tx, 999999), "");
  bool cancel = false;
  EXPECT_TRUE(storage::renew_lease(tx, running, claimed[0].lease_token, 30s,
                                   cancel));
  EXPECT_TRUE(cancel) << "the worker learns of the cancel at its heartbeat";
  tx.commit();
  EXPECT_EQ(status_of(queued), "cancelled");
  EXPECT_EQ(status_of(running), "running");
  ASSERT_TRUE(finish(succeeded(claimed[0])));
  pqxx::work after{*conn};
  EXPECT_EQ(storage::cancel_task(after, running), "succeeded");
}

TEST_F(task_repository_test, enqueue_notifies_listeners_at_commit_only) {
  struct receiver : pqxx::notification_receiver {
    explicit receiver(pqxx::connection_base& c)
      : pqxx::notification_receiver(c, "engram_tasks") {
    }
    void operator()(const std::string& payload, int) override {
      payloads.push_back(payload);
    }
    std::vector<std::string> payloads;
  };
  pqxx::connection listener_conn{db};
  receiver listener{listener_conn};
  {
    pqxx::work tx{*conn};
    auto req = named("a");
    req.queue = "memory";
    (void) storage::enqueue_task(tx, req);
    tx.abort();
  }
  listener_conn.await_notification(0, 200000);
  EXPECT_TRUE(listener.payloads.empty()) << "a rolled-back enqueue wakes no one";
  auto req = named("a");
  req.queue = "memory";
  enqueue(req);
  listener_conn.await_notification(5, 0);
  EXPECT_EQ(listener.payloads, std::vector<std::string>{"memory"});
}
