// Consolidation as an operator uses it: import memories with near-duplicates,
// trigger a job over HTTP, watch it complete, read the merged text and the
// audit trail of a superseded memory, restore it; every bad input answered
// with a 4xx that changes nothing; and a daemon killed with SIGKILL in the
// middle of a job that, restarted, finishes the job in the same end state as
// an uninterrupted run.

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/http_client.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

json::value parse(const http_reply& r) {
  return json::parse(r.body);
}

std::string str(const json::value& v) {
  return std::string{v.as_string()};
}

/// An id that sorts and reads as its number (uuid text).
std::string memory_id(char project, int i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%c0000000-0000-4000-8000-%012d", project, i);
  return buf;
}

constexpr auto agent_a = "aaaaaaaa-0000-4000-8000-000000000001";
constexpr auto agent_b = "aaaaaaaa-0000-4000-8000-000000000002";

/// Epoch seconds as RFC 3339 UTC.
std::string rfc3339(int64_t secs) {
  auto t = std::chrono::sys_seconds{std::chrono::seconds{secs}};
  auto days = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{days};
  std::chrono::hh_mm_ss hms{t - days};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ",
                static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()),
                static_cast<long>(hms.minutes().count()),
                static_cast<long>(hms.seconds().count()));
  return buf;
}

/// A seeded project: clusters of near-duplicates (cosine to their seed about
/// 0.98), old episodic topics (about 0.88 to their seed), expired memories
/// (one pinned), stale warm ones, identity and pinned ones; every memory has
/// its own created_at, so no visiting order depends on ids.
std::vector<json::object> seeded_memories(char project, int clusters) {
  constexpr size_t dim = 32;
  std::mt19937_64 gen{42};
  std::normal_distribution<double> normal{0, 1};
  auto unit = [&] {
    std::vector<double> v(dim);
    double n = 0;
    for (auto& x : v) {
      x = normal(gen);
      n += x * x;
    }
    for (auto& x : v)
      x /= std::sqrt(n);
    return v;
  };
  auto near = [&](const std::vector<double>& seed, double eps) {
    auto v = seed;
    for (auto& x : v)
      x += eps * normal(gen) / std::sqrt(static_cast<double>(dim));
    return v;
  };
  std::vector<json::object> out;
  int i = 0;
  auto add = [&](std::string type, const std::vector<double>& v,
                 std::string content, int64_t age_days, int importance,
                 json::object extra = {}) {
    json::object m = std::move(extra);
    m["id"] = memory_id(project, i);
    m["agent_id"] = (i % 2 == 0) ? agent_a : agent_b;
    m["type"] = std::move(type);
    m["content"] = std::move(content);
    m["importance"] = importance;
    // Distinct instants, oldest first; `age_days` back from 2026-06-01.
    m["created_at"] = rfc3339(1780272000LL - age_days * 86400 + i);
    json::array e;
    for (auto x : v)
      e.emplace_back(x);
    m["embedding"] = std::move(e);
    m["embedding_model"] = "e2e-32";
    out.push_back(std::move(m));
    ++i;
  };
  for (int c = 0; c < clusters; ++c) {
    auto seed = unit();
    int importance = 3 + c % 5;
    for (int k = 0; k < 3; ++k)
      add("semantic", near(seed, 0.2),
          "Service " + std::to_string(c) + " deploys on Friday"
            + (k == 0 ? "." : k == 1 ? " afternoon." : " after the standup."),
          2, importance - k % 2);
    auto topic = unit();
    for (int k = 0; k < 4; ++k)
      add("episodic", near(topic, 0.45),
          "User " + std::to_string(c) + " asked about invoice export "
            + std::to_string(k) + ".",
          40, 4);
  }
  auto lone = unit();
  add("semantic", lone, "An expired note.", 1, 5,
      {{"expires_at", "2026-01-01T00:00:00Z"}, {"pinned", true}});
  add("semantic", unit(), "A stale warm note.", 90, 3);
  add("identity", unit(), "The agent is called Ada.", 90, 9);
  return out;
}

