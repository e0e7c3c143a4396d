// Projects and memories against a real PostgreSQL: the put of a project,
// the COPY import (all or nothing, every refusal naming its row and field),
// listing with filters and a cursor, a memory with its audit history, and
// the restore of superseded and archived memories. Times are fixed
// instants; the import's throughput is measured and logged.

#include "storage/memory_repository.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "messages/errc.hpp"
#include "runtime/uuid.hpp"
#include "storage/project_repository.hpp"
#include "tests/integration/platform_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";

class memory_repository_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    if (HasFatalFailure())
      return;
    project = put("alpha").project.id;
    other_project = put("beta").project.id;
  }

  memories::put_project_result put(const std::string& name,
                                   std::string id = {},
                                   std::string config = "{}",
                                   wall_time at = noon()) {
    memories::put_project_request req;
    req.id = id.empty() ? fresh_id() : id;
    req.name = name;
    req.consolidation_config_json = std::move(config);
    auto result = in_tx([&](auto& tx) {
      return storage::put_project(tx, req, at);
    });
    EXPECT_TRUE(result) << describe(result.error());
    return result ? *result : memories::put_project_result{};
  }

  std::string fresh_id() {
    return query("SELECT gen_random_uuid()::text");
  }

  static memories::memory_row row(std::string content,
                                  std::string type = "semantic") {
    memories::memory_row r;
    r.content = std::move(content);
    r.type = std::move(type);
    return r;
  }

  static memories::memory_row embedded(std::string content,
                                       std::vector<float> embedding,
                                       std::string model = "m-3") {
    auto r = row(std::move(content));
    r.embedding = std::move(embedding);
    r.embedding_model = std::move(model);
    return r;
  }

  caf::expected<memories::import_result>
  import(std::vector<memories::memory_row> rows, std::string into = {}) {
    memories::import_memories_request req;
    req.project_id = into.empty() ? project : into;
    req.rows = std::move(rows);
    return in_tx([&](auto& tx) {
      return storage::import_memories(tx, req, noon());
    });
  }

  /// The import is refused with `code`, its message containing `needle`,
  /// and no memory is stored.
  void expect_refused(std::vector<memories::memory_row> rows,
                      const std::string& needle,
                      errc code = errc::invalid_argument) {
    auto before = stored();
    auto result = import(std::move(rows));
    ASSERT_FALSE(result) << "imported although '" << needle
                         << "' was expected";
    EXPECT_EQ(code_of(result.error()), code) << describe(result.error());
    EXPECT_NE(message_of(result.error()).find(needle), std::string::npos)
      << "'" << needle << "' not in: " << message_of(result.error());
    EXPECT_EQ(stored(), before);
  }

  int64_t stored() {
    return count("SELECT count(*) FROM engram.memories");
  }

  std::string column(const std::string& id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.memories WHERE id = "
                 + quoted(id));
  }

  caf::expected<memories::memory_page>
  list(memories::list_memories_request req) {
    if (req.project_id.empty())
      req.project_id = project;
    return in_tx([&](auto& tx) { return storage::list_memories(tx, req); });
  }

  caf::expected<memories::memory_record> restore(const std::string& id,
                                                 wall_time at = noon()) {
    return in_tx([&](auto& tx) {
      return storage::restore_memory(tx, id, at);
    });
  }

  caf::expected<memories::memory_detail> read(const std::string& id) {
    return in_tx([&](auto& tx) { return storage::get_memory(tx, id); });
  }

  /// An audit row written as a consolidation job would.
  void audit(const std::string& memory_id, const std::string& action,
             const std::string& detail, wall_time at) {
    exec("INSERT INTO engram.memory_audit (memory_id, project_id, action, "
         "detail, at) SELECT id, project_id, "
         + quoted(action) + ", " + quoted(detail) + "::jsonb, " + sql_time(at)
         + " FROM engram.memories WHERE id = " + quoted(memory_id));
  }

  std::string project, other_project;
};

} // namespace

// -- projects ---------------------------------------------------------------------

