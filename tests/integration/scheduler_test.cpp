// The scheduler against a real PostgreSQL (DESIGN §5): one leader per
// database fires each slot exactly once, a standby takes over when the
// leader's actor or session stops, missed slots coalesce into one run per
// entry after a downtime, dynamic jobs fire at their slots with a run row
// and keep next_run_at current, invalid jobs are skipped, disabled entries
// never fire. The clock is a manual one; tests wait only for effects.

#include <boost/json.hpp>

#include "storage/schedule_repository.hpp"
#include "tests/integration/scheduler_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

class scheduler_test : public test::scheduler_fixture {
protected:
  /// Tasks enqueued so far.
  int64_t task_count() { return count("SELECT count(*) FROM engram.tasks"); }

  /// Waits until exactly `n` tasks exist (and stay so for a moment).
  bool tasks_reach(int64_t n) {
    if (!wait_for("SELECT count(*) FROM engram.tasks", std::to_string(n)))
      return false;
    std::this_thread::sleep_for(60ms);
    return task_count() == n;
  }

  /// Which of the schedulers lead.
  int leaders(const std::vector<scheduler_actor>& all) {
    int n = 0;
    for (const auto& s : all)
      n += status(s).leader ? 1 : 0;
    return n;
  }

  /// Every unique key is held by one task only.
  void expect_unique_keys() {
    EXPECT_EQ(count("SELECT count(*) FROM (SELECT unique_key FROM engram.tasks "
                    "GROUP BY unique_key HAVING count(*) > 1) d"),
              0);
  }

  double counter(const std::string& name, const std::string& entry) {
    return registry.get_counter(name, "", {{"entry", entry}}).value();
  }

  std::string key(const std::string& entry, std::string_view slot) {
    return "schedule:" + entry + "@" + std::string{slot};
  }
};

} // namespace

TEST_F(scheduler_test, two_schedulers_fire_each_slot_exactly_once) {
  auto a = start(options(sched::default_static_entries()));
  auto b = start(options(sched::default_static_entries()));
  ASSERT_TRUE(eventually([&] {
    auto sa = status(a);
    auto sb = status(b);
    return (sa.ready && !sb.leader) || (sb.ready && !sa.leader);
  }));
  // Eight quarters from 11:50: */15 fires 8 times, hourly twice.
  int64_t expected = 0;
  for (int i = 1; i <= 8; ++i) {
    clock.advance(15min);
    auto now = clock.now();
    expected += 1; // the quarter-hour entry
    if (std::chrono::floor<std::chrono::hours>(now)
        != std::chrono::floor<std::chrono::hours>(now - 15min))
      expected += 1; // the hourly entry
    ASSERT_TRUE(tasks_reach(expected)) << "step " << i << ": " << task_count();
  }
  EXPECT_EQ(expected, 10);
  expect_unique_keys();
  EXPECT_EQ(tasks_with_key(key("cleanup.close_stale_sessions",
                               "2024-03-10T12:00:00Z")),
            1);
  EXPECT_EQ(tasks_with_key(key("cleanup.expire_tokens", "2024-03-10T13:00:00Z")),
            1);
  EXPECT_EQ(leaders({a, b}), 1);
  // The fires carry the configured task and its arguments.
  EXPECT_EQ(query("SELECT name || ' ' || args::text || ' ' || status FROM "
                  "engram.tasks WHERE unique_key = '"
                  + key("cleanup.expire_tokens", "2024-03-10T12:00:00Z") + "'"),
            "cleanup.expire_tokens {} queued");
  EXPECT_EQ(query("SELECT fire_count FROM engram.schedule_state "
                  "WHERE entry = 'cleanup.close_stale_sessions'"),
            "8");
}

