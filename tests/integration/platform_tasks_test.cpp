// The platform tasks (cleanups, agent.scheduled_run, memory.extract) against
// a real PostgreSQL through the real storage pool, with fake HTTP servers
// standing in for the LLM and the webhook. Time comes from a manual clock;
// most tests run one attempt on the test's thread (run_attempt_now, what a
// worker slot runs), and two go through the real task system.

#include <atomic>
#include <vector>

#include <boost/json.hpp>

#include "storage/conversation_repository.hpp"
#include "tests/integration/platform_tasks_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using test::canned_response;
using test::chat_completion;
using test::fake_http_server;
using test::recorded_request;

namespace {

// -- cleanups ------------------------------------------------------------------------

class cleanup_tasks_test : public test::platform_tasks_test {
protected:
  void insert_token(const std::string& hash, wall_time expires_at) {
    exec("INSERT INTO engram.refresh_tokens (user_id, token_hash, expires_at) "
         "VALUES ('u', "
         + quoted(hash) + ", " + sql_time(expires_at) + ")");
  }

  std::string tokens() {
    return query("SELECT coalesce(string_agg(token_hash, ',' ORDER BY "
                 "token_hash), '') FROM engram.refresh_tokens");
  }

  /// A conversation created at `created` with messages at `messages`.
  std::string conversation(wall_time created, std::vector<wall_time> messages,
                           const std::string& status = "active") {
    auto id = in_tx([&](auto& tx) {
      storage::new_conversation c;
      c.title = "c";
      return storage::create_conversation(tx, c, created).id;
    });
    for (auto at : messages)
      in_tx([&](auto& tx) {
        (void) storage::add_messages(tx, id, {{"user", "hi", {}}}, at);
      });
    if (status != "active")
      exec("UPDATE engram.conversations SET status = " + quoted(status)
           + " WHERE id = " + quoted(id));
    return id;
  }

  std::string status_of(const std::string& id) {
    return query("SELECT status FROM engram.conversations WHERE id = "
                 + quoted(id));
  }

  std::string memory(const std::string& project_id, const std::string& status,
                     std::optional<wall_time> expires_at, bool pinned = false) {
    return query(
      "INSERT INTO engram.memories (project_id, type, tier, status, content, "
      "pinned, expires_at) VALUES ("
      + quoted(project_id) + ", 'semantic', 'hot', " + quoted(status)
      + ", 'm', " + (pinned ? "true" : "false") + ", "
      + (expires_at ? sql_time(*expires_at) : "NULL") + ") RETURNING id");
  }

  std::string memory_state(const std::string& id) {
    return query("SELECT status || '/' || tier FROM engram.memories WHERE id = "
                 + quoted(id));
  }
};

} // namespace

TEST_F(cleanup_tasks_test, expire_tokens_deletes_exactly_the_expired_tokens_batch_by_batch) {
  const auto now = clock.now();
  for (int i = 1; i <= 4; ++i)
    insert_token("old" + std::to_string(i), now - std::chrono::minutes{i});
  insert_token("expires_now", now); // expires_at <= now counts as expired
  insert_token("live", now + 1s);

  // 5 expired in batches of 2: 2, 2, 1 (a short batch ends the loop).
  auto result = result_of(run_task("cleanup.expire_tokens", R"({"batch_size":2})"));
  EXPECT_EQ(result["deleted"], 5);
  EXPECT_EQ(result["batches"], 3);
  EXPECT_EQ(result["now"], "2024-03-10T12:00:00.000Z");
  EXPECT_EQ(tokens(), "live");

  auto again = result_of(run_task("cleanup.expire_tokens", "{}"));
  EXPECT_EQ(again["deleted"], 0) << "a rerun finds nothing left";
  EXPECT_EQ(again["batches"], 1);
  EXPECT_EQ(tokens(), "live");
}

