// Workflow chains' storage against a real PostgreSQL (DESIGN §7): a run is
// created together with its first step's durable task, and an idempotency
// key or a live branch name returns the existing run (also when several
// connections create it at once); begin_step records a running attempt,
// interrupts one a crash left running and refuses a step the run has moved
// past; finish_step records the outcome with its artifacts and, in the same
// transaction, the next task or the run's end; a finish for an attempt that
// is no longer running writes nothing; cancel, retry, credential audits,
// the stdin chain and the cursor-paged list. Times are fixed instants.

#include "storage/workflow_repository.hpp"

#include <atomic>
#include <barrier>
#include <chrono>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "messages/errc.hpp"
#include "messages/storage.hpp"
#include "runtime/uuid.hpp"
#include "storage/storage_actors.hpp"
#include "tests/integration/platform_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using workflows::run_record;
using workflows::start_outcome;
using workflows::step_start;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
constexpr auto sha_a
  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
constexpr auto sha_b
  = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

class workflow_repository_test : public test::platform_test {
protected:
  static int64_t us(wall_time t) { return to_epoch_us(t); }

  /// Runs `f(tx)` (returning caf::expected) on `c` and commits only on
  /// success, as the storage actor does.
  template <class F>
  auto checked_on(pqxx::connection& c, F&& f) {
    pqxx::work tx{c};
    auto result = f(tx);
    if (result)
      tx.commit();
    else
      tx.abort();
    return result;
  }

  template <class F>
  auto checked(F&& f) {
    return checked_on(*conn, std::forward<F>(f));
  }

  static tasks::enqueue_request step_task() {
    tasks::enqueue_request t;
    t.name = "workflow.step";
    t.queue = "workflows";
    t.priority = 5;
    t.max_retries = 0;
    t.soft_time_limit_ms = 60000;
    t.time_limit_ms = 90000;
    return t;
  }

  static workflows::create_run
  run_request(std::string key = {}, std::string branch = {},
              std::vector<std::string> steps = {"discovery", "submit",
                                                "publish"},
              std::string workflow = "speckit") {
    workflows::create_run req;
    req.id = random_uuid();
    req.workflow = std::move(workflow);
    req.idempotency_key = std::move(key);
    req.branch_name = std::move(branch);
    req.input_json = R"({"feature":"login"})";
    req.steps = std::move(steps);
    req.first_task = step_task();
    req.now_us = us(noon());
    return req;
  }

  caf::expected<workflows::create_run_result>
  create(const workflows::create_run& req) {
    return checked([&](auto& tx) {
      return storage::create_run(tx, req, from_epoch_us(req.now_us));
    });
  }

  run_record created(workflows::create_run req = run_request()) {
    auto result = create(req);
    EXPECT_TRUE(result) << describe(result.error());
    EXPECT_TRUE(result && result->created);
    return result ? result->run : run_record{};
  }

  caf::expected<step_start>
  begin(const run_record& run, int32_t index, int32_t run_attempt = 1,
        int32_t try_number = 1, wall_time at = noon() + 1min,
        std::vector<workflows::credential_audit> audits = {}) {
    workflows::begin_step req;
    req.run_id = run.id;
    req.step_index = index;
    req.run_attempt = run_attempt;
    req.try_number = try_number;
    req.audits = std::move(audits);
    req.now_us = us(at);
    return checked([&](auto& tx) {
      return storage::begin_step(tx, req, at);
    });
  }

  step_start running(const run_record& run, int32_t index,
                     int32_t run_attempt = 1, int32_t try_number = 1,
                     wall_time at = noon() + 1min) {
    auto start = begin(run, index, run_attempt, try_number, at);
    EXPECT_TRUE(start) << describe(start.error());
    EXPECT_TRUE(start && start->outcome == start_outcome::run);
    return start ? *start : step_start{};
  }

  /// The task the chain would enqueue for `index`'s try `try_number`.
  static tasks::enqueue_request next_task(const run_record& run, int32_t index,
                                          int32_t run_attempt = 1,
                                          int32_t try_number = 1,
                                          int64_t delay_ms = 0) {
    auto t = step_task();
    t.args_json = storage::workflow_task_args("{}", run.id, index, run_attempt,
                                              try_number);
    t.unique_key = storage::workflow_task_key(run.id, run_attempt, index,
                                              try_number);
    t.delay_ms = delay_ms;
    return t;
  }

  static workflows::finish_step
  outcome(const run_record& run, const workflows::step_record& state,
          std::string status, wall_time at = noon() + 2min) {
    workflows::finish_step req;
    req.run_id = run.id;
    req.state_id = state.id;
    req.status = std::move(status);
    req.exit_code = req.status == "succeeded" ? 0 : 1;
    req.now_us = us(at);
    return req;
  }

  caf::expected<run_record> finish(const workflows::finish_step& req) {
    return checked([&](auto& tx) {
      return storage::finish_step(tx, req, from_epoch_us(req.now_us));
    });
  }

  run_record finished(const workflows::finish_step& req) {
    auto run = finish(req);
    EXPECT_TRUE(run) << describe(run.error());
    return run ? *run : run_record{};
  }

  caf::expected<run_record> cancel(const std::string& id,
                                   wall_time at = noon() + 5min) {
    workflows::cancel_run req{id, us(at)};
    return checked([&](auto& tx) { return storage::cancel_run(tx, req, at); });
  }

  caf::expected<run_record>
  retry(const std::string& id, std::string note = "fixed it",
        std::vector<workflows::credential_audit> audits = {},
        wall_time at = noon() + 10min) {
    workflows::retry_run req;
    req.run_id = id;
    req.note = std::move(note);
    req.task = step_task();
    req.audits = std::move(audits);
    req.now_us = us(at);
    return checked([&](auto& tx) { return storage::retry_run(tx, req, at); });
  }