TEST_F(memory_repository_test, a_put_creates_a_project_then_replaces_it) {
  auto id = fresh_id();
  auto created = put("gamma", id, R"({"merge_threshold": 0.95})", noon());
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.project.id, id);
  EXPECT_EQ(created.project.name, "gamma");
  EXPECT_TRUE(created.project.consolidation_enabled);
  EXPECT_EQ(created.project.consolidation_config_json,
            R"({"merge_threshold": 0.95})");
  EXPECT_EQ(created.project.created_at_us, to_epoch_us(noon()));

  memories::put_project_request again;
  again.id = id;
  again.name = "gamma 2";
  again.consolidation_enabled = false;
  auto replaced = in_tx([&](auto& tx) {
    return storage::put_project(tx, again, noon() + 1h);
  });
  ASSERT_TRUE(replaced) << describe(replaced.error());
  EXPECT_FALSE(replaced->created);
  EXPECT_EQ(replaced->project.name, "gamma 2");
  EXPECT_FALSE(replaced->project.consolidation_enabled);
  EXPECT_EQ(replaced->project.consolidation_config_json, "{}")
    << "a put replaces the whole config";
  EXPECT_EQ(replaced->project.created_at_us, to_epoch_us(noon()));
  EXPECT_EQ(replaced->project.updated_at_us, to_epoch_us(noon() + 1h));

  auto read = in_tx([&](auto& tx) { return storage::read_project(tx, id); });
  ASSERT_TRUE(read);
  EXPECT_EQ(read->name, "gamma 2");
  EXPECT_EQ(count("SELECT count(*) FROM engram.projects"), 3);
}

TEST_F(memory_repository_test, a_put_refuses_bad_values_and_reads_refuse_unknown_ids) {
  auto refused = [&](memories::put_project_request req,
                     const std::string& needle) {
    auto result = in_tx([&](auto& tx) {
      return storage::put_project(tx, req, noon());
    });
    ASSERT_FALSE(result);
    EXPECT_EQ(code_of(result.error()), errc::invalid_argument);
    EXPECT_NE(message_of(result.error()).find(needle), std::string::npos)
      << message_of(result.error());
  };
  refused({"not-a-uuid", "x", true, "{}", 0}, "id: must be a UUID");
  refused({unknown_id, "", true, "{}", 0}, "name: must not be empty");
  refused({unknown_id, "x", true, "[1]", 0},
          "consolidation_config: must be a JSON object");
  EXPECT_EQ(count("SELECT count(*) FROM engram.projects"), 2);
  for (auto id : {unknown_id, "nope"}) {
    auto read = in_tx([&](auto& tx) { return storage::read_project(tx, id); });
    ASSERT_FALSE(read);
    EXPECT_EQ(code_of(read.error()), errc::not_found);
  }
}

// -- import -------------------------------------------------------------------------

TEST_F(memory_repository_test, an_import_stores_every_column_as_given) {
  auto full = embedded("Met Ana in Lisbon", {1.0f, -2.0f, 0.5f});
  full.id = "5A0E3B8E-1A6E-4C41-9D0F-2F6A8F3C9E21";
  full.agent_id = "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b";
  full.type = "episodic";
  full.tier = "hot";
  full.status = "archived";
  full.source_type = "migration";
  full.importance = 9;
  full.pinned = true;
  full.access_count = 12;
  full.created_at_us = to_epoch_us(noon() - 240h);
  full.last_accessed_at_us = to_epoch_us(noon() - 1h);
  full.expires_at_us = to_epoch_us(noon() + 24h);
  full.metadata_json = R"({"origin": "crm", "tags": ["a", "b"]})";
  auto plain = row("Tabs\tand\nnewlines, \\backslashes\\ and UTF-8 "
                   "(café, 東京, ☕) survive COPY");
  auto result = import({full, plain});
  ASSERT_TRUE(result) << describe(result.error());
  EXPECT_EQ(result->count, 2);
  ASSERT_EQ(result->ids.size(), 2u);
  EXPECT_EQ(result->ids[0], "5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21")
    << "ids come back lower-case";
  EXPECT_TRUE(is_uuid(result->ids[1]));
  auto id = result->ids[0];
  EXPECT_EQ(column(id, "project_id::text"), project);
  EXPECT_EQ(column(id, "agent_id::text"), full.agent_id);
  EXPECT_EQ(column(id, "type || '/' || tier || '/' || status"),
            "episodic/hot/archived");
  EXPECT_EQ(column(id, "source_type"), "migration");
  EXPECT_EQ(column(id, "importance || '/' || pinned || '/' || access_count"),
            "9/true/12");
  // float32 little-endian: 1.0 = 00 00 80 3f, -2.0 = 00 00 00 c0,
  // 0.5 = 00 00 00 3f.
  EXPECT_EQ(column(id, "encode(embedding, 'hex')"), "0000803f000000c00000003f");
  EXPECT_EQ(column(id, "embedding_model"), "m-3");
  EXPECT_EQ(column(id, "engram.to_us(created_at)"),
            std::to_string(full.created_at_us));
  EXPECT_EQ(column(id, "engram.to_us(updated_at)"),
            std::to_string(to_epoch_us(noon())));
  EXPECT_EQ(column(id, "engram.to_us(last_accessed_at)"),
            std::to_string(full.last_accessed_at_us));
  EXPECT_EQ(column(id, "engram.to_us(expires_at)"),
            std::to_string(full.expires_at_us));
  EXPECT_EQ(column(id, "metadata->'tags'->>1"), "b");

  auto other = result->ids[1];
  EXPECT_EQ(column(other, "content"), plain.content);
  EXPECT_EQ(column(other, "agent_id IS NULL AND embedding IS NULL "
                          "AND embedding_model IS NULL "
                          "AND last_accessed_at IS NULL AND expires_at IS NULL"),
            "t");
  EXPECT_EQ(column(other, "tier || '/' || status || '/' || importance || '/' "
                          "|| source_type || '/' || metadata::text"),
            "warm/active/5/import/{}");
  EXPECT_EQ(column(other, "engram.to_us(created_at)"),
            std::to_string(to_epoch_us(noon())))
    << "without created_at a memory is created now";
}

