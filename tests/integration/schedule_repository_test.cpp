#include "storage/schedule_repository.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "storage/conversation_repository.hpp"
#include "storage/platform_repository.hpp"
#include "storage/task_repository.hpp"
#include "tests/integration/platform_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";

class schedule_repository_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    in_tx([&](auto& tx) {
      storage::new_project p;
      p.name = "p";
      auto project = storage::create_project(tx, p, noon() - 1000h).id;
      storage::new_agent a;
      a.project_id = project;
      a.name = "a";
      agent = storage::create_agent(tx, a, noon() - 1000h).id;
      a.name = "b";
      other_agent = storage::create_agent(tx, a, noon() - 1000h).id;
    });
  }

  storage::new_scheduled_job job_spec(const std::string& name) {
    storage::new_scheduled_job j;
    j.agent_id = agent;
    j.name = name;
    j.message = "Summarise my inbox";
    j.cron_expression = "0 9 * * MON-FRI";
    return j;
  }

  storage::scheduled_job_row create(const std::string& name, wall_time at,
                                    std::string for_agent = {}) {
    auto spec = job_spec(name);
    if (!for_agent.empty())
      spec.agent_id = for_agent;
    auto job = in_tx([&](auto& tx) {
      return storage::create_scheduled_job(tx, spec, at);
    });
    EXPECT_TRUE(job);
    return *job;
  }

  storage::scheduled_job_row job(const std::string& id) {
    pqxx::work tx{*conn};
    auto result = storage::get_scheduled_job(tx, id);
    EXPECT_TRUE(result) << id;
    return *result;
  }

  /// A fire of `job_id` at `fire_time`, started: its run id.
  int64_t started_run(const std::string& job_id, wall_time fire_time) {
    return in_tx([&](auto& tx) {
      auto run = storage::record_run_queued(tx, job_id, fire_time,
                                            std::nullopt, fire_time);
      EXPECT_TRUE(run && run->created);
      EXPECT_TRUE(storage::record_run_start(tx, job_id, run->run_id,
                                            fire_time + 1s));
      return run->run_id;
    });
  }

  std::optional<storage::run_tracking> finish(const std::string& job_id,
                                              int64_t run_id, bool ok,
                                              const std::string& error,
                                              wall_time at) {
    return in_tx([&](auto& tx) {
      return storage::record_run_result(tx, job_id, run_id, ok, error, at);
    });
  }

  /// Runs one fire of `job_id` at `at` to the end: its tracking.
  storage::run_tracking fire(const std::string& job_id, wall_time at, bool ok,
                             const std::string& error = {}) {
    auto run = started_run(job_id, at);
    auto tracking = finish(job_id, run, ok, error, at + 1min);
    EXPECT_TRUE(tracking);
    return tracking.value_or(storage::run_tracking{});
  }

  static std::vector<std::string>
  names(const std::vector<storage::scheduled_job_row>& jobs) {
    std::vector<std::string> result;
    for (const auto& j : jobs)
      result.push_back(j.name);
    return result;
  }

  std::string agent, other_agent;
};

/// Collects NOTIFY engram_schedules.
struct schedule_listener : pqxx::notification_receiver {
  explicit schedule_listener(pqxx::connection_base& c)
    : pqxx::notification_receiver(c, "engram_schedules") {
  }
  void operator()(const std::string&, int) override {
    ++received;
  }
  int received = 0;
};

} // namespace

