#include "storage/task_repository.hpp"

#include <atomic>
#include <thread>

#include <pqxx/pqxx>

#include "runtime/clock.hpp"
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
    auto result = storage::enqueue_task(tx, req, clock.now());
    tx.commit();
    return result;
  }

  std::vector<tasks::claimed_task> claim(int64_t limit,
                                         std::chrono::milliseconds lease = 30s,
                                         const std::string& queue = "default") {
    pqxx::work tx{*conn};
    auto result = storage::claim_tasks(tx, queue, "worker-1", limit, lease,
                                       clock.now());
    tx.commit();
    return result;
  }

  bool finish(const tasks::task_outcome& outcome) {
    return finish_all({outcome}).accepted == 1;
  }

  tasks::completion_result finish_all(std::vector<tasks::task_outcome> outcomes) {
    pqxx::work tx{*conn};
    auto result = storage::complete_tasks(tx, outcomes, clock.now());
    tx.commit();
    return result;
  }

  /// complete_and_claim outside a transaction block, as a task store runs
  /// a single-statement completion.
  tasks::completion_result complete_autocommit(const tasks::task_outcome& o,
                                               const tasks::claim_tasks& want) {
    pqxx::nontransaction tx{*conn};
    return storage::complete_and_claim(tx, {o}, want, clock.now());
  }

  std::vector<int64_t> reclaim() {
    pqxx::work tx{*conn};
    auto result = storage::reclaim_expired(tx, 100, clock.now());
    tx.commit();
    return result;
  }

  tasks::renewal_result renew(std::vector<tasks::lease_ref> leases) {
    pqxx::work tx{*conn};
    auto result = storage::renew_leases(tx, leases, 30s, clock.now());
    tx.commit();
    return result;
  }

  static tasks::lease_ref lease_of(const tasks::claimed_task& t) {
    return {t.id, t.lease_token};
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
  /// Time as the repository sees it; tests move it instead of sleeping.
  manual_clock clock{from_epoch_us(1'700'000'000'000'000)};
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
  auto mine = storage::claim_tasks(tx1, "default", "w1", 1, 30s, clock.now());
  // tx1 has not committed: a second worker neither blocks nor gets its row.
  pqxx::work tx2{other};
  auto theirs = storage::claim_tasks(tx2, "default", "w2", 10, 30s,
                                     clock.now());
  ASSERT_EQ(mine.size(), 1u);
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_NE(mine[0].id, theirs[0].id);
  tx2.commit();
  tx1.commit();
}

TEST_F(task_repository_test, only_the_current_lease_holder_can_complete) {
  auto id = enqueue(named("engram.sleep")).id;
  auto stale = claim(1, 1000ms);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_TRUE(reclaim().empty()) << "the lease has not expired yet";
  clock.advance(1001ms);
  EXPECT_EQ(reclaim(), std::vector<int64_t>{id});
  EXPECT_EQ(status_of(id), "queued");
  EXPECT_EQ(query("SELECT last_error FROM engram.tasks"),
            "lease expired: worker worker-1 stopped renewing it");
  auto fresh = claim(1);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].attempts, 2);
  EXPECT_NE(fresh[0].lease_token, stale[0].lease_token);
  // The worker that lost its lease comes back late: refused, nothing changes.
  EXPECT_FALSE(finish(succeeded(stale[0], R"({"late":true})")));
  EXPECT_EQ(renew({lease_of(stale[0])}).lost, std::vector<int64_t>{id});
  auto renewed = renew({lease_of(fresh[0])});
  EXPECT_TRUE(renewed.lost.empty());
  EXPECT_TRUE(renewed.cancel_requested.empty());
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
  clock.advance(59s);
  EXPECT_TRUE(claim(1).empty()) << "not due before its backoff";
  clock.advance(1s);
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
  ASSERT_EQ(claim(1, 1000ms).size(), 1u);
  clock.advance(2s);
  EXPECT_EQ(reclaim(), std::vector<int64_t>{id});
  EXPECT_EQ(status_of(id), "dead");
}