void import(uint16_t port, const std::string& project,
            std::vector<json::object> rows) {
  json::array arr;
  for (auto& r : rows)
    arr.emplace_back(std::move(r));
  auto r = http_request(port, "POST", "/api/projects/" + project + "/memories",
                        json::serialize(arr), {}, 60s);
  ASSERT_EQ(r.status, 201) << r.body;
}

void put_project(uint16_t port, const std::string& project) {
  auto r = http_request(port, "PUT", "/api/projects/" + project,
                        R"({"name":"e2e"})");
  ASSERT_TRUE(r.status == 201 || r.status == 200) << r.body;
}

json::value wait_for_job(uint16_t port, const std::string& job,
                         std::chrono::seconds limit = 120s) {
  json::value last;
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    auto r = http_get(port, "/api/consolidations/" + job);
    if (r.status == 200) {
      last = parse(r);
      auto s = str(last.at("status"));
      if (s == "completed" || s == "cancelled")
        return last;
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "job " << job << " did not finish: " << json::serialize(last);
  return last;
}

/// Every memory of a project, by id.
std::map<std::string, json::object> all_memories(uint16_t port,
                                                 const std::string& project) {
  std::map<std::string, json::object> out;
  std::string cursor;
  for (;;) {
    auto target = "/api/projects/" + project + "/memories?limit=1000"
                  + (cursor.empty() ? "" : "&cursor=" + cursor);
    auto page = parse(http_get(port, target));
    for (const auto& m : page.at("memories").as_array())
      out.emplace(str(m.at("id")), m.as_object());
    if (page.at("next_cursor").is_null())
      return out;
    cursor = str(page.at("next_cursor"));
  }
}

std::string start_job(uint16_t port, const std::string& project) {
  auto r = http_request(port, "POST",
                        "/api/projects/" + project + "/consolidations",
                        R"({"as_of":"2026-06-01T00:00:00Z"})");
  EXPECT_EQ(r.status, 202) << r.body;
  return str(parse(r).at("id"));
}

/// The state of a project's imported memories with `project`'s letter
/// replaced, so two projects' results compare; new memories by content.
struct end_state {
  std::map<std::string, std::string> imported; // index → status/tier/by/text
  std::multiset<std::string> created;          // type/status/content
};

end_state state_of(const std::map<std::string, json::object>& memories) {
  end_state s;
  // Imported memories by their number, created ones by their content: the
  // ids of created memories are random.
  auto key = [&](const std::string& id) {
    const auto& m = memories.at(id);
    if (str(m.at("source_type")) == "consolidation")
      return "new:" + str(m.at("content"));
    return id.substr(1);
  };
  for (const auto& [id, m] : memories) {
    auto by = m.at("superseded_by").is_null()
                ? std::string{"-"}
                : key(str(m.at("superseded_by")));
    if (str(m.at("source_type")) == "consolidation")
      s.created.insert(str(m.at("type")) + "/" + str(m.at("status")) + "/"
                       + by + "/" + str(m.at("content")));
    else
      s.imported.emplace(key(id), str(m.at("status")) + "/"
                                    + str(m.at("tier")) + "/" + by + "/"
                                    + str(m.at("content")));
  }
  return s;
}

} // namespace