TEST_F(schedule_repository_test, creates_a_job_with_defaults_and_reads_it) {
  auto spec = job_spec("daily digest");
  spec.team_id = "team-7";
  spec.user_id = "user-3";
  spec.next_run_at = noon() + 21h;
  auto created = in_tx([&](auto& tx) {
    return storage::create_scheduled_job(tx, spec, noon());
  });
  ASSERT_TRUE(created);
  EXPECT_EQ(created->agent_id, agent);
  EXPECT_EQ(created->team_id, std::optional<std::string>{"team-7"});
  EXPECT_EQ(created->user_id, std::optional<std::string>{"user-3"});
  EXPECT_EQ(created->timezone, "UTC");
  EXPECT_TRUE(created->is_active);
  EXPECT_EQ(created->delivery_config_json, "{}");
  EXPECT_EQ(created->next_run_at, spec.next_run_at);
  EXPECT_FALSE(created->last_run_at);
  EXPECT_EQ(created->run_count, 0);
  EXPECT_EQ(created->consecutive_failures, 0);
  EXPECT_FALSE(created->last_error);
  EXPECT_EQ(created->created_at, noon());
  EXPECT_EQ(created->updated_at, noon());
  auto read = job(created->id);
  EXPECT_EQ(read.name, "daily digest");
  EXPECT_EQ(read.message, "Summarise my inbox");
  EXPECT_EQ(read.cron_expression, "0 9 * * MON-FRI");
  EXPECT_EQ(read.next_run_at, spec.next_run_at);
}

TEST_F(schedule_repository_test, unknown_ids_change_nothing) {
  create("existing", noon());
  pqxx::work tx{*conn};
  auto spec = job_spec("orphan");
  spec.agent_id = unknown_id;
  EXPECT_FALSE(storage::create_scheduled_job(tx, spec, noon()));
  spec.agent_id = "not-a-uuid";
  EXPECT_FALSE(storage::create_scheduled_job(tx, spec, noon()));
  storage::scheduled_job_patch patch;
  patch.name = "renamed";
  for (std::string id : {std::string{unknown_id}, std::string{"junk"}}) {
    EXPECT_FALSE(storage::get_scheduled_job(tx, id)) << id;
    EXPECT_FALSE(storage::patch_scheduled_job(tx, id, patch, noon())) << id;
    EXPECT_FALSE(storage::patch_scheduled_job(tx, id, {}, noon())) << id;
    EXPECT_FALSE(storage::delete_scheduled_job(tx, id)) << id;
    EXPECT_FALSE(storage::set_next_run(tx, id, noon(), noon())) << id;
    EXPECT_FALSE(storage::record_run_queued(tx, id, noon(), std::nullopt, noon()))
      << id;
    EXPECT_FALSE(storage::record_run_queued(tx, id, std::nullopt, std::nullopt,
                                            noon()))
      << id;
    EXPECT_FALSE(storage::record_run_start(tx, id, 1, noon())) << id;
    EXPECT_FALSE(storage::record_run_result(tx, id, 1, true, "", noon())) << id;
    EXPECT_FALSE(storage::record_run_skipped(tx, id, 1, "why", noon())) << id;
    EXPECT_TRUE(storage::list_job_runs(tx, id).empty()) << id;
  }
  EXPECT_FALSE(storage::get_job_run(tx, 12345));
  EXPECT_FALSE(storage::attach_run_task(tx, 12345, 1));
  tx.commit();
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_jobs"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs"), 0);
}

TEST_F(schedule_repository_test, patch_changes_only_the_given_fields) {
  auto original = create("digest", noon() - 1h);
  storage::scheduled_job_patch patch;
  patch.name = "weekly digest";
  patch.cron_expression = "0 9 * * MON";
  patch.delivery_config_json = R"({"channel": "email"})";
  patch.next_run_at = noon() + 1h;
  auto patched = in_tx([&](auto& tx) {
    return storage::patch_scheduled_job(tx, original.id, patch, noon());
  });
  ASSERT_TRUE(patched);
  EXPECT_EQ(patched->name, "weekly digest");
  EXPECT_EQ(patched->cron_expression, "0 9 * * MON");
  EXPECT_EQ(patched->delivery_config_json, R"({"channel": "email"})");
  EXPECT_EQ(patched->next_run_at, std::optional<wall_time>{noon() + 1h});
  EXPECT_EQ(patched->message, original.message);
  EXPECT_EQ(patched->timezone, original.timezone);
  EXPECT_EQ(patched->is_active, original.is_active);
  EXPECT_EQ(patched->created_at, original.created_at);
  EXPECT_EQ(patched->updated_at, noon());

  // Nothing set: nothing changes, not even updated_at.
  auto same = in_tx([&](auto& tx) {
    return storage::patch_scheduled_job(tx, original.id, {}, noon() + 1h);
  });
  ASSERT_TRUE(same);
  EXPECT_EQ(same->updated_at, noon());

  storage::scheduled_job_patch more;
  more.message = "Summarise my calendar";
  more.timezone = "Europe/Lisbon";
  more.is_active = false;
  more.clear_next_run_at = true;
  more.next_run_at = noon() + 5h; // clearing wins
  auto again = in_tx([&](auto& tx) {
    return storage::patch_scheduled_job(tx, original.id, more, noon() + 2h);
  });
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message, "Summarise my calendar");
  EXPECT_EQ(again->timezone, "Europe/Lisbon");
  EXPECT_FALSE(again->is_active);
  EXPECT_FALSE(again->next_run_at);
  EXPECT_EQ(again->name, "weekly digest");
  EXPECT_EQ(again->delivery_config_json, R"({"channel": "email"})");

  storage::scheduled_job_patch bad;
  bad.delivery_config_json = "\"text\"";
  pqxx::work tx{*conn};
  EXPECT_THROW((void) storage::patch_scheduled_job(tx, original.id, bad, noon()),
               pqxx::check_violation);
}

