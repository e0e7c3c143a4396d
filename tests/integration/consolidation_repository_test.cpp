// Consolidation's storage against a real PostgreSQL (DESIGN §6): a job is
// created together with its durable task (one transaction), reused by id,
// read and listed with a cursor; a job begins under its project's
// session-level advisory lock, which a second session cannot take and which
// goes with finish or with the session's connection; a phase commit writes
// exactly its changes, audit rows and the job's progress, or (when a memory
// it changes is no longer active) nothing at all; a snapshot loads the
// active memories, patterns and playbook with their exact vectors. Times
// are fixed instants.

#include "storage/consolidation_repository.hpp"

#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/uuid.hpp"
#include "storage/memory_repository.hpp"
#include "storage/project_repository.hpp"
#include "storage/project_session.hpp"
#include "tests/integration/platform_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using consolidation::job_record;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
constexpr auto model = "test-model";

class consolidation_repository_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    if (HasFatalFailure())
      return;
    project = put_project("alpha");
    other_project = put_project("beta");
  }

  std::string put_project(const std::string& name, bool enabled = true,
                          const std::string& config = "{}") {
    memories::put_project_request req;
    req.id = random_uuid();
    req.name = name;
    req.consolidation_enabled = enabled;
    req.consolidation_config_json = config;
    auto result = in_tx([&](auto& tx) {
      return storage::put_project(tx, req, noon() - 1000h);
    });
    EXPECT_TRUE(result) << describe(result.error());
    return req.id;
  }

  static int64_t us(wall_time t) { return to_epoch_us(t); }

  consolidation::create_job_request job_request(std::string project_id = {}) {
    consolidation::create_job_request req;
    req.project_id = project_id.empty() ? project : project_id;
    return req;
  }

  caf::expected<job_record> create(consolidation::create_job_request req,
                                   wall_time at = noon()) {
    return in_tx([&](auto& tx) { return storage::create_job(tx, req, at); });
  }

  job_record created(consolidation::create_job_request req,
                     wall_time at = noon()) {
    auto job = create(std::move(req), at);
    EXPECT_TRUE(job) << describe(job.error());
    return job ? *job : job_record{};
  }

  caf::expected<job_record> get(const std::string& id) {
    return in_tx([&](auto& tx) { return storage::get_job(tx, id); });
  }

  caf::expected<consolidation::job_page>
  list(const std::string& project_id, const std::string& cursor,
       int32_t limit) {
    consolidation::list_jobs_request req{project_id, cursor, limit};
    return in_tx([&](auto& tx) { return storage::list_jobs(tx, req); });
  }

  /// Runs `f(tx)` (returning caf::expected) on `c` and commits only on
  /// success, as a project session does.
  template <class F>
  auto checked(pqxx::connection& c, F&& f) {
    pqxx::work tx{c};
    auto result = f(tx);
    if (result)
      tx.commit();
    else
      tx.abort();
    return result;
  }

  caf::expected<consolidation::job_start>
  begin(pqxx::connection& c, const std::string& job_id,
        wall_time at = noon()) {
    return checked(c, [&](auto& tx) {
      return storage::begin_job(tx, job_id, at);
    });
  }

  caf::expected<job_record> finish(pqxx::connection& c, const job_record& job,
                                   const std::string& status,
                                   wall_time at = noon() + 1min) {
    consolidation::finish_job req;
    req.job_id = job.id;
    req.project_id = job.project_id;
    req.status = status;
    req.now_us = us(at);
    return checked(c, [&](auto& tx) {
      auto done = storage::finish_job(tx, req);
      if (done)
        storage::release_project(tx, job.project_id);
      return done;
    });
  }

  caf::expected<job_record> commit(pqxx::connection& c,
                                   consolidation::phase_commit pc) {
    return checked(c, [&](auto& tx) { return storage::commit_phase(tx, pc); });
  }

  consolidation::snapshot_data load(const std::string& project_id) {
    return in_tx([&](auto& tx) {
      return storage::load_snapshot(tx, project_id);
    });
  }

  std::unique_ptr<pqxx::connection> connect() {
    return std::make_unique<pqxx::connection>(db);
  }

  static memories::memory_row row(std::string content,
                                  std::vector<float> embedding = {},
                                  std::string type = "semantic") {
    memories::memory_row r;
    r.id = random_uuid();
    r.type = std::move(type);
    r.content = std::move(content);
    if (!embedding.empty()) {
      r.embedding = std::move(embedding);
      r.embedding_model = model;
    }
    return r;
  }

  std::vector<std::string> import(std::vector<memories::memory_row> rows,
                                  std::string into = {}) {
    memories::import_memories_request req;
    req.project_id = into.empty() ? project : into;
    req.rows = std::move(rows);
    auto result = in_tx([&](auto& tx) {
      return storage::import_memories(tx, req, noon() - 24h);
    });
    EXPECT_TRUE(result) << describe(result.error());
    return result ? result->ids : std::vector<std::string>{};
  }

  std::string column(const std::string& id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.memories WHERE id = "
                 + quoted(id));
  }

  /// Every row of every table a commit may write, as text, in a fixed
  /// order: equal before and after means nothing was written.
  std::string everything() {
    return query(
      "SELECT concat_ws(E'\\n', "
      " (SELECT string_agg(m::text, E'\\n' ORDER BY id) FROM engram.memories m),"
      " (SELECT string_agg(a::text, E'\\n' ORDER BY id) FROM engram.memory_audit a),"
      " (SELECT string_agg(p::text, E'\\n' ORDER BY id) FROM engram.patterns p),"
      " (SELECT string_agg(e::text, E'\\n' ORDER BY id) "
      "    FROM engram.playbook_entries e),"
      " (SELECT string_agg(j::text, E'\\n' ORDER BY id) "
      "    FROM engram.consolidation_jobs j))");
  }

  /// A job of `project` that runs on `conn`.
  job_record running_job(pqxx::connection& c) {
    auto job = created(job_request());
    auto start = begin(c, job.id);
    EXPECT_TRUE(start) << describe(start.error());
    return start ? start->job : job_record{};
  }

  consolidation::phase_commit phase(const job_record& job,
                                    const std::string& name) {
    consolidation::phase_commit pc;
    pc.job_id = job.id;
    pc.project_id = job.project_id;
    pc.phase = name;
    pc.now_us = us(noon() + 10s);
    return pc;
  }

  std::vector<float> stored_vector(const std::string& table,
                                   const std::string& col,
                                   const std::string& id) {
    pqxx::nontransaction tx{*conn};
    auto r = tx.exec1("SELECT " + col + " FROM engram." + table
                      + " WHERE id = " + tx.quote(id));
    std::vector<float> out;
    if (r[0].is_null())
      return out;
    pqxx::binarystring bytes{r[0]};
    out.resize(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
  }

  std::string project, other_project;
};