TEST_F(cleanup_tasks_test, close_stale_sessions_idles_conversations_past_the_window_only) {
  const auto now = clock.now();
  auto stale = conversation(now - 10h, {now - 31min});
  auto at_window = conversation(now - 10h, {now - 30min});
  auto silent = conversation(now - 2h, {});
  auto recent = conversation(now - 10h, {now - 5min});
  auto closed = conversation(now - 10h, {}, "closed");

  // Default window: 30 minutes, strictly older.
  auto result = result_of(run_task("cleanup.close_stale_sessions", "{}"));
  EXPECT_EQ(result["marked_idle"], 2);
  EXPECT_EQ(result["idle_minutes"], 30);
  EXPECT_EQ(status_of(stale), "idle");
  EXPECT_EQ(status_of(silent), "idle");
  EXPECT_EQ(status_of(at_window), "active");
  EXPECT_EQ(status_of(recent), "active");
  EXPECT_EQ(status_of(closed), "closed");

  // A 4-minute window takes the two still active (30 and 5 minutes idle).
  auto narrow
    = result_of(run_task("cleanup.close_stale_sessions", R"({"idle_minutes":4})"));
  EXPECT_EQ(narrow["marked_idle"], 2);
  EXPECT_EQ(status_of(at_window), "idle");
  EXPECT_EQ(status_of(recent), "idle");
  EXPECT_EQ(status_of(closed), "closed");
}

TEST_F(cleanup_tasks_test, archive_old_conversations_closes_those_inactive_for_days) {
  const auto now = clock.now();
  const auto day = 24h;
  auto old_active = conversation(now - 91 * day, {});
  auto old_idle = conversation(now - 200 * day, {now - 95 * day}, "idle");
  auto at_90_days = conversation(now - 90 * day, {});
  auto old_but_used = conversation(now - 200 * day, {now - 10 * day});

  auto result = result_of(run_task("cleanup.archive_old_conversations", "{}"));
  EXPECT_EQ(result["closed"], 2);
  EXPECT_EQ(result["days"], 90);
  EXPECT_EQ(status_of(old_active), "closed");
  EXPECT_EQ(status_of(old_idle), "closed");
  EXPECT_EQ(status_of(at_90_days), "active");
  EXPECT_EQ(status_of(old_but_used), "active");

  auto shorter = result_of(
    run_task("cleanup.archive_old_conversations", R"({"days":9,"batch_size":1})"));
  EXPECT_EQ(shorter["closed"], 2);
  EXPECT_EQ(shorter["batches"], 3);
  EXPECT_EQ(status_of(at_90_days), "closed");
  EXPECT_EQ(status_of(old_but_used), "closed");
}

TEST_F(cleanup_tasks_test, archive_expired_memories_archives_only_active_expired_ones) {
  const auto now = clock.now();
  auto p = project();
  auto expired = memory(p, "active", now - 1h);
  auto pinned = memory(p, "active", now - 1h, true);
  auto later = memory(p, "active", now + 1h);
  auto forever = memory(p, "active", std::nullopt);
  auto superseded = memory(p, "superseded", now - 1h);

  auto result = result_of(run_task("cleanup.archive_expired_memories", "{}"));
  EXPECT_EQ(result["archived"], 2);
  EXPECT_EQ(memory_state(expired), "archived/cold");
  EXPECT_EQ(memory_state(pinned), "archived/cold");
  EXPECT_EQ(memory_state(later), "active/hot");
  EXPECT_EQ(memory_state(forever), "active/hot");
  EXPECT_EQ(memory_state(superseded), "superseded/hot");
  EXPECT_EQ(result_of(run_task("cleanup.archive_expired_memories", "{}"))["archived"],
            0);
}

TEST_F(cleanup_tasks_test, cleanup_arguments_are_checked_and_bad_ones_are_dead_at_once) {
  insert_token("old", clock.now() - 1h);
  struct bad_case {
    const char* name;
    const char* args;
    const char* error;
  };
  const bad_case cases[] = {
    {"cleanup.expire_tokens", R"({"bach_size":10})",
     "invalid arguments: unknown argument args.bach_size"},
    {"cleanup.expire_tokens", R"({"batch_size":0})",
     "invalid arguments: args.batch_size must be between 1 and 100000, got 0"},
    {"cleanup.close_stale_sessions", R"({"idle_minutes":"30"})",
     "invalid arguments: args.idle_minutes must be an integer"},
    {"cleanup.archive_old_conversations", R"({"days":1.5})",
     "invalid arguments: args.days must be an integer"},
    {"cleanup.archive_expired_memories", R"([])",
     "invalid arguments: args must be a JSON object"},
  };
  for (const auto& c : cases) {
    auto r = run_task(c.name, c.args, 1, 3);
    EXPECT_EQ(r.status, tasks::attempt_status::permanent) << c.name << c.args;
    EXPECT_EQ(r.error, c.error);
    // The API checks arguments with the same validator before enqueueing.
    EXPECT_TRUE(registry.check(registry.request_for(c.name, c.args)));
  }
  EXPECT_EQ(tokens(), "old") << "nothing ran";
}

