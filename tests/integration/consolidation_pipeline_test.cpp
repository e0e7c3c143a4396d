// The consolidation pipeline against a real PostgreSQL (DESIGN §6): project
// sessions, the six phase actors with the offline providers (extractive
// LLM, hashing embedder) or test stubs, and the coordinator, as the daemon
// wires them. Projects and memories come in through the storage actor with
// hand-built vectors (near-duplicates, a pattern, old episodic topics,
// expired and stale memories, pinned and identity ones); jobs are created
// with their task and run with run_job. The end state is checked in SQL.

#include "actors/consolidation/coordinator.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/consolidation/phase_actor.hpp"
#include "messages/errc.hpp"
#include "runtime/embedding_provider.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/memory_text.hpp"
#include "runtime/uuid.hpp"
#include "storage/consolidation_repository.hpp"
#include "storage/project_session.hpp"
#include "storage/sql_values.hpp"
#include "tests/integration/platform_fixture.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using consolidation::job_record;

namespace {

constexpr size_t dim = 32;
constexpr auto test_model = "test-model";

/// An embedder whose model is chosen by the test; it answers the hashing
/// embedder's vectors, or fails, may block at a gate, and calls `hook`
/// (on the phase actor's thread) before it answers.
class stub_embedder final : public embedding_provider {
public:
  explicit stub_embedder(std::string model) : model_(std::move(model)) {
  }

  caf::expected<embedding_batch>
  embed(const std::vector<std::string>& texts) override {
    auto call = ++calls;
    if (hook)
      hook(call);
    {
      std::unique_lock lk{mtx_};
      if (gate_closed_) {
        ++blocked_;
        cv_.notify_all();
        cv_.wait(lk, [&] { return !gate_closed_; });
      }
    }
    if (fail)
      return make_error(errc::unavailable,
                        "the embedding provider is down (test)");
    embedding_batch out;
    out.dimension = dim;
    for (const auto& t : texts) {
      auto v = hash_embedding(t, dim);
      out.values.insert(out.values.end(), v.begin(), v.end());
    }
    return out;
  }

  std::string model() const override {
    return model_;
  }

  std::string name() const override {
    return "stub";
  }

  void close_gate() {
    std::lock_guard lk{mtx_};
    gate_closed_ = true;
  }

  void open_gate() {
    std::lock_guard lk{mtx_};
    gate_closed_ = false;
    cv_.notify_all();
  }

  /// Waits until a call blocks at the gate.
  bool wait_blocked(std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lk{mtx_};
    return cv_.wait_for(lk, timeout, [&] { return blocked_ > 0; });
  }

  std::atomic<bool> fail{false};
  std::atomic<int> calls{0};
  std::function<void(int)> hook;

private:
  std::string model_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool gate_closed_ = false;
  int blocked_ = 0;
};

/// What the test cache was told.
struct invalidations {
  std::mutex mtx;
  std::vector<cache::invalidate_agents> seen;