std::vector<std::string> ids_of(const consolidation::job_page& page) {
  std::vector<std::string> out;
  for (const auto& j : page.jobs)
    out.push_back(j.id);
  return out;
}

/// A job's metrics without the timings the pipeline adds to each phase
/// (they vary from run to run).
json::value without_timing(const std::string& metrics_json) {
  auto v = json::parse(metrics_json);
  for (auto& [phase, m] : v.as_object())
    if (m.is_object())
      for (auto key : {"commit_ms", "plan_ms", "kernel_gflop", "kernel_seconds",
                       "snapshot_build_ms"})
        m.as_object().erase(key);
  return v;
}

/// Bitwise equality of float vectors (NaN-safe, -0 distinct).
bool same_bits(const std::vector<float>& a, const float* b, size_t n) {
  if (a.size() != n)
    return false;
  for (size_t i = 0; i < n; ++i)
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i]))
      return false;
  return true;
}

} // namespace

// -- create, get, list ----------------------------------------------------------------

TEST_F(consolidation_repository_test, a_job_is_created_with_its_task_in_one_transaction) {
  auto req = job_request();
  req.phases = {"decay", "merge", "patterns"};
  req.as_of_us = us(noon() - 48h);
  req.trigger_type = "scheduled";
  req.triggered_by = "memory.decay_and_expire";
  req.queue = "memory";
  req.priority = 3;
  auto job = created(req);
  EXPECT_TRUE(is_uuid(job.id));
  EXPECT_EQ(job.project_id, project);
  EXPECT_EQ(job.status, "queued");
  EXPECT_EQ(job.trigger_type, "scheduled");
  EXPECT_EQ(job.triggered_by, "memory.decay_and_expire");
  EXPECT_EQ(job.created_at_us, us(noon()));
  EXPECT_EQ(job.started_at_us, 0);
  EXPECT_TRUE(job.phases_completed.empty());
  auto options = json::parse(job.options_json).as_object();
  EXPECT_EQ(json::serialize(options.at("phases")),
            R"(["patterns","merge","decay"])")
    << "the phases in their canonical order";
  EXPECT_EQ(options.at("as_of_us").as_int64(), us(noon() - 48h));
  EXPECT_EQ(options.at("as_of").as_string(), "2024-03-08T12:00:00.000000Z");

  ASSERT_NE(job.task_id, 0);
  EXPECT_EQ(query("SELECT name || ' ' || queue || ' ' || priority || ' ' "
                  "|| status FROM engram.tasks WHERE id = "
                  + std::to_string(job.task_id)),
            "consolidation.run_project memory 3 queued");
  auto args = json::parse(query("SELECT args::text FROM engram.tasks WHERE id = "
                                + std::to_string(job.task_id)))
                .as_object();
  EXPECT_EQ(args.size(), 2u);
  EXPECT_EQ(args.at("project_id").as_string(), project);
  EXPECT_EQ(args.at("job_id").as_string(), job.id);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 1);

  // No phases: all seven. No as_of: none recorded.
  auto all = created(job_request());
  auto all_options = json::parse(all.options_json).as_object();
  EXPECT_EQ(json::serialize(all_options.at("phases")),
            R"(["patterns","merge","summarize","hierarchy","playbook","decay","invalidate"])");
  EXPECT_FALSE(all_options.contains("as_of_us"));
  EXPECT_EQ(all.trigger_type, "manual");

  // One transaction: rolled back, neither the job nor its task exists.
  {
    pqxx::work tx{*conn};
    auto rolled = storage::create_job(tx, job_request(), noon());
    ASSERT_TRUE(rolled);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM engram.tasks")[0].as<int>(), 3);
    tx.abort();
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM engram.consolidation_jobs"), 2);
}

TEST_F(consolidation_repository_test, a_create_with_an_existing_id_reuses_the_job) {
  auto id = random_uuid();
  auto req = job_request();
  req.id = id;
  req.phases = {"merge"};
  auto first = created(req, noon());
  EXPECT_EQ(first.id, id);

  // Re-delivered (upper-case id, other phases, later): the same row,
  // unchanged, and no second task.
  auto again = job_request();
  for (auto& c : id)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  again.id = id;
  again.phases = {"decay"};
  auto second = created(again, noon() + 1h);
  EXPECT_EQ(second.id, first.id);
  EXPECT_EQ(second.options_json, first.options_json);
  EXPECT_EQ(second.created_at_us, first.created_at_us);
  EXPECT_EQ(second.task_id, first.task_id);
  EXPECT_EQ(count("SELECT count(*) FROM engram.consolidation_jobs"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 1);
}

TEST_F(consolidation_repository_test, bad_phases_and_ids_are_refused_and_write_nothing) {
  auto refused = [&](consolidation::create_job_request req,
                     const std::string& needle) {
    auto result = create(req);
    ASSERT_FALSE(result) << "created although '" << needle << "' expected";
    EXPECT_EQ(code_of(result.error()), errc::invalid_argument);
    EXPECT_NE(message_of(result.error()).find(needle), std::string::npos)
      << message_of(result.error());
  };
  auto req = job_request();
  req.phases = {"merge", "compress"};
  refused(req, "phases[1]: unknown phase \"compress\"");
  req.phases = {"merge", "decay", "merge"};
  refused(req, "phases[2]: \"merge\" is listed twice");
  req = job_request();
  req.id = "not-a-uuid";
  refused(req, "id: not a UUID");
  req = job_request("nope");
  refused(req, "project_id: not a UUID");
  req = job_request();
  req.trigger_type = "cron";
  refused(req, "trigger_type");
  EXPECT_EQ(count("SELECT count(*) FROM engram.consolidation_jobs"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 0);
}

TEST_F(consolidation_repository_test, get_reads_a_job_and_refuses_unknown_ids) {
  auto job = created(job_request());
  auto read = get(job.id);
  ASSERT_TRUE(read) << describe(read.error());
  EXPECT_EQ(read->id, job.id);
  EXPECT_EQ(read->status, "queued");
  EXPECT_EQ(read->task_id, job.task_id);
  for (auto id : {std::string{unknown_id}, std::string{"nope"}}) {
    auto missing = get(id);
    ASSERT_FALSE(missing);
    EXPECT_EQ(code_of(missing.error()), errc::not_found);
  }
}

TEST_F(consolidation_repository_test, jobs_list_newest_first_with_a_stable_cursor) {
  std::vector<std::string> expected; // newest first
  for (int i = 0; i < 5; ++i)
    expected.insert(expected.begin(),
                    created(job_request(), noon() + std::chrono::minutes{i}).id);
  // Three at one instant: newest first means id descending among them.
  std::vector<std::string> tied;
  for (int i = 0; i < 3; ++i)
    tied.push_back(created(job_request(), noon() + 10min).id);
  std::sort(tied.rbegin(), tied.rend());
  expected.insert(expected.begin(), tied.begin(), tied.end());
  created(job_request(other_project), noon() + 5min);

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = list(project, cursor, 3);
    ASSERT_TRUE(page) << describe(page.error());
    auto ids = ids_of(*page);
    seen.insert(seen.end(), ids.begin(), ids.end());
    cursor = page->next_cursor;
    if (++pages == 1) {
      // Jobs created meanwhile (newer) never show on later pages.
      created(job_request(), noon() + 20min);
      created(job_request(), noon() + 30min);
    }
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, expected);

  // The whole list, newest first, includes the two late ones.
  auto all = list(project, "", 0);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->jobs.size(), 10u);
  EXPECT_TRUE(all->next_cursor.empty());
  for (size_t i = 1; i < all->jobs.size(); ++i) {
    const auto& a = all->jobs[i - 1];
    const auto& b = all->jobs[i];
    EXPECT_TRUE(a.created_at_us > b.created_at_us
                || (a.created_at_us == b.created_at_us && a.id > b.id))
      << i;
  }

  for (auto bad : {"abc", "123_not-a-uuid", "x_0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10",
                   "_0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10"}) {
    auto page = list(project, bad, 3);
    ASSERT_FALSE(page) << bad;
    EXPECT_EQ(code_of(page.error()), errc::invalid_argument) << bad;
  }
  auto bad_project = list("nope", "", 3);
  ASSERT_FALSE(bad_project);
  EXPECT_EQ(code_of(bad_project.error()), errc::invalid_argument);
}