TEST_F(cleanup_tasks_test, a_cleanup_runs_through_the_task_system) {
  insert_token("old", clock.now() - 1h);
  insert_token("live", clock.now() + 1h);
  start_task_system("default=1");
  auto id = enqueue("cleanup.expire_tokens", "{}");
  ASSERT_TRUE(wait_for("SELECT status FROM engram.tasks WHERE id = "
                         + std::to_string(id),
                       "succeeded"));
  EXPECT_EQ(query("SELECT result->>'deleted' FROM engram.tasks WHERE id = "
                  + std::to_string(id)),
            "1");
  EXPECT_EQ(query("SELECT queue FROM engram.tasks WHERE id = "
                  + std::to_string(id)),
            "default");
  EXPECT_EQ(tokens(), "live");
}

// -- agent.scheduled_run ------------------------------------------------------------

namespace {

class scheduled_run_test : public test::platform_tasks_test {
protected:
  void SetUp() override {
    platform_tasks_test::SetUp();
    if (HasFatalFailure())
      return;
    use_openai(llm);
    project_id = project();
    agent_id = agent(project_id);
  }

  /// A job of the agent; `webhook_path` empty: no delivery.
  std::string job(const std::string& webhook_path = "",
                  const std::string& extra_config = "") {
    storage::new_scheduled_job spec;
    spec.agent_id = agent_id;
    spec.user_id = "user-7";
    spec.name = "morning digest";
    spec.message = "Summarise the overnight alerts.";
    spec.cron_expression = "0 8 * * *";
    json::object config;
    if (!webhook_path.empty())
      config["webhook_url"] = webhook.url() + webhook_path;
    spec.delivery_config_json = json::serialize(config);
    if (!extra_config.empty())
      spec.delivery_config_json = extra_config;
    auto created = in_tx([&](auto& tx) {
      return storage::create_scheduled_job(tx, spec, noon() - 24h);
    });
    EXPECT_TRUE(created);
    return created ? created->id : std::string{};
  }

  /// A queued run of `job_id` fired at `fire_time`.
  int64_t run(const std::string& job_id, wall_time fire_time) {
    auto r = in_tx([&](auto& tx) {
      return storage::record_run_queued(tx, job_id, fire_time, std::nullopt,
                                        fire_time);
    });
    EXPECT_TRUE(r);
    return r ? r->run_id : 0;
  }

  static std::string args(const std::string& job_id, int64_t run_id,
                          const std::string& fire_time = "") {
    json::object a{{"job_id", job_id}, {"run_id", run_id}};
    if (!fire_time.empty())
      a["fire_time"] = fire_time;
    return json::serialize(a);
  }

  std::string run_column(int64_t run_id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.scheduled_job_runs WHERE id = "
                 + std::to_string(run_id));
  }

  std::string job_column(const std::string& job_id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.scheduled_jobs WHERE id = "
                 + quoted(job_id));
  }

  /// The model answers every request with `content`.
  void model_answers(const std::string& content) {
    llm.set_handler([content](const recorded_request&) {
      return test::json_response(chat_completion(content, 21, 9));
    });
  }

  /// The model fails every request with HTTP `status`.
  void model_fails(unsigned status = 500) {
    llm.set_handler([status](const recorded_request&) {
      return test::json_response(R"({"error":{"message":"model overloaded"}})",
                                 status);
    });
  }

  int64_t conversations() {
    return count("SELECT count(*) FROM engram.conversations");
  }

  fake_http_server llm;
  fake_http_server webhook;
  std::string project_id;
  std::string agent_id;
};

} // namespace