TEST_F(scheduler_test, a_node_that_does_not_lead_serves_crud_but_never_fires) {
  auto opts = options(sched::default_static_entries());
  opts.lead = false;
  auto s = start(opts);
  auto agent = make_agent();
  schedules::create_job req;
  req.spec.agent_id = agent;
  req.spec.name = "n";
  req.spec.message = "m";
  req.spec.cron_expression = "*/5 * * * *";
  ASSERT_TRUE(ask<schedules::job_info>(s, req)) << describe(last_error);
  clock.set(at("2024-03-10T13:00:00Z"));
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(status(s).leader);
  EXPECT_EQ(task_count(), 0);
  // The lock stays free for a node that leads.
  auto leader = start(options(sched::default_static_entries()));
  ASSERT_TRUE(ready(leader));
  // The job's missed slots fire once; the static entries, never scheduled
  // before, start from now.
  ASSERT_TRUE(tasks_reach(1)) << task_count();
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs"), 1);
}

TEST_F(scheduler_test, a_standby_takes_over_when_the_leader_stops) {
  auto a = start(options(sched::default_static_entries()));
  ASSERT_TRUE(ready(a));
  auto b = start(options(sched::default_static_entries()));
  // B keeps trying the lock and keeps failing while A lives.
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(status(b).leader);
  EXPECT_TRUE(status(a).leader);
  clock.set(at("2024-03-10T12:05:00Z"));
  ASSERT_TRUE(tasks_reach(2)); // 12:00 hourly and quarter-hour
  stop(a);
  ASSERT_TRUE(ready(b));
  clock.set(at("2024-03-10T12:20:00Z"));
  ASSERT_TRUE(tasks_reach(3)) << task_count();
  EXPECT_EQ(tasks_with_key(key("cleanup.close_stale_sessions",
                               "2024-03-10T12:15:00Z")),
            1);
  expect_unique_keys();
}

TEST_F(scheduler_test, leadership_moves_when_the_leaders_session_ends) {
  auto a = start(options(sched::default_static_entries()));
  ASSERT_TRUE(ready(a));
  auto b = start(options(sched::default_static_entries()));
  std::this_thread::sleep_for(100ms);
  // End A's session behind its back: the lock goes with it.
  EXPECT_EQ(query("SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                  "WHERE locktype = 'advisory' AND granted AND objid = "
                  + std::to_string(default_scheduler_lock_key & 0xffffffff)),
            "1");
  // Someone leads again (B, or A after reconnecting): never both.
  ASSERT_TRUE(eventually([&] {
    return status(a).ready || status(b).ready;
  }));
  EXPECT_EQ(leaders({a, b}), 1);
  for (int i = 1; i <= 3; ++i) {
    clock.advance(15min);
    ASSERT_TRUE(tasks_reach(i == 1 ? 2 : i + 1)) << task_count();
  }
  expect_unique_keys();
  EXPECT_EQ(leaders({a, b}), 1);
}

