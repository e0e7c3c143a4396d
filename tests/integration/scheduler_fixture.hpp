#pragma once

// Schedulers against a real PostgreSQL: a fresh database per test, real
// actors in a real actor system, time that matters to the rules from a
// manual clock the tests move. Tests wait (polling, in real time) only for
// effects to show up.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "actors/scheduler/scheduler.hpp"
#include "messages/errc.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "storage/migration.hpp"
#include "storage/notification_listener.hpp"
#include "storage/platform_repository.hpp"
#include "storage/schedule_store.hpp"
#include "tests/support/postgres_fixture.hpp"
#include "tests/support/storage_options.hpp"

namespace engram::test {

class scheduler_fixture : public ::testing::Test {
protected:
  void SetUp() override {
    db = shared_postgres().create_database(database_name_for_current_test());
    ASSERT_TRUE(storage::apply_migrations(db, storage::embedded_migrations()));
    conn = std::make_unique<pqxx::connection>(db);
  }

  void TearDown() override {
    for (auto& s : schedulers)
      caf::anon_send_exit(s, caf::exit_reason::kill);
  }

  /// An instant from RFC 3339 text.
  static wall_time at(std::string_view text) {
    auto t = cron::parse_rfc3339(text);
    EXPECT_TRUE(t.has_value()) << text;
    return wall_time{t.value_or(std::chrono::sys_seconds{})};
  }

  /// Fast timers; the given static entries (none by default).
  scheduler_options options(std::vector<sched::static_entry> entries = {}) {
    using namespace std::chrono_literals;
    scheduler_options o;
    o.entries = std::move(entries);
    o.time = &clock;
    o.tick_interval = 20ms;
    o.lock_retry = 50ms;
    o.reload_interval = 1h;
    o.store_timeout = 5s;
    auto storage = fast_storage_options(db);
    o.spawn_store = [storage](caf::actor_system& sys) {
      return spawn_schedule_store(sys, schedule_store_options{storage});
    };
    o.spawn_listener = [storage](caf::actor_system& sys,
                                 notification_callback cb) {
      listener_options lopts;
      lopts.storage = storage;
      lopts.channels = {schedules_channel};
      lopts.wait_slice = 20ms;
      return spawn_notification_listener(sys, lopts, std::move(cb));
    };
    return o;
  }

  scheduler_actor start(scheduler_options o) {
    auto s = spawn_scheduler(sys, std::move(o));
    schedulers.push_back(s);
    return s;
  }

  /// Stops a scheduler (and with it its store's session) for good.
  void stop(const scheduler_actor& s) {
    caf::anon_send_exit(s, caf::exit_reason::kill);
  }

  /// Asks `dest` and waits for the reply; an error fails the test.
  template <class Reply, class Handle, class Request>
  std::optional<Reply> ask(const Handle& dest, Request req) {
    using namespace std::chrono_literals;
    caf::scoped_actor self{sys};
    std::optional<Reply> result;
    self->request(dest, 10s, std::move(req))
      .receive([&](Reply& r) { result = std::move(r); },
               [&](caf::error& err) { last_error = err; });
    return result;
  }

  schedules::scheduler_status status(const scheduler_actor& s) {
    return ask<schedules::scheduler_status>(s, schedules::status_request{})
      .value_or(schedules::scheduler_status{});
  }

  /// Waits until `pred` holds (real time, polling).
  bool eventually(const std::function<bool()>& pred,
                  std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return pred();
  }

  /// Waits until `s` leads and loaded its state.
  bool ready(const scheduler_actor& s) {
    return eventually([&] { return status(s).ready; });
  }

  /// The first column of the one row `sql` returns, as text ("NULL" for
  /// null).
  std::string query(const std::string& sql) {
    pqxx::nontransaction tx{*conn};
    auto row = tx.exec1(sql);
    return row[0].is_null() ? "NULL" : row[0].as<std::string>();
  }

  int64_t count(const std::string& sql) { return std::stoll(query(sql)); }

  /// Waits until `sql` returns `expected`.
  bool wait_for(const std::string& sql, const std::string& expected,
                std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
    return eventually([&] { return query(sql) == expected; }, timeout);
  }

  /// The number of tasks whose unique key is `key`.
  int64_t tasks_with_key(const std::string& key) {
    return count("SELECT count(*) FROM engram.tasks WHERE unique_key = '" + key
                 + "'");
  }

  /// A project with one agent; returns the agent's id.
  std::string make_agent() {
    pqxx::work tx{*conn};
    storage::new_project p;
    p.name = "p";
    auto project = storage::create_project(tx, p, clock.now()).id;
    storage::new_agent a;
    a.project_id = project;
    a.name = "a";
    auto agent = storage::create_agent(tx, a, clock.now()).id;
    tx.commit();
    return agent;
  }

  std::string db;
  std::unique_ptr<pqxx::connection> conn;
  manual_clock clock{at("2024-03-10T11:50:00Z")};
  caf::error last_error;
  /// For schedulers that report metrics; outlives every actor.
  metrics::registry registry;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<scheduler_actor> schedulers;
};

} // namespace engram::test