TEST_F(scheduled_run_test, a_run_asks_the_model_keeps_the_exchange_delivers_it_and_counts_a_success) {
  model_answers("Two alerts overnight; both resolved.");
  webhook.enqueue({204, {}, ""});
  auto job_id = job("/hook?secret=s3");
  exec("UPDATE engram.scheduled_jobs SET consecutive_failures = 2, last_error "
       "= 'earlier failure' WHERE id = " + quoted(job_id));
  auto run_id = run(job_id, noon() - 1min);
  clock.set(noon());

  auto result = result_of(run_task("agent.scheduled_run",
                                   args(job_id, run_id, "2024-03-10T07:59:00-04:00"),
                                   1, 3));

  // The model saw the agent's system prompt and model, and the job's message.
  auto asked = llm.requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].target, "/v1/chat/completions");
  auto body = json::parse(asked[0].body).as_object();
  EXPECT_EQ(body["model"], "agent-model");
  EXPECT_EQ(json::serialize(body["messages"]),
            R"([{"role":"system","content":"You are terse."},)"
            R"({"role":"user","content":"Summarise the overnight alerts."}])");

  // The exchange is a conversation of the agent with token counts.
  auto conversation_id = std::string{result["conversation_id"].as_string()};
  EXPECT_EQ(query("SELECT agent_id::text || '|' || project_id::text || '|' || "
                  "user_id || '|' || title FROM engram.conversations WHERE id = "
                  + quoted(conversation_id)),
            agent_id + "|" + project_id + "|user-7|morning digest");
  EXPECT_EQ(query("SELECT string_agg(role || ':' || token_count || ':' || "
                  "content, ' / ' ORDER BY id) FROM engram.messages WHERE "
                  "conversation_id = "
                  + quoted(conversation_id)),
            "user:" + std::to_string(count_tokens("Summarise the overnight alerts."))
              + ":Summarise the overnight alerts. / "
                "assistant:9:Two alerts overnight; both resolved.");

  // The webhook got the answer as JSON, with an idempotency key.
  auto delivered = webhook.requests();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].method, "POST");
  EXPECT_EQ(delivered[0].target, "/hook?secret=s3");
  EXPECT_EQ(delivered[0].header("content-type"), "application/json");
  EXPECT_EQ(delivered[0].header("idempotency-key"),
            job_id + ":" + std::to_string(run_id));
  auto payload = json::parse(delivered[0].body).as_object();
  EXPECT_EQ(payload["event"], "agent.scheduled_run");
  EXPECT_EQ(payload["job_id"], job_id.c_str());
  EXPECT_EQ(payload["job_name"], "morning digest");
  EXPECT_EQ(payload["run_id"], run_id);
  EXPECT_EQ(payload["fire_time"], "2024-03-10T11:59:00.000Z");
  EXPECT_EQ(payload["agent_id"], agent_id.c_str());
  EXPECT_EQ(payload["conversation_id"], conversation_id.c_str());
  EXPECT_EQ(payload["content"], "Two alerts overnight; both resolved.");
  EXPECT_EQ(payload["model"], "fake-model-1");
  EXPECT_EQ(json::serialize(payload["usage"]),
            R"({"prompt_tokens":21,"completion_tokens":9})");
  EXPECT_EQ(payload["finished_at"], "2024-03-10T12:00:00.000Z");

  // The run and the job's tracking (DESIGN §5).
  EXPECT_EQ(result["status"], "succeeded");
  EXPECT_EQ(result["delivered"], true);
  EXPECT_EQ(result["webhook_status"], 204);
  EXPECT_EQ(result["recorded"], true);
  EXPECT_EQ(run_column(run_id, "status || '|' || conversation_id::text"),
            "succeeded|" + conversation_id);
  EXPECT_EQ(job_column(job_id, "run_count || '|' || consecutive_failures || '|' "
                               "|| engram.to_us(last_run_at) || '|' || is_active"),
            "1|0|" + std::to_string(to_epoch_us(noon())) + "|true");
  EXPECT_EQ(job_column(job_id, "last_error"), "earlier failure")
    << "a success keeps the last error seen";

  // At-least-once delivery of the task: a second run of the same run is a
  // no-op.
  auto again = result_of(run_task("agent.scheduled_run", args(job_id, run_id)));
  EXPECT_EQ(again["status"], "skipped");
  EXPECT_EQ(llm.request_count(), 1u);
  EXPECT_EQ(webhook.request_count(), 1u);
  EXPECT_EQ(job_column(job_id, "run_count"), "1");
}

TEST_F(scheduled_run_test, a_run_without_webhook_is_not_delivered) {
  model_answers("Nothing to report.");
  auto job_id = job();
  auto run_id = run(job_id, noon());
  auto result = result_of(run_task("agent.scheduled_run", args(job_id, run_id)));
  EXPECT_EQ(result["delivered"], false);
  EXPECT_EQ(webhook.request_count(), 0u);
  EXPECT_EQ(run_column(run_id, "status"), "succeeded");
}