TEST_F(task_repository_test, cancel_is_immediate_when_queued_and_cooperative_when_running) {
  auto queued = enqueue(named("a")).id;
  auto running = enqueue(named("b", 1)).id;
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed[0].id, running);
  {
    pqxx::work tx{*conn};
    EXPECT_EQ(storage::cancel_task(tx, queued, clock.now()), "cancelled");
    EXPECT_EQ(storage::cancel_task(tx, running, clock.now()), "cancelling");
    EXPECT_EQ(storage::cancel_task(tx, queued, clock.now()), "cancelled");
    EXPECT_EQ(storage::cancel_task(tx, 999999, clock.now()), "");
    tx.commit();
  }
  EXPECT_EQ(renew({lease_of(claimed[0])}).cancel_requested,
            std::vector<int64_t>{running})
    << "the worker learns of the cancel at its heartbeat";
  EXPECT_EQ(status_of(queued), "cancelled");
  EXPECT_EQ(status_of(running), "running");
  ASSERT_TRUE(finish(succeeded(claimed[0])));
  pqxx::work after{*conn};
  EXPECT_EQ(storage::cancel_task(after, running, clock.now()), "succeeded");
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
    (void) storage::enqueue_task(tx, req, clock.now());
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

TEST_F(task_repository_test, a_bulk_enqueue_answers_in_request_order) {
  auto keyed = named("k");
  keyed.unique_key = "same";
  std::vector<tasks::enqueue_request> batch{named("a"), keyed, named("b"),
                                            keyed};
  pqxx::work tx{*conn};
  auto results = storage::enqueue_tasks(tx, batch, clock.now());
  tx.commit();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].created);
  EXPECT_TRUE(results[1].created);
  EXPECT_TRUE(results[2].created);
  EXPECT_FALSE(results[3].created) << "the batch's second 'same' key";
  EXPECT_EQ(results[3].id, results[1].id);
  EXPECT_EQ(query("SELECT name FROM engram.tasks WHERE id = "
                  + std::to_string(results[2].id)),
            "b");
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks"), "3");
}

TEST_F(task_repository_test, a_failed_bulk_enqueue_stores_nothing) {
  auto bad = named("a");
  bad.args_json = "{not json";
  pqxx::work tx{*conn};
  EXPECT_ANY_THROW(
    (void) storage::enqueue_tasks(tx, {named("ok"), bad}, clock.now()));
  tx.abort();
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks"), "0");
}

TEST_F(task_repository_test, a_batch_completion_applies_each_outcome_and_its_followups) {
  for (auto name : {"a", "b", "c", "d"})
    enqueue(named(name));
  auto claimed = claim(4);
  ASSERT_EQ(claimed.size(), 4u);
  auto ok = succeeded(claimed[0], R"({"n":1})");
  ok.followups.push_back(named("next"));
  auto lost = succeeded(claimed[1]);
  lost.lease_token = "00000000-0000-0000-0000-000000000000";
  lost.followups.push_back(named("never"));
  auto cancelled = failed(claimed[2], "stopped by an operator");
  cancelled.cancelled = true;
  auto retried = failed(claimed[3], "boom", 1000);
  auto result = finish_all({ok, lost, cancelled, retried});
  EXPECT_EQ(result.accepted, 3);
  EXPECT_EQ(result.refused, std::vector<int64_t>{claimed[1].id});
  EXPECT_EQ(status_of(claimed[0].id), "succeeded");
  EXPECT_EQ(status_of(claimed[1].id), "running") << "refused: unchanged";
  EXPECT_EQ(status_of(claimed[2].id), "cancelled");
  EXPECT_EQ(status_of(claimed[3].id), "queued");
  EXPECT_EQ(query("SELECT string_agg(name, ',') FROM engram.tasks "
                  "WHERE name IN ('next', 'never')"),
            "next")
    << "only an accepted outcome's followup is enqueued";
}

TEST_F(task_repository_test, a_released_task_is_due_at_once_without_losing_an_attempt) {
  auto id = enqueue(named("a")).id;
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  pqxx::work tx{*conn};
  EXPECT_EQ(storage::release_tasks(tx, {lease_of(claimed[0])}, clock.now()), 1);
  EXPECT_EQ(storage::release_tasks(tx, {lease_of(claimed[0])}, clock.now()), 0)
    << "a lease is released once";
  tx.commit();
  EXPECT_EQ(status_of(id), "queued");
  auto again = claim(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempts, 1);
}

