#pragma once

// The platform tasks wired as the daemon wires them, against a fresh
// database: a storage pool in the actor registry, a task registry with the
// platform tasks, task services on a manual clock with a real outbound HTTP
// client, and (per test) an OpenAI-compatible provider pointed at a fake
// server. Tasks run through `run_task` (run_attempt_now, the worker slot's
// code) or through a real task system (`start_task_system`).

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <gtest/gtest.h>

#include "actors/tasks/platform_tasks.hpp"
#include "actors/tasks/task_queue.hpp"
#include "actors/tasks/task_system.hpp"
#include "messages/storage.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/outbound_http.hpp"
#include "storage/notification_listener.hpp"
#include "storage/platform_repository.hpp"
#include "storage/schedule_repository.hpp"
#include "storage/task_repository.hpp"
#include "storage/storage_actors.hpp"
#include "tests/integration/platform_fixture.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/storage_options.hpp"

namespace engram::test {

/// An OpenAI chat-completions answer with `content` and the given usage.
inline std::string chat_completion(const std::string& content,
                                   int64_t prompt_tokens = 12,
                                   int64_t completion_tokens = 7) {
  namespace json = boost::json;
  json::object message{{"role", "assistant"}, {"content", content}};
  json::object choice{{"index", 0}, {"message", std::move(message)},
                      {"finish_reason", "stop"}};
  json::object usage{{"prompt_tokens", prompt_tokens},
                     {"completion_tokens", completion_tokens},
                     {"total_tokens", prompt_tokens + completion_tokens}};
  json::object body{{"id", "chatcmpl-1"},
                    {"model", "fake-model-1"},
                    {"choices", json::array{std::move(choice)}},
                    {"usage", std::move(usage)}};
  return json::serialize(body);
}

class platform_tasks_test : public platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    if (HasFatalFailure())
      return;
    pool = spawn_storage_pool(sys, fast_storage_options(db), 2, nullptr);
    sys.registry().put(caf::atom(storage_pool_name), pool);
    tasks::platform_task_settings settings;
    settings.webhook_timeout = std::chrono::seconds{2};
    // Two delivery attempts 10 ms apart: retries show without slowing tests.
    settings.webhook_retry = {2, std::chrono::milliseconds{10},
                              std::chrono::milliseconds{50}};
    tasks::register_platform_tasks(registry, settings);
    services.system = &sys;
    services.time = &clock;
    services.request_timeout = std::chrono::seconds{10};
    auto http = outbound_http::make();
    ASSERT_TRUE(http) << describe(http.error());
    services.extra["http"] = std::shared_ptr<http_client>(std::move(*http));
  }

  void TearDown() override {
    if (task_system)
      caf::anon_send_exit(task_system, caf::exit_reason::kill);
    sys.registry().erase(caf::atom(storage_pool_name));
    if (pool)
      caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  }

  /// Makes the "llm" service an OpenAI-compatible provider at `server`
  /// (no key: it is local), two HTTP attempts per completion 10 ms apart.
  void use_openai(const fake_http_server& server) {
    llm_options opts;
    opts.provider = "openai";
    opts.base_url = server.url();
    opts.model = "fake-model";
    opts.api_key_env = "ENGRAM_TEST_UNSET_KEY";
    opts.timeout = std::chrono::seconds{2};
    opts.max_attempts = 2;
    opts.retry_base_delay = std::chrono::milliseconds{10};
    llm_environment env;
    env.getenv = [](const std::string&) -> std::optional<std::string> {
      return std::nullopt;
    };
    auto provider = make_llm_provider(opts, env);
    ASSERT_TRUE(provider) << describe(provider.error());
    services.extra["llm"] = std::shared_ptr<llm_provider>(std::move(*provider));
  }

  /// Makes the "llm" service the offline extractive provider.
  void use_extractive() {
    auto provider = make_llm_provider(llm_options{});
    ASSERT_TRUE(provider) << describe(provider.error());
    services.extra["llm"] = std::shared_ptr<llm_provider>(std::move(*provider));
  }

  /// Runs one attempt of `name` with `args` on this thread, as a worker slot
  /// would: attempt `attempt` of 1 + `max_retries`.
  tasks::attempt_result run_task(const std::string& name,
                                 const std::string& args, int32_t attempt = 1,
                                 int32_t max_retries = 0) {
    tasks::claimed_task task;
    task.id = ++next_task_id;
    task.name = name;
    task.queue = registry.request_for(name).queue;
    task.args_json = args;
    task.attempts = attempt;
    task.max_retries = max_retries;
    return run_attempt_now(task, registry, services, std::stop_token{});
  }

  /// The JSON result of a successful attempt (fails the test otherwise).
  boost::json::object result_of(const tasks::attempt_result& r) {
    EXPECT_EQ(r.status, tasks::attempt_status::succeeded) << r.error;
    if (r.status != tasks::attempt_status::succeeded)
      return {};
    return boost::json::parse(r.result_json).as_object();
  }

  /// Starts a task system on `queues` against this database.
  void start_task_system(const std::string& queues) {
    task_system_options opts;
    opts.queues = std::get<std::vector<queue_spec>>(parse_queue_list(queues));
    opts.queue_defaults.worker_id = "test-node";
    opts.queue_defaults.poll_interval = std::chrono::seconds{1};
    opts.queue_defaults.drain_timeout = std::chrono::seconds{2};
    opts.reclaim_interval = std::chrono::milliseconds{50};
    auto storage = fast_storage_options(db);
    opts.spawn_storage = [storage](caf::actor_system& sys) {
      return spawn_storage_worker(sys, storage);
    };
    opts.spawn_listener = [storage](caf::actor_system& sys,
                                    notification_callback cb) {
      listener_options lopts;
      lopts.storage = storage;
      lopts.channels = {"engram_tasks"};
      lopts.wait_slice = std::chrono::milliseconds{20};
      return spawn_notification_listener(sys, lopts, std::move(cb));
    };
    task_system = spawn_task_system(sys, opts, registry, services, nullptr);
  }

  /// Enqueues a task with its registered defaults; returns its id.
  int64_t enqueue(const std::string& name, const std::string& args,
                  std::optional<int32_t> max_retries = std::nullopt) {
    auto req = registry.request_for(name, args);
    if (max_retries)
      req.max_retries = *max_retries;
    return in_tx([&](auto& tx) {
      return storage::enqueue_task(tx, req, clock.now()).id;
    });
  }

  /// Waits (real time, polling) until `sql` returns `expected`.
  bool wait_for(const std::string& sql, const std::string& expected,
                std::chrono::milliseconds timeout = std::chrono::seconds{15}) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (query(sql) == expected)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return false;
  }

  std::string project(const std::string& name = "p") {
    return in_tx([&](auto& tx) {
      storage::new_project p;
      p.name = name;
      return storage::create_project(tx, p, noon() - std::chrono::hours{1000})
        .id;
    });
  }

  std::string agent(const std::optional<std::string>& project_id,
                    const std::string& system_prompt = "You are terse.",
                    const std::string& model = "agent-model") {
    return in_tx([&](auto& tx) {
      storage::new_agent a;
      a.project_id = project_id;
      a.name = "scout";
      a.system_prompt = system_prompt;
      a.model = model;
      return storage::create_agent(tx, a, noon() - std::chrono::hours{1000}).id;
    });
  }

  manual_clock clock{noon()};
  tasks::task_registry registry;
  tasks::task_services services;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  storage_pool_actor pool;
  task_system_actor task_system;
  int64_t next_task_id = 1000;
};

} // namespace engram::test