TEST_F(consolidation_repository_test, enabled_projects_are_listed_in_id_order) {
  (void) put_project("gamma", false);
  auto ids = in_tx([&](auto& tx) { return storage::enabled_projects(tx); });
  std::vector<std::string> expected{project, other_project};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids, expected);
}

// -- begin, the lock, finish -----------------------------------------------------------

TEST_F(consolidation_repository_test, a_second_session_cannot_begin_a_job_of_a_locked_project) {
  auto a = connect();
  auto b = connect();
  auto job = created(job_request());
  auto second_job = created(job_request(), noon() + 1s);
  auto start = begin(*a, job.id, noon() + 1min);
  ASSERT_TRUE(start) << describe(start.error());
  EXPECT_EQ(start->job.status, "running");
  EXPECT_EQ(start->job.started_at_us, us(noon() + 1min));
  EXPECT_TRUE(start->project_found);
  EXPECT_TRUE(start->consolidation_enabled);
  EXPECT_EQ(start->config_json, "{}");

  for (const auto& id : {job.id, second_job.id}) {
    auto refused = begin(*b, id);
    ASSERT_FALSE(refused);
    EXPECT_EQ(code_of(refused.error()), errc::conflict);
    EXPECT_NE(message_of(refused.error()).find(project), std::string::npos);
  }
  EXPECT_EQ(get(second_job.id)->status, "queued") << "a refusal writes nothing";
  // Another project is free.
  auto other = created(job_request(other_project));
  EXPECT_TRUE(begin(*b, other.id));

  // Finish releases the lock: b may begin now.
  auto done = finish(*a, start->job, "completed", noon() + 3min);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed");
  EXPECT_EQ(done->completed_at_us, us(noon() + 3min));
  EXPECT_EQ(done->duration_ms, 120'000);
  auto taken = begin(*b, second_job.id);
  ASSERT_TRUE(taken) << describe(taken.error());

  // A completed job is answered as it is, lock or not.
  auto again = begin(*a, job.id, noon() + 1h);
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_EQ(again->job.status, "completed");
  EXPECT_EQ(again->job.completed_at_us, us(noon() + 3min));

  // The session's connection ends: the lock goes with it (once the server
  // noticed).
  b.reset();
  auto c = connect();
  auto after = begin(*c, second_job.id, noon() + 2h);
  for (int i = 0; i < 200 && !after && code_of(after.error()) == errc::conflict;
       ++i) {
    std::this_thread::sleep_for(10ms);
    after = begin(*c, second_job.id, noon() + 2h);
  }
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_EQ(after->job.started_at_us, us(noon()))
    << "started_at stays the first start's";

  auto unknown = begin(*c, unknown_id);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
}

TEST_F(consolidation_repository_test, begin_reports_missing_and_disabled_projects) {
  auto a = connect();
  auto missing = created(job_request(unknown_id));
  auto start = begin(*a, missing.id);
  ASSERT_TRUE(start) << describe(start.error());
  EXPECT_FALSE(start->project_found);
  EXPECT_TRUE(finish(*a, start->job, "cancelled"));

  auto disabled = put_project("off", false, R"({"merge_threshold": 0.95})");
  auto off = created(job_request(disabled));
  start = begin(*a, off.id);
  ASSERT_TRUE(start) << describe(start.error());
  EXPECT_TRUE(start->project_found);
  EXPECT_FALSE(start->consolidation_enabled);
  EXPECT_EQ(json::parse(start->config_json).at("merge_threshold").as_double(),
            0.95);
  auto done = finish(*a, start->job, "cancelled");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, "cancelled");
  // Cancelled is final.
  auto again = begin(*a, off.id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job.status, "cancelled");
}

TEST_F(consolidation_repository_test, a_job_ends_once_and_only_with_a_final_status) {
  auto a = connect();
  auto project = put_project("p", true, "{}");
  auto job = created(job_request(project));
  auto start = begin(*a, job.id);
  ASSERT_TRUE(start) << describe(start.error());
  auto bad = finish(*a, start->job, "running");
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_argument);
  EXPECT_NE(message_of(bad.error()).find("status"), std::string::npos);
  auto done = finish(*a, start->job, "completed", noon() + 1min);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed");
  // A late or repeated finish (a session that lost the job) changes
  // nothing.
  auto late = finish(*a, start->job, "failed", noon() + 5min);
  ASSERT_TRUE(late) << describe(late.error());
  EXPECT_EQ(late->status, "completed");
  EXPECT_EQ(late->completed_at_us, done->completed_at_us);
  EXPECT_EQ(late->error_message, "");
}