TEST_F(task_repository_test, retry_requeues_dead_tasks_only) {
  auto req = named("engram.fail");
  req.max_retries = 0;
  req.unique_key = "k";
  auto id = enqueue(req).id;
  auto claimed = claim(1);
  ASSERT_TRUE(finish(failed(claimed[0], "boom")));
  ASSERT_EQ(status_of(id), "dead");
  auto retry = [&](int64_t task) {
    pqxx::work tx{*conn};
    auto result = storage::retry_task(tx, task, clock.now());
    tx.commit();
    return result;
  };
  auto holder = enqueue(req);
  ASSERT_TRUE(holder.created);
  EXPECT_EQ(retry(id), "blocked") << "another task holds the unique key";
  EXPECT_EQ(status_of(id), "dead");
  {
    pqxx::work tx{*conn};
    (void) storage::cancel_task(tx, holder.id, clock.now());
    tx.commit();
  }
  EXPECT_EQ(retry(id), "queued");
  EXPECT_EQ(retry(id), "queued") << "already queued: reported, unchanged";
  EXPECT_EQ(retry(424242), "");
  auto again = claim(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempts, 1);
  EXPECT_EQ(query("SELECT jsonb_array_length(errors) FROM engram.tasks "
                  "WHERE id = " + std::to_string(id)),
            "1")
    << "the error history stays";
}

TEST_F(task_repository_test, pages_stay_stable_while_tasks_are_added) {
  for (int i = 0; i < 5; ++i)
    enqueue(named("t" + std::to_string(i)));
  tasks::list_tasks filter;
  filter.limit = 2;
  pqxx::work tx{*conn};
  auto first = storage::list_tasks(tx, filter);
  ASSERT_EQ(first.tasks.size(), 2u);
  EXPECT_EQ(first.tasks[0].name, "t4");
  (void) storage::enqueue_task(tx, named("new"), clock.now());
  filter.before_id = first.next_before_id;
  auto second = storage::list_tasks(tx, filter);
  ASSERT_EQ(second.tasks.size(), 2u);
  EXPECT_EQ(second.tasks[0].name, "t2");
  filter.before_id = second.next_before_id;
  auto third = storage::list_tasks(tx, filter);
  ASSERT_EQ(third.tasks.size(), 1u);
  EXPECT_EQ(third.tasks[0].name, "t0");
  EXPECT_EQ(third.next_before_id, 0);
  filter = {};
  filter.name = "new";
  EXPECT_EQ(storage::list_tasks(tx, filter).tasks.size(), 1u);
  auto info = storage::get_task(tx, first.tasks[0].id);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, "queued");
  EXPECT_EQ(info->created_at_us, to_epoch_us(clock.now()));
  EXPECT_FALSE(storage::get_task(tx, 987654));
}

TEST_F(task_repository_test, queue_depths_count_due_work_per_queue) {
  enqueue(named("a"));
  clock.advance(3s);
  auto later = named("b");
  later.delay_ms = 60000;
  enqueue(later);
  auto other = named("c");
  other.queue = "memory";
  enqueue(other);
  ASSERT_EQ(claim(1, 30s, "memory").size(), 1u);
  pqxx::work tx{*conn};
  auto depths = storage::queue_depths(tx, clock.now());
  ASSERT_EQ(depths.size(), 2u);
  EXPECT_EQ(depths[0].queue, "default");
  EXPECT_EQ(depths[0].queued, 2);
  EXPECT_EQ(depths[0].oldest_age_ms, 3000);
  EXPECT_EQ(depths[1].queue, "memory");
  EXPECT_EQ(depths[1].running, 1);
}

TEST_F(task_repository_test, concurrent_enqueues_of_one_unique_key_create_one_task) {
  constexpr int producers = 8;
  std::vector<tasks::enqueue_result> results(producers);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 0; i < producers; ++i)
    threads.emplace_back([&, i] {
      pqxx::connection c{db};
      auto req = named("cleanup.expire_tokens");
      req.unique_key = "cleanup.expire_tokens@2024-03-10T03:00:00Z";
      ready.fetch_add(1);
      while (ready.load() < producers) {
      }
      pqxx::work tx{c};
      results[static_cast<size_t>(i)] = storage::enqueue_task(tx, req, clock.now());
      tx.commit();
    });
  for (auto& t : threads)
    t.join();
  int created = 0;
  for (const auto& r : results) {
    created += r.created ? 1 : 0;
    EXPECT_EQ(r.id, results[0].id) << "every producer learns the one task's id";
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks"), "1");
}