TEST_F(scheduled_run_test, a_failing_model_fails_each_attempt_and_the_run_counts_once_when_retries_run_out) {
  model_fails(500);
  auto job_id = job("/hook");
  auto run_id = run(job_id, noon());

  // Attempt 1 of 2: the attempt fails (and will be retried); the run is
  // still running and the job's counters wait for the run's outcome.
  auto first = run_task("agent.scheduled_run", args(job_id, run_id), 1, 1);
  EXPECT_EQ(first.status, tasks::attempt_status::failed);
  EXPECT_NE(first.error.find("HTTP 500"), std::string::npos) << first.error;
  EXPECT_EQ(llm.request_count(), 2u) << "the provider's own two HTTP attempts";
  EXPECT_EQ(run_column(run_id, "status"), "running");
  EXPECT_EQ(job_column(job_id, "consecutive_failures || '|' || "
                               "coalesce(last_error, 'none')"),
            "0|none");

  // Attempt 2 of 2, the last: the failure is recorded once.
  clock.advance(30s);
  auto last = run_task("agent.scheduled_run", args(job_id, run_id), 2, 1);
  EXPECT_EQ(last.status, tasks::attempt_status::failed);
  EXPECT_EQ(run_column(run_id, "status"), "failed");
  EXPECT_NE(run_column(run_id, "error").find("HTTP 500"), std::string::npos);
  EXPECT_EQ(job_column(job_id, "consecutive_failures || '|' || run_count || "
                               "'|' || is_active"),
            "1|0|true");
  EXPECT_NE(job_column(job_id, "last_error").find("model overloaded"),
            std::string::npos);
  EXPECT_EQ(conversations(), 0) << "no answer, no conversation";
  EXPECT_EQ(webhook.request_count(), 0u);
}

TEST_F(scheduled_run_test, five_consecutive_failed_runs_deactivate_the_job) {
  model_fails(503);
  auto job_id = job();
  std::vector<int64_t> runs;
  for (int i = 0; i < 6; ++i)
    runs.push_back(run(job_id, noon() + std::chrono::hours{i}));
  for (int i = 0; i < 5; ++i) {
    auto r = run_task("agent.scheduled_run", args(job_id, runs[i]));
    EXPECT_EQ(r.status, tasks::attempt_status::failed);
    EXPECT_EQ(job_column(job_id, "consecutive_failures"), std::to_string(i + 1));
    if (i < 4) {
      EXPECT_EQ(job_column(job_id, "is_active"), "t");
    } else {
      EXPECT_NE(r.error.find("the job was deactivated after 5 consecutive "
                             "failures"),
                std::string::npos)
        << r.error;
    }
  }
  EXPECT_EQ(job_column(job_id, "is_active"), "f");

  // The sixth fire was already queued: it is skipped, the model not asked.
  auto asked = llm.request_count();
  auto sixth = result_of(run_task("agent.scheduled_run", args(job_id, runs[5])));
  EXPECT_EQ(sixth["status"], "skipped");
  EXPECT_EQ(sixth["reason"], "the job is inactive");
  EXPECT_EQ(run_column(runs[5], "status || '|' || error"),
            "skipped|the job is inactive");
  EXPECT_EQ(llm.request_count(), asked);
  EXPECT_EQ(job_column(job_id, "consecutive_failures"), "5");
}

TEST_F(scheduled_run_test, a_success_resets_the_consecutive_failures) {
  model_fails(500);
  auto job_id = job();
  auto failed = run(job_id, noon());
  (void) run_task("agent.scheduled_run", args(job_id, failed));
  EXPECT_EQ(job_column(job_id, "consecutive_failures"), "1");
  model_answers("fine now");
  auto next = run(job_id, noon() + 1h);
  (void) result_of(run_task("agent.scheduled_run", args(job_id, next)));
  EXPECT_EQ(job_column(job_id, "consecutive_failures || '|' || run_count"),
            "0|1");
}

TEST_F(scheduled_run_test, an_inactive_job_is_skipped_without_asking_the_model) {
  model_answers("unused");
  auto job_id = job();
  auto run_id = run(job_id, noon());
  exec("UPDATE engram.scheduled_jobs SET is_active = false WHERE id = "
       + quoted(job_id));
  auto result = result_of(run_task("agent.scheduled_run", args(job_id, run_id)));
  EXPECT_EQ(result["status"], "skipped");
  EXPECT_EQ(run_column(run_id, "status"), "skipped");
  EXPECT_EQ(llm.request_count(), 0u);
  EXPECT_EQ(job_column(job_id, "run_count || '|' || consecutive_failures"), "0|0");
  EXPECT_EQ(conversations(), 0);
}