TEST_F(schedule_repository_test, success_counts_the_run_and_resets_failures) {
  auto j = create("digest", noon() - 10h);
  auto t1 = fire(j.id, noon() - 3h, false, "timeout");
  EXPECT_EQ(t1.consecutive_failures, 1);
  EXPECT_EQ(t1.run_count, 0);
  fire(j.id, noon() - 2h, false, "rate limited");
  auto ok = fire(j.id, noon() - 1h, true);
  EXPECT_EQ(ok.run_count, 1);
  EXPECT_EQ(ok.consecutive_failures, 0);
  EXPECT_TRUE(ok.is_active);
  EXPECT_FALSE(ok.deactivated);
  auto read = job(j.id);
  EXPECT_EQ(read.run_count, 1);
  EXPECT_EQ(read.consecutive_failures, 0);
  EXPECT_EQ(read.last_run_at, std::optional<wall_time>{noon() - 1h + 1min});
  EXPECT_EQ(read.last_error, std::optional<std::string>{"rate limited"})
    << "last_error keeps the last error seen";
  EXPECT_EQ(read.updated_at, noon() - 1h + 1min);
  auto second = fire(j.id, noon(), true);
  EXPECT_EQ(second.run_count, 2);
}

TEST_F(schedule_repository_test, five_consecutive_failures_deactivate_a_job) {
  auto j = create("flaky", noon() - 10h);
  // A run queued before the job was deactivated, finished after.
  auto straggler = in_tx([&](auto& tx) {
    return storage::record_run_queued(tx, j.id, std::nullopt, std::nullopt,
                                      noon() - 9h)
      ->run_id;
  });
  for (int i = 1; i <= 4; ++i) {
    auto t = fire(j.id, noon() - std::chrono::hours{8 - i}, false, "boom");
    EXPECT_EQ(t.consecutive_failures, i);
    EXPECT_TRUE(t.is_active);
    EXPECT_FALSE(t.deactivated);
  }
  // 600 characters, most of them two bytes in UTF-8: kept by characters.
  std::string long_error;
  for (int i = 0; i < 300; ++i)
    long_error += "é!";
  auto fifth = fire(j.id, noon() - 2h, false, long_error);
  EXPECT_EQ(fifth.consecutive_failures, 5);
  EXPECT_FALSE(fifth.is_active);
  EXPECT_TRUE(fifth.deactivated);
  auto read = job(j.id);
  EXPECT_FALSE(read.is_active);
  EXPECT_EQ(read.run_count, 0);
  EXPECT_FALSE(read.last_run_at) << "failures do not set last_run_at";
  ASSERT_TRUE(read.last_error);
  EXPECT_EQ(*read.last_error, long_error.substr(0, 750))
    << "the first 500 characters";
  EXPECT_EQ(count("SELECT char_length(last_error) FROM engram.scheduled_jobs"),
            500);
  EXPECT_EQ(count("SELECT char_length(error) FROM engram.scheduled_job_runs "
                  "WHERE status = 'failed' ORDER BY id DESC LIMIT 1"),
            600)
    << "the run keeps the whole error";
  {
    pqxx::work tx{*conn};
    auto active = storage::list_active_jobs(tx);
    EXPECT_TRUE(active.empty());
  }

  auto late = finish(j.id, straggler, false, "boom", noon() - 1h);
  ASSERT_TRUE(late);
  EXPECT_EQ(late->consecutive_failures, 6);
  EXPECT_FALSE(late->deactivated) << "it was inactive already";

  // Turned on again: it gets a clean slate, else one failure would stop it.
  storage::scheduled_job_patch on;
  on.is_active = true;
  auto revived = in_tx([&](auto& tx) {
    return storage::patch_scheduled_job(tx, j.id, on, noon());
  });
  ASSERT_TRUE(revived);
  EXPECT_TRUE(revived->is_active);
  EXPECT_EQ(revived->consecutive_failures, 0);
  auto next = fire(j.id, noon() + 1h, false, "boom");
  EXPECT_TRUE(next.is_active);
  EXPECT_EQ(next.consecutive_failures, 1);
  // Re-asserting is_active on an active job keeps its count.
  auto still = in_tx([&](auto& tx) {
    return storage::patch_scheduled_job(tx, j.id, on, noon() + 2h);
  });
  EXPECT_EQ(still->consecutive_failures, 1);
}