TEST_F(scheduler_test, missed_slots_after_a_downtime_coalesce_into_one_run_per_entry) {
  clock.set(at("2024-03-10T01:50:00Z"));
  auto a = start(options(sched::default_static_entries()));
  ASSERT_TRUE(ready(a));
  stop(a);
  // Down for 26 hours: every entry missed one or more slots.
  clock.set(at("2024-03-11T03:50:00Z"));
  auto opts = options(sched::default_static_entries());
  opts.metrics = &registry;
  auto c = start(opts);
  ASSERT_TRUE(ready(c));
  ASSERT_TRUE(tasks_reach(6)) << task_count();
  // The actor counts a fire once the store has answered, a moment after the
  // task row exists.
  ASSERT_TRUE(eventually([&] { return status(c).fires == 6; }))
    << status(c).fires;
  auto fired = [&](const std::string& entry, std::string_view slot) {
    return tasks_with_key(key(entry, slot));
  };
  EXPECT_EQ(fired("cleanup.expire_tokens", "2024-03-11T03:00:00Z"), 1);
  EXPECT_EQ(fired("cleanup.close_stale_sessions", "2024-03-11T03:45:00Z"), 1);
  EXPECT_EQ(fired("memory.consolidate", "2024-03-11T02:00:00Z"), 1);
  EXPECT_EQ(fired("cleanup.archive_old_conversations", "2024-03-11T03:00:00Z"),
            1);
  EXPECT_EQ(fired("cleanup.archive_expired_memories", "2024-03-10T04:00:00Z"),
            1);
  EXPECT_EQ(fired("memory.decay_and_expire", "2024-03-10T05:00:00Z"), 1);
  // Entries that missed more than one slot count a misfire.
  EXPECT_EQ(counter("engram_schedule_misfires_total",
                    "cleanup.expire_tokens"),
            1);
  EXPECT_EQ(counter("engram_schedule_misfires_total",
                    "memory.consolidate"),
            1);
  EXPECT_EQ(counter("engram_schedule_misfires_total",
                    "memory.decay_and_expire"),
            0);
  EXPECT_EQ(counter("engram_schedule_fires_total",
                    "memory.decay_and_expire"),
            1);
  EXPECT_EQ(registry.get_gauge("engram_scheduler_leader", "").value(), 1);
  EXPECT_EQ(query("SELECT misfire_count || '/' || fire_count FROM "
                  "engram.schedule_state WHERE entry = 'cleanup.expire_tokens'"),
            "1/1");
  EXPECT_EQ(status(c).misfires, 4);
  // ... then each continues from now.
  clock.set(at("2024-03-11T04:05:00Z"));
  ASSERT_TRUE(tasks_reach(9)) << task_count();
  EXPECT_EQ(fired("cleanup.archive_expired_memories", "2024-03-11T04:00:00Z"),
            1);
  EXPECT_EQ(fired("cleanup.expire_tokens", "2024-03-11T04:00:00Z"), 1);
  EXPECT_EQ(fired("cleanup.close_stale_sessions", "2024-03-11T04:00:00Z"), 1);
  expect_unique_keys();
}

TEST_F(scheduler_test, a_slot_missed_while_running_behind_also_fires_once) {
  auto s = start(options(sched::default_static_entries()));
  ASSERT_TRUE(ready(s));
  // The clock leaps three hours at once (a suspended VM): one fire each.
  clock.set(at("2024-03-10T14:50:00Z"));
  ASSERT_TRUE(tasks_reach(2)) << task_count();
  EXPECT_EQ(tasks_with_key(key("cleanup.expire_tokens", "2024-03-10T14:00:00Z")),
            1);
  EXPECT_EQ(tasks_with_key(key("cleanup.close_stale_sessions",
                               "2024-03-10T14:45:00Z")),
            1);
}

TEST_F(scheduler_test, a_disabled_static_entry_never_fires) {
  auto entries = sched::default_static_entries();
  entries[1].enabled = false; // cleanup.close_stale_sessions
  entries[0].cron = "*/30 * * * *"; // cleanup.expire_tokens, re-timed
  auto s = start(options(entries));
  ASSERT_TRUE(ready(s));
  // 11:50 → 12:50: the re-timed entry fires at 12:00 and 12:30.
  const int64_t expected[] = {1, 1, 2, 2};
  for (auto n : expected) {
    clock.advance(15min);
    ASSERT_TRUE(tasks_reach(n)) << task_count();
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks "
                  "WHERE name = 'cleanup.close_stale_sessions'"),
            0);
  auto st = status(s);
  ASSERT_EQ(st.entries.size(), 6u);
  EXPECT_FALSE(st.entries[1].enabled);
  EXPECT_EQ(st.entries[1].next_fire_us, 0);
}