TEST_F(task_repository_test, a_completion_that_claims_takes_its_own_queues_due_followups_at_once) {
  enqueue(named("step"));
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  auto done = succeeded(claimed[0]);
  done.followups.push_back(named("next"));
  auto elsewhere = named("other-queue");
  elsewhere.queue = "memory";
  done.followups.push_back(elsewhere);
  auto later = named("later");
  later.delay_ms = 60000;
  done.followups.push_back(later);
  tasks::claim_tasks want{"default", "worker-1", 10, 30000, to_epoch_us(clock.now())};
  pqxx::work tx{*conn};
  auto result = storage::complete_and_claim(tx, {done}, want, clock.now());
  tx.commit();
  EXPECT_EQ(result.accepted, 1);
  ASSERT_EQ(result.claimed.size(), 1u);
  EXPECT_EQ(result.claimed[0].name, "next");
  EXPECT_EQ(result.claimed[0].attempts, 1);
  EXPECT_FALSE(result.claimed[0].lease_token.empty());
  EXPECT_EQ(status_of(result.claimed[0].id), "running");
  EXPECT_EQ(query("SELECT locked_by FROM engram.tasks WHERE name = 'next'"),
            "worker-1");
  EXPECT_EQ(query("SELECT status FROM engram.tasks WHERE name = 'other-queue'"),
            "queued");
  EXPECT_EQ(query("SELECT status FROM engram.tasks WHERE name = 'later'"),
            "queued");
  // The claimed followup is fenced like any claim.
  auto next = succeeded(result.claimed[0]);
  EXPECT_TRUE(finish(next));
  EXPECT_EQ(status_of(result.claimed[0].id), "succeeded");
}

TEST_F(task_repository_test, a_single_success_and_its_followup_commit_as_one_statement) {
  enqueue(named("step"));
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  auto done = succeeded(claimed[0], R"({"n":1})");
  done.followups.push_back(named("next"));
  tasks::claim_tasks want{"default", "worker-1", 4, 30000, to_epoch_us(clock.now())};
  ASSERT_TRUE(storage::single_statement_completion({done}, want, clock.now()));
  auto result = complete_autocommit(done, want);
  EXPECT_EQ(result.accepted, 1);
  EXPECT_TRUE(result.refused.empty());
  ASSERT_EQ(result.claimed.size(), 1u);
  EXPECT_EQ(result.claimed[0].name, "next");
  EXPECT_EQ(result.claimed[0].attempts, 1);
  EXPECT_EQ(result.claimed[0].due_us, to_epoch_us(clock.now()));
  EXPECT_EQ(status_of(claimed[0].id), "succeeded");
  EXPECT_EQ(query("SELECT result::text FROM engram.tasks WHERE id = "
                  + std::to_string(claimed[0].id)),
            R"({"n": 1})");
  EXPECT_EQ(status_of(result.claimed[0].id), "running");
  // A second completion with the old lease is refused and creates nothing.
  auto again = complete_autocommit(done, want);
  EXPECT_EQ(again.accepted, 0);
  EXPECT_EQ(again.refused, std::vector<int64_t>{claimed[0].id});
  EXPECT_TRUE(again.claimed.empty());
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks WHERE name = 'next'"), "1");
  // The claimed followup is fenced like any claim.
  EXPECT_TRUE(finish(succeeded(result.claimed[0])));
}

TEST_F(task_repository_test, a_single_success_claims_in_the_same_statement) {
  enqueue(named("first"));
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  enqueue(named("a", 1));
  enqueue(named("b", 5));
  enqueue(named("c", 3));
  auto later = named("later");
  later.delay_ms = 60000;
  enqueue(later);
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
  tasks::claim_tasks want{"default", "worker-1", 2, 30000, to_epoch_us(clock.now())};
  auto done = succeeded(claimed[0]);
  ASSERT_TRUE(storage::single_statement_completion({done}, want, clock.now()));
  auto result = complete_autocommit(done, want);
  EXPECT_EQ(result.accepted, 1);
  ASSERT_EQ(result.claimed.size(), 2u) << "the limit";
  listener_conn.await_notification(5, 0);
  EXPECT_EQ(listener.payloads, std::vector<std::string>{"default"})
    << "a full claim may leave work behind: other nodes are woken";
  EXPECT_EQ(result.claimed[0].name, "b") << "claim order: priority first";
  EXPECT_EQ(result.claimed[1].name, "c");
  EXPECT_EQ(status_of(claimed[0].id), "succeeded");
  EXPECT_EQ(query("SELECT status FROM engram.tasks WHERE name = 'a'"), "queued");
  EXPECT_EQ(query("SELECT status FROM engram.tasks WHERE name = 'later'"),
            "queued");
  // Without room, it only records the success.
  auto next = succeeded(result.claimed[0]);
  want.limit = 0;
  auto quiet = complete_autocommit(next, want);
  EXPECT_EQ(quiet.accepted, 1);
  EXPECT_TRUE(quiet.claimed.empty());
  EXPECT_EQ(query("SELECT status FROM engram.tasks WHERE name = 'a'"), "queued");
  listener_conn.await_notification(0, 200000);
  EXPECT_EQ(listener.payloads.size(), 1u) << "no claim, no wake";
}