TEST(consolidation_api, merge_audit_restore_and_every_bad_input) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data"};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  const std::string project = "11111111-2222-4333-8444-555555555555";
  put_project(port, project);
  import(port, project, seeded_memories('c', 20));

  // Bad inputs: each a clear 4xx, none creates a job.
  auto base = "/api/projects/" + project + "/consolidations";
  struct bad {
    std::string body;
    int status;
    std::string says;
  };
  for (const auto& b : std::vector<bad>{
         {"{", 400, "not valid JSON"},
         {"[]", 400, "JSON object"},
         {R"({"phase":["merge"]})", 400, "unknown field phase"},
         {R"({"phases":["merge","fold"]})", 400, "phases[1]"},
         {R"({"phases":["merge","merge"]})", 400, "twice"},
         {R"({"phases":[]})", 400, "at least one"},
         {R"({"dry_run":"yes"})", 400, "dry_run"},
         {R"({"as_of":"yesterday"})", 400, "as_of"}}) {
    auto r = http_request(port, "POST", base, b.body);
    EXPECT_EQ(r.status, b.status) << b.body << " → " << r.body;
    EXPECT_NE(r.body.find(b.says), std::string::npos) << r.body;
  }
  EXPECT_EQ(http_request(port, "POST",
                         "/api/projects/99999999-2222-4333-8444-555555555555"
                         "/consolidations",
                         "{}")
              .status,
            404);
  EXPECT_EQ(http_get(port, "/api/consolidations/nope").status, 404);
  EXPECT_EQ(
    http_get(port, "/api/consolidations/99999999-2222-4333-8444-555555555555")
      .status,
    404);
  EXPECT_EQ(http_get(port, base + "?cursor=garbage").status, 400);
  EXPECT_EQ(http_get(port, base + "?limit=0").status, 400);
  EXPECT_EQ(http_get(port, "/api/agents/nope/memories/hot").status, 400);
  EXPECT_EQ(parse(http_get(port, base)).at("jobs").as_array().size(), 0u)
    << "no bad request created a job";

  // A dry run plans and changes nothing.
  auto before = all_memories(port, project);
  auto plan = http_request(port, "POST", base,
                           R"({"dry_run":true,"as_of":"2026-06-01T00:00:00Z"})");
  ASSERT_EQ(plan.status, 200) << plan.body;
  auto planned = parse(plan).at("plan");
  auto merge_groups = planned.at("merge").at("groups").as_array();
  ASSERT_FALSE(merge_groups.empty()) << plan.body;
  auto after_dry = all_memories(port, project);
  EXPECT_EQ(state_of(before).imported, state_of(after_dry).imported);
  EXPECT_EQ(after_dry.size(), before.size());

  // The real job does what the dry run said.
  auto job = wait_for_job(port, start_job(port, project));
  ASSERT_EQ(str(job.at("status")), "completed") << json::serialize(job);
  EXPECT_EQ(job.at("phases_completed").as_array().size(), 7u);
  auto after = all_memories(port, project);
  for (const auto& g : merge_groups) {
    auto kept = str(g.at("kept_id"));
    for (const auto& a : g.at("absorbed_ids").as_array()) {
      const auto& m = after.at(str(a));
      EXPECT_EQ(str(m.at("status")), "superseded");
      EXPECT_EQ(str(m.at("superseded_by")), kept);
    }
  }
  EXPECT_EQ(job.at("memories_merged").as_int64(),
            planned.at("merge").at("metrics").at("memories_merged").as_int64());
  EXPECT_EQ(job.at("memories_archived").as_int64(), 1) << "the expired note";
  EXPECT_EQ(str(after.at(memory_id('c', 140)).at("status")), "archived")
    << "expired, though pinned";

  // The kept memory of the first group reads as one memory; the absorbed
  // one's audit trail says who superseded it in which job.
  auto kept = str(merge_groups[0].at("kept_id"));
  auto absorbed = str(merge_groups[0].at("absorbed_ids").as_array()[0]);
  auto kept_view = parse(http_get(port, "/api/memories/" + kept));
  auto kept_text = str(kept_view.at("content"));
  EXPECT_NE(kept_text.find("deploys on Friday"), std::string::npos) << kept_text;
  EXPECT_LT(kept_text.size(), 200u) << "not a concatenation of everything";
  auto trail = parse(http_get(port, "/api/memories/" + absorbed));
  const auto& audit = trail.at("audit").as_array();
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(str(audit.back().at("action")), "superseded");
  EXPECT_EQ(str(audit.back().at("job_id")), str(job.at("id")));
  EXPECT_EQ(str(audit.back().at("detail").at("by")), kept);

  // Restore undoes the supersede; restoring again is a conflict.
  auto restored = http_request(port, "POST",
                               "/api/memories/" + absorbed + "/restore", "");
  ASSERT_EQ(restored.status, 200) << restored.body;
  EXPECT_EQ(str(parse(restored).at("status")), "active");
  auto trail2 = parse(http_get(port, "/api/memories/" + absorbed));
  EXPECT_EQ(str(trail2.at("audit").as_array().back().at("action")), "restored");
  EXPECT_EQ(http_request(port, "POST", "/api/memories/" + absorbed + "/restore",
                         "")
              .status,
            409);

  // The job is listed; a second job converges: nothing superseded twice.
  auto jobs = parse(http_get(port, base)).at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(str(jobs[0].at("id")), str(job.at("id")));
  auto second = wait_for_job(port, start_job(port, project));
  EXPECT_EQ(str(second.at("status")), "completed");
  for (const auto& [id, m] : all_memories(port, project)) {
    if (!m.at("superseded_by").is_null())
      EXPECT_EQ(after.count(str(m.at("superseded_by"))), 1u)
        << "superseded_by points at a memory";
    auto view = parse(http_get(port, "/api/memories/" + id));
    // Superseded at most once between restores (the restored memory is a
    // near-duplicate again, so the second job may supersede it again).
    int supersedes = 0;
    for (const auto& a : view.at("audit").as_array()) {
      auto action = str(a.at("action"));
      if (action == "restored")
        supersedes = 0;
      else if (action == "superseded")
        EXPECT_LE(++supersedes, 1) << id << " superseded twice";
    }
  }

  // Hot memories of an agent come from the cache after the first read.
  auto hot1 = parse(http_get(port, std::string{"/api/agents/"} + agent_a
                                     + "/memories/hot"));
  auto hot2 = parse(http_get(port, std::string{"/api/agents/"} + agent_a
                                     + "/memories/hot"));
  EXPECT_FALSE(hot1.at("cached").as_bool());
  EXPECT_TRUE(hot2.at("cached").as_bool());
}