  std::vector<cache::invalidate_agents> all() {
    std::lock_guard lk{mtx};
    return seen;
  }
};

struct cache_state {
  std::shared_ptr<invalidations> log;
  static inline const char* name = "test_cache";
};

hot_cache_actor::behavior_type
test_cache(hot_cache_actor::stateful_pointer<cache_state> self,
           std::shared_ptr<invalidations> log) {
  self->state.log = std::move(log);
  return {
    [](cache::hot_memories_request& req) {
      return cache::hot_memories{req.agent_id, {}, false};
    },
    [self](cache::invalidate_agents& req) {
      std::lock_guard lk{self->state.log->mtx};
      self->state.log->seen.push_back(std::move(req));
    },
    [](atom::stats) { return cache::cache_stats{}; },
  };
}

/// A vector of `dim` floats: `main` axis 1, plus the given (axis, weight).
std::vector<float> axis_vec(size_t main,
                       std::initializer_list<std::pair<size_t, float>> more = {}) {
  std::vector<float> v(dim, 0.0f);
  v[main] = 1.0f;
  for (auto [k, w] : more)
    v[k] += w;
  return v;
}

std::vector<float> normalized(std::vector<float> v) {
  double n = 0;
  for (auto x : v)
    n += double{x} * x;
  n = std::sqrt(n);
  for (auto& x : v)
    x = static_cast<float>(x / n);
  return v;
}

/// The ids of the memories `seed` imports, by role.
struct seeded {
  std::string agent_a, agent_b;
  // Near-duplicates (agent A): d0 is kept, d1 and d2 are absorbed; pd is
  // pinned, idm identity: neither merges.
  std::string d0, d1, d2, pd, idm;
  // A pattern of five (agent B): a principle.
  std::vector<std::string> p;
  // Old episodic memories of one topic (agent A): one summary.
  std::vector<std::string> e;
  // An old episodic one accessed often: stays.
  std::string e_frequent;
  // Expired: x1 (identity, pinned, importance 9, hot), x2 (project-wide);
  // x3 expires later.
  std::string x1, x2, x3;
  // Warm and not used: s1 (accessed 40 days ago), s2 (created 31 days ago,
  // never accessed) are demoted; s3 pinned, s4 identity, s5 importance 8,
  // s6 hot, s7 accessed 29 days ago stay.
  std::string s1, s2, s3, s4, s5, s6, s7;
  // Contents by id.
  std::map<std::string, std::string> content;
  // Vectors by id (as imported).
  std::map<std::string, std::vector<float>> vector;
};

class consolidation_pipeline_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    if (HasFatalFailure())
      return;
    storage = spawn_storage_worker(sys, test::fast_storage_options(db));
    auto llm = make_llm_provider(llm_options{});
    ASSERT_TRUE(llm) << describe(llm.error());
    services.llm = std::shared_ptr<llm_provider>(std::move(*llm));
    embedding_options eopts;
    eopts.provider = "hashing";
    eopts.dimension = dim;
    auto emb = make_embedding_provider(eopts);
    ASSERT_TRUE(emb) << describe(emb.error());
    services.embedder = std::shared_ptr<embedding_provider>(std::move(*emb));
    services.clk = &clock;
  }

  void TearDown() override {
    stop();
    if (storage)
      caf::anon_send_exit(storage, caf::exit_reason::user_shutdown);
  }

  /// Starts `sessions` project sessions, the phase actors and the
  /// coordinator (on `time`).
  void start(size_t sessions = 1, const engram::clock* time = nullptr) {
    coordinator_options opts;
    for (size_t i = 0; i < sessions; ++i)
      opts.sessions.push_back(
        spawn_project_session(sys, test::fast_storage_options(db)));
    for (const auto& name : consolidation::phase_names())
      if (name != "invalidate")
        opts.phases.emplace(name, spawn_phase_actor(sys, name, services));
    opts.storage = storage;
    opts.cache = sys.spawn(test_cache, cache_log);
    opts.time = time != nullptr ? time : &clock;
    session_handles = opts.sessions;
    cache = opts.cache;
    coordinator = spawn_consolidation_coordinator(sys, std::move(opts));
  }

  void stop() {
    if (coordinator) {
      caf::anon_send_exit(coordinator, caf::exit_reason::user_shutdown);
      coordinator = nullptr;
    }
    for (auto& s : session_handles)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    session_handles.clear();
    if (cache) {
      caf::anon_send_exit(cache, caf::exit_reason::user_shutdown);
      cache = nullptr;
    }
  }

  template <class Reply, class Handle, class Request>
  caf::expected<Reply> ask(const Handle& dest, Request req,
                           caf::timespan timeout = 60s) {
    caf::scoped_actor self{sys};
    caf::expected<Reply> result{caf::error{}};
    self->request(dest, timeout, std::move(req))
      .receive([&](Reply& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  std::string put_project(const std::string& name, bool enabled = true,
                          const std::string& config = "{}") {
    memories::put_project_request req;
    req.id = random_uuid();
    req.name = name;
    req.consolidation_enabled = enabled;
    req.consolidation_config_json = config;
    req.now_us = to_epoch_us(noon() - 1000h);
    auto put = ask<memories::put_project_result>(storage, req);
    EXPECT_TRUE(put) << describe(put.error());
    return req.id;
  }

  std::vector<std::string> import(const std::string& project,
                                  std::vector<memories::memory_row> rows) {
    memories::import_memories_request req;
    req.project_id = project;
    req.rows = std::move(rows);
    req.now_us = to_epoch_us(noon() - 1h);
    auto done = ask<memories::import_result>(storage, req);
    EXPECT_TRUE(done) << describe(done.error());
    return done ? done->ids : std::vector<std::string>{};
  }

  static int64_t us(wall_time t) {
    return to_epoch_us(t);
  }

  /// Imports the scenario of the file's top into `project`, vectors of
  /// `model`.
  seeded seed(const std::string& project, const std::string& model = test_model) {
    seeded s;
    s.agent_a = random_uuid();
    s.agent_b = random_uuid();
    std::vector<memories::memory_row> rows;
    std::vector<std::string*> slots;
    auto add = [&](std::string* slot, std::string content,
                   std::vector<float> v, auto&& tweak) {
      memories::memory_row r;
      r.id = random_uuid();
      r.type = "semantic";
      r.content = std::move(content);
      if (!v.empty()) {
        r.embedding = std::move(v);
        r.embedding_model = model;
      }
      r.created_at_us = us(noon() - 24h);
      r.last_accessed_at_us = us(noon() - 1h);
      tweak(r);
      *slot = r.id;
      s.content[r.id] = r.content;
      s.vector[r.id] = r.embedding;
      rows.push_back(std::move(r));
    };
    auto none = [](memories::memory_row&) {};
    auto of_a = [&](memories::memory_row& r) { r.agent_id = s.agent_a; };
    // Near-duplicates.
    add(&s.d0, "The deploy pipeline runs on Fridays at noon.",
        axis_vec(0, {{20, 0.1f}}), [&](auto& r) {
          of_a(r);
          r.importance = 7;
        });
    add(&s.d1,
        "Deploy pipeline runs Fridays at noon. Rollbacks need approval from "
        "the operations team.",
        axis_vec(0, {{21, 0.15f}}), [&](auto& r) {
          of_a(r);
          r.created_at_us = us(noon() - 26h);
        });
    add(&s.d2, "Friday noon deploys go through the pipeline.",
        axis_vec(0, {{22, 0.1f}}), [&](auto& r) {
          of_a(r);
          r.created_at_us = us(noon() - 25h);
        });
    add(&s.pd, "Deploys happen on Friday at noon (pinned).",
        axis_vec(0, {{23, 0.1f}}), [&](auto& r) {
          of_a(r);
          r.pinned = true;
        });
    add(&s.idm, "I am the deploy bot.", axis_vec(0, {{24, 0.05f}}), [&](auto& r) {
      of_a(r);
      r.type = "identity";
    });
    // A pattern of five.
    s.p.resize(5);
    const char* topics[] = {
      "Customers ask for invoices in PDF format.",
      "Invoices must be sent as PDF attachments.",
      "Billing questions usually concern PDF invoices.",
      "Send the invoice PDF when a customer asks for billing details.",
      "PDF invoices are requested after every purchase.",
    };
    for (size_t i = 0; i < 5; ++i)
      add(&s.p[i], topics[i], axis_vec(1, {{3 + i, 0.4f}}), [&, i](auto& r) {
        r.agent_id = s.agent_b;
        r.importance = i == 0 ? 7 : 6;
        r.created_at_us = us(noon() - 48h) + static_cast<int64_t>(i);
      });
    // Old episodic memories of one topic.
    s.e.resize(4);
    const char* episodes[] = {
      "User asked about the weather in Lisbon on Monday.",
      "User planned a trip to Lisbon and checked the forecast.",
      "User wanted to know if it rains in Lisbon this week.",
      "User booked a hotel in Lisbon near the river.",
    };
    for (size_t i = 0; i < 4; ++i)
      add(&s.e[i], episodes[i], axis_vec(2, {{8 + i, 0.4f}}), [&, i](auto& r) {
        of_a(r);
        r.type = "episodic";
        r.created_at_us = us(noon() - 240h) + static_cast<int64_t>(i);
        r.last_accessed_at_us = 0;
        r.access_count = static_cast<int32_t>(i % 3);
        r.importance = i == 2 ? 6 : 4;
      });
    add(&s.e_frequent, "User likes espresso.", axis_vec(13), [&](auto& r) {
      of_a(r);
      r.type = "episodic";
      r.created_at_us = us(noon() - 240h);
      r.access_count = 5;
    });
    // Expired.
    add(&s.x1, "Temporary identity for the spring campaign.", axis_vec(14),
        [&](auto& r) {
          r.agent_id = s.agent_b;
          r.type = "identity";
          r.pinned = true;
          r.importance = 9;
          r.tier = "hot";
          r.expires_at_us = us(noon() - 1h);
        });
    add(&s.x2, "The office is closed until March 9.", axis_vec(15), [&](auto& r) {
      r.expires_at_us = us(noon() - 1s);
    });
    add(&s.x3, "The sale ends tonight.", axis_vec(16), [&](auto& r) {
      r.expires_at_us = us(noon() + 1h);
    });
    // Warm and not used.
    auto stale = [&](auto&& more) {
      return [&, more](memories::memory_row& r) {
        r.agent_id = s.agent_b;
        r.created_at_us = us(noon() - 1440h);
        r.last_accessed_at_us = us(noon() - 960h);
        more(r);
      };
    };
    add(&s.s1, "Old note one.", axis_vec(17), stale(none));
    add(&s.s2, "Old note two.", axis_vec(18), stale([&](auto& r) {
          r.created_at_us = us(noon() - 744h);
          r.last_accessed_at_us = 0;
        }));
    add(&s.s3, "Old pinned note.", axis_vec(19), stale([](auto& r) { r.pinned = true; }));
    add(&s.s4, "Old identity note.", {}, stale([](auto& r) { r.type = "identity"; }));
    add(&s.s5, "Old important note.", axis_vec(25),
        stale([](auto& r) { r.importance = 8; }));
    add(&s.s6, "Old hot note.", axis_vec(26), stale([](auto& r) { r.tier = "hot"; }));
    add(&s.s7, "Recently read note.", axis_vec(27), stale([&](auto& r) {
          r.last_accessed_at_us = us(noon() - 696h);
        }));
    auto ids = import(project, rows);
    EXPECT_EQ(ids.size(), rows.size());
    (void) slots;
    return s;
  }

  caf::expected<job_record> create_job(const std::string& project,
                                       int64_t as_of_us = 0,
                                       std::vector<std::string> phases = {}) {
    consolidation::create_job_request req;
    req.project_id = project;
    req.as_of_us = as_of_us;
    req.phases = std::move(phases);
    req.now_us = to_epoch_us(clock.now());
    return ask<job_record>(storage, req);
  }

  job_record new_job(const std::string& project, int64_t as_of_us = 0,
                     std::vector<std::string> phases = {}) {
    auto job = create_job(project, as_of_us, std::move(phases));
    EXPECT_TRUE(job) << describe(job.error());
    return job ? *job : job_record{};
  }

  caf::expected<job_record> run(const job_record& job) {
    return ask<job_record>(coordinator,
                           consolidation::run_job{job.id, job.project_id},
                           120s);
  }

  job_record stored_job(const std::string& id) {
    auto job = ask<job_record>(storage, consolidation::get_job_request{id});
    EXPECT_TRUE(job) << describe(job.error());
    return job ? *job : job_record{};
  }

  std::string column(const std::string& id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.memories WHERE id = "
                 + quoted(id));
  }

  std::vector<float> embedding_of(const std::string& id) {
    pqxx::nontransaction tx{*conn};
    auto r = tx.exec1("SELECT embedding FROM engram.memories WHERE id = "
                      + tx.quote(id));
    std::vector<float> out;
    if (r[0].is_null())
      return out;
    pqxx::binarystring bytes{r[0]};
    out.resize(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
  }

  /// Every memory, audit row, pattern and playbook entry of `project` as
  /// text: equal before and after means the project was not touched.
  std::string project_rows(const std::string& project) {
    auto p = quoted(project);
    return query(
      "SELECT concat_ws(E'\\n', "
      " (SELECT string_agg(m::text, E'\\n' ORDER BY id) FROM engram.memories m "
      "  WHERE project_id = " + p + "),"
      " (SELECT string_agg(a::text, E'\\n' ORDER BY id) FROM engram.memory_audit a "
      "  WHERE project_id = " + p + "),"
      " (SELECT string_agg(x::text, E'\\n' ORDER BY id) FROM engram.patterns x "
      "  WHERE project_id = " + p + "),"
      " (SELECT string_agg(e::text, E'\\n' ORDER BY id) "
      "    FROM engram.playbook_entries e WHERE project_id = " + p + "))");
  }

  /// Ids of `project`'s memories matching `where`, sorted, joined by ' '.
  std::string ids_where(const std::string& project, const std::string& where) {
    return query("SELECT coalesce(string_agg(id::text, ' ' ORDER BY id::text), '') "
                 "FROM engram.memories WHERE project_id = "
                 + quoted(project) + " AND " + where);
  }

  static std::string joined(std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    std::string out;
    for (const auto& id : ids)
      out += (out.empty() ? "" : " ") + id;
    return out;
  }

  /// The invariants of a consolidated project: every superseded memory
  /// points at an existing memory of the project, no memory is superseded
  /// (or archived) twice, and every change has an audit row.
  void expect_consistent(const std::string& project) {
    auto p = quoted(project);
    EXPECT_EQ(count("SELECT count(*) FROM engram.memories m WHERE project_id = " + p
                    + " AND status = 'superseded' AND NOT EXISTS (SELECT 1 FROM "
                      "engram.memories k WHERE k.id = m.superseded_by AND "
                      "k.project_id = m.project_id)"),
              0)
      << "superseded_by points at a memory of the project";
    EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = " + p
                    + " AND (status = 'superseded') <> (superseded_by IS NOT NULL)"),
              0);
    EXPECT_EQ(count("SELECT count(*) FROM (SELECT memory_id FROM "
                    "engram.memory_audit WHERE project_id = " + p
                    + " AND action IN ('superseded', 'archived') "
                      "GROUP BY memory_id HAVING count(*) > 1) d"),
              0)
      << "no memory superseded or archived twice";
    EXPECT_EQ(count("SELECT count(*) FROM engram.memories m WHERE project_id = " + p
                    + " AND status <> 'active' AND NOT EXISTS (SELECT 1 FROM "
                      "engram.memory_audit a WHERE a.memory_id = m.id AND "
                      "a.action IN ('superseded', 'archived'))"),
              0)
      << "every inactive memory has its audit row";
    EXPECT_EQ(count("SELECT count(*) FROM engram.memories m WHERE project_id = " + p
                    + " AND parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                      "engram.memories k WHERE k.id = m.parent_id AND k.type = "
                      "'principle')"),
              0);
  }

  /// What the cache was told up to now: a round trip to it first, so that
  /// everything sent to it before (the coordinator sends before it
  /// answers) has been handled.
  std::vector<cache::invalidate_agents> invalidations_so_far() {
    auto settled = ask<cache::cache_stats>(cache, atom::stats_v);
    EXPECT_TRUE(settled) << describe(settled.error());
    return cache_log->all();
  }

  /// What the cache was told, once it was told `n` things (or 5 s
  /// passed).
  std::vector<cache::invalidate_agents> invalidations_after(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (cache_log->all().size() < n
           && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(20ms);
    return cache_log->all();
  }

  manual_clock clock{noon()};
  consolidation::phase_services services;
  std::shared_ptr<invalidations> cache_log = std::make_shared<invalidations>();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  storage_actor storage;
  std::vector<project_session_actor> session_handles;
  hot_cache_actor cache;
  consolidation_actor coordinator;
};

json::object parse_object(const std::string& text) {
  return json::parse(text).as_object();
}

/// Phase metrics without the timings the pipeline adds (they vary).
json::value without_timing(json::value v) {
  if (v.is_object())
    for (auto key : {"commit_ms", "plan_ms", "kernel_gflop", "kernel_seconds",
                     "snapshot_build_ms"})
      v.as_object().erase(key);
  return v;
}

std::vector<std::string> strings_of(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& x : v.as_array())
    out.emplace_back(x.as_string());
  return out;
}

} // namespace