TEST_F(consolidation_repository_test, project_sessions_hold_the_lock_until_finish_or_their_connection_ends) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto s1 = spawn_project_session(sys, test::fast_storage_options(db));
  auto s2 = spawn_project_session(sys, test::fast_storage_options(db));
  auto ask = [&]<class Reply>(const project_session_actor& s, auto req,
                              Reply*) -> caf::expected<Reply> {
    caf::scoped_actor self{sys};
    caf::expected<Reply> result{caf::error{}};
    self->request(s, 10s, std::move(req))
      .receive([&](Reply& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  auto begin_on = [&](const project_session_actor& s, const std::string& id) {
    return ask(s, consolidation::begin_job{id, us(noon())},
               static_cast<consolidation::job_start*>(nullptr));
  };
  auto commit_on = [&](const project_session_actor& s,
                       consolidation::phase_commit pc) {
    return ask(s, std::move(pc), static_cast<job_record*>(nullptr));
  };
  auto job = created(job_request());
  auto other = created(job_request(other_project));
  auto ids = import({row("kept"), row("goes")});

  auto started = begin_on(s1, job.id);
  ASSERT_TRUE(started) << describe(started.error());
  auto refused = begin_on(s2, job.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  // One session, one project at a time.
  auto busy = begin_on(s1, other.id);
  ASSERT_FALSE(busy);
  EXPECT_EQ(code_of(busy.error()), errc::conflict);

  auto first = phase(started->job, "patterns");
  auto committed = commit_on(s1, first);
  ASSERT_TRUE(committed) << describe(committed.error());
  EXPECT_EQ(committed->phases_completed, std::vector<std::string>{"patterns"});

  // s1's connection dies (the server ends it): its lock goes with it ...
  EXPECT_EQ(query("SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                  "WHERE locktype = 'advisory' AND classid = "
                  + std::to_string(storage::consolidation_lock_class)
                  + "::oid"),
            "1");
  // ... so s2 takes the project over, and s1 never commits again.
  std::optional<caf::expected<consolidation::job_start>> taken;
  for (int i = 0; i < 200; ++i) {
    taken = begin_on(s2, job.id);
    if (*taken || code_of(taken->error()) != errc::conflict)
      break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(*taken) << describe(taken->error());
  auto before = everything();
  auto merge = phase(started->job, "merge");
  merge.supersedes.push_back({ids[1], ids[0]});
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto late = commit_on(s1, merge);
    ASSERT_FALSE(late) << "attempt " << attempt;
    EXPECT_TRUE(code_of(late.error()) == errc::conflict
                || code_of(late.error()) == errc::database_unavailable)
      << describe(late.error());
  }
  EXPECT_EQ(everything(), before);
  auto late = commit_on(s1, merge);
  ASSERT_FALSE(late);
  EXPECT_EQ(code_of(late.error()), errc::conflict) << describe(late.error());

  // s2 commits and finishes; then s1 (reconnected) may begin again.
  auto by_s2 = commit_on(s2, merge);
  ASSERT_TRUE(by_s2) << describe(by_s2.error());
  EXPECT_EQ(by_s2->phases_completed,
            (std::vector<std::string>{"patterns", "merge"}));
  consolidation::finish_job fin;
  fin.job_id = job.id;
  fin.project_id = project;
  fin.status = "failed";
  fin.error = "stopped by the test";
  fin.now_us = us(noon() + 1min);
  auto finished = ask(s2, fin, static_cast<job_record*>(nullptr));
  ASSERT_TRUE(finished) << describe(finished.error());
  EXPECT_EQ(finished->status, "failed");
  EXPECT_EQ(finished->error_message, "stopped by the test");
  EXPECT_EQ(query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            "0");
  auto resumed = begin_on(s1, job.id);
  ASSERT_TRUE(resumed) << describe(resumed.error());
  EXPECT_EQ(resumed->job.status, "running") << "a failed job resumes";
  EXPECT_EQ(resumed->job.error_message, "");
  EXPECT_EQ(resumed->job.phases_completed,
            (std::vector<std::string>{"patterns", "merge"}));
  caf::anon_send_exit(s1, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(s2, caf::exit_reason::user_shutdown);
}

// -- commit_phase -----------------------------------------------------------------------

TEST_F(consolidation_repository_test, a_commit_writes_inserts_rewrites_supersedes_and_state_changes) {
  auto a = connect();
  auto agent = random_uuid();
  auto r0 = row("keep me", {1, 0, 0});
  r0.agent_id = agent;
  r0.importance = 4;
  auto r1 = row("absorbed", {0.9f, 0.1f, 0});
  r1.agent_id = agent;
  auto r2 = row("text only", {0, 1, 0});
  auto r3 = row("expired", {0, 0, 1});
  r3.tier = "hot";
  auto r4 = row("stale");
  auto r5 = row("child", {0, 1, 1});
  auto ids = import({r0, r1, r2, r3, r4, r5});
  auto job = running_job(*a);

  auto pc = phase(job, "merge");
  pc.metrics_json = R"({"groups":1,"memories_merged":1})";
  pc.memories_processed = 6;
  pc.memories_merged = 1;
  pc.memories_archived = 1;
  consolidation::new_memory n;
  n.id = random_uuid();
  n.agent_id = agent;
  n.type = "principle";
  n.importance = 7;
  n.content = "a new principle";
  n.embedding = {0.5f, -0.25f, 0.125f};
  n.embedding_model = model;
  n.created_at_us = us(noon() + 5s);
  n.metadata_json = R"({"pattern":"x"})";
  pc.inserts.push_back(n);
  consolidation::new_memory bare;
  bare.id = random_uuid();
  bare.type = "semantic";
  bare.content = "no vector";
  pc.inserts.push_back(bare);
  consolidation::rewrite_change with_vector;
  with_vector.id = ids[0];
  with_vector.content = "keep me, merged";
  with_vector.embedding = {0.6f, 0.8f, 0};
  with_vector.embedding_model = "other-model";
  with_vector.importance = 9;
  consolidation::rewrite_change text_only;
  text_only.id = ids[2];
  text_only.content = "text only, rewritten";
  pc.rewrites = {with_vector, text_only};
  pc.supersedes = {{ids[1], ids[0]}};
  pc.state_changes = {{ids[3], "archived", "cold", ""},
                      {ids[4], "", "cold", ""},
                      {ids[5], "", "", n.id}};
  pc.audits = {{ids[0], "merged", R"({"absorbed":["x"]})"},
               {ids[1], "superseded", ""},
               {n.id, "created", R"({"phase":"hierarchy"})"}};
  auto done = commit(*a, pc);
  ASSERT_TRUE(done) << describe(done.error());

  // The new memories, as given.
  EXPECT_EQ(column(n.id, "concat_ws('|', project_id, agent_id, type, tier, "
                         "status, content, embedding_model, importance, "
                         "source_type, engram.to_us(created_at), "
                         "engram.to_us(updated_at), metadata->>'pattern')"),
            project + "|" + agent + "|principle|warm|active|a new principle|"
              + model + "|7|consolidation|" + std::to_string(us(noon() + 5s))
              + "|" + std::to_string(us(noon() + 10s)) + "|x");
  EXPECT_EQ(stored_vector("memories", "embedding", n.id), n.embedding);
  EXPECT_EQ(column(bare.id, "concat_ws('|', agent_id IS NULL, embedding IS NULL, "
                            "embedding_model IS NULL, engram.to_us(created_at))"),
            "t|t|t|" + std::to_string(us(noon() + 10s)));
  // Rewrites: with a vector (and its model), and text only.
  EXPECT_EQ(column(ids[0], "content || '|' || embedding_model || '|' || importance"),
            "keep me, merged|other-model|9");
  EXPECT_EQ(stored_vector("memories", "embedding", ids[0]),
            with_vector.embedding);
  EXPECT_EQ(column(ids[2], "content || '|' || embedding_model || '|' || importance"),
            "text only, rewritten|" + std::string{model} + "|5");
  EXPECT_EQ(stored_vector("memories", "embedding", ids[2]),
            (std::vector<float>{0, 1, 0}));
  // Supersede.
  EXPECT_EQ(column(ids[1], "status || '|' || superseded_by"),
            "superseded|" + ids[0]);
  // State changes: archive, demote, parent.
  EXPECT_EQ(column(ids[3], "status || '|' || tier"), "archived|cold");
  EXPECT_EQ(column(ids[4], "status || '|' || tier"), "active|cold");
  EXPECT_EQ(column(ids[5], "status || '|' || tier || '|' || parent_id"),
            "active|warm|" + n.id);
  // Every changed row has updated_at = the commit's now; the others not.
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE updated_at = "
                  + sql_time(noon() + 10s)),
            8);
  // Audit rows with the job's id, at now.
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id = "
                  + quoted(job.id) + " AND project_id = " + quoted(project)
                  + " AND at = " + sql_time(noon() + 10s)),
            3);
  // Written in memory id order (index locality); each memory's own rows
  // keep the phase's order.
  EXPECT_EQ(query("SELECT string_agg(action || ':' || detail::text, ' ' "
                  "ORDER BY action) FROM engram.memory_audit"),
            R"(created:{"phase": "hierarchy"} merged:{"absorbed": ["x"]} superseded:{})");
  EXPECT_EQ(query("SELECT bool_and(ordered) FROM (SELECT memory_id >= "
                  "lag(memory_id, 1, memory_id) OVER (ORDER BY id) AS ordered "
                  "FROM engram.memory_audit) x"),
            "t");
  // The job's progress.
  EXPECT_EQ(done->phases_completed, std::vector<std::string>{"merge"});
  EXPECT_EQ(done->memories_processed, 6);
  EXPECT_EQ(done->memories_merged, 1);
  EXPECT_EQ(done->memories_archived, 1);
  EXPECT_EQ(without_timing(done->metrics_json),
            json::parse(R"({"merge":{"groups":1,"memories_merged":1}})"));
  EXPECT_EQ(done->status, "running");
}