TEST_F(scheduled_run_test, a_refused_delivery_fails_the_run_at_once_and_keeps_the_conversation) {
  model_answers("Report ready.");
  webhook.set_handler([](const recorded_request&) {
    return canned_response{410, {}, "gone"};
  });
  auto job_id = job("/gone");
  auto run_id = run(job_id, noon());
  // Attempt 1 of 4, but a 410 is the receiver's final word.
  auto r = run_task("agent.scheduled_run", args(job_id, run_id), 1, 3);
  EXPECT_EQ(r.status, tasks::attempt_status::permanent);
  EXPECT_NE(r.error.find("answered HTTP 410"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("/gone"), std::string::npos)
    << "errors name the origin only";
  EXPECT_EQ(webhook.request_count(), 1u);
  EXPECT_EQ(run_column(run_id, "status"), "failed");
  EXPECT_EQ(run_column(run_id, "conversation_id IS NOT NULL"), "t");
  EXPECT_EQ(conversations(), 1);
  EXPECT_EQ(job_column(job_id, "consecutive_failures"), "1");
}

TEST_F(scheduled_run_test, a_webhook_that_keeps_failing_is_retried_then_fails_the_attempt) {
  model_answers("Report ready.");
  webhook.set_handler([](const recorded_request&) {
    return canned_response{502, {}, "bad gateway"};
  });
  auto job_id = job("/flaky");
  auto run_id = run(job_id, noon());
  auto r = run_task("agent.scheduled_run", args(job_id, run_id), 1, 2);
  EXPECT_EQ(r.status, tasks::attempt_status::failed);
  EXPECT_EQ(webhook.request_count(), 2u) << "settings.webhook_retry: 2 attempts";
  EXPECT_EQ(run_column(run_id, "status"), "running") << "two retries remain";
}

TEST_F(scheduled_run_test, a_malformed_delivery_config_fails_the_run_before_asking_the_model) {
  model_answers("unused");
  auto job_id = job("", R"({"webhook_url":"ftp://example.com/x"})");
  auto run_id = run(job_id, noon());
  auto r = run_task("agent.scheduled_run", args(job_id, run_id), 1, 3);
  EXPECT_EQ(r.status, tasks::attempt_status::permanent);
  EXPECT_NE(r.error.find("delivery_config.webhook_url is not a valid"),
            std::string::npos)
    << r.error;
  EXPECT_EQ(llm.request_count(), 0u);
  EXPECT_EQ(run_column(run_id, "status"), "failed");
}

TEST_F(scheduled_run_test, run_arguments_are_checked) {
  auto job_id = job();
  const std::pair<std::string, std::string> cases[] = {
    {R"({"run_id":1})", "invalid arguments: args.job_id is required"},
    {R"({"job_id":"nope","run_id":1})",
     "invalid arguments: args.job_id must be a UUID, got 'nope'"},
    {args(job_id, 0), "invalid arguments: args.run_id must be between 1 and "
                      "9223372036854775807, got 0"},
    {args(job_id, 1, "yesterday"),
     "invalid arguments: args.fire_time must be an RFC 3339 date-time, got "
     "'yesterday'"},
    {R"({"job_id":")" + job_id + R"(","run_id":1,"extra":true})",
     "invalid arguments: unknown argument args.extra"},
  };
  for (const auto& [a, error] : cases) {
    auto r = run_task("agent.scheduled_run", a);
    EXPECT_EQ(r.status, tasks::attempt_status::permanent) << a;
    EXPECT_EQ(r.error, error);
  }
  EXPECT_EQ(llm.request_count(), 0u);
}

TEST_F(scheduled_run_test, a_deleted_job_ends_the_task_without_error) {
  auto job_id = job();
  auto run_id = run(job_id, noon());
  exec("DELETE FROM engram.scheduled_jobs WHERE id = " + quoted(job_id));
  auto result = result_of(run_task("agent.scheduled_run", args(job_id, run_id)));
  EXPECT_EQ(result["status"], "skipped");
  EXPECT_EQ(result["reason"], "the job no longer exists");
}

TEST_F(scheduled_run_test, through_the_task_system_a_failed_attempt_is_retried_and_the_run_counts_once) {
  // The first task attempt meets two 500s (the provider's two HTTP
  // attempts); the retry gets an answer.
  std::atomic<int> calls{0};
  llm.set_handler([&calls](const recorded_request&) {
    if (++calls <= 2)
      return test::json_response(R"({"error":{"message":"busy"}})", 500);
    return test::json_response(chat_completion("Done on the second try."));
  });
  auto job_id = job();
  auto run_id = run(job_id, noon());
  start_task_system("agents=1");
  auto id = enqueue("agent.scheduled_run", args(job_id, run_id), 1);
  auto task = [&](const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.tasks WHERE id = "
                 + std::to_string(id));
  };
  ASSERT_TRUE(wait_for("SELECT attempts || status FROM engram.tasks WHERE id = "
                         + std::to_string(id),
                       "1queued"));
  EXPECT_EQ(task("queue"), "agents");
  EXPECT_EQ(run_column(run_id, "status"), "running");
  EXPECT_EQ(job_column(job_id, "consecutive_failures"), "0");
  // Backoff after attempt 1: base 30 s with equal jitter, 15..30 s.
  clock.advance(31s);
  ASSERT_TRUE(wait_for("SELECT status FROM engram.tasks WHERE id = "
                         + std::to_string(id),
                       "succeeded"));
  EXPECT_EQ(task("attempts"), "2");
  EXPECT_EQ(task("jsonb_array_length(errors)"), "1");
  EXPECT_EQ(run_column(run_id, "status"), "succeeded");
  EXPECT_EQ(job_column(job_id, "run_count || '|' || consecutive_failures"), "1|0");
  EXPECT_EQ(task("result->>'conversation_id'"),
            run_column(run_id, "conversation_id::text"));
}

// -- memory.extract ----------------------------------------------------------------

namespace {

class extract_task_test : public test::platform_tasks_test {
protected:
  void SetUp() override {
    platform_tasks_test::SetUp();
    if (HasFatalFailure())
      return;
    project_id = project();
    agent_id = agent(project_id);
  }

  std::string conversation(std::optional<std::string> project,
                           std::optional<std::string> agent,
                           const std::vector<storage::new_message>& messages) {
    auto id = in_tx([&](auto& tx) {
      storage::new_conversation c;
      c.project_id = std::move(project);
      c.agent_id = std::move(agent);
      return storage::create_conversation(tx, c, noon() - 1h).id;
    });
    in_tx([&](auto& tx) {
      (void) storage::add_messages(tx, id, messages, noon() - 1h);
    });
    return id;
  }

  static std::string args(const std::string& conversation_id) {
    return R"({"conversation_id":")" + conversation_id + R"("})";
  }

  std::string memories() {
    return query("SELECT coalesce(string_agg(content, ' | ' ORDER BY "
                 "created_at, content), '') FROM engram.memories");
  }

  const std::vector<storage::new_message> chat{
    {"system", "You are a helpful assistant.", {}},
    {"user", "Hi! I moved to Lisbon last spring. Can you suggest a cafe?", {}},
    {"assistant", "Sure. Fabrica Coffee Roasters serves excellent espresso.", {}},
    {"user", "Thanks! I prefer oat milk in my coffee.", {}},
  };

  std::string project_id;
  std::string agent_id;
};

} // namespace

TEST_F(extract_task_test, extractive_facts_become_memories_and_duplicates_are_skipped_and_counted) {
  use_extractive();
  auto id = conversation(project_id, agent_id, chat);
  std::vector<chat_message> said;
  for (const auto& m : chat)
    if (m.role != "system")
      said.push_back({m.role, m.content});
  auto expected = extract_facts(said);
  ASSERT_GE(expected.size(), 2u) << "the conversation must hold facts";
  // One fact is already known to the agent.
  exec("INSERT INTO engram.memories (project_id, agent_id, type, content) "
       "VALUES ("
       + quoted(project_id) + ", " + quoted(agent_id) + ", 'episodic', "
       + quoted(expected[0]) + ")");

  auto result = result_of(run_task("memory.extract", args(id)));
  EXPECT_EQ(result["method"], "extractive");
  EXPECT_EQ(result["facts"], static_cast<int64_t>(expected.size()));
  EXPECT_EQ(result["created"], static_cast<int64_t>(expected.size() - 1));
  EXPECT_EQ(result["skipped_duplicates"], 1);
  EXPECT_EQ(result["memory_ids"].as_array().size(), expected.size() - 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE source_type = "
                  "'conversation' AND type = 'semantic' AND status = 'active' "
                  "AND agent_id = "
                  + quoted(agent_id) + " AND metadata->>'conversation_id' = "
                  + quoted(id)),
            static_cast<int64_t>(expected.size() - 1));

  // A rerun (a retried or repeated task) creates nothing new.
  auto again = result_of(run_task("memory.extract", args(id)));
  EXPECT_EQ(again["created"], 0);
  EXPECT_EQ(again["skipped_duplicates"], static_cast<int64_t>(expected.size()));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"),
            static_cast<int64_t>(expected.size()));
}