// -- a full job ---------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_full_job_consolidates_a_project) {
  start();
  auto project = put_project("alpha");
  auto other = put_project("beta");
  auto s = seed(project);
  (void) seed(other);
  auto other_before = project_rows(other);
  auto job = new_job(project, us(noon()));
  clock.advance(1min);
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());

  // The job.
  EXPECT_EQ(done->status, "completed") << done->error_message;
  EXPECT_EQ(done->phases_completed, consolidation::phase_names());
  EXPECT_EQ(done->memories_merged, 2);
  EXPECT_EQ(done->memories_archived, 2);
  EXPECT_GT(done->memories_processed, 0);
  EXPECT_EQ(done->started_at_us, us(noon() + 1min));
  EXPECT_EQ(done->error_message, "");
  auto metrics = parse_object(done->metrics_json);
  for (const auto& phase : consolidation::phase_names())
    EXPECT_TRUE(metrics.contains(phase)) << phase;
  EXPECT_EQ(metrics.at("patterns").at("patterns_extracted").as_int64(), 3);
  EXPECT_EQ(metrics.at("merge").at("memories_merged").as_int64(), 2);
  EXPECT_EQ(metrics.at("merge").at("groups").as_int64(), 1);
  EXPECT_EQ(metrics.at("summarize").at("summaries_created").as_int64(), 1);
  EXPECT_EQ(metrics.at("summarize").at("memories_summarized").as_int64(), 4);
  EXPECT_EQ(metrics.at("hierarchy").at("principles_created").as_int64(), 1);
  EXPECT_EQ(metrics.at("hierarchy").at("memories_linked").as_int64(), 5);
  EXPECT_EQ(metrics.at("playbook").at("playbook_entries_created").as_int64(), 1);
  EXPECT_EQ(metrics.at("decay").at("memories_archived").as_int64(), 2);
  EXPECT_EQ(metrics.at("decay").at("memories_demoted").as_int64(), 2);
  auto invalidated = strings_of(metrics.at("invalidate").at("agents_invalidated"));
  EXPECT_EQ(joined(invalidated), joined({"*", s.agent_a, s.agent_b}));
  auto told = invalidations_after(1);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].project_id, project);
  EXPECT_EQ(joined(told[0].agent_ids), joined({"", s.agent_a, s.agent_b}));
  EXPECT_EQ(stored_job(job.id).status, "completed");

  // merge: d1 and d2 superseded by d0, which holds the merged text and
  // keeps its vector (the embedder is another model).
  EXPECT_EQ(ids_where(project, "superseded_by = " + quoted(s.d0)),
            joined({s.d1, s.d2}));
  EXPECT_EQ(column(s.d0, "status || '|' || importance"), "active|7");
  EXPECT_EQ(column(s.d0, "content"),
            merge_memory_texts({s.content[s.d0], s.content[s.d1],
                                s.content[s.d2]}));
  EXPECT_NE(column(s.d0, "content"), s.content[s.d0]);
  EXPECT_EQ(embedding_of(s.d0), s.vector[s.d0]);
  EXPECT_EQ(column(s.pd, "status"), "active") << "pinned: never merged";
  EXPECT_EQ(column(s.idm, "status"), "active") << "identity: never merged";

  // summarize: one summary supersedes the old episodic memories.
  auto summary = query("SELECT id::text FROM engram.memories WHERE project_id = "
                       + quoted(project) + " AND source_type = 'consolidation' "
                       "AND type = 'semantic'");
  ASSERT_TRUE(is_uuid(summary)) << summary;
  EXPECT_EQ(column(summary, "concat_ws('|', type, tier, status, source_type, "
                            "agent_id, importance, embedding_model, "
                            "engram.to_us(created_at))"),
            "semantic|warm|active|consolidation|" + s.agent_a + "|6|"
              + test_model + "|" + std::to_string(us(noon() + 1min)));
  std::vector<std::string> episode_texts;
  for (const auto& id : s.e)
    episode_texts.push_back(s.content[id]);
  EXPECT_EQ(column(summary, "content"), summarize_memory_texts(episode_texts));
  EXPECT_EQ(ids_where(project, "superseded_by = " + quoted(summary)), joined(s.e));
  // Its vector: the normalised mean of its members' (another model).
  {
    std::vector<float> mean(dim, 0.0f);
    for (const auto& id : s.e) {
      auto v = normalized(s.vector[id]);
      for (size_t k = 0; k < dim; ++k)
        mean[k] += v[k];
    }
    mean = normalized(mean);
    auto stored = embedding_of(summary);
    ASSERT_EQ(stored.size(), dim);
    for (size_t k = 0; k < dim; ++k)
      EXPECT_NEAR(stored[k], mean[k], 1e-5) << k;
  }
  EXPECT_EQ(column(s.e_frequent, "status"), "active");

  // hierarchy: one principle (agent B) is the parent of the pattern's five.
  auto principle = query("SELECT id::text FROM engram.memories WHERE project_id = "
                         + quoted(project) + " AND type = 'principle'");
  ASSERT_TRUE(is_uuid(principle)) << principle;
  EXPECT_EQ(column(principle, "concat_ws('|', tier, status, source_type, "
                              "agent_id, importance, embedding_model)"),
            "warm|active|consolidation|" + s.agent_b + "|7|" + test_model);
  EXPECT_EQ(ids_where(project, "parent_id = " + quoted(principle)), joined(s.p));
  EXPECT_EQ(ids_where(project, "parent_id IS NOT NULL"), joined(s.p));

  // playbook: one entry from the principle.
  EXPECT_EQ(query("SELECT concat_ws('|', count(*), min(principle_id::text), "
                  "min(agent_id::text), min(embedding_model)) FROM "
                  "engram.playbook_entries WHERE project_id = " + quoted(project)),
            "1|" + principle + "|" + s.agent_b + "|" + test_model);
  EXPECT_EQ(query("SELECT content FROM engram.playbook_entries WHERE project_id = "
                  + quoted(project)),
            column(principle, "content"));
  EXPECT_EQ(count("SELECT count(*) FROM engram.patterns WHERE project_id = "
                  + quoted(project) + " AND job_id = " + quoted(job.id)),
            3);

  // decay: expired ones archived (also pinned, identity, important, hot);
  // stale warm ones demoted, the exceptions not.
  EXPECT_EQ(ids_where(project, "status = 'archived'"), joined({s.x1, s.x2}));
  EXPECT_EQ(ids_where(project, "status = 'archived' AND tier = 'cold'"),
            joined({s.x1, s.x2}));
  EXPECT_EQ(column(s.x3, "status"), "active");
  EXPECT_EQ(ids_where(project, "status = 'active' AND tier = 'cold'"),
            joined({s.s1, s.s2}));
  EXPECT_EQ(column(s.s3, "tier"), "warm");
  EXPECT_EQ(column(s.s4, "tier"), "warm");
  EXPECT_EQ(column(s.s5, "tier"), "warm");
  EXPECT_EQ(column(s.s6, "tier"), "hot");
  EXPECT_EQ(column(s.s7, "tier"), "warm");

  // Audit rows for every change, with the job's id.
  auto audit = [&](const std::string& action) {
    return query("SELECT coalesce(string_agg(memory_id::text, ' ' ORDER BY "
                 "memory_id::text), '') FROM engram.memory_audit WHERE job_id = "
                 + quoted(job.id) + " AND action = " + quoted(action));
  };
  EXPECT_EQ(audit("merged"), s.d0);
  EXPECT_EQ(audit("superseded"),
            joined({s.d1, s.d2, s.e[0], s.e[1], s.e[2], s.e[3]}));
  EXPECT_EQ(audit("created"), joined({summary, principle}));
  EXPECT_EQ(audit("parent_set"), joined(s.p));
  EXPECT_EQ(audit("archived"), joined({s.x1, s.x2}));
  EXPECT_EQ(audit("demoted"), joined({s.s1, s.s2}));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE project_id = "
                  + quoted(project)),
            18);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id IS "
                  "DISTINCT FROM " + quoted(job.id)),
            0);
  expect_consistent(project);
  EXPECT_EQ(project_rows(other), other_before) << "another project is untouched";
}