TEST_F(schedule_repository_test, a_run_counts_once_however_often_its_handler_reports) {
  auto j = create("digest", noon() - 10h);
  auto run = started_run(j.id, noon() - 1h);
  ASSERT_TRUE(finish(j.id, run, true, "", noon()));
  EXPECT_FALSE(finish(j.id, run, true, "", noon() + 1min));
  EXPECT_FALSE(finish(j.id, run, false, "late failure", noon() + 2min));
  auto read = job(j.id);
  EXPECT_EQ(read.run_count, 1);
  EXPECT_EQ(read.consecutive_failures, 0);
  EXPECT_EQ(read.last_run_at, std::optional<wall_time>{noon()});
  pqxx::work tx{*conn};
  EXPECT_FALSE(storage::record_run_start(tx, j.id, run, noon() + 3min))
    << "a finished run is not started again";
  auto row = storage::get_job_run(tx, run);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, "succeeded");
  EXPECT_EQ(row->finished_at, std::optional<wall_time>{noon()});
  EXPECT_FALSE(row->error);
}

TEST_F(schedule_repository_test, a_run_of_another_job_is_not_finished) {
  auto a = create("a", noon() - 10h);
  auto b = create("b", noon() - 10h);
  auto run = started_run(a.id, noon() - 1h);
  EXPECT_FALSE(finish(b.id, run, false, "wrong job", noon()));
  pqxx::work tx{*conn};
  EXPECT_FALSE(storage::record_run_start(tx, b.id, run, noon()));
  EXPECT_FALSE(storage::record_run_skipped(tx, b.id, run, "x", noon()));
  EXPECT_EQ(storage::get_job_run(tx, run)->status, "running");
  tx.commit();
  EXPECT_EQ(job(b.id).consecutive_failures, 0);
}

TEST_F(schedule_repository_test, a_fire_time_is_recorded_once_per_job) {
  auto j = create("digest", noon() - 10h);
  auto other = create("other", noon() - 10h);
  const auto fire_time = noon();
  pqxx::work tx{*conn};
  auto first = storage::record_run_queued(tx, j.id, fire_time, std::nullopt,
                                          fire_time + 2s);
  auto again = storage::record_run_queued(tx, j.id, fire_time, std::nullopt,
                                          fire_time + 5s);
  ASSERT_TRUE(first && again);
  EXPECT_TRUE(first->created);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run_id, first->run_id);
  auto others = storage::record_run_queued(tx, other.id, fire_time,
                                           std::nullopt, fire_time);
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->created) << "the same instant is another job's own fire";
  // Manual runs have no fire time: each is new.
  auto manual1 = storage::record_run_queued(tx, j.id, std::nullopt,
                                            std::nullopt, noon());
  auto manual2 = storage::record_run_queued(tx, j.id, std::nullopt,
                                            std::nullopt, noon());
  ASSERT_TRUE(manual1 && manual2);
  EXPECT_TRUE(manual1->created && manual2->created);
  EXPECT_NE(manual1->run_id, manual2->run_id);
  auto row = storage::get_job_run(tx, first->run_id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, "queued");
  EXPECT_EQ(row->fire_time, std::optional<wall_time>{fire_time});
  EXPECT_EQ(row->created_at, fire_time + 2s);
  EXPECT_FALSE(row->started_at);
  EXPECT_FALSE(storage::get_job_run(tx, manual1->run_id)->fire_time);
}