TEST_F(scheduler_test, a_re_enabled_entry_starts_afresh_without_catching_up) {
  auto entries = sched::default_static_entries();
  auto a = start(options(entries));
  ASSERT_TRUE(ready(a));
  stop(a);
  // Disabled for a few hours, then enabled again.
  entries[0].enabled = false;
  clock.set(at("2024-03-10T13:30:00Z"));
  auto b = start(options(entries));
  ASSERT_TRUE(ready(b));
  ASSERT_TRUE(tasks_reach(1)); // the quarter-hour entry's missed slots
  stop(b);
  entries[0].enabled = true;
  clock.set(at("2024-03-10T15:30:00Z"));
  auto c = start(options(entries));
  ASSERT_TRUE(ready(c));
  ASSERT_TRUE(tasks_reach(2)) << task_count();
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks "
                  "WHERE name = 'cleanup.expire_tokens'"),
            0);
  clock.set(at("2024-03-10T16:00:00Z"));
  ASSERT_TRUE(tasks_reach(4)) << task_count();
  EXPECT_EQ(tasks_with_key(key("cleanup.expire_tokens", "2024-03-10T16:00:00Z")),
            1);
}

TEST_F(scheduler_test, a_dynamic_job_fires_at_its_slot_with_a_run_row) {
  auto agent = make_agent();
  clock.set(at("2024-03-10T12:01:30Z"));
  auto s = start(options());
  ASSERT_TRUE(ready(s));
  schedules::create_job req;
  req.spec.agent_id = agent;
  req.spec.name = "digest";
  req.spec.message = "Summarise";
  req.spec.cron_expression = "*/5 * * * *";
  auto job = ask<schedules::job_info>(s, req);
  ASSERT_TRUE(job) << describe(last_error);
  EXPECT_EQ(job->next_run_at_us, to_epoch_us(at("2024-03-10T12:05:00Z")));
  auto id = job->id;
  auto where = " FROM engram.scheduled_job_runs WHERE job_id = '" + id + "'";
  clock.set(at("2024-03-10T12:05:10Z"));
  ASSERT_TRUE(wait_for("SELECT count(*)" + where, "1"));
  // The run: the slot, queued, with its task.
  EXPECT_EQ(query("SELECT fire_time = '2024-03-10T12:05:00Z' AND status = "
                  "'queued' AND task_id IS NOT NULL"
                  + where),
            "t");
  auto run_id = query("SELECT id" + where);
  auto task_key = "schedule:job:" + id + "@2024-03-10T12:05:00Z";
  ASSERT_EQ(tasks_with_key(task_key), 1);
  EXPECT_EQ(query("SELECT name FROM engram.tasks WHERE unique_key = '"
                  + task_key + "'"),
            "agent.scheduled_run");
  auto args = json::parse(query("SELECT args::text FROM engram.tasks WHERE "
                                "unique_key = '" + task_key + "'"))
                .as_object();
  EXPECT_EQ(args.at("job_id").as_string(), id);
  EXPECT_EQ(std::to_string(args.at("run_id").as_int64()), run_id);
  EXPECT_EQ(args.at("fire_time").as_string(), "2024-03-10T12:05:00Z");
  EXPECT_EQ(query("SELECT task_id" + where),
            query("SELECT id FROM engram.tasks WHERE unique_key = '" + task_key
                  + "'"));
  // next_run_at moved on.
  ASSERT_TRUE(wait_for("SELECT next_run_at = '2024-03-10T12:10:00Z' FROM "
                       "engram.scheduled_jobs WHERE id = '" + id + "'",
                       "t"));
  // And the next slot fires as well, once.
  clock.set(at("2024-03-10T12:10:00Z"));
  ASSERT_TRUE(wait_for("SELECT count(*)" + where, "2"));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(count("SELECT count(*)" + where), 2);
  EXPECT_TRUE(eventually([&] { return status(s).fires == 2; }))
    << status(s).fires;
}