TEST(consolidation_api, sigkill_in_the_middle_of_a_job_then_restart_converges) {
  temp_dir dir{"engram-e2e"};
  // Short leases, so the restarted daemon reclaims the killed job's task
  // quickly.
  std::vector<std::string> flags{"--tasks.lease", "3s",
                                 "--tasks.heartbeat_interval", "1s",
                                 "--tasks.reclaim_interval", "500ms"};
  const std::string reference = "aaaaaaaa-2222-4333-8444-555555555555";
  const std::string killed = "bbbbbbbb-2222-4333-8444-555555555555";
  end_state expected;
  std::string job;
  {
    daemon_process d{dir.path() / "data", flags};
    auto port = d.wait_for_port();
    ASSERT_NE(port, 0) << d.log();
    put_project(port, reference);
    put_project(port, killed);
    import(port, reference, seeded_memories('a', 400));
    import(port, killed, seeded_memories('b', 400));
    auto done = wait_for_job(port, start_job(port, reference));
    ASSERT_EQ(str(done.at("status")), "completed");
    expected = state_of(all_memories(port, reference));

    // Kill the daemon as soon as the job has committed its first phase.
    job = start_job(port, killed);
    bool killed_mid_job = false;
    for (int i = 0; i < 20000 && !killed_mid_job; ++i) {
      auto r = http_get(port, "/api/consolidations/" + job);
      if (r.status == 200) {
        auto j = parse(r);
        auto n = j.at("phases_completed").as_array().size();
        if (n >= 1 && n < 7) {
          d.kill9();
          killed_mid_job = true;
        } else if (str(j.at("status")) == "completed") {
          break;
        }
      }
    }
    ASSERT_TRUE(killed_mid_job) << "the job finished before the kill";
  }
  daemon_process d{dir.path() / "data", flags};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  auto done = wait_for_job(port, job);
  ASSERT_EQ(str(done.at("status")), "completed") << json::serialize(done);
  EXPECT_EQ(done.at("phases_completed").as_array().size(), 7u);
  auto memories = all_memories(port, killed);
  auto got = state_of(memories);
  EXPECT_EQ(got.imported, expected.imported);
  EXPECT_EQ(got.created, expected.created);
  for (const auto& [id, m] : memories)
    if (!m.at("superseded_by").is_null())
      EXPECT_EQ(memories.count(str(m.at("superseded_by"))), 1u);
}