TEST_F(consolidation_repository_test, the_job_records_each_phase_once_and_merges_metrics) {
  auto a = connect();
  auto job = running_job(*a);
  auto p1 = phase(job, "patterns");
  p1.metrics_json = R"({"patterns_extracted":2})";
  p1.memories_processed = 10;
  ASSERT_TRUE(commit(*a, p1));
  auto p2 = phase(job, "decay");
  p2.metrics_json = R"({"memories_archived":3})";
  p2.memories_processed = 7;
  p2.memories_archived = 3;
  ASSERT_TRUE(commit(*a, p2));
  auto p3 = phase(job, "invalidate");
  p3.metrics_json = "";
  auto done = commit(*a, p3);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->phases_completed,
            (std::vector<std::string>{"patterns", "decay", "invalidate"}));
  EXPECT_EQ(without_timing(done->metrics_json),
            json::parse(R"({"patterns":{"patterns_extracted":2},)"
                        R"("decay":{"memories_archived":3},"invalidate":{}})"));
  EXPECT_EQ(done->memories_processed, 17);
  EXPECT_EQ(done->memories_archived, 3);

  // The same phase again (a duplicate delivery): listed once, its metrics
  // replaced.
  p2.metrics_json = R"({"memories_archived":0})";
  p2.memories_archived = 0;
  p2.memories_processed = 0;
  auto again = commit(*a, p2);
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_EQ(again->phases_completed,
            (std::vector<std::string>{"patterns", "decay", "invalidate"}));
  EXPECT_EQ(without_timing(again->metrics_json).at("decay"),
            json::parse(R"({"memories_archived":0})"));

  // A job that is not running takes no commit.
  ASSERT_TRUE(finish(*a, *again, "completed"));
  auto late = commit(*a, phase(job, "merge"));
  ASSERT_FALSE(late);
  EXPECT_EQ(code_of(late.error()), errc::conflict);
  auto unknown = phase(job, "merge");
  unknown.job_id = unknown_id;
  auto missing = commit(*a, unknown);
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::not_found);
}