TEST_F(memory_repository_test, an_empty_import_stores_nothing) {
  auto result = import({});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->count, 0);
  EXPECT_EQ(stored(), 0);
}

TEST_F(memory_repository_test, a_bad_row_refuses_the_whole_import_naming_row_and_field) {
  auto ok = row("fine");
  auto with = [&](auto change) {
    auto r = row("bad one");
    change(r);
    return std::vector<memories::memory_row>{ok, r};
  };
  expect_refused(with([](auto& r) { r.type = "dream"; }), "memories[1].type");
  expect_refused(with([](auto& r) { r.tier = "lukewarm"; }), "memories[1].tier");
  expect_refused(with([](auto& r) { r.status = "deleted"; }),
                 "memories[1].status");
  expect_refused(with([](auto& r) { r.content.clear(); }),
                 "memories[1].content must not be empty");
  expect_refused(with([](auto& r) { r.importance = 0; }),
                 "memories[1].importance must be between 1 and 10, got 0");
  expect_refused(with([](auto& r) { r.importance = 11; }),
                 "memories[1].importance");
  expect_refused(with([](auto& r) { r.access_count = -1; }),
                 "memories[1].access_count");
  expect_refused(with([](auto& r) { r.id = "42"; }), "memories[1].id must be a UUID");
  expect_refused(with([](auto& r) { r.agent_id = "agent-7"; }),
                 "memories[1].agent_id must be a UUID");
  expect_refused(with([](auto& r) {
                   r.embedding = {0.1f, std::numeric_limits<float>::quiet_NaN()};
                   r.embedding_model = "m";
                 }),
                 "memories[1].embedding[1] must be a finite number");
  expect_refused(with([](auto& r) {
                   r.embedding = {0.1f, std::numeric_limits<float>::infinity()};
                   r.embedding_model = "m";
                 }),
                 "memories[1].embedding[1]");
  expect_refused(with([](auto& r) { r.embedding = {0.1f}; }),
                 "memories[1].embedding_model is required");
  expect_refused(with([](auto& r) { r.embedding_model = "m"; }),
                 "memories[1].embedding_model is given without an embedding");
  expect_refused(with([](auto& r) { r.metadata_json = "[]"; }),
                 "memories[1].metadata must be a JSON object");
  expect_refused(with([](auto& r) { r.source_type.clear(); }),
                 "memories[1].source_type");
}

TEST_F(memory_repository_test, ids_must_be_unique_within_the_import_and_against_stored_memories) {
  auto a = row("a");
  a.id = "5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21";
  auto b = row("b");
  b.id = "5A0E3B8E-1A6E-4C41-9D0F-2F6A8F3C9E21";
  expect_refused({a, row("x"), b},
                 "memories[2].id repeats the id of memories[0]");

  ASSERT_TRUE(import({a}));
  auto c = row("c");
  c.id = "6b1f4c9f-2b7f-4d52-8e1a-3a7b9a4d0f32";
  // The stored id may be in another project: ids are global.
  auto before = stored();
  auto result = import({row("new"), c, b}, other_project);
  ASSERT_FALSE(result);
  EXPECT_EQ(code_of(result.error()), errc::invalid_argument);
  EXPECT_EQ(message_of(result.error()),
            "memories[2].id: a memory with id "
            "5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21 exists already");
  EXPECT_EQ(stored(), before);
  // The transaction is still good after the refused COPY: a fresh import
  // of c works.
  EXPECT_TRUE(import({c}, other_project));
}