TEST_F(schedule_repository_test, a_run_tracks_its_task_start_conversation_and_end) {
  auto j = create("digest", noon() - 10h);
  pqxx::work tx{*conn};
  auto run = storage::record_run_queued(tx, j.id, noon(), std::nullopt, noon());
  ASSERT_TRUE(run);
  tasks::enqueue_request req;
  req.name = "agent.scheduled_run";
  auto task = storage::enqueue_task(tx, req, noon());
  EXPECT_TRUE(storage::attach_run_task(tx, run->run_id, task.id));
  EXPECT_TRUE(storage::set_next_run(tx, j.id, noon() + 24h, noon()));
  EXPECT_TRUE(storage::record_run_start(tx, j.id, run->run_id, noon() + 1s));
  // A worker died; the task runs again and starts the run anew.
  EXPECT_TRUE(storage::record_run_start(tx, j.id, run->run_id, noon() + 40s));
  storage::new_conversation c;
  c.agent_id = agent;
  auto conversation = storage::create_conversation(tx, c, noon() + 41s);
  auto tracking = storage::record_run_result(tx, j.id, run->run_id, false,
                                             "model unavailable", noon() + 50s,
                                             conversation.id);
  ASSERT_TRUE(tracking);
  auto row = storage::get_job_run(tx, run->run_id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->task_id, std::optional<int64_t>{task.id});
  EXPECT_EQ(row->status, "failed");
  EXPECT_EQ(row->error, std::optional<std::string>{"model unavailable"});
  EXPECT_EQ(row->started_at, std::optional<wall_time>{noon() + 40s});
  EXPECT_EQ(row->finished_at, std::optional<wall_time>{noon() + 50s});
  EXPECT_EQ(row->conversation_id, std::optional<std::string>{conversation.id});
  auto read = storage::get_scheduled_job(tx, j.id);
  EXPECT_EQ(read->next_run_at, std::optional<wall_time>{noon() + 24h});
  EXPECT_EQ(read->last_error, std::optional<std::string>{"model unavailable"});

  // A run finished without a start (e.g. refused at once) gets started_at too.
  auto quick = storage::record_run_queued(tx, j.id, std::nullopt, task.id,
                                          noon() + 1h);
  ASSERT_TRUE(quick);
  EXPECT_EQ(storage::get_job_run(tx, quick->run_id)->task_id,
            std::optional<int64_t>{task.id});
  ASSERT_TRUE(storage::record_run_result(tx, j.id, quick->run_id, true, "",
                                         noon() + 2h));
  EXPECT_EQ(storage::get_job_run(tx, quick->run_id)->started_at,
            std::optional<wall_time>{noon() + 2h});
  // Skipped runs do not count either way.
  auto skipped = storage::record_run_queued(tx, j.id, noon() + 3h,
                                            std::nullopt, noon() + 3h);
  EXPECT_TRUE(storage::record_run_skipped(tx, j.id, skipped->run_id,
                                          "job inactive", noon() + 3h));
  EXPECT_FALSE(storage::record_run_skipped(tx, j.id, skipped->run_id,
                                           "again", noon() + 4h));
  auto skipped_row = storage::get_job_run(tx, skipped->run_id);
  EXPECT_EQ(skipped_row->status, "skipped");
  EXPECT_EQ(skipped_row->error, std::optional<std::string>{"job inactive"});
  EXPECT_FALSE(storage::record_run_result(tx, j.id, skipped->run_id, false,
                                          "x", noon() + 4h));
  auto after = storage::get_scheduled_job(tx, j.id);
  EXPECT_EQ(after->run_count, 1);
  EXPECT_EQ(after->consecutive_failures, 0);
}