TEST_F(consolidation_pipeline_test, a_project_without_patterns_completes_every_phase) {
  // Three unrelated memories: no cluster, no merge, nothing old, nothing to
  // demote. Every phase still commits (the patterns phase replaces the
  // project's patterns by none), twice in a row.
  start();
  auto project = put_project("small");
  std::vector<memories::memory_row> rows;
  for (size_t k = 0; k < 3; ++k) {
    memories::memory_row r;
    r.type = "semantic";
    r.content = "unrelated memory " + std::to_string(k);
    r.embedding = axis_vec(k);
    r.embedding_model = test_model;
    r.created_at_us = us(noon() - 24h);
    rows.push_back(std::move(r));
  }
  auto ids = import(project, std::move(rows));
  ASSERT_EQ(ids.size(), 3u);
  for (int run_number = 0; run_number < 2; ++run_number) {
    auto done = run(new_job(project, us(noon())));
    ASSERT_TRUE(done) << describe(done.error());
    EXPECT_EQ(done->status, "completed") << done->error_message;
    EXPECT_EQ(done->phases_completed.size(), consolidation::phase_names().size());
    auto metrics = parse_object(done->metrics_json);
    EXPECT_EQ(metrics.at("patterns").at("patterns_extracted").as_int64(), 0);
    EXPECT_EQ(done->memories_merged, 0);
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.patterns WHERE project_id = '"
                  + project + "'"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = '"
                  + project + "' AND status = 'active'"),
            3);
}