TEST_F(memory_repository_test, the_vectors_of_one_model_share_one_dimension) {
  expect_refused({embedded("a", {1, 0, 0}), embedded("b", {1, 0, 0}, "other"),
                  embedded("c", {1, 0})},
                 "memories[2].embedding has 2 dimensions, but memories[0] of "
                 "model 'm-3' has 3");
  ASSERT_TRUE(import({embedded("a", {1, 0, 0})}));
  expect_refused({row("plain"), embedded("b", {1, 0, 0, 0})},
                 "memories[1].embedding has 4 dimensions, but the project's "
                 "memories of model 'm-3' have 3");
  // Another model, or the same model in another project, is free.
  EXPECT_TRUE(import({embedded("b", {1, 0, 0, 0}, "m-4")}));
  EXPECT_TRUE(import({embedded("b", {1, 0}, "m-3")}, other_project));
  EXPECT_TRUE(import({embedded("c", {0, 1, 0}, "m-3")}));
}

TEST_F(memory_repository_test, an_unknown_project_or_too_many_rows_are_refused) {
  auto unknown = import({row("a")}, unknown_id);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::not_found);
  EXPECT_EQ(message_of(unknown.error()),
            std::string{"project_id: no project with id "} + unknown_id);
  std::vector<memories::memory_row> many(storage::max_import_rows + 1,
                                         row("same"));
  expect_refused(std::move(many), "at most 100000", errc::too_large);
}

TEST_F(memory_repository_test, a_stream_import_commits_only_what_its_producer_finished) {
  // Rows written while the producer is still at work are rolled back when
  // it fails, or when it does not finish in time; a finished stream's
  // chunks are all stored, the ids in request order.
  auto run = [&](auto produce, std::chrono::milliseconds wait) {
    auto stream = std::make_shared<memories::import_stream>();
    std::thread producer{[&] { produce(*stream); }};
    auto deadline = std::chrono::steady_clock::now() + wait;
    auto result = in_tx([&](auto& tx) {
      return storage::import_memory_stream(tx, *stream, project, noon(),
                                           deadline);
    });
    producer.join();
    return result;
  };
  auto chunk = [](uint32_t first, uint32_t n) {
    memories::import_stream::chunk c;
    for (uint32_t i = first; i < first + n; ++i) {
      c.rows.push_back(row("row " + std::to_string(i)));
      c.indices.push_back(i);
    }
    return c;
  };
  auto failed = run(
    [&](memories::import_stream& s) {
      (void) s.push(chunk(0, 300));
      std::this_thread::sleep_for(50ms); // the first chunk is written
      s.fail(errc::invalid_argument, "memories[300].type must be ...");
    },
    10s);
  ASSERT_FALSE(failed);
  EXPECT_EQ(code_of(failed.error()), errc::invalid_argument);
  EXPECT_EQ(message_of(failed.error()), "memories[300].type must be ...");
  EXPECT_EQ(stored(), 0);

  auto late = run(
    [&](memories::import_stream& s) {
      (void) s.push(chunk(0, 300));
      std::this_thread::sleep_for(300ms);
      (void) s.push(chunk(300, 1)); // refused: the import gave up
      s.finish();
    },
    100ms);
  ASSERT_FALSE(late);
  EXPECT_EQ(code_of(late.error()), errc::timeout) << describe(late.error());
  EXPECT_EQ(stored(), 0);

  // Every row there, but the deadline passed before the worker took the
  // request (it waited behind others): its caller has been told it timed
  // out, so nothing may be committed.
  auto queued = run(
    [&](memories::import_stream& s) {
      (void) s.push(chunk(0, 300));
      s.finish();
    },
    -1ms);
  ASSERT_FALSE(queued);
  EXPECT_EQ(code_of(queued.error()), errc::timeout);
  EXPECT_EQ(stored(), 0);

  // Every row there, then cancelled by its caller before the worker
  // committed: nothing is stored, the answer is the cancel's.
  memories::import_stream stopped;
  (void) stopped.push(chunk(0, 300));
  stopped.finish();
  ASSERT_TRUE(stopped.cancel(errc::timeout, "the caller stopped waiting"));
  auto cancelled = in_tx([&](auto& tx) {
    return storage::import_memory_stream(
      tx, stopped, project, noon(), std::chrono::steady_clock::now() + 10s);
  });
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(message_of(cancelled.error()), "the caller stopped waiting");
  EXPECT_EQ(stored(), 0);

  auto done = run(
    [&](memories::import_stream& s) {
      (void) s.push(chunk(2, 300));
      (void) s.push(chunk(0, 2));
      s.finish();
    },
    10s);
  ASSERT_TRUE(done) << describe(done.error());
  ASSERT_EQ(done->ids.size(), 302u);
  EXPECT_EQ(stored(), 302);
  for (uint32_t i : {0u, 1u, 2u, 301u})
    EXPECT_EQ(query("SELECT content FROM engram.memories WHERE id = '"
                    + done->ids[i] + "'"),
              "row " + std::to_string(i));
}