TEST(consolidation_api, scheduled_decay_fans_out_and_invalidates_hot_memories) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data"};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  const std::string enabled = "cccccccc-2222-4333-8444-555555555555";
  const std::string disabled = "dddddddd-2222-4333-8444-555555555555";
  put_project(port, enabled);
  ASSERT_EQ(http_request(port, "PUT", "/api/projects/" + disabled,
                         R"({"name":"off","consolidation_enabled":false})")
              .status,
            201);
  // Without embeddings: the daemon embeds them (hashing embedder).
  auto ndjson = std::string{R"({"type":"semantic","tier":"hot","agent_id":")"}
                + agent_a
                + R"(","content":"Expired hot fact.","expires_at":"2020-01-01T00:00:00Z"})"
                + "\n" + R"({"type":"semantic","tier":"hot","agent_id":")"
                + agent_a + R"(","content":"Current hot fact."})";
  for (const auto& p : {enabled, disabled}) {
    auto r = http_request(port, "POST", "/api/projects/" + p + "/memories",
                          ndjson, {{"content-type", "application/x-ndjson"}});
    ASSERT_EQ(r.status, 201) << r.body;
  }
  auto hot_path = std::string{"/api/agents/"} + agent_a + "/memories/hot";
  auto first = parse(http_get(port, hot_path));
  EXPECT_EQ(first.at("memories").as_array().size(), 4u) << "both projects";
  EXPECT_FALSE(first.at("cached").as_bool());
  EXPECT_TRUE(parse(http_get(port, hot_path)).at("cached").as_bool());

  // The beat schedule's task, enqueued by hand: one job per enabled project.
  auto task = http_request(port, "POST", "/api/tasks",
                           R"({"name":"memory.decay_and_expire"})");
  ASSERT_EQ(task.status, 202) << task.body;
  auto task_id = parse(task).at("task").at("id").as_int64();
  json::value t;
  for (int i = 0; i < 500; ++i) {
    t = parse(http_get(port, "/api/tasks/" + std::to_string(task_id)));
    if (str(t.at("status")) == "succeeded")
      break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(str(t.at("status")), "succeeded") << json::serialize(t);
  ASSERT_EQ(t.at("result").at("projects").as_int64(), 1);
  auto job_id = str(t.at("result").at("jobs").as_array()[0]);
  auto job = wait_for_job(port, job_id);
  EXPECT_EQ(str(job.at("status")), "completed");
  EXPECT_EQ(str(job.at("project_id")), enabled);
  EXPECT_EQ(str(job.at("trigger_type")), "scheduled");
  EXPECT_EQ(str(job.at("triggered_by")), "memory.decay_and_expire");
  EXPECT_EQ(json::serialize(job.at("phases_completed")),
            R"(["decay","invalidate"])");
  EXPECT_EQ(job.at("memories_archived").as_int64(), 1);
  EXPECT_EQ(parse(http_get(port, "/api/projects/" + disabled
                                   + "/consolidations"))
              .at("jobs")
              .as_array()
              .size(),
            0u);

  // The agent's cached list was dropped: the archived memory is gone.
  auto after = parse(http_get(port, hot_path));
  EXPECT_FALSE(after.at("cached").as_bool());
  EXPECT_EQ(after.at("memories").as_array().size(), 3u);
  for (const auto& m : after.at("memories").as_array())
    EXPECT_FALSE(str(m.at("content")) == "Expired hot fact."
                 && str(m.at("project_id")) == enabled);
}