TEST_F(scheduler_test, jobs_from_other_writers_are_picked_up_and_bad_ones_skipped) {
  auto agent = make_agent();
  auto s = start(options());
  ASSERT_TRUE(ready(s));
  auto insert = [&](std::string name, std::string cron, std::string zone,
                    std::optional<wall_time> next) {
    pqxx::work tx{*conn};
    storage::new_scheduled_job j;
    j.agent_id = agent;
    j.name = std::move(name);
    j.message = "m";
    j.cron_expression = std::move(cron);
    j.timezone = std::move(zone);
    j.next_run_at = next;
    auto row = storage::create_scheduled_job(tx, j, clock.now());
    tx.commit();
    return row.value().id;
  };
  // Written behind the API's back: the scheduler learns of them by NOTIFY
  // (its periodic reload is an hour away here).
  auto bad_cron = insert("bad", "61 * * * *", "UTC", at("2024-03-10T11:00:00Z"));
  auto bad_zone = insert("zone", "0 * * * *", "Mars/Base",
                         at("2024-03-10T11:00:00Z"));
  auto fresh = insert("fresh", "0 12 * * *", "Europe/Berlin", std::nullopt);
  // The leader gives a job without next_run_at its first slot: 12:00 in
  // Berlin is 11:00Z, so the next one is tomorrow's.
  ASSERT_TRUE(wait_for("SELECT next_run_at = '2024-03-11T11:00:00Z' FROM "
                       "engram.scheduled_jobs WHERE id = '" + fresh + "'",
                       "t"));
  ASSERT_TRUE(eventually([&] { return status(s).invalid_jobs == 2; }));
  EXPECT_EQ(status(s).jobs, 1);
  clock.set(at("2024-03-11T11:00:05Z"));
  ASSERT_TRUE(wait_for("SELECT count(*) FROM engram.scheduled_job_runs "
                       "WHERE job_id = '" + fresh + "'",
                       "1"));
  // The invalid jobs never fired, and their rows are left as they were.
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs WHERE "
                  "job_id IN ('" + bad_cron + "', '" + bad_zone + "')"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 1);
  EXPECT_EQ(query("SELECT next_run_at = '2024-03-10T11:00:00Z' FROM "
                  "engram.scheduled_jobs WHERE id = '" + bad_cron + "'"),
            "t");
}

TEST_F(scheduler_test, an_inactive_or_deleted_job_does_not_fire) {
  auto agent = make_agent();
  auto s = start(options());
  ASSERT_TRUE(ready(s));
  auto create = [&](std::string name) {
    schedules::create_job req;
    req.spec.agent_id = agent;
    req.spec.name = std::move(name);
    req.spec.message = "m";
    req.spec.cron_expression = "0 * * * *";
    return ask<schedules::job_info>(s, req).value().id;
  };
  auto paused = create("paused");
  auto deleted = create("deleted");
  auto kept = create("kept");
  schedules::patch_job patch;
  patch.id = paused;
  patch.patch.has_is_active = true;
  patch.patch.is_active = false;
  auto after = ask<schedules::job_info>(s, patch);
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->is_active);
  EXPECT_EQ(after->next_run_at_us, 0);
  ASSERT_TRUE(ask<bool>(s, schedules::delete_job{deleted}));
  clock.set(at("2024-03-10T12:00:30Z"));
  ASSERT_TRUE(wait_for("SELECT count(*) FROM engram.scheduled_job_runs", "1"));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(query("SELECT job_id FROM engram.scheduled_job_runs"), kept);
  // Activated again: from now on, no catch-up of 12:00.
  patch.patch.is_active = true;
  after = ask<schedules::job_info>(s, patch);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->next_run_at_us, to_epoch_us(at("2024-03-10T13:00:00Z")));
}