TEST_F(memory_repository_test, a_stream_import_waits_for_a_lock_only_until_its_deadline) {
  // Another transaction holds the project row (FOR UPDATE conflicts with
  // the import's FOR KEY SHARE): the import gives up at its deadline with
  // timeout instead of waiting for the statement timeout.
  pqxx::connection other{db};
  pqxx::work holder{other};
  holder.exec_params("SELECT 1 FROM engram.projects WHERE id = $1::uuid "
                     "FOR UPDATE",
                     project);
  memories::import_stream stream;
  memories::import_stream::chunk c;
  c.rows.push_back(row("waits"));
  c.indices.push_back(0);
  ASSERT_TRUE(stream.push(std::move(c)));
  stream.finish();
  auto start = std::chrono::steady_clock::now();
  auto result = in_tx([&](auto& tx) {
    return storage::import_memory_stream(tx, stream, project, noon(),
                                         start + 300ms);
  });
  auto waited = std::chrono::steady_clock::now() - start;
  holder.abort();
  ASSERT_FALSE(result);
  EXPECT_EQ(code_of(result.error()), errc::timeout) << describe(result.error());
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(stored(), 0);
}

TEST_F(memory_repository_test, imports_that_bring_new_models_in_opposite_orders_both_commit) {
  // Import 1 brings model "a", then "b"; import 2 brings "b", then "a",
  // each in chunks, at the same time. Each new model is checked under a
  // lock: one lock per project, so neither waits for the other in a cycle
  // (with a lock per model, PostgreSQL found a deadlock and failed one).
  auto vec = [](size_t n) { return std::vector<float>(n, 0.5f); };
  auto chunk_of = [&](uint32_t index, const std::string& model, size_t dim) {
    memories::import_stream::chunk c;
    c.rows.push_back(embedded("row " + std::to_string(index) + " " + model,
                              vec(dim), model));
    c.indices.push_back(index);
    return c;
  };
  memories::import_stream one, two;
  std::optional<caf::expected<memories::import_result>> first, second;
  auto import_in_thread = [&](memories::import_stream& s, auto& out) {
    return std::thread{[&] {
      try {
        pqxx::connection c{db};
        pqxx::work tx{c};
        out.emplace(storage::import_memory_stream(
          tx, s, project, noon(), std::chrono::steady_clock::now() + 20s));
        if (*out)
          tx.commit();
      } catch (const std::exception& e) { // e.g. deadlock_detected
        out.emplace(make_error(errc::database_error, e.what()));
      }
    }};
  };
  auto t1 = import_in_thread(one, first);
  auto t2 = import_in_thread(two, second);
  ASSERT_TRUE(one.push(chunk_of(0, "a", 3)));
  ASSERT_TRUE(two.push(chunk_of(0, "b", 4)));
  std::this_thread::sleep_for(200ms); // both first chunks checked (or waiting)
  (void) one.push(chunk_of(1, "b", 4));
  (void) two.push(chunk_of(1, "a", 3));
  one.finish();
  two.finish();
  t1.join();
  t2.join();
  ASSERT_TRUE(first && *first) << describe(first->error());
  ASSERT_TRUE(second && *second) << describe(second->error());
  EXPECT_EQ(stored(), 4);
}

TEST_F(memory_repository_test, an_import_of_384_dimension_rows_is_fast) {
  // 50,000 rows of 384 floats (1.5 KiB each), as a bulk import of real
  // embeddings would send them.
  constexpr size_t n = 50000;
  constexpr size_t dim = 384;
  std::vector<memories::memory_row> rows;
  rows.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> v(dim);
    for (size_t j = 0; j < dim; ++j)
      v[j] = std::sin(static_cast<float>(i * dim + j)) * 0.05f;
    auto r = embedded("memory number " + std::to_string(i)
                        + " about something worth remembering",
                      std::move(v), "bench-384");
    r.agent_id = i % 2 == 0 ? "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b" : "";
    rows.push_back(std::move(r));
  }
  auto start = std::chrono::steady_clock::now();
  auto result = import(std::move(rows));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result) << describe(result.error());
  EXPECT_EQ(result->count, static_cast<int64_t>(n));
  auto seconds = std::chrono::duration<double>(elapsed).count();
  std::printf("[ measure  ] imported %zu rows of %zu floats in %.3f s: "
              "%.0f rows/s (commit included)\n",
              n, dim, seconds, static_cast<double>(n) / seconds);
  EXPECT_EQ(stored(), static_cast<int64_t>(n));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories "
                  "WHERE length(embedding) = 1536"),
            static_cast<int64_t>(n));
}