  caf::expected<workflows::run_detail> get(const std::string& id) {
    return checked([&](auto& tx) { return storage::get_run(tx, id); });
  }

  caf::expected<workflows::run_page> list(std::string workflow,
                                          std::string status,
                                          int64_t before_seq, int32_t limit) {
    workflows::list_runs req{std::move(workflow), std::move(status),
                             before_seq, limit};
    return checked([&](auto& tx) { return storage::list_runs(tx, req); });
  }

  /// A run whose first step failed for good.
  run_record failed_run() {
    auto run = created();
    auto start = running(run, 0);
    auto req = outcome(run, start.state, "failed");
    req.error = "exit status 1";
    req.error_kind = workflows::failure::exit;
    auto done = finished(req);
    EXPECT_EQ(done.status, "failed");
    return done;
  }

  static run_record run_with_id(std::string id) {
    run_record r;
    r.id = std::move(id);
    return r;
  }

  static workflows::credential_audit audit(std::string credential,
                                           bool valid,
                                           std::string detail = "ok") {
    workflows::credential_audit a;
    a.credential = std::move(credential);
    a.kind = a.credential.starts_with("file:") ? "file" : "env";
    a.present = valid;
    a.valid = valid;
    a.detail = std::move(detail);
    return a;
  }

  int64_t tasks_with_key(const std::string& key) {
    return count("SELECT count(*) FROM engram.tasks WHERE unique_key = "
                 + quoted(key));
  }

  /// Every row of every table the repository writes, as text: equal before
  /// and after means nothing was written.
  std::string everything() {
    return query(
      "SELECT concat_ws(E'\\n', "
      " (SELECT string_agg(r::text, E'\\n' ORDER BY seq) "
      "    FROM engram.workflow_runs r),"
      " (SELECT string_agg(s::text, E'\\n' ORDER BY id) "
      "    FROM engram.workflow_task_states s),"
      " (SELECT string_agg(a::text, E'\\n' ORDER BY id) "
      "    FROM engram.workflow_artifacts a),"
      " (SELECT string_agg(c::text, E'\\n' ORDER BY id) "
      "    FROM engram.workflow_credential_audits c),"
      " (SELECT string_agg(t::text, E'\\n' ORDER BY id) FROM engram.tasks t))");
  }
};

// -- create ------------------------------------------------------------------------

TEST_F(workflow_repository_test, create_makes_a_pending_run_and_its_first_task) {
  auto req = run_request("key-1", "feature/login");
  auto result = create(req);
  ASSERT_TRUE(result) << describe(result.error());
  EXPECT_TRUE(result->created);
  const auto& run = result->run;
  EXPECT_EQ(run.id, req.id);
  EXPECT_EQ(run.workflow, "speckit");
  EXPECT_EQ(run.status, "pending");
  EXPECT_EQ(run.idempotency_key, "key-1");
  EXPECT_EQ(run.branch_name, "feature/login");
  EXPECT_EQ(json::parse(run.input_json), json::parse(req.input_json));
  EXPECT_EQ(run.steps, req.steps);
  EXPECT_EQ(run.current_step_index, 0);
  EXPECT_EQ(run.attempt, 1);
  EXPECT_EQ(run.created_at_us, us(noon()));
  EXPECT_EQ(run.updated_at_us, us(noon()));
  EXPECT_EQ(run.started_at_us, 0);
  EXPECT_EQ(run.finished_at_us, 0);
  EXPECT_GT(run.seq, 0);
  EXPECT_TRUE(run.error.empty());
  EXPECT_TRUE(run.output_json.empty());
  EXPECT_EQ(query("SELECT current_step FROM engram.workflow_runs WHERE id = "
                  + quoted(run.id)),
            "discovery");
  // The task: the caller's name, queue, priority, retries and limits; the
  // first try's args and unique key.
  auto key = "workflow:" + run.id + ":1:0:1";
  ASSERT_EQ(tasks_with_key(key), 1);
  auto where = " FROM engram.tasks WHERE unique_key = " + quoted(key);
  EXPECT_EQ(json::parse(query("SELECT args::text" + where)),
            json::parse(R"({"run_id":")" + run.id
                        + R"(","step_index":0,"run_attempt":1,"try":1})"));
  EXPECT_EQ(query("SELECT concat_ws('|', name, queue, status, priority, "
                  "max_retries, soft_time_limit_ms, time_limit_ms, "
                  "engram.to_us(run_at))"
                  + where),
            "workflow.step|workflows|queued|5|0|60000|90000|"
              + std::to_string(us(noon())));
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 1);
}

TEST_F(workflow_repository_test, an_idempotency_key_returns_the_same_run) {
  auto first = created(run_request("key-1"));
  auto again = run_request("key-1");
  again.input_json = R"({"other":true})";
  auto second = create(again);
  ASSERT_TRUE(second) << describe(second.error());
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->run.id, first.id);
  EXPECT_EQ(json::parse(second->run.input_json),
            json::parse(R"({"feature":"login"})"));
  EXPECT_EQ(count("SELECT count(*) FROM engram.workflow_runs"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 1);
  // Even once the run ended.
  ASSERT_TRUE(cancel(first.id));
  auto third = create(run_request("key-1"));
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->created);
  EXPECT_EQ(third->run.id, first.id);
  // The key belongs to one workflow; no key makes a new run every time.
  auto other = create(run_request("key-1", {}, {"a"}, "deploy"));
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->created);
  EXPECT_TRUE(created(run_request()).id != created(run_request()).id);
  // Repeating a request with the same id returns its run.
  auto req = run_request();
  auto made = created(req);
  auto repeated = create(req);
  ASSERT_TRUE(repeated);
  EXPECT_FALSE(repeated->created);
  EXPECT_EQ(repeated->run.id, made.id);
  auto moved = req;
  moved.workflow = "deploy";
  auto clash = create(moved);
  ASSERT_FALSE(clash);
  EXPECT_EQ(code_of(clash.error()), errc::conflict);
}