TEST_F(schedule_repository_test, runs_are_listed_newest_first) {
  auto j = create("digest", noon() - 10h);
  auto other = create("other", noon() - 10h);
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(started_run(j.id, noon() + std::chrono::hours{i}));
  started_run(other.id, noon());
  pqxx::work tx{*conn};
  auto all = storage::list_job_runs(tx, j.id, 0, 0);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front().id, ids.back());
  EXPECT_EQ(all.back().id, ids.front());
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](auto& a, auto& b) {
    return a.id > b.id;
  }));
  auto page1 = storage::list_job_runs(tx, j.id, 0, 2);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].id, ids[4]);
  EXPECT_EQ(page1[1].id, ids[3]);
  auto page2 = storage::list_job_runs(tx, j.id, page1.back().id, 2);
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].id, ids[2]);
  auto page3 = storage::list_job_runs(tx, j.id, page2.back().id, 2);
  ASSERT_EQ(page3.size(), 1u);
  EXPECT_EQ(page3[0].id, ids[0]);
  EXPECT_EQ(page3[0].job_id, j.id);
}

TEST_F(schedule_repository_test, pages_are_newest_first_and_stable_under_inserts) {
  // Seven jobs; two share a creation instant (ties go by id), split by the
  // first page's end.
  std::set<std::string> before;
  for (int i = 0; i < 6; ++i)
    before.insert(create("job" + std::to_string(i),
                         noon() - std::chrono::minutes{10 * (6 - i)})
                    .id);
  before.insert(create("job3-twin", noon() - 30min).id);

  storage::scheduled_job_filter all;
  std::vector<storage::scheduled_job_row> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = in_tx([&](auto& tx) {
      return storage::list_scheduled_jobs(tx, all, cursor, 3);
    });
    EXPECT_LE(page.jobs.size(), 3u);
    seen.insert(seen.end(), page.jobs.begin(), page.jobs.end());
    cursor = page.next_cursor;
    // New jobs arrive while the client pages.
    if (pages++ == 0)
      for (int i = 0; i < 4; ++i)
        create("new" + std::to_string(i), noon() + std::chrono::minutes{i});
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u) << "no job repeated or skipped";
  std::set<std::string> ids;
  for (const auto& j : seen)
    ids.insert(j.id);
  EXPECT_EQ(ids, before);
  for (size_t i = 1; i < seen.size(); ++i) {
    auto newer = std::make_pair(seen[i - 1].created_at, seen[i - 1].id);
    auto older = std::make_pair(seen[i].created_at, seen[i].id);
    EXPECT_GT(newer, older) << i;
  }
  EXPECT_EQ(seen.back().name, "job0");

  // The first page now starts with the newest.
  auto first = in_tx([&](auto& tx) {
    return storage::list_scheduled_jobs(tx, all, "", 2);
  });
  EXPECT_EQ(names(first.jobs), (std::vector<std::string>{"new3", "new2"}));
  EXPECT_FALSE(first.next_cursor.empty());
  // A page that holds the rest exactly has no next cursor.
  auto whole = in_tx([&](auto& tx) {
    return storage::list_scheduled_jobs(tx, all, "", 11);
  });
  EXPECT_EQ(whole.jobs.size(), 11u);
  EXPECT_TRUE(whole.next_cursor.empty());
  auto defaults = in_tx([&](auto& tx) {
    return storage::list_scheduled_jobs(tx, all, "", 0);
  });
  EXPECT_EQ(defaults.jobs.size(), 11u) << "limit <= 0: the default page";
}