TEST_F(consolidation_repository_test, patterns_are_replaced_in_order_and_playbook_entries_created_and_updated) {
  auto a = connect();
  auto ids = import({row("m0", {1, 0}), row("m1", {0, 1}), row("m2", {1, 1}),
                     row("m3", {1, -1}), row("m4", {-1, 1})});
  auto job = running_job(*a);
  // Seeds whose ids do not sort in position order.
  std::vector<std::string> seeds{ids[3], ids[0], ids[4]};
  auto pc = phase(job, "patterns");
  pc.replace_patterns = true;
  for (size_t i = 0; i < seeds.size(); ++i) {
    consolidation::pattern_write p;
    p.id = random_uuid();
    p.seed_memory_id = seeds[i];
    p.label = "label " + std::to_string(i);
    p.member_ids = {seeds[i], ids[1]};
    p.centroid = {0.25f * static_cast<float>(i + 1), -1.5f};
    p.embedding_model = model;
    pc.patterns.push_back(p);
  }
  ASSERT_TRUE(commit(*a, pc));
  auto snap = load(project);
  ASSERT_EQ(snap.patterns.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(snap.patterns[i].seed_memory_id, seeds[i]);
    EXPECT_EQ(snap.patterns[i].label, "label " + std::to_string(i));
    EXPECT_EQ(snap.patterns[i].member_ids,
              (std::vector<std::string>{seeds[i], ids[1]}));
    EXPECT_EQ(snap.patterns[i].embedding_model, model);
    EXPECT_TRUE(same_bits(pc.patterns[i].centroid,
                          snap.floats.data() + snap.patterns[i].offset,
                          snap.patterns[i].dim));
  }
  EXPECT_EQ(query("SELECT string_agg(position || ':' || support || ':' || "
                  "(job_id = " + quoted(job.id) + ")::text, ' ' ORDER BY position) "
                  "FROM engram.patterns"),
            "0:2:true 1:2:true 2:2:true");
  auto kept_id = query("SELECT id::text FROM engram.patterns WHERE seed_memory_id = "
                       + quoted(ids[4]));

  // A later run: ids[4]'s pattern first (updated in place, its id kept),
  // a new one, and the other two gone.
  auto job2 = phase(job, "patterns");
  job2.replace_patterns = true;
  consolidation::pattern_write first;
  first.id = random_uuid();
  first.seed_memory_id = ids[4];
  first.label = "updated";
  first.member_ids = {ids[4], ids[2], ids[3]};
  first.centroid = {1, 2};
  first.embedding_model = model;
  consolidation::pattern_write second;
  second.id = random_uuid();
  second.seed_memory_id = ids[2];
  second.label = "new";
  second.member_ids = {ids[2]};
  job2.patterns = {first, second};
  ASSERT_TRUE(commit(*a, job2));
  snap = load(project);
  ASSERT_EQ(snap.patterns.size(), 2u);
  EXPECT_EQ(snap.patterns[0].id, kept_id);
  EXPECT_EQ(snap.patterns[0].label, "updated");
  EXPECT_EQ(snap.patterns[0].member_ids,
            (std::vector<std::string>{ids[4], ids[2], ids[3]}));
  EXPECT_EQ(snap.patterns[1].label, "new");
  EXPECT_EQ(snap.patterns[1].dim, 0u);
  EXPECT_EQ(query("SELECT string_agg(label || ':' || position || ':' || support, ' ' "
                  "ORDER BY position) FROM engram.patterns"),
            "updated:0:3 new:1:1");
  EXPECT_EQ(count("SELECT count(*) FROM engram.patterns WHERE project_id = "
                  + quoted(project)),
            2);

  // A run that finds no pattern: the project's patterns are replaced by
  // none (and the commit writes nothing in COPY).
  auto none = phase(job, "patterns");
  none.replace_patterns = true;
  auto committed = commit(*a, none);
  ASSERT_TRUE(committed) << describe(committed.error());
  EXPECT_EQ(count("SELECT count(*) FROM engram.patterns WHERE project_id = "
                  + quoted(project)),
            0);
  EXPECT_TRUE(load(project).patterns.empty());

  // Playbook: create two, then update one.
  auto agent = random_uuid();
  auto pb = phase(job, "playbook");
  consolidation::playbook_write e1;
  e1.id = random_uuid();
  e1.create = true;
  e1.agent_id = agent;
  e1.principle_id = ids[0];
  e1.title = "Title one";
  e1.content = "Content one";
  e1.embedding = {0.5f, 0.5f};
  e1.embedding_model = model;
  consolidation::playbook_write e2;
  e2.id = random_uuid();
  e2.create = true;
  e2.title = "Title two";
  e2.content = "Content two";
  pb.playbook = {e1, e2};
  ASSERT_TRUE(commit(*a, pb));
  EXPECT_EQ(query("SELECT concat_ws('|', agent_id, principle_id, title, content, "
                  "embedding_model, engram.to_us(created_at), helpful, harmful) "
                  "FROM engram.playbook_entries WHERE id = " + quoted(e1.id)),
            agent + "|" + ids[0] + "|Title one|Content one|" + model + "|"
              + std::to_string(us(noon() + 10s)) + "|0|0");
  EXPECT_EQ(stored_vector("playbook_entries", "embedding", e1.id), e1.embedding);
  EXPECT_EQ(query("SELECT concat_ws('|', agent_id IS NULL, principle_id IS NULL, "
                  "embedding IS NULL) FROM engram.playbook_entries WHERE id = "
                  + quoted(e2.id)),
            "t|t|t");

  auto update = phase(job, "playbook");
  update.now_us = us(noon() + 1h);
  consolidation::playbook_write u;
  u.id = e1.id;
  u.principle_id = ids[1];
  u.content = "Content one, updated";
  update.playbook = {u};
  ASSERT_TRUE(commit(*a, update));
  EXPECT_EQ(query("SELECT concat_ws('|', agent_id, principle_id, title, content, "
                  "embedding_model, engram.to_us(updated_at)) "
                  "FROM engram.playbook_entries WHERE id = " + quoted(e1.id)),
            agent + "|" + ids[1] + "|Title one|Content one, updated|" + model
              + "|" + std::to_string(us(noon() + 1h)));
  EXPECT_EQ(stored_vector("playbook_entries", "embedding", e1.id), e1.embedding);

  // An update of an entry that is gone: conflict, nothing written.
  auto before = everything();
  auto gone = phase(job, "playbook");
  u.id = unknown_id;
  gone.playbook = {e2, u};
  gone.playbook[0].id = random_uuid();
  auto refused = commit(*a, gone);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  EXPECT_EQ(everything(), before);
}