TEST_F(workflow_repository_test, a_live_branch_returns_its_run_a_cancelled_one_is_reused) {
  auto first = created(run_request({}, "feature/x"));
  auto second = create(run_request({}, "feature/x"));
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->run.id, first.id);
  // A key the branch's run does not have still finds the branch's run.
  auto keyed = create(run_request("new-key", "feature/x"));
  ASSERT_TRUE(keyed);
  EXPECT_FALSE(keyed->created);
  EXPECT_EQ(keyed->run.id, first.id);
  // Another workflow's branch of the same name is another run.
  auto other = create(run_request({}, "feature/x", {"a"}, "deploy"));
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->created);
  // A failed run holds the branch too; a cancelled one does not.
  ASSERT_TRUE(cancel(first.id));
  auto third = create(run_request({}, "feature/x"));
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->created);
  EXPECT_NE(third->run.id, first.id);
  EXPECT_EQ(third->run.branch_name, "feature/x");
  EXPECT_EQ(count("SELECT count(*) FROM engram.workflow_runs "
                  "WHERE branch_name = 'feature/x' AND workflow = 'speckit'"),
            2);
}

TEST_F(workflow_repository_test, concurrent_creations_with_one_key_make_one_run) {
  for (auto by_branch : {false, true}) {
    SCOPED_TRACE(by_branch ? "branch" : "idempotency key");
    constexpr int n = 8;
    std::vector<std::unique_ptr<pqxx::connection>> conns;
    for (int i = 0; i < n; ++i)
      conns.push_back(std::make_unique<pqxx::connection>(db));
    std::string key = by_branch ? "" : "same-key";
    std::string branch = by_branch ? "same-branch" : "";
    std::vector<caf::expected<workflows::create_run_result>> results(
      n, caf::expected<workflows::create_run_result>{caf::error{}});
    std::barrier start{n};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        auto req = run_request(key, branch);
        start.arrive_and_wait();
        try {
          results[i] = checked_on(*conns[i], [&](auto& tx) {
            return storage::create_run(tx, req, noon());
          });
        } catch (const std::exception& e) {
          results[i] = make_error(errc::unspecified, e.what());
        }
      });
    for (auto& t : threads)
      t.join();
    std::set<std::string> ids;
    int made = 0;
    for (auto& r : results) {
      ASSERT_TRUE(r) << describe(r.error());
      ids.insert(r->run.id);
      made += r->created ? 1 : 0;
    }
    EXPECT_EQ(made, 1);
    ASSERT_EQ(ids.size(), 1u);
    auto column = by_branch ? "branch_name = 'same-branch'"
                            : "idempotency_key = 'same-key'";
    EXPECT_EQ(count(std::string{"SELECT count(*) FROM engram.workflow_runs "
                                "WHERE "}
                    + column),
              1);
    EXPECT_EQ(tasks_with_key("workflow:" + *ids.begin() + ":1:0:1"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM engram.tasks WHERE args->>'run_id' "
                    "= "
                    + quoted(*ids.begin())),
              1);
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 2);
}

TEST_F(workflow_repository_test, create_refuses_malformed_requests_and_writes_nothing) {
  auto before = everything();
  auto expect_invalid = [&](workflows::create_run req, const char* what) {
    auto result = create(req);
    ASSERT_FALSE(result) << what;
    EXPECT_EQ(code_of(result.error()), errc::invalid_argument)
      << what << ": " << describe(result.error());
  };
  auto req = run_request();
  req.steps.clear();
  expect_invalid(req, "no steps");
  req = run_request();
  req.id = "not-a-uuid";
  expect_invalid(req, "bad id");
  req = run_request();
  req.workflow.clear();
  expect_invalid(req, "no workflow");
  req = run_request();
  req.input_json = "{nope";
  expect_invalid(req, "bad input");
  req = run_request();
  req.first_task.args_json = "[1]";
  expect_invalid(req, "args not an object");
  req = run_request();
  // Valid JSON that jsonb refuses: the server's data exception becomes
  // invalid_argument.
  req.input_json = R"({"a":"\u0000"})";
  expect_invalid(req, "nul in jsonb");
  EXPECT_EQ(everything(), before);
}

// -- steps ---------------------------------------------------------------------------

TEST_F(workflow_repository_test, a_step_runs_and_its_success_enqueues_the_next) {
  auto run = created();
  auto start = running(run, 0, 1, 1, noon() + 1min);
  EXPECT_EQ(start.run.status, "running");
  EXPECT_EQ(start.run.started_at_us, us(noon() + 1min));
  EXPECT_EQ(start.run.updated_at_us, us(noon() + 1min));
  EXPECT_EQ(json::parse(start.stdin_json), json::parse(run.input_json));
  const auto& state = start.state;
  EXPECT_GT(state.id, 0);
  EXPECT_EQ(state.run_id, run.id);
  EXPECT_EQ(state.step, "discovery");
  EXPECT_EQ(state.step_index, 0);
  EXPECT_EQ(state.attempt, 1);
  EXPECT_EQ(state.run_attempt, 1);
  EXPECT_EQ(state.try_number, 1);
  EXPECT_EQ(state.status, "running");
  EXPECT_EQ(state.started_at_us, us(noon() + 1min));
  EXPECT_EQ(state.finished_at_us, 0);
  EXPECT_EQ(state.exit_code, -1);
  EXPECT_EQ(state.task_id, 0);
  auto req = outcome(run, state, "succeeded", noon() + 1min + 1500ms);
  req.payload_json = R"({"spec":"s.md"})";
  req.next_task = next_task(run, 1);
  auto done = finished(req);
  EXPECT_EQ(done.status, "running");
  EXPECT_EQ(done.current_step_index, 1);
  EXPECT_EQ(done.updated_at_us, us(noon() + 1min + 1500ms));
  EXPECT_EQ(query("SELECT current_step FROM engram.workflow_runs WHERE id = "
                  + quoted(run.id)),
            "submit");
  EXPECT_EQ(tasks_with_key("workflow:" + run.id + ":1:1:1"), 1);
  auto detail = get(run.id);
  ASSERT_TRUE(detail);
  ASSERT_EQ(detail->steps.size(), 1u);
  const auto& s = detail->steps[0];
  EXPECT_EQ(s.status, "succeeded");
  EXPECT_EQ(s.finished_at_us, us(noon() + 1min + 1500ms));
  EXPECT_EQ(s.duration_ms, 1500);
  EXPECT_EQ(s.exit_code, 0);
  EXPECT_EQ(s.term_signal, 0);
  EXPECT_EQ(json::parse(s.payload_json), json::parse(req.payload_json));
  EXPECT_TRUE(s.error.empty());
  // The next step reads the previous one's result.
  auto second = running(run, 1, 1, 1, noon() + 3min);
  EXPECT_EQ(second.state.step, "submit");
  EXPECT_EQ(json::parse(second.stdin_json), json::parse(req.payload_json));
}