TEST_F(schedule_repository_test, listing_filters_and_refuses_foreign_cursors) {
  auto mine = create("mine", noon() - 2h);
  create("theirs", noon() - 1h, other_agent);
  storage::scheduled_job_patch off;
  off.is_active = false;
  in_tx([&](auto& tx) {
    (void) storage::patch_scheduled_job(tx, mine.id, off, noon());
  });
  pqxx::work tx{*conn};
  storage::scheduled_job_filter by_agent;
  by_agent.agent_id = agent;
  EXPECT_EQ(names(storage::list_scheduled_jobs(tx, by_agent, "", 10).jobs),
            std::vector<std::string>{"mine"});
  storage::scheduled_job_filter active;
  active.is_active = true;
  EXPECT_EQ(names(storage::list_scheduled_jobs(tx, active, "", 10).jobs),
            std::vector<std::string>{"theirs"});
  storage::scheduled_job_filter junk_agent;
  junk_agent.agent_id = "junk";
  EXPECT_TRUE(storage::list_scheduled_jobs(tx, junk_agent, "", 10).jobs.empty());
  storage::scheduled_job_filter team;
  team.team_id = "nobody";
  EXPECT_TRUE(storage::list_scheduled_jobs(tx, team, "", 10).jobs.empty());
  for (const std::string& bad : std::vector<std::string>{
         "x", "123", "_" + mine.id, "12a_" + mine.id, "123_not-a-uuid",
         "123_" + mine.id + "x"})
    EXPECT_THROW((void) storage::list_scheduled_jobs(tx, {}, bad, 10),
                 std::invalid_argument)
      << bad;
}

TEST_F(schedule_repository_test, the_scheduler_sees_active_and_due_jobs) {
  auto due_early = create("due early", noon() - 5h);
  auto due_now = create("due now", noon() - 5h);
  auto later = create("later", noon() - 5h);
  auto unscheduled = create("unscheduled", noon() - 5h);
  auto inactive = create("inactive", noon() - 5h);
  in_tx([&](auto& tx) {
    EXPECT_TRUE(storage::set_next_run(tx, due_early.id, noon() - 1h, noon()));
    EXPECT_TRUE(storage::set_next_run(tx, due_now.id, noon(), noon()));
    EXPECT_TRUE(storage::set_next_run(tx, later.id, noon() + 1us, noon()));
    EXPECT_TRUE(storage::set_next_run(tx, inactive.id, noon() - 2h, noon()));
    storage::scheduled_job_patch off;
    off.is_active = false;
    (void) storage::patch_scheduled_job(tx, inactive.id, off, noon());
  });
  pqxx::work tx{*conn};
  EXPECT_EQ(names(storage::list_due_jobs(tx, noon())),
            (std::vector<std::string>{"due early", "due now"}));
  EXPECT_EQ(names(storage::list_due_jobs(tx, noon(), 1)),
            std::vector<std::string>{"due early"});
  auto active = storage::list_active_jobs(tx);
  EXPECT_EQ(active.size(), 4u);
  EXPECT_TRUE(std::none_of(active.begin(), active.end(),
                           [](auto& j) { return j.name == "inactive"; }));
  EXPECT_TRUE(storage::set_next_run(tx, due_early.id, std::nullopt, noon()));
  EXPECT_EQ(names(storage::list_due_jobs(tx, noon())),
            std::vector<std::string>{"due now"});
  (void) unscheduled;
}

TEST_F(schedule_repository_test, deleting_a_job_deletes_its_runs) {
  auto j = create("digest", noon() - 10h);
  auto keep = create("keep", noon() - 10h);
  started_run(j.id, noon());
  started_run(keep.id, noon());
  EXPECT_TRUE(in_tx([&](auto& tx) {
    return storage::delete_scheduled_job(tx, j.id);
  }));
  EXPECT_FALSE(in_tx([&](auto& tx) {
    return storage::delete_scheduled_job(tx, j.id);
  }));
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_job_runs"), 1);
  // Deleting the agent deletes its jobs.
  exec("DELETE FROM engram.agents WHERE id = " + quoted(agent));
  EXPECT_EQ(count("SELECT count(*) FROM engram.scheduled_jobs"), 0);
}