TEST_F(consolidation_pipeline_test, running_a_job_again_answers_it_and_a_second_job_converges) {
  start();
  auto project = put_project("alpha");
  auto s = seed(project);
  auto job = new_job(project, us(noon()));
  auto first = run(job);
  ASSERT_TRUE(first) << describe(first.error());
  ASSERT_EQ(first->status, "completed") << first->error_message;
  auto after_first = project_rows(project);
  auto active_after_first
    = ids_where(project, "status = 'active'");

  // The same job again: answered as completed, nothing changes.
  clock.advance(1h);
  auto again = run(job);
  ASSERT_TRUE(again) << describe(again.error());
  EXPECT_EQ(again->status, "completed");
  EXPECT_EQ(again->completed_at_us, first->completed_at_us);
  EXPECT_EQ(again->phases_completed, first->phases_completed);
  EXPECT_EQ(project_rows(project), after_first);
  EXPECT_EQ(invalidations_after(1).size(), 1u) << "no second invalidation";

  // A second job on the consolidated project converges: nothing is
  // superseded twice, no active memory is lost, no principle or entry is
  // duplicated.
  auto second = new_job(project, us(noon()));
  auto done = run(second);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  EXPECT_EQ(done->memories_merged, 0);
  EXPECT_EQ(done->memories_archived, 0);
  EXPECT_EQ(ids_where(project, "status = 'active'"), active_after_first);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = "
                  + quoted(project) + " AND type = 'principle'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.playbook_entries WHERE project_id = "
                  + quoted(project)),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id = "
                  + quoted(second.id)
                  + " AND action IN ('superseded', 'archived', 'demoted', "
                    "'created', 'merged')"),
            0);
  expect_consistent(project);

  // And a third changes nothing at all but the principle's refresh.
  auto after_second = ids_where(project, "true") + "|"
                      + query("SELECT string_agg(concat_ws(',', id, status, tier, "
                              "superseded_by, parent_id), ' ' ORDER BY id) FROM "
                              "engram.memories WHERE project_id = "
                              + quoted(project));
  auto third = run(new_job(project, us(noon())));
  ASSERT_TRUE(third) << describe(third.error());
  EXPECT_EQ(ids_where(project, "true") + "|"
              + query("SELECT string_agg(concat_ws(',', id, status, tier, "
                      "superseded_by, parent_id), ' ' ORDER BY id) FROM "
                      "engram.memories WHERE project_id = " + quoted(project)),
            after_second);
  (void) s;
}

// -- dry runs ---------------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_dry_run_changes_nothing_and_names_what_a_real_run_does) {
  start();
  auto project = put_project("alpha");
  auto s = seed(project);
  auto before = project_rows(project);
  consolidation::dry_run_request req;
  req.project_id = project;
  req.as_of_us = us(noon());
  auto dry = ask<consolidation::dry_run_result>(coordinator, req);
  ASSERT_TRUE(dry) << describe(dry.error());
  EXPECT_EQ(project_rows(project), before);
  EXPECT_EQ(count("SELECT count(*) FROM engram.consolidation_jobs"), 0);
  EXPECT_TRUE(invalidations_so_far().empty()) << "a dry run invalidates nothing";

  auto out = parse_object(dry->json);
  SCOPED_TRACE(dry->json);
  EXPECT_EQ(out.at("project_id").as_string(), project);
  EXPECT_EQ(strings_of(out.at("phases")), consolidation::phase_names());
  const auto& plan = out.at("plan").as_object();
  for (const auto& phase : consolidation::phase_names())
    EXPECT_TRUE(plan.contains(phase)) << phase;

  // The real run.
  auto job = new_job(project, us(noon()));
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  ASSERT_EQ(done->status, "completed") << done->error_message;

  // merge: the same ids into the same kept ids.
  const auto& groups = plan.at("merge").at("groups").as_array();
  ASSERT_EQ(groups.size(), 1u);
  auto kept = std::string{groups[0].at("kept_id").as_string()};
  EXPECT_EQ(kept, s.d0);
  EXPECT_EQ(joined(strings_of(groups[0].at("absorbed_ids"))),
            ids_where(project, "superseded_by = " + quoted(kept)));
  // summarize: the same members.
  const auto& summaries
    = plan.at("summarize").at("summaries").as_array();
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(joined(strings_of(summaries[0].at("superseded_ids"))),
            ids_where(project, "superseded_by IN (SELECT id FROM engram.memories "
                               "WHERE source_type = 'consolidation')"));
  // hierarchy: the same members get the principle.
  const auto& principles
    = plan.at("hierarchy").at("principles").as_array();
  ASSERT_EQ(principles.size(), 1u);
  EXPECT_EQ(principles[0].at("action").as_string(), "create");
  EXPECT_EQ(joined(strings_of(principles[0].at("member_ids"))),
            ids_where(project, "parent_id IS NOT NULL"));
  // playbook: one entry created.
  const auto& entries = plan.at("playbook").at("entries").as_array();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("action").as_string(), "create");
  // decay: the same archived and demoted ids.
  std::vector<std::string> archived, demoted;
  for (const auto& x : plan.at("decay").at("archived").as_array())
    archived.emplace_back(x.at("id").as_string());
  for (const auto& x : plan.at("decay").at("demoted").as_array())
    demoted.emplace_back(x.at("id").as_string());
  EXPECT_EQ(joined(archived), ids_where(project, "status = 'archived'"));
  EXPECT_EQ(joined(demoted),
            ids_where(project, "status = 'active' AND tier = 'cold'"));
  // patterns: the same seeds.
  std::vector<std::string> seeds;
  for (const auto& x : plan.at("patterns").at("patterns").as_array())
    seeds.emplace_back(x.at("seed_id").as_string());
  EXPECT_EQ(joined(seeds),
            query("SELECT string_agg(seed_memory_id::text, ' ' ORDER BY "
                  "seed_memory_id::text) FROM engram.patterns"));
  // Metrics agree.
  auto metrics = parse_object(done->metrics_json);
  for (const auto& phase : {"patterns", "merge", "summarize", "hierarchy",
                            "playbook", "decay"})
    EXPECT_EQ(without_timing(plan.at(phase).at("metrics")),
              without_timing(metrics.at(phase)))
      << phase;

  // A dry run of a missing project is not_found.
  req.project_id = random_uuid();
  auto missing = ask<consolidation::dry_run_result>(coordinator, req);
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::not_found);
}