TEST_F(workflow_repository_test, the_last_step_succeeds_the_run_with_its_output) {
  auto run = created(run_request({}, {}, {"only"}));
  auto start = running(run, 0);
  auto req = outcome(run, start.state, "succeeded", noon() + 4min);
  req.payload_json = R"({"url":"https://example.test/pr/1"})";
  auto tasks_before = count("SELECT count(*) FROM engram.tasks");
  auto done = finished(req);
  EXPECT_EQ(done.status, "succeeded");
  EXPECT_EQ(json::parse(done.output_json), json::parse(req.payload_json));
  EXPECT_EQ(done.finished_at_us, us(noon() + 4min));
  EXPECT_TRUE(done.error.empty());
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), tasks_before);
  // A finished step is not begun again.
  auto again = begin(run, 0);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, start_outcome::stale);
}

TEST_F(workflow_repository_test, a_failure_with_a_next_try_keeps_the_run_running) {
  auto run = created();
  auto start = running(run, 0);
  auto req = outcome(run, start.state, "failed", noon() + 2min);
  req.exit_code = 3;
  req.error = "exit status 3";
  req.error_kind = workflows::failure::exit;
  req.next_task = next_task(run, 0, 1, 2, 30000);
  auto done = finished(req);
  EXPECT_EQ(done.status, "running");
  EXPECT_EQ(done.current_step_index, 0);
  EXPECT_EQ(done.error, "exit status 3");
  EXPECT_EQ(done.error_kind, "exit");
  EXPECT_EQ(done.finished_at_us, 0);
  auto key = "workflow:" + run.id + ":1:0:2";
  ASSERT_EQ(tasks_with_key(key), 1);
  EXPECT_EQ(query("SELECT engram.to_us(run_at) FROM engram.tasks WHERE "
                  "unique_key = "
                  + quoted(key)),
            std::to_string(us(noon() + 2min + 30s)));
  // The next try runs as the step's second attempt and reads the input.
  auto second = running(run, 0, 1, 2, noon() + 3min);
  EXPECT_EQ(second.state.attempt, 2);
  EXPECT_EQ(second.state.try_number, 2);
  EXPECT_EQ(json::parse(second.stdin_json), json::parse(run.input_json));
  // Its success clears the failure shown meanwhile.
  auto ok = outcome(run, second.state, "succeeded", noon() + 4min);
  ok.payload_json = "{}";
  ok.next_task = next_task(run, 1);
  auto advanced = finished(ok);
  EXPECT_EQ(advanced.current_step_index, 1);
  EXPECT_TRUE(advanced.error.empty());
  EXPECT_TRUE(advanced.error_kind.empty());
}

TEST_F(workflow_repository_test, a_failure_without_a_next_try_fails_the_run) {
  auto run = created();
  auto start = running(run, 0);
  auto req = outcome(run, start.state, "failed", noon() + 2min);
  req.exit_code = -1;
  req.term_signal = 9;
  req.error = "timed out after 60 s";
  req.error_kind = workflows::failure::timeout;
  auto tasks_before = count("SELECT count(*) FROM engram.tasks");
  auto done = finished(req);
  EXPECT_EQ(done.status, "failed");
  EXPECT_EQ(done.error, "timed out after 60 s");
  EXPECT_EQ(done.error_kind, "timeout");
  EXPECT_EQ(done.finished_at_us, us(noon() + 2min));
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), tasks_before);
  auto detail = get(run.id);
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->steps.at(0).exit_code, -1);
  EXPECT_EQ(detail->steps.at(0).term_signal, 9);
  EXPECT_EQ(detail->steps.at(0).error_kind, "timeout");
  EXPECT_TRUE(detail->steps.at(0).payload_json.empty());
  EXPECT_EQ(query("SELECT exit_code IS NULL FROM engram.workflow_task_states "
                  "WHERE id = "
                  + std::to_string(start.state.id)),
            "t");
}

TEST_F(workflow_repository_test, a_step_the_run_moved_past_is_stale) {
  auto run = created();
  auto before = everything();
  for (auto [index, attempt, label] :
       {std::tuple{1, 1, "later step"}, std::tuple{0, 2, "other attempt"}}) {
    auto start = begin(run, index, attempt);
    ASSERT_TRUE(start) << label;
    EXPECT_EQ(start->outcome, start_outcome::stale) << label;
  }
  EXPECT_EQ(everything(), before);
  // A try that finished is stale too, even while the run waits for the next.
  auto start = running(run, 0);
  auto req = outcome(run, start.state, "failed");
  req.error = "boom";
  req.next_task = next_task(run, 0, 1, 2);
  finished(req);
  before = everything();
  auto again = begin(run, 0, 1, 1);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, start_outcome::stale);
  EXPECT_EQ(everything(), before);
  auto unknown = begin(run_with_id(unknown_id), 0);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
  auto malformed = begin(run_with_id("x"), 0);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(code_of(malformed.error()), errc::not_found);
}