TEST_F(schedule_repository_test, schedule_changes_wake_the_scheduler_but_run_bookkeeping_does_not) {
  pqxx::connection listener_conn{db};
  schedule_listener listener{listener_conn};
  auto drain = [&] {
    listener.received = 0;
    listener_conn.await_notification(0, 300000);
    return listener.received;
  };
  auto j = create("digest", noon() - 10h);
  EXPECT_EQ(drain(), 1) << "insert";
  auto run = started_run(j.id, noon() - 1h);
  ASSERT_TRUE(finish(j.id, run, true, "", noon()));
  fire(j.id, noon() + 1h, false, "boom");
  EXPECT_EQ(drain(), 0) << "runs, successes and failures";
  storage::scheduled_job_patch rename;
  rename.name = "renamed";
  rename.message = "new text";
  in_tx([&](auto& tx) {
    (void) storage::patch_scheduled_job(tx, j.id, rename, noon());
  });
  EXPECT_EQ(drain(), 0) << "name and message are read at run time";
  storage::scheduled_job_patch cron;
  cron.cron_expression = "*/5 * * * *";
  in_tx([&](auto& tx) {
    (void) storage::patch_scheduled_job(tx, j.id, cron, noon());
  });
  EXPECT_EQ(drain(), 1) << "expression";
  in_tx([&](auto& tx) {
    EXPECT_TRUE(storage::set_next_run(tx, j.id, noon() + 5min, noon()));
  });
  EXPECT_EQ(drain(), 1) << "next run";
  for (int i = 0; i < 4; ++i)
    fire(j.id, noon() + std::chrono::hours{2 + i}, false, "boom");
  EXPECT_EQ(drain(), 1) << "automatic deactivation";
  {
    pqxx::work tx{*conn};
    (void) storage::patch_scheduled_job(tx, j.id, cron, noon());
    tx.abort();
  }
  EXPECT_EQ(drain(), 0) << "a rolled-back change wakes no one";
  in_tx([&](auto& tx) {
    EXPECT_TRUE(storage::delete_scheduled_job(tx, j.id));
  });
  EXPECT_EQ(drain(), 1) << "delete";
}

TEST_F(schedule_repository_test, runs_whose_task_ended_without_a_result_are_failed_once) {
  auto j = create("digest", noon() - 10h);
  pqxx::work tx{*conn};
  tasks::enqueue_request req;
  req.name = "agent.scheduled_run";
  req.max_retries = 0;
  auto abandoned = storage::enqueue_task(tx, req, noon());
  auto pending = storage::enqueue_task(tx, req, noon());
  auto run = storage::record_run_queued(tx, j.id, noon(), abandoned.id, noon());
  auto other = storage::record_run_queued(tx, j.id, noon() + 1h, pending.id,
                                          noon());
  ASSERT_TRUE(run && other);
  ASSERT_TRUE(storage::record_run_start(tx, j.id, run->run_id, noon() + 1s));
  // The attempt passed its hard limit: the task is dead, the handler never
  // reported.
  auto claimed = storage::claim_tasks(tx, "default", "w", 1, 30s, noon());
  ASSERT_EQ(claimed.size(), 1u);
  tasks::task_outcome o;
  o.id = claimed[0].id;
  o.lease_token = claimed[0].lease_token;
  o.error = "hard time limit of 1000 ms exceeded; attempt abandoned";
  ASSERT_EQ(storage::complete_tasks(tx, {o}, noon() + 2s).accepted, 1);
  EXPECT_EQ(storage::close_abandoned_runs(tx, noon() + 3s), 1);
  EXPECT_EQ(storage::close_abandoned_runs(tx, noon() + 4s), 0) << "once";
  auto row = storage::get_job_run(tx, run->run_id);
  EXPECT_EQ(row->status, "failed");
  EXPECT_EQ(row->error,
            std::optional<std::string>{
              "task " + std::to_string(abandoned.id)
              + " ended dead without a result: hard time limit of 1000 ms "
                "exceeded; attempt abandoned"});
  EXPECT_EQ(storage::get_job_run(tx, other->run_id)->status, "queued")
    << "its task is still queued";
  EXPECT_EQ(storage::get_scheduled_job(tx, j.id)->consecutive_failures, 1);
}