// -- listing --------------------------------------------------------------------------

TEST_F(memory_repository_test, an_agents_hot_memories_are_read_through_the_agent_index) {
  // Many agents in two projects: the hot-memory cache asks by agent id
  // alone, and the answer comes from memories_active_agent_idx (migration
  // 015), not from reading every project's memories.
  std::vector<std::string> agents;
  for (int a = 0; a < 40; ++a)
    agents.push_back(fresh_id());
  for (const auto& into : {project, other_project}) {
    std::vector<memories::memory_row> rows;
    for (int k = 0; k < 1000; ++k) {
      auto r = row("memory " + std::to_string(k));
      r.agent_id = agents[static_cast<size_t>(k) % agents.size()];
      r.tier = k % 4 == 0 ? "hot" : "warm";
      r.importance = 1 + k % 10;
      rows.push_back(std::move(r));
    }
    ASSERT_TRUE(import(std::move(rows), into));
  }
  exec("ANALYZE engram.memories");
  auto scans = [&] {
    return count("SELECT idx_scan FROM pg_stat_user_indexes WHERE "
                 "indexrelname = 'memories_active_agent_idx'");
  };
  auto before = scans();
  auto hot = in_tx([&](auto& tx) {
    auto result = storage::hot_memories(tx, agents[0], 20);
    tx.exec("SELECT pg_stat_force_next_flush()");
    return result;
  });
  ASSERT_TRUE(hot) << describe(hot.error());
  // Agent 0 has memories 0, 40, 80, ... of each project; every one of
  // those is hot (k % 4 == 0), importance 1 (k % 10 == 0): 50 in all.
  ASSERT_EQ(hot->size(), 20u);
  for (const auto& m : *hot) {
    EXPECT_EQ(m.agent_id, agents[0]);
    EXPECT_EQ(m.tier, "hot");
  }
  EXPECT_GT(scans(), before) << "the agent index answered";
}

TEST_F(memory_repository_test, listing_filters_and_pages_newest_first) {
  // 7 memories an hour apart, newest last; two of them share an instant so
  // the id breaks the tie.
  std::vector<memories::memory_row> rows;
  for (int i = 0; i < 7; ++i) {
    auto r = row("m" + std::to_string(i), i % 2 == 0 ? "semantic" : "episodic");
    r.created_at_us = to_epoch_us(noon() - std::chrono::hours{10 - i});
    if (i == 6)
      r.created_at_us = rows[5].created_at_us;
    r.agent_id = i < 3 ? "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b" : "";
    r.tier = i == 4 ? "cold" : "warm";
    r.status = i == 1 ? "archived" : "active";
    if (i == 2) {
      r.embedding = {1, 0, 0, 0};
      r.embedding_model = "m-4";
    }
    rows.push_back(r);
  }
  ASSERT_TRUE(import(rows));
  ASSERT_TRUE(import({row("elsewhere")}, other_project));

  auto all = list({});
  ASSERT_TRUE(all) << describe(all.error());
  ASSERT_EQ(all->memories.size(), 7u);
  EXPECT_TRUE(all->next_cursor.empty());
  // m5 and m6 share created_at: the larger id comes first.
  std::set<std::string> tied{all->memories[0].content, all->memories[1].content};
  EXPECT_EQ(tied, (std::set<std::string>{"m5", "m6"}));
  EXPECT_GT(all->memories[0].id, all->memories[1].id);
  EXPECT_EQ(all->memories[2].content, "m4");
  EXPECT_EQ(all->memories[6].content, "m0");
  const auto& m2 = all->memories[4];
  EXPECT_EQ(m2.content, "m2");
  EXPECT_EQ(m2.embedding_dimension, 4);
  EXPECT_EQ(m2.embedding_model, "m-4");
  EXPECT_TRUE(m2.embedding.empty()) << "lists carry no vectors";
  EXPECT_EQ(m2.project_id, project);

  auto contents = [&](memories::list_memories_request req) {
    std::vector<std::string> result;
    auto page = list(std::move(req));
    EXPECT_TRUE(page) << describe(page.error());
    if (page)
      for (const auto& m : page->memories)
        result.push_back(m.content);
    return result;
  };
  memories::list_memories_request by_agent;
  by_agent.agent_id = "7B4F2A9E-3C1D-4E5F-8A6B-9C0D1E2F3A4B";
  EXPECT_EQ(contents(by_agent), (std::vector<std::string>{"m2", "m1", "m0"}));
  memories::list_memories_request by_type;
  by_type.type = "episodic";
  EXPECT_EQ(contents(by_type), (std::vector<std::string>{"m5", "m3", "m1"}));
  memories::list_memories_request by_status;
  by_status.status = "archived";
  EXPECT_EQ(contents(by_status), (std::vector<std::string>{"m1"}));
  memories::list_memories_request by_tier;
  by_tier.tier = "cold";
  EXPECT_EQ(contents(by_tier), (std::vector<std::string>{"m4"}));
  memories::list_memories_request combined;
  combined.type = "semantic";
  combined.status = "active";
  combined.agent_id = by_agent.agent_id;
  EXPECT_EQ(contents(combined), (std::vector<std::string>{"m2", "m0"}));
}