TEST_F(workflow_repository_test, a_redelivered_step_interrupts_its_running_attempt) {
  auto run = created();
  auto first = running(run, 0, 1, 1, noon() + 1min);
  auto second = running(run, 0, 1, 1, noon() + 7min);
  EXPECT_NE(second.state.id, first.state.id);
  EXPECT_EQ(second.state.attempt, 2);
  EXPECT_EQ(second.state.status, "running");
  EXPECT_EQ(second.run.started_at_us, us(noon() + 1min));
  auto detail = get(run.id);
  ASSERT_TRUE(detail);
  ASSERT_EQ(detail->steps.size(), 2u);
  const auto& old = detail->steps[0];
  EXPECT_EQ(old.id, first.state.id);
  EXPECT_EQ(old.status, "interrupted");
  EXPECT_EQ(old.finished_at_us, us(noon() + 7min));
  EXPECT_EQ(old.error,
            "interrupted: the daemon stopped before the step finished");
  EXPECT_EQ(old.error_kind, "interrupted");
  EXPECT_EQ(old.duration_ms, 0);
  // The interrupted attempt's late finish is refused and writes nothing.
  auto before = everything();
  auto late = outcome(run, first.state, "succeeded", noon() + 8min);
  late.payload_json = R"({"late":true})";
  late.next_task = next_task(run, 1);
  workflows::artifact_record a;
  a.name = "stdout.json";
  a.relative_path = run.id + "/discovery/1/stdout.json";
  a.size_bytes = 13;
  a.sha256 = sha_a;
  a.content_type = "application/json";
  late.artifacts.push_back(a);
  auto refused = finish(late);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  EXPECT_NE(message_of(refused.error()).find("no longer running"),
            std::string::npos);
  EXPECT_EQ(everything(), before);
  // A state of another run is refused the same way.
  auto other = created();
  auto foreign = outcome(other, second.state, "succeeded");
  auto wrong_run = finish(foreign);
  ASSERT_FALSE(wrong_run);
  EXPECT_EQ(code_of(wrong_run.error()), errc::conflict);
  EXPECT_EQ(get(run.id)->steps.at(1).status, "running");
}

TEST_F(workflow_repository_test, a_missing_credential_fails_the_step_and_the_run) {
  auto run = created();
  auto ok = audit("GH_TOKEN", true);
  ok.checked_at_us = us(noon() + 30s);
  auto start = begin(run, 0, 1, 1, noon() + 1min,
                     {ok, audit("NPM_TOKEN", false, "not set"),
                      audit("file:/etc/engram/key", false, "not readable")});
  ASSERT_TRUE(start) << describe(start.error());
  EXPECT_EQ(start->outcome, start_outcome::missing_credentials);
  auto message = std::string{"missing credential: NPM_TOKEN (not set), "
                             "file:/etc/engram/key (not readable) \u2014 set "
                             "the environment variable NPM_TOKEN; provide "
                             "the file /etc/engram/key"};
  EXPECT_EQ(start->state.status, "failed");
  EXPECT_EQ(start->state.error, message);
  EXPECT_EQ(start->state.error_kind, "missing_credential");
  EXPECT_EQ(start->state.finished_at_us, us(noon() + 1min));
  EXPECT_EQ(start->run.status, "failed");
  EXPECT_EQ(start->run.error, message);
  EXPECT_EQ(start->run.error_kind, "missing_credential");
  EXPECT_EQ(start->run.missing_credentials,
            (std::vector<std::string>{"NPM_TOKEN", "file:/etc/engram/key"}));
  EXPECT_EQ(start->run.finished_at_us, us(noon() + 1min));
  auto audits = checked([&](auto& tx) {
    return storage::list_audits(tx, run.id);
  });
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 3u);
  EXPECT_EQ((*audits)[0].credential, "GH_TOKEN");
  EXPECT_TRUE((*audits)[0].valid);
  EXPECT_EQ((*audits)[0].checked_at_us, us(noon() + 30s));
  EXPECT_EQ((*audits)[1].credential, "NPM_TOKEN");
  EXPECT_FALSE((*audits)[1].present);
  EXPECT_EQ((*audits)[1].detail, "not set");
  EXPECT_EQ((*audits)[1].checked_at_us, us(noon() + 1min));
  EXPECT_EQ((*audits)[2].kind, "file");
  for (const auto& a : *audits) {
    EXPECT_EQ(a.run_id, run.id);
    EXPECT_EQ(a.step, "discovery");
    EXPECT_EQ(a.attempt, 1);
  }
  // The run is failed: its task's redelivery is stale; a retry clears it.
  auto again = begin(run, 0);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, start_outcome::stale);
  auto retried = retry(run.id, "set NPM_TOKEN", {audit("NPM_TOKEN", true)});
  ASSERT_TRUE(retried) << describe(retried.error());
  EXPECT_TRUE(retried->missing_credentials.empty());
  EXPECT_TRUE(retried->error.empty());
  // The retry's check names the step and the attempt the retry will run.
  audits = checked([&](auto& tx) { return storage::list_audits(tx, run.id); });
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 4u);
  EXPECT_EQ(audits->back().step, "discovery");
  EXPECT_EQ(audits->back().attempt, 2);
  EXPECT_TRUE(audits->back().valid);
  // Audits with a bad kind are refused.
  auto bad = audit("X", true);
  bad.kind = "vault";
  auto other = created();
  auto before = everything();
  auto refused = begin(other, 0, 1, 1, noon() + 1min, {bad});
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::invalid_argument);
  EXPECT_EQ(everything(), before);
}