TEST_F(consolidation_repository_test, a_change_to_a_memory_that_is_no_longer_active_rolls_back_the_whole_commit) {
  auto a = connect();
  auto ids = import({row("a", {1, 0}), row("b", {0.9f, 0.1f}),
                     row("c", {0, 1}), row("d", {0.1f, 0.9f})});
  auto job = running_job(*a);
  // Another writer supersedes `b` after the snapshot was taken.
  exec("UPDATE engram.memories SET status = 'superseded', superseded_by = "
       + quoted(ids[2]) + " WHERE id = " + quoted(ids[1]));
  auto before = everything();

  auto full = [&] {
    auto pc = phase(job, "merge");
    pc.metrics_json = R"({"groups":1})";
    pc.memories_processed = 4;
    pc.memories_merged = 1;
    consolidation::new_memory n;
    n.id = random_uuid();
    n.type = "semantic";
    n.content = "summary";
    pc.inserts = {n};
    pc.rewrites = {{ids[0], "a merged", {}, "", 0}};
    pc.supersedes = {{ids[3], ids[2]}, {ids[1], ids[0]}};
    pc.state_changes = {{ids[2], "", "cold", ""}};
    pc.audits = {{ids[0], "merged", "{}"}, {ids[1], "superseded", "{}"}};
    pc.replace_patterns = true;
    consolidation::pattern_write p;
    p.seed_memory_id = ids[0];
    p.label = "x";
    p.member_ids = {ids[0]};
    pc.patterns = {p};
    consolidation::playbook_write e;
    e.id = random_uuid();
    e.create = true;
    e.title = "t";
    e.content = "c";
    pc.playbook = {e};
    return pc;
  };
  auto refused = commit(*a, full());
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  EXPECT_NE(message_of(refused.error()).find("supersede: 1 of 2"),
            std::string::npos)
    << message_of(refused.error());
  EXPECT_EQ(everything(), before) << "nothing of the commit stays";

  // The same for a rewrite and a state change of an inactive memory.
  auto rewrite = phase(job, "merge");
  rewrite.rewrites = {{ids[1], "x", {}, "", 0}};
  auto r = commit(*a, rewrite);
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::conflict);
  auto state = phase(job, "decay");
  state.state_changes = {{ids[0], "archived", "cold", ""},
                         {ids[1], "archived", "cold", ""}};
  auto s = commit(*a, state);
  ASSERT_FALSE(s);
  EXPECT_EQ(code_of(s.error()), errc::conflict);
  // A memory of another project is not this project's to change.
  auto foreign = import({row("elsewhere")}, other_project);
  before = everything();
  auto other = phase(job, "decay");
  other.state_changes = {{foreign[0], "archived", "cold", ""}};
  auto o = commit(*a, other);
  ASSERT_FALSE(o);
  EXPECT_EQ(code_of(o.error()), errc::conflict);
  EXPECT_EQ(everything(), before);

  // A commit that names a memory twice in one list is refused as such.
  auto twice = phase(job, "decay");
  twice.state_changes = {{ids[0], "", "cold", ""}, {ids[0], "archived", "cold", ""}};
  auto t = commit(*a, twice);
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::invalid_argument);
  EXPECT_NE(message_of(t.error()).find("listed twice"), std::string::npos);
  EXPECT_EQ(everything(), before);

  // An audit row must name a memory by its UUID (audit rows go in binary,
  // which takes no other text): refused before anything is written.
  auto bad_audit = phase(job, "decay");
  bad_audit.state_changes = {{ids[0], "", "cold", ""}};
  bad_audit.audits = {{ids[0], "demoted", "{}"}, {"not-a-uuid", "demoted", "{}"}};
  auto b = commit(*a, bad_audit);
  ASSERT_FALSE(b);
  EXPECT_EQ(code_of(b.error()), errc::invalid_argument);
  EXPECT_NE(message_of(b.error()).find("'not-a-uuid' is not a UUID"),
            std::string::npos)
    << message_of(b.error());
  EXPECT_EQ(everything(), before);
  // So must every other id of the commit (all of it goes in binary): each
  // is refused with its field named, and nothing is written.
  auto refuses = [&](const std::string& field, auto&& spoil) {
    auto pc = phase(job, "merge");
    pc.supersedes = {{ids[3], ids[2]}};
    pc.audits = {{ids[3], "superseded", "{}"}};
    spoil(pc);
    auto r = commit(*a, pc);
    ASSERT_FALSE(r) << field;
    EXPECT_EQ(code_of(r.error()), errc::invalid_argument) << field;
    EXPECT_NE(message_of(r.error()).find(field + ": 'x1' is not a UUID"),
              std::string::npos)
      << message_of(r.error());
    EXPECT_EQ(everything(), before) << field;
  };
  refuses("supersede by", [](auto& pc) { pc.supersedes[0].by = "x1"; });
  refuses("state change parent_id", [&](auto& pc) {
    pc.state_changes = {{ids[2], "", "", "x1"}};
  });
  refuses("rewrite id", [](auto& pc) { pc.rewrites = {{"x1", "t", {}, "", 0}}; });
  refuses("insert agent_id", [](auto& pc) {
    consolidation::new_memory m;
    m.id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
    m.agent_id = "x1";
    m.type = "semantic";
    m.content = "c";
    pc.inserts = {m};
  });
  refuses("pattern member id", [&](auto& pc) {
    pc.replace_patterns = true;
    pc.patterns = {{"", ids[2], "label", {ids[2], "x1"}, {}, ""}};
  });

  // The same connection commits fine afterwards.
  auto ok = phase(job, "merge");
  ok.supersedes = {{ids[3], ids[2]}};
  auto done = commit(*a, ok);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(column(ids[3], "status"), "superseded");
}

TEST_F(consolidation_repository_test, a_memorys_audit_rows_keep_the_phases_order) {
  auto a = connect();
  auto ids = import({row("a"), row("b"), row("c")});
  auto job = running_job(*a);
  auto pc = phase(job, "hierarchy");
  // Interleaved across memories; each memory's rows in the phase's order.
  pc.audits = {{ids[2], "first", "{}"},  {ids[0], "first", "{}"},
               {ids[1], "first", "{}"},  {ids[2], "second", "{}"},
               {ids[0], "second", "{}"}, {ids[2], "third", "{}"}};
  auto done = commit(*a, pc);
  ASSERT_TRUE(done) << describe(done.error());
  auto history = [&](const std::string& id) {
    return query("SELECT string_agg(action, ',' ORDER BY id) FROM "
                 "engram.memory_audit WHERE memory_id = " + quoted(id));
  };
  EXPECT_EQ(history(ids[2]), "first,second,third");
  EXPECT_EQ(history(ids[0]), "first,second");
  EXPECT_EQ(history(ids[1]), "first");
}