TEST_F(extract_task_test, without_an_llm_service_extraction_is_extractive) {
  auto id = conversation(project_id, agent_id, chat);
  auto result = result_of(run_task("memory.extract", args(id)));
  EXPECT_EQ(result["method"], "extractive");
  EXPECT_GT(result["created"].as_int64(), 0);
}

TEST_F(extract_task_test, an_llm_lists_facts_one_per_line) {
  fake_http_server llm{[](const recorded_request&) {
    return test::json_response(chat_completion(
      "- The user moved to Lisbon last spring.\n"
      "2. The user prefers oat milk in coffee.\n\n"
      "* The user moved to Lisbon last spring.\n"));
  }};
  use_openai(llm);
  // The conversation has no project: the memories go to its agent's.
  auto id = conversation(std::nullopt, agent_id, chat);
  auto result = result_of(run_task("memory.extract", args(id)));
  EXPECT_EQ(result["method"], "llm");
  EXPECT_EQ(result["facts"], 3);
  EXPECT_EQ(result["created"], 2);
  EXPECT_EQ(result["skipped_duplicates"], 1) << "a repeated line counts as one";
  EXPECT_EQ(memories(), "The user moved to Lisbon last spring. | The user "
                        "prefers oat milk in coffee.");
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = "
                  + quoted(project_id)),
            2);
  auto asked = json::parse(llm.requests().at(0).body).as_object();
  auto transcript = std::string{
    asked["messages"].as_array().at(1).as_object()["content"].as_string()};
  EXPECT_EQ(transcript,
            "User: Hi! I moved to Lisbon last spring. Can you suggest a cafe?\n"
            "Assistant: Sure. Fabrica Coffee Roasters serves excellent "
            "espresso.\n"
            "User: Thanks! I prefer oat milk in my coffee.\n")
    << "system messages stay out of the transcript";
}