// -- cancel --------------------------------------------------------------------------

TEST_F(workflow_repository_test, cancel_works_in_every_unfinished_state) {
  auto expect_cancelled = [&](const run_record& run, const char* label) {
    auto result = cancel(run.id, noon() + 5min);
    ASSERT_TRUE(result) << label << ": " << describe(result.error());
    EXPECT_EQ(result->status, "cancelled") << label;
    EXPECT_EQ(result->error, "cancelled by an operator") << label;
    EXPECT_EQ(result->error_kind, "cancelled") << label;
    EXPECT_EQ(result->finished_at_us, us(noon() + 5min)) << label;
    EXPECT_EQ(result->updated_at_us, us(noon() + 5min)) << label;
    auto again = cancel(run.id);
    ASSERT_FALSE(again) << label;
    EXPECT_EQ(code_of(again.error()), errc::conflict) << label;
  };
  expect_cancelled(created(), "pending");
  auto run = created();
  auto start = running(run, 0);
  expect_cancelled(run, "running");
  // The running attempt stays running until its chain ends it.
  EXPECT_EQ(get(run.id)->steps.at(0).status, "running");
  expect_cancelled(failed_run(), "failed");
  auto retrying = retry(failed_run().id);
  ASSERT_TRUE(retrying);
  EXPECT_EQ(retrying->status, "retrying");
  expect_cancelled(*retrying, "retrying");
  auto one = created(run_request({}, {}, {"only"}));
  auto s = running(one, 0);
  finished(outcome(one, s.state, "succeeded"));
  auto refused = cancel(one.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  auto unknown = cancel(unknown_id);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
}

TEST_F(workflow_repository_test, a_finish_after_cancel_ends_cancelled_and_enqueues_nothing) {
  auto run = created();
  auto start = running(run, 0);
  ASSERT_TRUE(cancel(run.id, noon() + 3min));
  auto tasks_before = count("SELECT count(*) FROM engram.tasks");
  auto req = outcome(run, start.state, "succeeded", noon() + 4min);
  req.payload_json = "{}";
  req.next_task = next_task(run, 1);
  auto done = finished(req);
  EXPECT_EQ(done.status, "cancelled");
  EXPECT_EQ(done.error, "cancelled by an operator");
  EXPECT_EQ(done.finished_at_us, us(noon() + 3min));
  EXPECT_EQ(done.current_step_index, 0);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), tasks_before);
  EXPECT_EQ(get(run.id)->steps.at(0).status, "succeeded");
  // Its chain ending the attempt as cancelled does the same.
  auto other = created();
  auto s = running(other, 0);
  auto stop = outcome(other, s.state, "cancelled", noon() + 6min);
  stop.exit_code = -1;
  stop.term_signal = 15;
  auto ended = finished(stop);
  EXPECT_EQ(ended.status, "cancelled");
  EXPECT_EQ(ended.error, "cancelled");
  EXPECT_EQ(ended.error_kind, "cancelled");
  EXPECT_EQ(ended.finished_at_us, us(noon() + 6min));
  EXPECT_EQ(get(other.id)->steps.at(0).status, "cancelled");
  // A cancelled run's task is answered cancelled.
  auto late = begin(other, 0, 1, 2);
  ASSERT_TRUE(late);
  EXPECT_EQ(late->outcome, start_outcome::cancelled);
}

// -- retry ---------------------------------------------------------------------------

TEST_F(workflow_repository_test, retry_resumes_a_failed_run_from_its_failed_step) {
  auto run = created();
  auto first = running(run, 0);
  auto ok = outcome(run, first.state, "succeeded");
  ok.payload_json = R"({"from":"discovery"})";
  ok.next_task = next_task(run, 1);
  finished(ok);
  auto second = running(run, 1, 1, 1, noon() + 3min);
  auto fail = outcome(run, second.state, "failed", noon() + 4min);
  fail.error = "exit status 2";
  fail.error_kind = workflows::failure::exit;
  auto failed = finished(fail);
  ASSERT_EQ(failed.status, "failed");
  auto a = audit("GH_TOKEN", true);
  a.step = "submit";
  a.attempt = 2;
  auto retried = retry(run.id, "transient outage", {a}, noon() + 10min);
  ASSERT_TRUE(retried) << describe(retried.error());
  EXPECT_EQ(retried->status, "retrying");
  EXPECT_EQ(retried->attempt, 2);
  EXPECT_EQ(retried->current_step_index, 1);
  EXPECT_EQ(retried->note, "transient outage");
  EXPECT_TRUE(retried->error.empty());
  EXPECT_TRUE(retried->error_kind.empty());
  EXPECT_EQ(retried->finished_at_us, 0);
  EXPECT_EQ(retried->updated_at_us, us(noon() + 10min));
  auto key = "workflow:" + run.id + ":2:1:1";
  ASSERT_EQ(tasks_with_key(key), 1);
  EXPECT_EQ(json::parse(query("SELECT args::text FROM engram.tasks WHERE "
                              "unique_key = "
                              + quoted(key))),
            json::parse(R"({"run_id":")" + run.id
                        + R"(","step_index":1,"run_attempt":2,"try":1})"));
  auto audits = checked([&](auto& tx) {
    return storage::list_audits(tx, run.id);
  });
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 1u);
  EXPECT_EQ((*audits)[0].step, "submit");
  EXPECT_EQ((*audits)[0].checked_at_us, us(noon() + 10min));
  // The old run attempt's tasks are stale; the new one runs the failed step
  // as its next attempt with the earlier step's output.
  auto old = begin(run, 1, 1, 2);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->outcome, start_outcome::stale);
  auto resumed = running(run, 1, 2, 1, noon() + 11min);
  EXPECT_EQ(resumed.run.status, "running");
  EXPECT_EQ(resumed.state.attempt, 2);
  EXPECT_EQ(resumed.state.run_attempt, 2);
  EXPECT_EQ(json::parse(resumed.stdin_json), json::parse(ok.payload_json));
  // Only a failed run can be retried.
  auto refused = retry(run.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  EXPECT_NE(message_of(refused.error())
              .find("only a failed run can be retried; this one is running"),
            std::string::npos);
  auto pending = retry(created().id);
  ASSERT_FALSE(pending);
  EXPECT_EQ(code_of(pending.error()), errc::conflict);
  auto unknown = retry(unknown_id);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
}