TEST_F(consolidation_repository_test, a_commit_for_a_project_deleted_meanwhile_writes_nothing) {
  auto a = connect();
  auto ids = import({row("a", {1, 0}), row("b", {0.9f, 0.1f})});
  auto job = running_job(*a);
  exec("DELETE FROM engram.projects WHERE id = " + quoted(project));
  EXPECT_EQ(query("SELECT count(*) FROM engram.memories"), "0")
    << "the project's memories went with it";
  auto pc = phase(job, "summarize");
  consolidation::new_memory n;
  n.id = random_uuid();
  n.type = "semantic";
  n.content = "summary";
  pc.inserts = {n};
  pc.audits = {{n.id, "created", "{}"}};
  auto refused = commit(*a, pc);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::not_found);
  EXPECT_NE(message_of(refused.error()).find("no longer exists"),
            std::string::npos);
  EXPECT_EQ(query("SELECT count(*) FROM engram.memories"), "0")
    << "no memory of a deleted project";
  EXPECT_EQ(query("SELECT count(*) FROM engram.memory_audit"), "0");
}

// -- load_snapshot ----------------------------------------------------------------------

TEST_F(consolidation_repository_test, a_snapshot_holds_the_active_memories_in_order_with_exact_vectors) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float big = std::numeric_limits<float>::max();
  std::vector<std::vector<float>> vectors{
    {1.0f / 3.0f, -0.0f, tiny, 7.0f},
    {big, -big, 1e-30f, 0.1f},
    {0.2f, 0.3f, 0.4f, 0.5f},
    {-1, -2, -3, -4},
  };
  auto agent = random_uuid();
  std::vector<memories::memory_row> rows;
  // Created out of order, two at one instant (then by id).
  std::vector<wall_time> created{noon() - 3h, noon() - 5h, noon() - 3h,
                                 noon() - 1h};
  for (size_t i = 0; i < vectors.size(); ++i) {
    auto r = row("memory " + std::to_string(i), vectors[i]);
    r.created_at_us = us(created[i]);
    rows.push_back(r);
  }
  rows[0].agent_id = agent;
  rows[0].type = "episodic";
  rows[0].tier = "hot";
  rows[0].importance = 8;
  rows[0].pinned = true;
  rows[0].access_count = 4;
  rows[0].source_type = "conversation";
  rows[0].last_accessed_at_us = us(noon() - 2h);
  rows[0].expires_at_us = us(noon() + 48h);
  auto no_vector = row("no vector");
  no_vector.created_at_us = us(noon() - 2h);
  rows.push_back(no_vector);
  auto inactive = row("superseded one", {1, 1, 1, 1});
  inactive.status = "superseded";
  rows.push_back(inactive);
  auto archived = row("archived one", {1, 1, 1, 1});
  archived.status = "archived";
  rows.push_back(archived);
  auto ids = import(rows);
  import({row("other project's", {1, 2, 3, 4})}, other_project);
  exec("UPDATE engram.memories SET parent_id = " + quoted(ids[3])
       + " WHERE id = " + quoted(ids[2]));

  auto snap = load(project);
  // Expected order: (created_at, id).
  std::vector<size_t> order{1, 0, 2, 4, 3};
  if (ids[2] < ids[0])
    order = {1, 2, 0, 4, 3};
  ASSERT_EQ(snap.memories.size(), order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& m = snap.memories[k];
    auto i = order[k];
    EXPECT_EQ(m.id, ids[i]) << k;
    EXPECT_EQ(m.content, rows[i].content);
    EXPECT_EQ(m.created_at_us, rows[i].created_at_us == 0
                                 ? us(noon() - 24h)
                                 : rows[i].created_at_us);
    if (i == 4) {
      EXPECT_EQ(m.dim, 0u);
      EXPECT_EQ(m.embedding_model, "");
    } else {
      EXPECT_EQ(m.embedding_model, model);
      EXPECT_TRUE(same_bits(vectors[i], snap.floats.data() + m.offset, m.dim))
        << "memory " << i << " vector differs";
    }
  }
  auto first = std::find_if(snap.memories.begin(), snap.memories.end(),
                            [&](const auto& m) { return m.id == ids[0]; });
  ASSERT_NE(first, snap.memories.end());
  EXPECT_EQ(first->agent_id, agent);
  EXPECT_EQ(first->type, "episodic");
  EXPECT_EQ(first->tier, "hot");
  EXPECT_EQ(first->importance, 8);
  EXPECT_TRUE(first->pinned);
  EXPECT_EQ(first->access_count, 4);
  EXPECT_EQ(first->source_type, "conversation");
  EXPECT_EQ(first->last_accessed_at_us, us(noon() - 2h));
  EXPECT_EQ(first->expires_at_us, us(noon() + 48h));
  auto child = std::find_if(snap.memories.begin(), snap.memories.end(),
                            [&](const auto& m) { return m.id == ids[2]; });
  EXPECT_EQ(child->parent_id, ids[3]);
  EXPECT_EQ(child->agent_id, "");
  EXPECT_EQ(child->last_accessed_at_us, 0);
  EXPECT_EQ(child->expires_at_us, 0);

  // Playbook entries in (created_at, id) order with their vectors.
  exec("INSERT INTO engram.playbook_entries (id, project_id, title, content, "
       "embedding, embedding_model, created_at) VALUES "
       "('00000000-0000-4000-8000-000000000002', " + quoted(project)
       + ", 'later', 'c2', NULL, NULL, " + sql_time(noon()) + "), "
       "('00000000-0000-4000-8000-000000000001', " + quoted(project)
       + ", 'earlier', 'c1', '\\x0000803f000000c0', 'm', " + sql_time(noon() - 1h)
       + "), ('00000000-0000-4000-8000-000000000003', " + quoted(other_project)
       + ", 'other', 'c3', NULL, NULL, " + sql_time(noon()) + ")");
  snap = load(project);
  ASSERT_EQ(snap.playbook.size(), 2u);
  EXPECT_EQ(snap.playbook[0].title, "earlier");
  EXPECT_EQ(snap.playbook[0].embedding_model, "m");
  EXPECT_TRUE(same_bits({1.0f, -2.0f}, snap.floats.data() + snap.playbook[0].offset,
                        snap.playbook[0].dim));
  EXPECT_EQ(snap.playbook[0].created_at_us, us(noon() - 1h));
  EXPECT_EQ(snap.playbook[1].title, "later");
  EXPECT_EQ(snap.playbook[1].dim, 0u);

  EXPECT_TRUE(load(unknown_id).memories.empty());
  EXPECT_TRUE(load("nope").memories.empty());
}