TEST_F(scheduler_test, run_now_enqueues_a_manual_run_once_at_a_time) {
  auto agent = make_agent();
  auto s = start(options());
  schedules::create_job req;
  req.spec.agent_id = agent;
  req.spec.name = "n";
  req.spec.message = "m";
  req.spec.cron_expression = "0 0 1 1 *";
  auto job = ask<schedules::job_info>(s, req);
  ASSERT_TRUE(job) << describe(last_error);
  auto first = ask<schedules::manual_run>(s, schedules::run_job_now{job->id});
  ASSERT_TRUE(first) << describe(last_error);
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->task.name, "agent.scheduled_run");
  EXPECT_EQ(first->task.unique_key, "schedule:job:" + job->id + "@manual");
  EXPECT_EQ(first->run.task_id, first->task.id);
  EXPECT_EQ(first->run.fire_time_us, 0);
  auto args = json::parse(first->task.args_json).as_object();
  EXPECT_TRUE(args.at("fire_time").is_null());
  EXPECT_EQ(args.at("run_id").as_int64(), first->run.id);
  // Again while it is queued: the same task and run, nothing new.
  auto second = ask<schedules::manual_run>(s, schedules::run_job_now{job->id});
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->task.id, first->task.id);
  EXPECT_EQ(second->run.id, first->run.id);
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs"), 1);
  // Once it finished, another manual run is possible.
  query("UPDATE engram.tasks SET status = 'succeeded' RETURNING id");
  auto third = ask<schedules::manual_run>(s, schedules::run_job_now{job->id});
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->created);
  EXPECT_NE(third->task.id, first->task.id);
  // Unknown jobs are not found.
  EXPECT_FALSE(ask<schedules::manual_run>(
    s, schedules::run_job_now{"0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10"}));
  EXPECT_EQ(code_of(last_error), errc::not_found);
}

TEST_F(scheduler_test, a_job_down_for_an_hour_fires_once_for_its_latest_slot) {
  auto agent = make_agent();
  clock.set(at("2024-03-10T12:01:00Z"));
  auto a = start(options());
  schedules::create_job req;
  req.spec.agent_id = agent;
  req.spec.name = "often";
  req.spec.message = "m";
  req.spec.cron_expression = "*/5 * * * *";
  auto job = ask<schedules::job_info>(a, req);
  ASSERT_TRUE(job) << describe(last_error);
  stop(a);
  clock.set(at("2024-03-10T13:02:00Z"));
  auto opts = options();
  opts.metrics = &registry;
  auto b = start(opts);
  auto where = " FROM engram.scheduled_job_runs WHERE job_id = '" + job->id
               + "'";
  ASSERT_TRUE(wait_for("SELECT count(*)" + where, "1"));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(count("SELECT count(*)" + where), 1);
  EXPECT_EQ(query("SELECT fire_time = '2024-03-10T13:00:00Z'" + where), "t");
  ASSERT_TRUE(eventually([&] { return status(b).fires == 1; }))
    << status(b).fires;
  EXPECT_EQ(counter("engram_schedule_misfires_total", "scheduled_jobs"), 1);
  EXPECT_EQ(counter("engram_schedule_fires_total", "scheduled_jobs"), 1);
  ASSERT_TRUE(wait_for("SELECT next_run_at = '2024-03-10T13:05:00Z' FROM "
                       "engram.scheduled_jobs WHERE id = '" + job->id + "'",
                       "t"));
}

TEST_F(scheduler_test, a_next_run_that_is_no_slot_of_the_expression_is_rescheduled) {
  auto agent = make_agent();
  auto s = start(options());
  ASSERT_TRUE(ready(s));
  // Another writer changed the expression and left next_run_at as it was.
  pqxx::work tx{*conn};
  storage::new_scheduled_job j;
  j.agent_id = agent;
  j.name = "j";
  j.message = "m";
  j.cron_expression = "0 18 * * *";
  j.next_run_at = at("2024-03-10T11:53:00Z");
  auto id = storage::create_scheduled_job(tx, j, clock.now()).value().id;
  tx.commit();
  ASSERT_TRUE(wait_for("SELECT next_run_at = '2024-03-10T18:00:00Z' FROM "
                       "engram.scheduled_jobs WHERE id = '" + id + "'",
                       "t"));
  clock.set(at("2024-03-10T12:00:00Z"));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs"), 0);
}