// -- reads ----------------------------------------------------------------------------

TEST_F(workflow_repository_test, list_runs_pages_newest_first_and_stays_stable) {
  std::vector<run_record> runs;
  for (int i = 0; i < 7; ++i)
    runs.push_back(created(run_request({}, {}, {"a"},
                                       i % 2 == 0 ? "speckit" : "deploy")));
  ASSERT_TRUE(cancel(runs[2].id));
  ASSERT_TRUE(cancel(runs[4].id));
  // Pages of 3, with new runs inserted between the reads.
  std::vector<std::string> seen;
  int64_t cursor = 0;
  for (int page_no = 0; page_no < 10; ++page_no) {
    auto page = list({}, {}, cursor, 3);
    ASSERT_TRUE(page) << describe(page.error());
    for (const auto& r : page->runs)
      seen.push_back(r.id);
    created(run_request({}, {}, {"a"}));
    if (page->next_before_seq == 0)
      break;
    EXPECT_EQ(page->next_before_seq, page->runs.back().seq);
    cursor = page->next_before_seq;
  }
  std::vector<std::string> expected;
  for (auto i = runs.rbegin(); i != runs.rend(); ++i)
    expected.push_back(i->id);
  EXPECT_EQ(seen, expected);
  // A full last page with nothing after it ends the list.
  auto all = list({}, {}, 0, 500);
  ASSERT_TRUE(all);
  auto total = static_cast<int32_t>(all->runs.size());
  EXPECT_EQ(total, 7 + 3);
  EXPECT_EQ(all->next_before_seq, 0);
  auto exact = list({}, {}, 0, total);
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->next_before_seq, 0);
  for (size_t i = 1; i < all->runs.size(); ++i)
    EXPECT_GT(all->runs[i - 1].seq, all->runs[i].seq);
  // Filters.
  auto deploys = list("deploy", {}, 0, 50);
  ASSERT_TRUE(deploys);
  EXPECT_EQ(deploys->runs.size(), 3u);
  for (const auto& r : deploys->runs)
    EXPECT_EQ(r.workflow, "deploy");
  auto cancelled = list({}, "cancelled", 0, 1);
  ASSERT_TRUE(cancelled);
  ASSERT_EQ(cancelled->runs.size(), 1u);
  EXPECT_EQ(cancelled->runs[0].id, runs[4].id);
  auto rest = list({}, "cancelled", cancelled->next_before_seq, 1);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->runs.size(), 1u);
  EXPECT_EQ(rest->runs[0].id, runs[2].id);
  EXPECT_EQ(rest->next_before_seq, 0);
  auto both = list("speckit", "cancelled", 0, 50);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->runs.size(), 2u);
  EXPECT_TRUE(list("nothing", {}, 0, 50)->runs.empty());
  // Refusals.
  for (auto [workflow, status, before, limit] :
       {std::tuple{"", "", int64_t{0}, 0}, std::tuple{"", "", int64_t{0}, 501},
        std::tuple{"", "", int64_t{-1}, 10},
        std::tuple{"", "done", int64_t{0}, 10}}) {
    auto refused = list(workflow, status, before, limit);
    ASSERT_FALSE(refused);
    EXPECT_EQ(code_of(refused.error()), errc::invalid_argument);
  }
}