TEST_F(extract_task_test, a_failing_llm_fails_the_attempt_for_a_retry) {
  fake_http_server llm{[](const recorded_request&) {
    return canned_response{503, {}, "unavailable"};
  }};
  use_openai(llm);
  auto id = conversation(project_id, agent_id, chat);
  auto r = run_task("memory.extract", args(id), 1, 3);
  EXPECT_EQ(r.status, tasks::attempt_status::failed) << r.error;
  EXPECT_EQ(memories(), "");
}

TEST_F(extract_task_test, unknown_conversations_and_conversations_without_project_are_permanent_failures) {
  use_extractive();
  auto unknown = run_task("memory.extract",
                          args("00000000-0000-4000-8000-000000000000"), 1, 3);
  EXPECT_EQ(unknown.status, tasks::attempt_status::permanent);
  EXPECT_EQ(unknown.error,
            "no conversation with id 00000000-0000-4000-8000-000000000000");
  auto orphan = conversation(std::nullopt, std::nullopt, chat);
  auto r = run_task("memory.extract", args(orphan), 1, 3);
  EXPECT_EQ(r.status, tasks::attempt_status::permanent);
  EXPECT_NE(r.error.find("belongs to no project"), std::string::npos) << r.error;
  auto bad = run_task("memory.extract", R"({"conversation_id":42})");
  EXPECT_EQ(bad.error, "invalid arguments: args.conversation_id must be a string");
  EXPECT_EQ(memories(), "");
}

TEST_F(extract_task_test, an_empty_conversation_creates_nothing) {
  use_extractive();
  auto id = conversation(project_id, agent_id, {});
  auto result = result_of(run_task("memory.extract", args(id)));
  EXPECT_EQ(result["facts"], 0);
  EXPECT_EQ(result["created"], 0);
  EXPECT_EQ(result["memory_ids"].as_array().size(), 0u);
}