TEST_F(task_repository_test, a_followup_whose_key_is_taken_leaves_room_for_a_claim) {
  auto holder = named("holder");
  holder.unique_key = "k";
  enqueue(named("step", 9));
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  enqueue(holder);
  auto done = succeeded(claimed[0]);
  auto next = named("next");
  next.unique_key = "k";
  done.followups.push_back(next);
  tasks::claim_tasks want{"default", "worker-1", 4, 30000, to_epoch_us(clock.now())};
  ASSERT_TRUE(storage::single_statement_completion({done}, want, clock.now()));
  pqxx::work tx{*conn};
  auto result = storage::complete_and_claim(tx, {done}, want, clock.now());
  tx.commit();
  EXPECT_EQ(result.accepted, 1);
  ASSERT_EQ(result.claimed.size(), 1u);
  EXPECT_EQ(result.claimed[0].name, "holder") << "claimed after the refusal";
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks WHERE name = 'next'"), "0");
}

TEST_F(task_repository_test, only_single_successes_complete_in_one_statement) {
  enqueue(named("step"));
  auto claimed = claim(1);
  ASSERT_EQ(claimed.size(), 1u);
  tasks::claim_tasks want{"default", "worker-1", 4, 30000, to_epoch_us(clock.now())};
  auto ok = succeeded(claimed[0]);
  EXPECT_TRUE(storage::single_statement_completion({ok}, want, clock.now()));
  EXPECT_FALSE(storage::single_statement_completion({ok, ok}, want, clock.now()));
  EXPECT_FALSE(storage::single_statement_completion({failed(claimed[0], "x")},
                                                    want, clock.now()));
  auto with = [&](tasks::enqueue_request f) {
    auto o = ok;
    o.followups.push_back(std::move(f));
    return o;
  };
  EXPECT_TRUE(storage::single_statement_completion({with(named("n"))}, want,
                                                   clock.now()));
  auto elsewhere = named("n");
  elsewhere.queue = "memory";
  EXPECT_FALSE(storage::single_statement_completion({with(elsewhere)}, want,
                                                    clock.now()));
  auto later = named("n");
  later.delay_ms = 1;
  EXPECT_FALSE(storage::single_statement_completion({with(later)}, want,
                                                    clock.now()));
  auto two = with(named("n"));
  two.followups.push_back(named("m"));
  EXPECT_FALSE(storage::single_statement_completion({two}, want, clock.now()));
  auto no_room = want;
  no_room.limit = 0;
  EXPECT_FALSE(storage::single_statement_completion({with(named("n"))}, no_room,
                                                    clock.now()));
  EXPECT_TRUE(storage::single_statement_completion({ok}, no_room, clock.now()));
}

TEST_F(task_repository_test, finished_tasks_are_purged_after_their_retention) {
  auto make = [&](const std::string& name, bool fail) {
    auto req = named(name);
    req.max_retries = 0;
    enqueue(req);
    auto claimed = claim(1);
    EXPECT_EQ(claimed.size(), 1u);
    EXPECT_TRUE(finish(fail ? failed(claimed[0], "boom") : succeeded(claimed[0])));
    return claimed[0].id;
  };
  auto old_ok = make("old-ok", false);
  auto old_dead = make("old-dead", true);
  clock.advance(std::chrono::hours{24 * 8});
  auto new_ok = make("new-ok", false);
  auto queued = enqueue(named("still-queued")).id;
  auto purge = [&] {
    pqxx::work tx{*conn};
    auto n = storage::purge_finished_tasks(tx, clock.now(), 7, 30, 100);
    tx.commit();
    return n;
  };
  EXPECT_EQ(purge(), 1) << "only the succeeded task older than 7 days";
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks WHERE id = "
                  + std::to_string(old_ok)),
            "0");
  clock.advance(std::chrono::hours{24 * 23});
  EXPECT_EQ(purge(), 2) << "the dead one after 30 days, the newer success too";
  EXPECT_EQ(query("SELECT count(*) FROM engram.tasks"), "1");
  EXPECT_EQ(status_of(queued), "queued") << "unfinished tasks are never purged";
  (void) old_dead;
  (void) new_ok;
}