TEST_F(workflow_repository_test, artifacts_belong_to_their_attempt_and_run) {
  auto run = created();
  auto start = running(run, 0);
  auto req = outcome(run, start.state, "succeeded", noon() + 2min);
  req.payload_json = "{}";
  workflows::artifact_record out;
  out.name = "stdout.json";
  out.relative_path = run.id + "/discovery/1/stdout.json";
  out.size_bytes = 2;
  out.sha256 = sha_a;
  out.content_type = "application/json";
  auto report = out;
  report.name = "reports/summary.md";
  report.relative_path = run.id + "/discovery/1/reports/summary.md";
  report.size_bytes = 120;
  report.sha256 = sha_b;
  report.content_type = "text/markdown";
  req.artifacts = {out, report};
  // Malformed artifacts are refused before anything is written.
  auto before = everything();
  for (auto bad_path : {std::string{"/etc/passwd"},
                        run.id + "/discovery/../../x", std::string{}}) {
    auto bad = req;
    bad.artifacts[1].relative_path = bad_path;
    auto refused = finish(bad);
    ASSERT_FALSE(refused) << bad_path;
    EXPECT_EQ(code_of(refused.error()), errc::invalid_argument);
  }
  auto bad = req;
  bad.artifacts[0].sha256 = "ABC";
  EXPECT_EQ(code_of(finish(bad).error()), errc::invalid_argument);
  bad = req;
  bad.artifacts[1].name = "stdout.json";
  EXPECT_EQ(code_of(finish(bad).error()), errc::invalid_argument);
  bad = req;
  bad.payload_json = "{not json";
  EXPECT_EQ(code_of(finish(bad).error()), errc::invalid_argument);
  bad = req;
  bad.status = "done";
  EXPECT_EQ(code_of(finish(bad).error()), errc::invalid_argument);
  EXPECT_EQ(everything(), before);
  finished(req);
  auto listed = checked([&](auto& tx) {
    return storage::list_artifacts(tx, run.id);
  });
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "stdout.json");
  EXPECT_EQ((*listed)[1].name, "reports/summary.md");
  EXPECT_LT((*listed)[0].id, (*listed)[1].id);
  for (const auto& a : *listed) {
    EXPECT_EQ(a.run_id, run.id);
    EXPECT_EQ(a.step, "discovery");
    EXPECT_EQ(a.step_state_id, start.state.id);
    EXPECT_EQ(a.created_at_us, us(noon() + 2min));
  }
  EXPECT_EQ((*listed)[1].size_bytes, 120);
  EXPECT_EQ((*listed)[1].sha256, sha_b);
  EXPECT_EQ((*listed)[1].content_type, "text/markdown");
  EXPECT_EQ(get(run.id)->steps.at(0).artifact_ids,
            (std::vector<int64_t>{(*listed)[0].id, (*listed)[1].id}));
  auto one = checked([&](auto& tx) {
    return storage::get_artifact(tx, run.id, (*listed)[1].id);
  });
  ASSERT_TRUE(one);
  EXPECT_EQ(one->relative_path, report.relative_path);
  // Another run's artifact, an unknown one, an unknown run.
  auto other = created();
  for (auto [run_id, artifact_id] :
       {std::pair{other.id, (*listed)[0].id}, std::pair{run.id, int64_t{999999}},
        std::pair{std::string{unknown_id}, (*listed)[0].id},
        std::pair{std::string{"nope"}, (*listed)[0].id}}) {
    auto refused = checked([&](auto& tx) {
      return storage::get_artifact(tx, run_id, artifact_id);
    });
    ASSERT_FALSE(refused);
    EXPECT_EQ(code_of(refused.error()), errc::not_found);
  }
  EXPECT_TRUE(checked([&](auto& tx) {
                return storage::list_artifacts(tx, other.id);
              })->empty());
  for (auto id : {std::string{unknown_id}, std::string{"nope"}}) {
    auto a = checked([&](auto& tx) { return storage::list_artifacts(tx, id); });
    ASSERT_FALSE(a);
    EXPECT_EQ(code_of(a.error()), errc::not_found);
    auto c = checked([&](auto& tx) { return storage::list_audits(tx, id); });
    ASSERT_FALSE(c);
    EXPECT_EQ(code_of(c.error()), errc::not_found);
    auto g = get(id);
    ASSERT_FALSE(g);
    EXPECT_EQ(code_of(g.error()), errc::not_found);
  }
}

TEST_F(workflow_repository_test, record_audits_inserts_checks_of_known_runs) {
  auto run = created();
  auto a = audit("GH_TOKEN", false, "empty");
  a.run_id = run.id;
  a.step = "discovery";
  a.attempt = 1;
  a.checked_at_us = us(noon() + 1min);
  auto b = a;
  b.credential = "file:/k";
  b.kind = "file";
  b.checked_at_us = 0;
  workflows::record_audits req{{a, b}};
  auto n = checked([&](auto& tx) {
    return storage::record_audits(tx, req, noon() + 2min);
  });
  ASSERT_TRUE(n) << describe(n.error());
  EXPECT_EQ(*n, 2);
  auto listed = checked([&](auto& tx) {
    return storage::list_audits(tx, run.id);
  });
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].checked_at_us, us(noon() + 1min));
  EXPECT_EQ((*listed)[1].checked_at_us, us(noon() + 2min));
  EXPECT_EQ((*listed)[0].detail, "empty");
  EXPECT_EQ(get(run.id)->run.status, "pending");
  auto before = everything();
  auto stray = a;
  stray.run_id = unknown_id;
  workflows::record_audits unknown{{a, stray}};
  auto refused = checked([&](auto& tx) {
    return storage::record_audits(tx, unknown, noon());
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::not_found);
  stray.run_id = "x";
  workflows::record_audits malformed{{stray}};
  refused = checked([&](auto& tx) {
    return storage::record_audits(tx, malformed, noon());
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::invalid_argument);
  EXPECT_EQ(everything(), before);
}

TEST_F(workflow_repository_test, the_storage_actor_answers_workflow_requests) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto storage = spawn_storage_worker(sys, test::fast_storage_options(db));
  caf::scoped_actor self{sys};
  auto ask = [&]<class Reply>(auto req) {
    caf::expected<Reply> result{caf::error{}};
    self->request(storage, 10s, std::move(req))
      .receive([&](Reply& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  auto req = run_request("actor-key");
  auto made = ask.operator()<workflows::create_run_result>(req);
  ASSERT_TRUE(made) << describe(made.error());
  EXPECT_TRUE(made->created);
  workflows::begin_step b;
  b.run_id = req.id;
  b.now_us = us(noon() + 1min);
  auto start = ask.operator()<step_start>(b);
  ASSERT_TRUE(start) << describe(start.error());
  EXPECT_EQ(start->outcome, start_outcome::run);
  // A refusal in the middle writes nothing.
  workflows::finish_step f;
  f.run_id = req.id;
  f.state_id = start->state.id;
  f.status = "succeeded";
  f.payload_json = "{bad";
  f.now_us = us(noon() + 2min);
  auto bad = ask.operator()<run_record>(f);
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_argument);
  auto detail = ask.operator()<workflows::run_detail>(workflows::get_run{req.id});
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->steps.at(0).status, "running");
  auto page = ask.operator()<workflows::run_page>(
    workflows::list_runs{"speckit", "running", 0, 10});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->runs.size(), 1u);
  auto cancelled = ask.operator()<run_record>(
    workflows::cancel_run{req.id, us(noon() + 3min)});
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, "cancelled");
  auto none = ask.operator()<std::vector<workflows::credential_audit>>(
    workflows::list_audits{unknown_id});
  ASSERT_FALSE(none);
  EXPECT_EQ(code_of(none.error()), errc::not_found);
  self->send_exit(storage, caf::exit_reason::user_shutdown);
}

} // namespace