// -- as_of ------------------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, as_of_moves_the_age_rules) {
  start();
  auto early_project = put_project("early");
  auto early = seed(early_project);
  auto late_project = put_project("late");
  auto late = seed(late_project);
  // Five days before noon: the episodes are 5 days old, x1 and x2 not
  // expired yet, s1 unused for 35 days (demoted), s2 for 26 (not).
  auto a = run(new_job(early_project, us(noon() - 120h)));
  ASSERT_TRUE(a) << describe(a.error());
  ASSERT_EQ(a->status, "completed") << a->error_message;
  EXPECT_EQ(ids_where(early_project, "status = 'superseded'"),
            joined({early.d1, early.d2}));
  EXPECT_EQ(ids_where(early_project, "status = 'archived'"), "");
  EXPECT_EQ(ids_where(early_project, "status = 'active' AND tier = 'cold'"),
            early.s1);
  EXPECT_EQ(json::parse(a->options_json).at("as_of").as_string(),
            "2024-03-05T12:00:00.000000Z");
  // Two days after: x3 expired too, s7 unused for 31 days.
  auto b = run(new_job(late_project, us(noon() + 48h)));
  ASSERT_TRUE(b) << describe(b.error());
  ASSERT_EQ(b->status, "completed") << b->error_message;
  EXPECT_EQ(ids_where(late_project, "status = 'archived'"),
            joined({late.x1, late.x2, late.x3}));
  EXPECT_EQ(ids_where(late_project, "status = 'active' AND tier = 'cold'"),
            joined({late.s1, late.s2, late.s7}));
  // Without as_of the job's start is the instant: noon + 30 days demotes
  // the memories created two days before noon, too.
  clock.advance(720h);
  auto default_project = put_project("default");
  auto d = seed(default_project);
  auto c = run(new_job(default_project));
  ASSERT_TRUE(c) << describe(c.error());
  ASSERT_EQ(c->status, "completed") << c->error_message;
  EXPECT_EQ(c->started_at_us, us(noon() + 720h));
  EXPECT_NE(ids_where(default_project, "status = 'active' AND tier = 'cold'")
              .find(d.p[1]),
            std::string::npos);
  expect_consistent(early_project);
  expect_consistent(late_project);
}

// -- cancelled jobs ----------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_disabled_or_missing_project_cancels_the_job_and_changes_nothing) {
  start();
  auto off = put_project("off", false);
  (void) seed(off);
  auto before = project_rows(off);
  auto job = new_job(off, us(noon()));
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "cancelled");
  EXPECT_NE(done->error_message.find("disabled"), std::string::npos)
    << done->error_message;
  EXPECT_TRUE(done->phases_completed.empty());
  EXPECT_EQ(project_rows(off), before);
  EXPECT_NE(done->completed_at_us, 0);

  auto missing = new_job(random_uuid(), us(noon()));
  auto gone = run(missing);
  ASSERT_TRUE(gone) << describe(gone.error());
  EXPECT_EQ(gone->status, "cancelled");
  EXPECT_NE(gone->error_message.find("does not exist"), std::string::npos)
    << gone->error_message;
  EXPECT_TRUE(invalidations_so_far().empty());
  // Cancelled stays cancelled.
  auto again = run(job);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, "cancelled");
  // The lock was released: the project runs once enabled.
  memories::put_project_request enable;
  enable.id = off;
  enable.name = "off";
  enable.consolidation_enabled = true;
  enable.now_us = us(noon());
  ASSERT_TRUE(ask<memories::put_project_result>(storage, enable));
  auto later = run(new_job(off, us(noon())));
  ASSERT_TRUE(later) << describe(later.error());
  EXPECT_EQ(later->status, "completed") << later->error_message;
}

// -- failures -----------------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_failing_phase_fails_the_job_and_a_rerun_resumes) {
  auto stub = std::make_shared<stub_embedder>(test_model);
  services.embedder = stub;
  stub->fail = true;
  start();
  auto project = put_project("alpha");
  auto s = seed(project);
  auto job = new_job(project, us(noon()));
  auto failed = run(job);
  ASSERT_FALSE(failed);
  auto row = stored_job(job.id);
  EXPECT_EQ(row.status, "failed");
  EXPECT_NE(row.error_message.find("merge"), std::string::npos)
    << row.error_message;
  EXPECT_NE(row.error_message.find("embedding provider is down"),
            std::string::npos)
    << row.error_message;
  EXPECT_NE(message_of(failed.error()).find("merge"), std::string::npos)
    << describe(failed.error());
  EXPECT_EQ(row.phases_completed, std::vector<std::string>{"patterns"});
  EXPECT_EQ(count("SELECT count(*) FROM engram.patterns"), 3)
    << "the earlier phase stays committed";
  EXPECT_EQ(ids_where(project, "status <> 'active'"), "");
  EXPECT_EQ(count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            0);

  // The provider is back: a re-run resumes after patterns and completes.
  stub->fail = false;
  clock.advance(5min);
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  EXPECT_EQ(done->phases_completed, consolidation::phase_names());
  EXPECT_EQ(done->error_message, "");
  EXPECT_EQ(done->started_at_us, us(noon()));
  EXPECT_EQ(done->memories_merged, 2);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE action = "
                  "'merged'"),
            1);
  // The same model: the kept memory and the summary were re-embedded.
  auto merged = column(s.d0, "content");
  EXPECT_EQ(embedding_of(s.d0), hash_embedding(merged, dim));
  auto summary = query("SELECT id::text FROM engram.memories WHERE "
                       "source_type = 'consolidation' AND type = 'semantic'");
  EXPECT_EQ(embedding_of(summary), hash_embedding(column(summary, "content"), dim));
  // A resumed job invalidates every agent of the project.
  auto told = invalidations_after(1);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].agent_ids, std::vector<std::string>{""});
  EXPECT_EQ(ids_where(project, "parent_id IS NOT NULL"), joined(s.p));
  expect_consistent(project);
}

TEST_F(consolidation_pipeline_test, a_session_whose_connection_dies_mid_job_fails_the_job_and_a_rerun_completes) {
  auto stub = std::make_shared<stub_embedder>(test_model);
  services.embedder = stub;
  // The second embedding call is the summarize phase's: the session's
  // connection dies while the phase is planned.
  auto dbname = db;
  stub->hook = [dbname](int call) {
    if (call != 2)
      return;
    pqxx::connection c{dbname};
    pqxx::nontransaction tx{c};
    auto pids = tx.exec1(
      "SELECT array_agg(pid)::text FROM pg_locks WHERE locktype = "
      "'advisory' AND classid = "
      + std::to_string(storage::consolidation_lock_class) + "::oid")[0];
    ASSERT_FALSE(pids.is_null()) << "no session holds the project";
    tx.exec("SELECT pg_terminate_backend(p) FROM unnest("
            + tx.quote(pids.as<std::string>()) + "::int[]) p");
    // Gone before the phase commits.
    for (int i = 0; i < 500; ++i) {
      if (tx.exec1("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY ("
                   + tx.quote(pids.as<std::string>()) + "::int[])")[0]
            .as<int>()
          == 0)
        return;
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "the session's backend did not end";
  };
  start(2);
  auto project = put_project("alpha");
  auto s = seed(project);
  auto job = new_job(project, us(noon()));
  auto failed = run(job);
  ASSERT_FALSE(failed);
  auto row = stored_job(job.id);
  EXPECT_EQ(row.status, "failed");
  EXPECT_NE(row.error_message.find("summarize"), std::string::npos)
    << row.error_message;
  EXPECT_EQ(row.phases_completed,
            (std::vector<std::string>{"patterns", "merge"}));
  EXPECT_EQ(ids_where(project, "status <> 'active'"), joined({s.d1, s.d2}));
  // merge committed before the failure: agent A's cache goes at once.
  auto told = invalidations_after(1);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].agent_ids, std::vector<std::string>{s.agent_a});

  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  EXPECT_EQ(done->phases_completed, consolidation::phase_names());
  EXPECT_EQ(done->memories_merged, 2);
  EXPECT_EQ(ids_where(project, "status = 'superseded'"),
            joined({s.d1, s.d2, s.e[0], s.e[1], s.e[2], s.e[3]}));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE source_type = "
                  "'consolidation' AND type = 'semantic'"),
            1);
  expect_consistent(project);
}