TEST_F(memory_repository_test, pages_stay_stable_while_memories_are_added) {
  std::vector<memories::memory_row> rows;
  for (int i = 0; i < 10; ++i) {
    auto r = row("m" + std::to_string(i));
    // Three memories per instant: the cursor must split ties by id.
    r.created_at_us = to_epoch_us(noon() - std::chrono::minutes{i / 3});
    rows.push_back(r);
  }
  ASSERT_TRUE(import(rows));
  std::vector<std::string> seen;
  memories::list_memories_request req;
  req.limit = 4;
  int pages = 0;
  for (;;) {
    auto page = list(req);
    ASSERT_TRUE(page) << describe(page.error());
    ++pages;
    for (const auto& m : page->memories)
      seen.push_back(m.content);
    // Between pages, newer memories arrive; they sort before the cursor
    // and never show up on later pages.
    auto newer = row("added after page " + std::to_string(pages));
    newer.created_at_us = to_epoch_us(noon() + std::chrono::minutes{pages});
    ASSERT_TRUE(import({newer, row("added now")}));
    if (page->next_cursor.empty())
      break;
    req.cursor = page->next_cursor;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 10u);
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), 10u) << "no memory repeats across pages";
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(unique.count("m" + std::to_string(i)), 1u);
}

TEST_F(memory_repository_test, listing_refuses_bad_filters_and_unknown_projects) {
  auto refused = [&](memories::list_memories_request req,
                     const std::string& needle,
                     errc code = errc::invalid_argument) {
    auto page = list(std::move(req));
    ASSERT_FALSE(page);
    EXPECT_EQ(code_of(page.error()), code);
    EXPECT_NE(message_of(page.error()).find(needle), std::string::npos)
      << message_of(page.error());
  };
  memories::list_memories_request r;
  r.type = "dream";
  refused(r, "type must be");
  r = {};
  r.status = "gone";
  refused(r, "status must be");
  r = {};
  r.tier = "tepid";
  refused(r, "tier must be");
  r = {};
  r.agent_id = "x";
  refused(r, "agent_id must be a UUID");
  r = {};
  r.cursor = "12_not-a-uuid";
  refused(r, "cursor: malformed");
  r = {};
  r.cursor = "abc_" + std::string{unknown_id};
  refused(r, "cursor: malformed");
  r = {};
  r.project_id = unknown_id;
  refused(r, "project_id: no project", errc::not_found);
}

// -- reading and restoring ------------------------------------------------------------

TEST_F(memory_repository_test, a_memory_is_read_with_its_vector_and_audit_history) {
  auto ids = import({embedded("kept", {0.25f, -1.0f}), row("absorbed")});
  ASSERT_TRUE(ids);
  auto kept = ids->ids[0];
  auto absorbed = ids->ids[1];
  exec("UPDATE engram.memories SET status = 'superseded', superseded_by = "
       + quoted(kept) + " WHERE id = " + quoted(absorbed));
  auto job = query("INSERT INTO engram.consolidation_jobs (project_id, "
                   "trigger_type) VALUES ("
                   + quoted(project) + ", 'manual') RETURNING id");
  exec("INSERT INTO engram.memory_audit (memory_id, project_id, job_id, "
       "action, detail, at) VALUES ("
       + quoted(absorbed) + ", " + quoted(project) + ", " + quoted(job)
       + ", 'superseded', '{\"superseded_by\": \"" + kept + "\"}', "
       + sql_time(noon() + 1h) + ")");
  audit(absorbed, "note", R"({"why": "second"})", noon() + 2h);

  auto detail = read(absorbed);
  ASSERT_TRUE(detail) << describe(detail.error());
  EXPECT_EQ(detail->memory.status, "superseded");
  EXPECT_EQ(detail->memory.superseded_by, kept);
  EXPECT_TRUE(detail->memory.parent_id.empty());
  ASSERT_EQ(detail->audit.size(), 2u);
  EXPECT_EQ(detail->audit[0].action, "superseded");
  EXPECT_EQ(detail->audit[0].job_id, job);
  EXPECT_EQ(detail->audit[0].at_us, to_epoch_us(noon() + 1h));
  EXPECT_NE(detail->audit[0].detail_json.find(kept), std::string::npos);
  EXPECT_EQ(detail->audit[1].action, "note");
  EXPECT_TRUE(detail->audit[1].job_id.empty());
  EXPECT_LT(detail->audit[0].id, detail->audit[1].id);

  auto with_vector = read(kept);
  ASSERT_TRUE(with_vector);
  EXPECT_EQ(with_vector->memory.embedding, (std::vector<float>{0.25f, -1.0f}));
  EXPECT_EQ(with_vector->memory.embedding_dimension, 2);
  EXPECT_TRUE(with_vector->audit.empty());

  for (auto id : {unknown_id, "nope"}) {
    auto missing = read(id);
    ASSERT_FALSE(missing);
    EXPECT_EQ(code_of(missing.error()), errc::not_found);
  }
}