// -- pipelining -------------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, projects_pipeline_through_a_bounded_number_of_sessions) {
  auto stub = std::make_shared<stub_embedder>(test_model);
  services.embedder = stub;
  start(2, &real_clock());
  std::vector<std::string> projects;
  for (int i = 0; i < 6; ++i)
    projects.push_back(put_project("p" + std::to_string(i)));
  for (const auto& p : projects)
    (void) seed(p);
  // Two jobs of project 0 first, then one per other project.
  std::vector<job_record> jobs;
  jobs.push_back(new_job(projects[0], us(noon())));
  jobs.push_back(new_job(projects[0], us(noon())));
  for (size_t i = 1; i < projects.size(); ++i)
    jobs.push_back(new_job(projects[i], us(noon())));

  stub->close_gate();
  caf::scoped_actor self{sys};
  std::vector<caf::expected<job_record>> results(jobs.size(), caf::error{});
  std::atomic<int> answered{0};
  std::vector<std::thread> askers;
  for (size_t i = 0; i < jobs.size(); ++i) {
    askers.emplace_back([&, i] {
      results[i] = run(jobs[i]);
      ++answered;
    });
    // Arrival order is submission order.
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(stub->wait_blocked());
  // One project waits at the gate in merge; at most two are in flight.
  auto stats = ask<consolidation::coordinator_stats>(coordinator, atom::stats_v);
  ASSERT_TRUE(stats) << describe(stats.error());
  EXPECT_EQ(stats->capacity, 2);
  EXPECT_EQ(stats->in_flight, 2);
  EXPECT_EQ(stats->waiting, 5);
  EXPECT_EQ(count("SELECT count(*) FROM engram.consolidation_jobs WHERE "
                  "status = 'running'"),
            2);
  EXPECT_EQ(query("SELECT status FROM engram.consolidation_jobs WHERE id = "
                  + quoted(jobs[1].id)),
            "queued")
    << "the second job of project 0 waits for the first";
  stub->open_gate();

  int64_t most_running = 0;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (answered < static_cast<int>(jobs.size())
         && std::chrono::steady_clock::now() < deadline) {
    most_running = std::max(most_running,
                            count("SELECT count(*) FROM engram.consolidation_jobs "
                                  "WHERE status = 'running'"));
    auto st = ask<consolidation::coordinator_stats>(coordinator, atom::stats_v);
    if (st) {
      EXPECT_LE(st->in_flight, 2);
    }
    std::this_thread::sleep_for(2ms);
  }
  for (auto& t : askers)
    t.join();
  EXPECT_LE(most_running, 2);
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(results[i]) << i << ": " << describe(results[i].error());
    EXPECT_EQ(results[i]->status, "completed") << i;
    EXPECT_EQ(results[i]->phases_completed, consolidation::phase_names()) << i;
  }
  // Never two jobs of one project at once: the second started after the
  // first ended.
  auto first = stored_job(jobs[0].id);
  auto second = stored_job(jobs[1].id);
  EXPECT_GE(second.started_at_us, first.completed_at_us);
  EXPECT_EQ(second.memories_merged, 0) << "the second found the work done";
  // And never more than two at once over the whole run.
  EXPECT_LE(count("SELECT max(n) FROM (SELECT (SELECT count(*) FROM "
                  "engram.consolidation_jobs k WHERE k.started_at <= j.started_at "
                  "AND k.completed_at > j.started_at) AS n FROM "
                  "engram.consolidation_jobs j) d"),
            2);
  auto stats_after = ask<consolidation::coordinator_stats>(coordinator,
                                                           atom::stats_v);
  ASSERT_TRUE(stats_after);
  EXPECT_EQ(stats_after->in_flight, 0);
  EXPECT_EQ(stats_after->waiting, 0);
  EXPECT_EQ(stats_after->completed, 7);
  EXPECT_EQ(stats_after->failed, 0);
  for (const auto& p : projects)
    expect_consistent(p);
}

// -- hierarchy on stored patterns -------------------------------------------------------

TEST_F(consolidation_pipeline_test, two_stored_patterns_that_match_one_principle_update_it_once) {
  start();
  auto project = put_project("alpha");
  auto agent = random_uuid();
  // An existing principle along axis 1, and two patterns of five whose
  // centroids both match it (cosine 0.98).
  std::vector<memories::memory_row> rows;
  auto make = [&](std::string type, std::string content, std::vector<float> v) {
    memories::memory_row r;
    r.id = random_uuid();
    r.agent_id = agent;
    r.type = std::move(type);
    r.content = std::move(content);
    r.embedding = std::move(v);
    r.embedding_model = test_model;
    r.created_at_us = us(noon() - 24h) + static_cast<int64_t>(rows.size());
    r.last_accessed_at_us = us(noon() - 1h);
    rows.push_back(r);
    return r.id;
  };
  auto principle = make("principle", "Answer billing questions politely.",
                        axis_vec(1));
  std::vector<std::string> first, second;
  for (size_t i = 0; i < 5; ++i)
    first.push_back(make("semantic", "Billing note " + std::to_string(i)
                                       + " about polite invoices.",
                         axis_vec(1, {{3, 0.2f}, {10 + i, 0.05f}})));
  for (size_t i = 0; i < 5; ++i)
    second.push_back(make("semantic", "Payment note " + std::to_string(i)
                                        + " about polite reminders.",
                          axis_vec(1, {{4, 0.2f}, {20 + i, 0.05f}})));
  import(project, rows);
  auto store = [&](const std::vector<std::string>& members, size_t axis,
                   int position) {
    std::string ids = "{";
    for (const auto& m : members)
      ids += (ids.size() > 1 ? "," : "") + m;
    ids += "}";
    auto centroid = normalized(axis_vec(1, {{axis, 0.2f}}));
    exec("INSERT INTO engram.patterns (project_id, seed_memory_id, label, "
         "support, member_ids, centroid, embedding_model, position) VALUES ("
         + quoted(project) + ", " + quoted(members[0]) + ", 'label', 5, "
         + quoted(ids) + ", "
         + quoted(*storage::sql_values::bytea_text(centroid)) + "::bytea, "
         + quoted(test_model) + ", " + std::to_string(position) + ")");
  };
  store(first, 3, 0);
  store(second, 4, 1);

  auto job = new_job(project, us(noon()), {"hierarchy", "playbook"});
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  auto metrics = parse_object(done->metrics_json);
  EXPECT_EQ(metrics.at("hierarchy").at("principles_created").as_int64(), 0);
  EXPECT_EQ(metrics.at("hierarchy").at("principles_updated").as_int64(), 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE type = 'principle'"),
            1);
  auto members = first;
  members.insert(members.end(), second.begin(), second.end());
  EXPECT_EQ(ids_where(project, "parent_id = " + quoted(principle)),
            joined(members));
  // The principle's text is the last pattern's (as the snapshot has it),
  // and the playbook entry made from it has that text.
  std::vector<std::string> second_texts;
  for (const auto& r : rows)
    if (std::find(second.begin(), second.end(), r.id) != second.end())
      second_texts.push_back(r.content);
  EXPECT_EQ(column(principle, "content"), summarize_memory_texts(second_texts));
  EXPECT_EQ(query("SELECT content FROM engram.playbook_entries"),
            column(principle, "content"));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE action = "
                  "'principle_updated' AND memory_id = " + quoted(principle)),
            2);
  expect_consistent(project);
}

// -- a finish that fails ------------------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_finish_that_fails_leaves_no_lock_and_the_session_takes_the_next_job) {
  start(1);
  auto a = put_project("a");
  auto b = put_project("b");
  (void) seed(a);
  (void) seed(b);
  // The database refuses to complete jobs for a while (the session's
  // connection stays up).
  exec("CREATE FUNCTION engram.test_refuse_completion() RETURNS trigger "
       "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'completion refused "
       "(test)'; END $$; "
       "CREATE TRIGGER test_refuse_completion BEFORE UPDATE ON "
       "engram.consolidation_jobs FOR EACH ROW WHEN (NEW.status = "
       "'completed') EXECUTE FUNCTION engram.test_refuse_completion()");
  auto job_a = new_job(a, us(noon()));
  auto refused = run(job_a);
  ASSERT_FALSE(refused);
  EXPECT_NE(message_of(refused.error()).find("completion refused"),
            std::string::npos)
    << describe(refused.error());
  EXPECT_EQ(stored_job(job_a.id).phases_completed,
            consolidation::phase_names());
  EXPECT_EQ(count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            0)
    << "the project is not left locked";
  exec("DROP TRIGGER test_refuse_completion ON engram.consolidation_jobs");

  // The one session takes the next job, of another project ...
  auto job_b = new_job(b, us(noon()));
  auto done_b = run(job_b);
  ASSERT_TRUE(done_b) << describe(done_b.error());
  EXPECT_EQ(done_b->status, "completed") << done_b->error_message;
  // ... and the job whose end failed completes when run again, changing
  // nothing more.
  auto rows = project_rows(a);
  auto done_a = run(job_a);
  ASSERT_TRUE(done_a) << describe(done_a.error());
  EXPECT_EQ(done_a->status, "completed") << done_a->error_message;
  EXPECT_EQ(project_rows(a), rows);
  EXPECT_EQ(count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            0);
}

// -- concurrent writers and other nodes ------------------------------------------------------

TEST_F(consolidation_pipeline_test, a_memory_changed_under_a_phase_fails_it_whole_and_a_rerun_converges) {
  auto stub = std::make_shared<stub_embedder>(test_model);
  services.embedder = stub;
  seeded s;
  auto dbname = db;
  // While merge is planned (its one embedding call), another writer
  // archives d2, which merge means to supersede.
  stub->hook = [&s, dbname](int call) {
    if (call != 1)
      return;
    pqxx::connection c{dbname};
    pqxx::work tx{c};
    tx.exec("UPDATE engram.memories SET status = 'archived', tier = 'cold' "
            "WHERE id = " + tx.quote(s.d2));
    tx.exec("INSERT INTO engram.memory_audit (memory_id, project_id, action) "
            "SELECT id, project_id, 'archived' FROM engram.memories WHERE id = "
            + tx.quote(s.d2));
    tx.commit();
  };
  start();
  auto project = put_project("alpha");
  s = seed(project);
  auto job = new_job(project, us(noon()));
  auto failed = run(job);
  ASSERT_FALSE(failed);
  EXPECT_EQ(code_of(failed.error()), errc::conflict) << describe(failed.error());
  auto row = stored_job(job.id);
  EXPECT_EQ(row.status, "failed");
  EXPECT_NE(row.error_message.find("phase merge"), std::string::npos)
    << row.error_message;
  EXPECT_EQ(row.phases_completed, std::vector<std::string>{"patterns"});
  EXPECT_EQ(row.memories_merged, 0);
  // Nothing of the merge stayed: d0's text, d1 active, no merge audit.
  EXPECT_EQ(column(s.d0, "content"), s.content[s.d0]);
  EXPECT_EQ(column(s.d1, "status"), "active");
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id IS "
                  "NOT NULL"),
            0);

  // Run again: the snapshot is loaded anew, d1 merges into d0 alone.
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  EXPECT_EQ(done->memories_merged, 1);
  EXPECT_EQ(ids_where(project, "superseded_by = " + quoted(s.d0)), s.d1);
  EXPECT_EQ(column(s.d0, "content"),
            merge_memory_texts({s.content[s.d0], s.content[s.d1]}));
  EXPECT_EQ(column(s.d2, "status || '|' || coalesce(superseded_by::text, '')"),
            "archived|");
  expect_consistent(project);
}

TEST_F(consolidation_pipeline_test, a_project_another_node_runs_is_refused_and_runs_later) {
  start();
  auto project = put_project("alpha");
  (void) seed(project);
  auto job = new_job(project, us(noon()));
  // Another node's session holds the project.
  auto other_node = std::make_unique<pqxx::connection>(db);
  {
    pqxx::nontransaction tx{*other_node};
    tx.exec("SELECT pg_advisory_lock("
            + std::to_string(storage::consolidation_lock_class)
            + ", hashtext(" + tx.quote(project) + "))");
  }
  auto before = project_rows(project);
  auto refused = run(job);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict) << describe(refused.error());
  EXPECT_EQ(stored_job(job.id).status, "queued") << "left as it is";
  EXPECT_EQ(project_rows(project), before);
  // The other node is done: the task's retry runs it.
  other_node.reset();
  caf::expected<job_record> done{caf::error{}};
  for (int i = 0; i < 100; ++i) {
    done = run(job);
    if (done || code_of(done.error()) != errc::conflict)
      break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
  auto stats = ask<consolidation::coordinator_stats>(coordinator, atom::stats_v);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->completed, 1);
  EXPECT_GE(stats->failed, 1);
}

TEST_F(consolidation_pipeline_test, an_invalid_config_fails_the_job_and_an_unknown_job_is_not_found) {
  start();
  auto project = put_project("alpha", true, R"({"merge_threshold": 5})");
  (void) seed(project);
  auto before = project_rows(project);
  auto job = new_job(project, us(noon()));
  auto failed = run(job);
  ASSERT_FALSE(failed);
  EXPECT_EQ(code_of(failed.error()), errc::invalid_argument)
    << describe(failed.error());
  auto row = stored_job(job.id);
  EXPECT_EQ(row.status, "failed");
  EXPECT_NE(row.error_message.find("consolidation_config.merge_threshold"),
            std::string::npos)
    << row.error_message;
  EXPECT_TRUE(row.phases_completed.empty());
  EXPECT_EQ(project_rows(project), before);
  EXPECT_EQ(count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            0);

  auto unknown = ask<job_record>(coordinator,
                                 consolidation::run_job{random_uuid(), project});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
  // The session is free again.
  memories::put_project_request fix;
  fix.id = project;
  fix.name = "alpha";
  fix.now_us = us(noon());
  ASSERT_TRUE(ask<memories::put_project_result>(storage, fix));
  auto done = run(job);
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_EQ(done->status, "completed") << done->error_message;
}