TEST_F(memory_repository_test, a_superseded_memory_is_restored_with_an_audit_row) {
  auto ids = import({row("kept"), row("absorbed")});
  ASSERT_TRUE(ids);
  auto kept = ids->ids[0];
  auto absorbed = ids->ids[1];
  exec("UPDATE engram.memories SET status = 'superseded', tier = 'cold', "
       "superseded_by = " + quoted(kept) + " WHERE id = " + quoted(absorbed));
  auto restored = restore(absorbed, noon() + 3h);
  ASSERT_TRUE(restored) << describe(restored.error());
  EXPECT_EQ(restored->status, "active");
  EXPECT_TRUE(restored->superseded_by.empty());
  EXPECT_EQ(restored->tier, "cold") << "a supersession does not move the tier";
  EXPECT_EQ(restored->updated_at_us, to_epoch_us(noon() + 3h));
  EXPECT_EQ(column(absorbed, "status || '/' || (superseded_by IS NULL)"),
            "active/true");
  auto detail = read(absorbed);
  ASSERT_TRUE(detail);
  ASSERT_EQ(detail->audit.size(), 1u);
  EXPECT_EQ(detail->audit[0].action, "restored");
  EXPECT_EQ(detail->audit[0].at_us, to_epoch_us(noon() + 3h));
  EXPECT_EQ(query("SELECT detail->>'previous_status' || '/' || "
                  "(detail->>'previous_superseded_by') FROM "
                  "engram.memory_audit WHERE memory_id = "
                  + quoted(absorbed)),
            "superseded/" + kept);

  // Active now: a second restore is a conflict and changes nothing.
  auto again = restore(absorbed);
  ASSERT_FALSE(again);
  EXPECT_EQ(code_of(again.error()), errc::conflict);
  EXPECT_NE(message_of(again.error()).find("is active"), std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit"), 1);
}

TEST_F(memory_repository_test, an_archived_memory_gets_back_its_previous_tier) {
  auto ids = import({row("was hot"), row("never audited"), row("odd audit")});
  ASSERT_TRUE(ids);
  for (const auto& id : ids->ids)
    exec("UPDATE engram.memories SET status = 'archived', tier = 'cold' "
         "WHERE id = " + quoted(id));
  // The decay phase's archiving audit rows; the latest one counts.
  audit(ids->ids[0], "archived", R"({"previous_tier": "warm"})", noon());
  audit(ids->ids[0], "archived",
        R"({"previous_status": "active", "previous_tier": "hot"})",
        noon() + 1h);
  audit(ids->ids[2], "archived", R"({"previous_tier": "boiling"})", noon());

  auto hot = restore(ids->ids[0], noon() + 2h);
  ASSERT_TRUE(hot) << describe(hot.error());
  EXPECT_EQ(hot->status, "active");
  EXPECT_EQ(hot->tier, "hot");
  EXPECT_EQ(query("SELECT detail::text FROM engram.memory_audit WHERE "
                  "memory_id = " + quoted(ids->ids[0])
                  + " AND action = 'restored'"),
            R"({"tier": "hot", "previous_tier": "cold", "previous_status": "archived"})");

  auto plain = restore(ids->ids[1]);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->tier, "warm") << "no archiving audit row: warm";
  auto odd = restore(ids->ids[2]);
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->tier, "warm") << "an unknown recorded tier: warm";
}

TEST_F(memory_repository_test, restoring_an_unknown_memory_is_not_found) {
  for (auto id : {unknown_id, "not-a-uuid"}) {
    auto result = restore(id);
    ASSERT_FALSE(result);
    EXPECT_EQ(code_of(result.error()), errc::not_found);
    EXPECT_EQ(message_of(result.error()),
              std::string{"memory_id: no memory with id "} + id);
  }
}
