// The project and memory API over real HTTP against a real PostgreSQL: the
// routes and the storage pool wired as the daemon wires them, with a test
// embedder (the built-in hashing embedder, 384 dimensions) behind the
// import. Bad input is a 400 that names the row and field and stores
// nothing; unknown ids are 404; restoring an active memory is 409.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "http/memory_routes.hpp"
#include "http/project_routes.hpp"
#include "http/server.hpp"
#include "messages/storage.hpp"
#include "runtime/embedding_provider.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/metrics.hpp"
#include "storage/storage_actors.hpp"
#include "tests/integration/platform_fixture.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/storage_options.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
constexpr size_t dimension = 384;

/// The daemon's offline default: the hashing embedder at 384 dimensions.
embedder_actor::behavior_type
hashing_embedder(embedder_actor::pointer, std::shared_ptr<std::atomic<int>> calls) {
  return {
    [calls](memories::embed_texts_request& req) {
      ++*calls;
      memories::embed_texts_result result;
      result.model = hashing_model_name(dimension);
      result.dimension = static_cast<int64_t>(dimension);
      result.values.reserve(req.texts.size() * dimension);
      for (const auto& text : req.texts) {
        auto v = hash_embedding(text, dimension);
        result.values.insert(result.values.end(), v.begin(), v.end());
      }
      return result;
    },
  };
}

class memory_routes_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    if (HasFatalFailure())
      return;
    pool = spawn_storage_pool(sys, test::fast_storage_options(db), 2, nullptr);
    sys.registry().put(caf::atom(storage_pool_name), pool);
    embedder = sys.spawn(hashing_embedder, embed_calls);
  }

  void serve(bool with_embedder = true) {
    http::router routes;
    http::project_route_deps project_deps;
    project_deps.sys = &sys;
    project_deps.time = &clock;
    project_deps.timeout = 10s;
    http::add_project_routes(routes, project_deps);
    http::memory_route_deps memory_deps;
    memory_deps.sys = &sys;
    memory_deps.time = &clock;
    memory_deps.timeout = 10s;
    memory_deps.import_timeout = 60s;
    if (with_embedder)
      memory_deps.embedder = embedder;
    http::add_memory_routes(routes, memory_deps);
    http::server_options opts;
    opts.max_body_bytes = 64 * 1024 * 1024;
    opts.handler_timeout = 120s;
    server = std::make_unique<http::server>(io.context(), opts,
                                            std::move(routes), metrics);
    ASSERT_FALSE(server->start());
  }

  void TearDown() override {
    if (server)
      server->stop();
    io.stop();
    sys.registry().erase(caf::atom(storage_pool_name));
    if (pool)
      caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(embedder, caf::exit_reason::user_shutdown);
  }

  test::http_reply call(const std::string& method, const std::string& target,
                        const std::string& body = {},
                        const std::string& content_type = "application/json") {
    return test::http_request(server->port(), method, target, body,
                              {{"Content-Type", content_type}}, 60s);
  }

  static json::object object_of(const test::http_reply& reply) {
    json::error_code ec;
    auto v = json::parse(reply.body, ec);
    EXPECT_FALSE(ec) << reply.body;
    return ec || !v.is_object() ? json::object{} : v.as_object();
  }

  static std::string message_of(const test::http_reply& reply) {
    auto body = object_of(reply);
    auto* error = body.if_contains("error");
    if (error == nullptr || !error->is_object())
      return "(no error object: " + reply.body + ")";
    return std::string{error->as_object().at("message").as_string()};
  }

  /// Creates a project over HTTP; returns its id.
  std::string make_project(const std::string& name = "alpha") {
    auto id = query("SELECT gen_random_uuid()::text");
    auto r = call("PUT", "/api/projects/" + id,
                  R"({"name": ")" + name + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return id;
  }

  int64_t stored() {
    return count("SELECT count(*) FROM engram.memories");
  }

  test::http_reply import(const std::string& project, const std::string& body,
                          const std::string& content_type = "application/json") {
    return call("POST", "/api/projects/" + project + "/memories", body,
                content_type);
  }

  /// The import is answered `status` with a message containing `needle`,
  /// and nothing is stored.
  void expect_refused(const std::string& project, const std::string& body,
                      const std::string& needle, int status = 400,
                      const std::string& content_type = "application/json") {
    auto before = stored();
    auto r = import(project, body, content_type);
    EXPECT_EQ(r.status, status) << body.substr(0, 300) << " → " << r.body;
    EXPECT_NE(message_of(r).find(needle), std::string::npos)
      << "'" << needle << "' not in: " << message_of(r);
    EXPECT_EQ(stored(), before);
  }

  /// A JSON vector of `n` numbers (a unit vector along axis `axis`).
  static std::string vector_json(size_t n, size_t axis = 0) {
    std::string result = "[";
    for (size_t i = 0; i < n; ++i) {
      if (i > 0)
        result += ",";
      result += i == axis ? "1" : "0";
    }
    return result + "]";
  }

  manual_clock clock{noon()};
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  storage_pool_actor pool;
  embedder_actor embedder;
  std::shared_ptr<std::atomic<int>> embed_calls
    = std::make_shared<std::atomic<int>>(0);
  io_threads io{2};
  metrics::registry metrics;
  std::unique_ptr<http::server> server;
};

std::string str(const json::value& v) {
  return v.is_null() ? "null" : std::string{v.as_string()};
}

} // namespace

// -- projects ------------------------------------------------------------------------

TEST_F(memory_routes_test, a_project_is_created_replaced_and_read) {
  serve();
  auto id = query("SELECT gen_random_uuid()::text");
  auto created = call("PUT", "/api/projects/" + id,
                      R"({"name": "alpha", "consolidation_config":
                          {"merge_threshold": 0.95, "pattern_min_support": 4,
                           "demote_after_days": 45.5,
                           "summarize_max_access_count": 0,
                           "demote_importance_floor": 10}})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto p = object_of(created);
  EXPECT_EQ(str(p["id"]), id);
  EXPECT_EQ(str(p["name"]), "alpha");
  EXPECT_EQ(p["consolidation_enabled"], true);
  auto& config = p["consolidation_config"].as_object();
  EXPECT_EQ(config.at("merge_threshold").as_double(), 0.95);
  EXPECT_EQ(config.at("pattern_min_support").as_int64(), 4);
  EXPECT_EQ(config.at("demote_after_days").as_double(), 45.5);
  EXPECT_EQ(config.at("summarize_max_access_count").as_int64(), 0);
  EXPECT_EQ(str(p["created_at"]), "2024-03-10T12:00:00.000000Z");

  clock.advance(1h);
  auto replaced = call("PUT", "/api/projects/" + id,
                       R"({"name": "alpha 2", "consolidation_enabled": false})");
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  auto q = object_of(replaced);
  EXPECT_EQ(str(q["name"]), "alpha 2");
  EXPECT_EQ(q["consolidation_enabled"], false);
  EXPECT_TRUE(q["consolidation_config"].as_object().empty());
  EXPECT_EQ(str(q["created_at"]), "2024-03-10T12:00:00.000000Z");
  EXPECT_EQ(str(q["updated_at"]), "2024-03-10T13:00:00.000000Z");

  // Upper-case ids are the same project.
  std::string upper = id;
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto read = call("GET", "/api/projects/" + upper);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(str(object_of(read)["name"]), "alpha 2");
  EXPECT_EQ(count("SELECT count(*) FROM engram.projects"), 1);

  auto missing = call("GET", std::string{"/api/projects/"} + unknown_id);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(message_of(missing),
            std::string{"project_id: no project with id "} + unknown_id);
  auto malformed = call("GET", "/api/projects/42");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(message_of(malformed).find("project id must be a UUID"),
            std::string::npos);
}

TEST_F(memory_routes_test, a_bad_project_body_is_refused_naming_the_field) {
  serve();
  auto refused = [&](const std::string& body, const std::string& needle) {
    auto r = call("PUT", std::string{"/api/projects/"} + unknown_id, body);
    EXPECT_EQ(r.status, 400) << body << " → " << r.body;
    EXPECT_NE(message_of(r).find(needle), std::string::npos)
      << "'" << needle << "' not in: " << message_of(r);
  };
  refused(R"({})", "name is required");
  refused(R"({"name": ""})", "name must not be empty");
  refused(R"({"name": 7})", "name must be a string");
  refused(R"({"name": "x", "owner": "me"})", "unknown field owner");
  refused(R"({"name": "x", "consolidation_enabled": "yes"})",
          "consolidation_enabled must be true or false");
  refused(R"({"name": "x", "consolidation_config": [1]})",
          "consolidation_config must be a JSON object");
  refused(R"({"name": "x", "name": "y"})", "appears twice");
  refused(R"([1])", "must be a project object");
  refused(R"({"name": "x"} trailing)", "");
  // Every config key with a value just outside its range, and wrong types.
  const std::pair<const char*, const char*> bad_config[] = {
    {R"("pattern_threshold": 0)", "consolidation_config.pattern_threshold"},
    {R"("merge_threshold": 1.01)", "consolidation_config.merge_threshold"},
    {R"("summarize_threshold": -0.5)",
     "consolidation_config.summarize_threshold"},
    {R"("principle_threshold": "0.9")",
     "consolidation_config.principle_threshold"},
    {R"("playbook_threshold": null)", "consolidation_config.playbook_threshold"},
    {R"("pattern_min_support": 1)", "consolidation_config.pattern_min_support"},
    {R"("principle_min_support": 2.5)",
     "consolidation_config.principle_min_support"},
    {R"("summarize_min_age_days": 0)",
     "consolidation_config.summarize_min_age_days"},
    {R"("demote_after_days": -1)", "consolidation_config.demote_after_days"},
    {R"("summarize_max_access_count": -1)",
     "consolidation_config.summarize_max_access_count"},
    {R"("demote_importance_floor": 0)",
     "consolidation_config.demote_importance_floor"},
    {R"("demote_importance_floor": 11)",
     "consolidation_config.demote_importance_floor"},
    {R"("merge_thresold": 0.9)", "unknown field consolidation_config.merge_thresold"},
    {R"("merge_threshold": 0.9, "merge_threshold": 0.8)",
     "consolidation_config.merge_threshold appears twice"},
  };
  for (const auto& [entry, needle] : bad_config)
    refused(std::string{R"({"name": "x", "consolidation_config": {)"} + entry
              + "}}",
            needle);
  auto malformed = call("PUT", "/api/projects/not-a-uuid", R"({"name": "x"})");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(count("SELECT count(*) FROM engram.projects"), 0)
    << "nothing refused is stored";
  // The edges of the ranges are accepted.
  auto edges = call("PUT", std::string{"/api/projects/"} + unknown_id,
                    R"({"name": "x", "consolidation_config": {
                        "pattern_threshold": 1, "merge_threshold": 0.0001,
                        "pattern_min_support": 2, "principle_min_support": 2,
                        "summarize_min_age_days": 0.5,
                        "summarize_max_access_count": 0,
                        "demote_importance_floor": 1}})");
  EXPECT_EQ(edges.status, 201) << edges.body;
}

// -- import ------------------------------------------------------------------------------

TEST_F(memory_routes_test, an_array_import_keeps_given_embeddings_and_embeds_the_rest) {
  serve();
  auto project = make_project();
  auto body = R"([
    {"content": "Ana lives in Lisbon", "type": "semantic",
     "id": "5A0E3B8E-1A6E-4C41-9D0F-2F6A8F3C9E21",
     "agent_id": "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b",
     "tier": "hot", "status": "active", "importance": 8, "pinned": true,
     "access_count": 3, "source_type": "crm",
     "created_at": "2024-03-01T10:00:00.123456Z",
     "last_accessed_at": "2024-03-09T07:00:00-05:00",
     "expires_at": null, "metadata": {"k": [1, 2]},
     "embedding": [0.5, -0.25, 1e-3], "embedding_model": "client-3"},
    {"content": "Prefers oat milk", "type": "episodic"}
  ])";
  auto r = import(project, body);
  ASSERT_EQ(r.status, 201) << r.body;
  auto result = object_of(r);
  EXPECT_EQ(result["imported"], 2);
  auto& ids = result["ids"].as_array();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(str(ids[0]), "5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21");
  EXPECT_EQ(*embed_calls, 1) << "one embedding request for the rows without";

  auto first = call("GET", "/api/memories/" + str(ids[0]));
  ASSERT_EQ(first.status, 200) << first.body;
  auto m = object_of(first);
  EXPECT_EQ(str(m["project_id"]), project);
  EXPECT_EQ(str(m["agent_id"]), "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b");
  EXPECT_EQ(str(m["tier"]), "hot");
  EXPECT_EQ(m["importance"], 8);
  EXPECT_EQ(m["pinned"], true);
  EXPECT_EQ(m["access_count"], 3);
  EXPECT_EQ(str(m["source_type"]), "crm");
  EXPECT_EQ(str(m["created_at"]), "2024-03-01T10:00:00.123456Z");
  EXPECT_EQ(str(m["last_accessed_at"]), "2024-03-09T12:00:00.000000Z");
  EXPECT_TRUE(m["expires_at"].is_null());
  EXPECT_EQ(str(m["updated_at"]), "2024-03-10T12:00:00.000000Z");
  EXPECT_EQ(m["metadata"].as_object().at("k").as_array().size(), 2u);
  EXPECT_EQ(str(m["embedding_model"]), "client-3");
  EXPECT_EQ(m["embedding_dimension"], 3);
  auto& vec = m["embedding"].as_array();
  ASSERT_EQ(vec.size(), 3u);
  EXPECT_EQ(vec[0].as_double(), 0.5);
  EXPECT_EQ(vec[1].as_double(), -0.25);
  EXPECT_EQ(static_cast<float>(vec[2].as_double()), 1e-3f);
  EXPECT_TRUE(m["audit"].as_array().empty());

  auto second = object_of(call("GET", "/api/memories/" + str(ids[1])));
  EXPECT_EQ(str(second["embedding_model"]), hashing_model_name(dimension));
  EXPECT_EQ(second["embedding_dimension"], static_cast<int64_t>(dimension));
  EXPECT_TRUE(second["agent_id"].is_null());
  EXPECT_EQ(str(second["tier"]) + "/" + str(second["status"]) + "/"
              + str(second["source_type"]),
            "warm/active/import");
  EXPECT_EQ(second["importance"], 5);
  EXPECT_EQ(str(second["created_at"]), "2024-03-10T12:00:00.000000Z");
  // The stored vector is the hashing embedder's for the content.
  auto expected = hash_embedding("Prefers oat milk", dimension);
  auto& got = second["embedding"].as_array();
  ASSERT_EQ(got.size(), dimension);
  for (size_t i = 0; i < dimension; ++i)
    ASSERT_EQ(static_cast<float>(got[i].as_double()), expected[i]) << i;
}

TEST_F(memory_routes_test, an_embedding_may_come_as_base64_float32_as_openai_sends_it) {
  serve();
  auto project = make_project();
  // [1.0, -2.0, 0.5] as little-endian float32, padded and unpadded.
  auto r = import(project, R"([
    {"content": "a", "type": "semantic", "embedding": "AACAPwAAAMAAAAA/",
     "embedding_model": "client-3"},
    {"content": "b", "type": "semantic", "embedding": [1, -2, 0.5],
     "embedding_model": "client-3"},
    {"content": "c", "type": "semantic", "embedding": "AACAPw",
     "embedding_model": "client-1"}
  ])");
  ASSERT_EQ(r.status, 201) << r.body;
  auto ids = object_of(r)["ids"].as_array();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(*embed_calls, 0);
  auto vector_of = [&](const boost::json::value& id) {
    auto m = object_of(call("GET", "/api/memories/" + str(id)));
    std::vector<double> v;
    for (const auto& x : m["embedding"].as_array())
      v.push_back(x.to_number<double>());
    return v;
  };
  EXPECT_EQ(vector_of(ids[0]), (std::vector<double>{1.0, -2.0, 0.5}));
  EXPECT_EQ(vector_of(ids[0]), vector_of(ids[1]));
  EXPECT_EQ(vector_of(ids[2]), (std::vector<double>{1.0}));
}

TEST_F(memory_routes_test, an_ndjson_import_is_read_line_by_line) {
  serve();
  auto project = make_project();
  std::string lines = "{\"content\": \"one\", \"type\": \"semantic\"}\n"
                      "\r\n"
                      "  {\"content\": \"two\", \"type\": \"procedural\"}\r\n"
                      "{\"content\": \"three\", \"type\": \"identity\"}";
  auto r = import(project, lines, "application/x-ndjson");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(object_of(r)["imported"], 3);
  // Without the content type, a body that does not start with '[' is
  // NDJSON too; errors name the row (blank lines do not count) and line.
  auto plain = import(project, "{\"content\": \"four\", \"type\": \"semantic\"}\n");
  ASSERT_EQ(plain.status, 201) << plain.body;
  expect_refused(project,
                 "{\"content\": \"x\", \"type\": \"semantic\"}\n\n"
                 "{\"content\": \"y\", \"type\": \"dream\"}\n",
                 "memories[1].type must be episodic, semantic, procedural, "
                 "identity or principle, got 'dream'",
                 400, "application/x-ndjson");
  expect_refused(project,
                 "{\"content\": \"x\", \"type\": \"semantic\"}\n{\"content\": \n",
                 "memories[1] (line 2) is not valid JSON", 400,
                 "application/x-ndjson");
  expect_refused(project,
                 "{\"content\": \"x\", \"type\": \"semantic\"} {\"a\": 1}\n",
                 "unexpected content after memories[0] (line 1)", 400,
                 "application/x-ndjson");
  expect_refused(project, "[1]\n", "memories[0] (line 1) must be a memory object",
                 400, "application/x-ndjson");
  EXPECT_EQ(stored(), 4);
  auto list = object_of(call("GET", "/api/projects/" + project + "/memories"));
  std::set<std::string> types;
  for (const auto& m : list["memories"].as_array())
    types.insert(str(m.as_object().at("type")));
  EXPECT_EQ(types, (std::set<std::string>{"semantic", "procedural", "identity"}));
}

TEST_F(memory_routes_test, every_bad_row_is_refused_naming_the_row_and_field) {
  serve();
  auto project = make_project();
  const std::string ok = R"({"content": "fine", "type": "semantic"})";
  auto with = [&](const std::string& bad) { return "[" + ok + ", " + bad + "]"; };
  const std::pair<std::string, std::string> cases[] = {
    {R"({"type": "semantic"})", "memories[1].content is required"},
    {R"({"content": "", "type": "semantic"})", "memories[1].content must not be empty"},
    {R"({"content": 5, "type": "semantic"})", "memories[1].content must be a string"},
    {R"({"content": "x"})", "memories[1].type is required"},
    {R"({"content": "x", "type": "dream"})", "memories[1].type must be"},
    {R"({"content": "x", "type": "semantic", "tier": "tepid"})", "memories[1].tier"},
    {R"({"content": "x", "type": "semantic", "status": "gone"})", "memories[1].status"},
    {R"({"content": "x", "type": "semantic", "importance": 0})",
     "memories[1].importance must be between 1 and 10"},
    {R"({"content": "x", "type": "semantic", "importance": 11})",
     "memories[1].importance must be between 1 and 10"},
    {R"({"content": "x", "type": "semantic", "importance": "5"})",
     "memories[1].importance must be an integer"},
    {R"({"content": "x", "type": "semantic", "importance": 5.5})",
     "memories[1].importance must be an integer"},
    {R"({"content": "x", "type": "semantic", "pinned": 1})", "memories[1].pinned"},
    {R"({"content": "x", "type": "semantic", "access_count": -1})",
     "memories[1].access_count"},
    {R"({"content": "x", "type": "semantic", "id": "42"})",
     "memories[1].id must be a UUID"},
    {R"({"content": "x", "type": "semantic", "agent_id": "bob"})",
     "memories[1].agent_id must be a UUID"},
    {R"({"content": "x", "type": "semantic", "created_at": "yesterday"})",
     "memories[1].created_at must be an RFC 3339 date-time"},
    {R"({"content": "x", "type": "semantic", "expires_at": "2024-13-01T00:00:00Z"})",
     "memories[1].expires_at must be an RFC 3339 date-time"},
    {R"({"content": "x", "type": "semantic", "metadata": [1]})",
     "memories[1].metadata must be a JSON object"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, NaN], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, "2"], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, 1e300], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a finite number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, 02], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, -], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, 2,], "embedding_model": "m"})",
     "memories[1].embedding[2] must be a number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1 2], "embedding_model": "m"})",
     "malformed JSON at memories[1].embedding[1]"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, 3.5e38], "embedding_model": "m"})",
     "memories[1].embedding[1] must be a finite number"},
    {R"({"content": "x", "type": "semantic", "embedding": [], "embedding_model": "m"})",
     "memories[1].embedding must not be empty"},
    {R"({"content": "x", "type": "semantic", "embedding": {"a": 1}, "embedding_model": "m"})",
     "memories[1].embedding must be an array of numbers"},
    {R"({"content": "x", "type": "semantic", "embedding": "not base64!", "embedding_model": "m"})",
     "memories[1].embedding is a string but not base64"},
    {R"({"content": "x", "type": "semantic", "embedding": "AAA=A", "embedding_model": "m"})",
     "memories[1].embedding is a string but not base64"},
    {R"({"content": "x", "type": "semantic", "embedding": "AAAA", "embedding_model": "m"})",
     "memories[1].embedding decodes to 3 bytes, not whole float32 values"},
    {R"({"content": "x", "type": "semantic", "embedding": "", "embedding_model": "m"})",
     "memories[1].embedding must not be empty"},
    {R"({"content": "x", "type": "semantic", "embedding": "AACAPwAAwH8=", "embedding_model": "m"})",
     "memories[1].embedding[1] must be a finite number"},
    {R"({"content": "x", "type": "semantic", "embedding": [1, 2]})",
     "memories[1].embedding_model is required with an embedding"},
    {R"({"content": "x", "type": "semantic", "embedding_model": "m"})",
     "memories[1].embedding_model is given without an embedding"},
    {R"({"content": "a\u0000b", "type": "semantic"})",
     "memories[1].content must not contain NUL"},
    {R"({"content": "x", "type": "semantic", "metadata": {"k": "\u0000"}})",
     "memories[1].metadata must not contain \\u0000"},
    {R"({"content": "x", "type": "semantic", "colour": "red"})",
     "unknown field memories[1].colour"},
    {R"({"content": "x", "type": "semantic", "type": "episodic"})",
     "memories[1].type appears twice"},
    {R"(7)", "memories[1] must be a memory object"},
  };
  for (const auto& [bad, needle] : cases)
    expect_refused(project, with(bad), needle);
  expect_refused(project, "[]", "the import holds no memories");
  expect_refused(project, "[" + ok + "", "not valid JSON");
  EXPECT_EQ(*embed_calls, 0) << "nothing refused is embedded";
}

TEST_F(memory_routes_test, ids_and_dimensions_are_checked_across_rows_and_stored_memories) {
  serve();
  auto project = make_project();
  auto id = std::string{"5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21"};
  expect_refused(project,
                 R"([{"content": "a", "type": "semantic", "id": ")" + id
                   + R"("}, {"content": "b", "type": "semantic", "id": "5A0E3B8E-1A6E-4C41-9D0F-2F6A8F3C9E21"}])",
                 "memories[1].id repeats the id of memories[0]");
  expect_refused(project,
                 R"([{"content": "a", "type": "semantic", "embedding": )"
                   + vector_json(4)
                   + R"(, "embedding_model": "m"}, {"content": "b", "type": "semantic", "embedding": )"
                   + vector_json(3) + R"(, "embedding_model": "m"}])",
                 "memories[1].embedding has 3 dimensions, but memories[0] of "
                 "model 'm' has 4");

  // Stored: a memory with that id, and the model at 4 dimensions.
  auto first = import(project, R"([{"content": "a", "type": "semantic", "id": ")"
                                  + id + R"(", "embedding": )" + vector_json(4)
                                  + R"(, "embedding_model": "m"}])");
  ASSERT_EQ(first.status, 201) << first.body;
  expect_refused(project,
                 R"([{"content": "new", "type": "semantic"}, {"content": "again", "type": "semantic", "id": ")"
                   + id + R"("}])",
                 "memories[1].id: a memory with id " + id + " exists already");
  expect_refused(project,
                 R"([{"content": "b", "type": "semantic"}, {"content": "c", "type": "semantic", "embedding": )"
                   + vector_json(5) + R"(, "embedding_model": "m"}])",
                 "memories[1].embedding has 5 dimensions, but the project's "
                 "memories of model 'm' have 4");
  // Rows the embedder fills are checked the same way: the hashing model
  // at 384 dimensions conflicts with a stored 8-dimensional vector of it.
  auto other = make_project("beta");
  auto seeded = import(other, R"([{"content": "s", "type": "semantic", "embedding": )"
                                + vector_json(8) + R"(, "embedding_model": ")"
                                + hashing_model_name(dimension) + R"("}])");
  ASSERT_EQ(seeded.status, 201) << seeded.body;
  expect_refused(other, R"([{"content": "t", "type": "semantic"}])",
                 "memories[0].embedding has 384 dimensions, but the project's "
                 "memories of model '" + hashing_model_name(dimension)
                   + "' have 8");
}

TEST_F(memory_routes_test, unknown_projects_oversized_imports_and_a_missing_embedder) {
  serve(false);
  expect_refused(unknown_id, R"([{"content": "a", "type": "semantic", "embedding": [1], "embedding_model": "m"}])",
                 std::string{"project_id: no project with id "} + unknown_id, 404);
  expect_refused("not-a-uuid", R"([{"content": "a", "type": "semantic"}])",
                 "project id must be a UUID");
  auto project = make_project();
  std::string many;
  many.reserve((http::max_imported_memories + 1) * 40);
  for (size_t i = 0; i <= http::max_imported_memories; ++i)
    many += "{\"content\": \"x\", \"type\": \"semantic\"}\n";
  expect_refused(project, many, "at most 100000 memories", 413,
                 "application/x-ndjson");
  // Without an embedder, rows must bring their embedding.
  expect_refused(project, R"([{"content": "a", "type": "semantic"}])",
                 "no embedding provider is running", 503);
  auto embedded = import(project, R"([{"content": "a", "type": "semantic", "embedding": [1], "embedding_model": "m"}])");
  EXPECT_EQ(embedded.status, 201) << embedded.body;
}

// -- imports of many chunks ----------------------------------------------------------
// The rows of a body go to the database in chunks (of 256) while the rest
// is parsed; a row refused after the first chunks were written must still
// leave nothing stored.

namespace {

/// NDJSON of `n` memories "row <i>" with 4-dimensional vectors of model
/// "m"; `change(i, line)` may rewrite line i.
template <class Change>
std::string ndjson_rows(size_t n, Change change) {
  std::string body;
  for (size_t i = 0; i < n; ++i) {
    std::string line = R"({"content": "row )" + std::to_string(i)
                       + R"(", "type": "semantic", "embedding": [)"
                       + std::to_string(i % 7) + R"(, 1, 0.5, -2], "embedding_model": "m"})";
    change(i, line);
    body += line + "\n";
  }
  return body;
}

std::string ndjson_rows(size_t n) {
  return ndjson_rows(n, [](size_t, std::string&) {});
}

} // namespace

TEST_F(memory_routes_test, an_import_of_many_chunks_is_all_or_nothing) {
  serve();
  auto project = make_project();
  constexpr auto ndjson = "application/x-ndjson";
  auto id = std::string{"5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21"};
  auto seeded = import(project, R"({"content": "seed", "type": "semantic", "id": ")"
                                  + id + R"(", "embedding": [1, 2, 3, 4, 5, 6], "embedding_model": "m2"})",
                       ndjson);
  ASSERT_EQ(seeded.status, 201) << seeded.body;
  ASSERT_EQ(stored(), 1);

  // A value the parser refuses, a malformed line, an id a stored memory
  // has, a model whose stored vectors have another dimension, a vector of
  // another dimension than the same model's rows in earlier chunks: each
  // after several chunks were written.
  auto replace = [](std::string what, std::string with) {
    return [=](std::string& line) {
      line.replace(line.find(what), what.size(), with);
    };
  };
  struct bad_row {
    size_t row;
    std::function<void(std::string&)> edit;
    std::string needle;
  };
  std::vector<bad_row> cases{
    {700, replace("\"type\"", "\"importance\": 11, \"type\""),
     "memories[700].importance"},
    {800, [](std::string& line) { line.pop_back(); },
     "memories[800] (line 801) is not valid JSON"},
    {900, replace("\"type\"", "\"id\": \"" + id + "\", \"type\""),
     "memories[900].id: a memory with id " + id + " exists already"},
    {600, replace("\"m\"", "\"m2\""),
     "memories[600].embedding has 4 dimensions, but the project's memories "
     "of model 'm2' have 6"},
    {650, replace("0.5, ", ""),
     "memories[650].embedding has 3 dimensions, but memories[0] of model "
     "'m' has 4"},
  };
  for (const auto& c : cases)
    expect_refused(project, ndjson_rows(1000, [&](size_t i, std::string& line) {
                     if (i == c.row)
                       c.edit(line);
                   }),
                   c.needle, 400, ndjson);
  expect_refused(unknown_id, ndjson_rows(1000),
                 std::string{"project_id: no project with id "} + unknown_id,
                 404, ndjson);
  EXPECT_EQ(*embed_calls, 0);
  ASSERT_EQ(stored(), 1);

  // The same rows, all good: every one stored, the ids in request order.
  auto r = import(project, ndjson_rows(1000), ndjson);
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  auto ids = object_of(r)["ids"].as_array();
  ASSERT_EQ(ids.size(), 1000u);
  EXPECT_EQ(stored(), 1001);
  for (size_t i : {0u, 255u, 256u, 511u, 999u})
    EXPECT_EQ(query("SELECT content FROM engram.memories WHERE id = '"
                    + str(ids[i]) + "'"),
              "row " + std::to_string(i));
}

TEST_F(memory_routes_test, rows_without_a_vector_among_many_chunks_are_embedded_and_keep_their_place) {
  serve();
  auto project = make_project();
  auto no_vector = [](size_t i) { return i == 3 || i == 300 || i == 999; };
  auto body = ndjson_rows(1000, [&](size_t i, std::string& line) {
    if (no_vector(i))
      line = R"({"content": "row )" + std::to_string(i)
             + R"(", "type": "episodic"})";
  });
  auto r = import(project, body, "application/x-ndjson");
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  EXPECT_EQ(*embed_calls, 1) << "one request for the rows without a vector";
  auto ids = object_of(r)["ids"].as_array();
  ASSERT_EQ(ids.size(), 1000u);
  ASSERT_EQ(stored(), 1000);
  for (size_t i : {2u, 3u, 4u, 300u, 301u, 998u, 999u})
    EXPECT_EQ(query("SELECT content || '/' || embedding_model || '/' "
                    "|| length(embedding) / 4 FROM engram.memories WHERE id = '"
                    + str(ids[i]) + "'"),
              "row " + std::to_string(i) + "/"
                + (no_vector(i) ? hashing_model_name(dimension) + "/384"
                                : std::string{"m/4"}));
}

TEST_F(memory_routes_test, concurrent_imports_with_rows_to_embed_do_not_wait_for_each_other) {
  // Each import's storage worker (the pool has two) waits for its rows
  // while the rows without a vector are embedded: the embedding step must
  // not need a worker itself.
  serve();
  auto project = make_project();
  auto body = ndjson_rows(600, [](size_t i, std::string& line) {
    if (i >= 595)
      line = R"({"content": "late )" + std::to_string(i)
             + R"(", "type": "episodic"})";
  });
  std::vector<test::http_reply> replies(3);
  std::vector<std::thread> clients;
  auto start = std::chrono::steady_clock::now();
  for (auto& reply : replies)
    clients.emplace_back([&] { reply = import(project, body, "application/x-ndjson"); });
  for (auto& c : clients)
    c.join();
  auto took = std::chrono::steady_clock::now() - start;
  for (const auto& r : replies)
    EXPECT_EQ(r.status, 201) << r.body.substr(0, 300);
  EXPECT_EQ(stored(), 1800);
  EXPECT_LT(took, 8s) << "the imports waited for a timeout";
}

TEST_F(memory_routes_test, rows_without_a_vector_after_many_chunks_are_refused_whole_without_an_embedder) {
  serve(false);
  auto project = make_project();
  expect_refused(project, ndjson_rows(1000, [](size_t i, std::string& line) {
                   if (i == 990)
                     line = R"({"content": "no vector", "type": "episodic"})";
                 }),
                 "no embedding provider is running", 503,
                 "application/x-ndjson");
}

// -- listing ---------------------------------------------------------------------------

TEST_F(memory_routes_test, memories_are_listed_with_filters_and_a_stable_cursor) {
  serve();
  auto project = make_project();
  std::string body = "[";
  for (int i = 0; i < 9; ++i) {
    if (i > 0)
      body += ",";
    body += R"({"content": "m)" + std::to_string(i) + R"(", "type": ")"
            + (i % 3 == 0 ? "episodic" : "semantic")
            + R"(", "tier": ")" + (i == 4 ? "cold" : "warm")
            + R"(", "status": ")" + (i == 5 ? "archived" : "active")
            + R"(", "created_at": "2024-03-0)" + std::to_string(i + 1)
            + R"(T00:00:00Z")"
            + (i < 2 ? R"(, "agent_id": "7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b")"
                     : "")
            + "}";
  }
  body += "]";
  ASSERT_EQ(import(project, body).status, 201);

  auto contents = [&](const std::string& query_string) {
    auto r = call("GET", "/api/projects/" + project + "/memories" + query_string);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> result;
    auto page = object_of(r);
    for (const auto& m : page["memories"].as_array())
      result.push_back(str(m.as_object().at("content")));
    return result;
  };
  EXPECT_EQ(contents("?type=episodic"),
            (std::vector<std::string>{"m6", "m3", "m0"}));
  EXPECT_EQ(contents("?tier=cold"), (std::vector<std::string>{"m4"}));
  EXPECT_EQ(contents("?status=archived"), (std::vector<std::string>{"m5"}));
  EXPECT_EQ(contents("?agent_id=7b4f2a9e-3c1d-4e5f-8a6b-9c0d1e2f3a4b"),
            (std::vector<std::string>{"m1", "m0"}));
  EXPECT_EQ(contents("?type=semantic&status=active&tier=warm"),
            (std::vector<std::string>{"m8", "m7", "m2", "m1"}));

  // Pages of 4, newest first; memories imported between pages (newer than
  // everything listed) never show up on a later page.
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto target = "/api/projects/" + project + "/memories?limit=4"
                  + (cursor.empty() ? "" : "&cursor=" + cursor);
    auto r = call("GET", target);
    ASSERT_EQ(r.status, 200) << r.body;
    auto page = object_of(r);
    ++pages;
    auto& items = page["memories"].as_array();
    for (const auto& m : items) {
      seen.push_back(str(m.as_object().at("content")));
      EXPECT_FALSE(m.as_object().contains("embedding")) << "lists carry no vectors";
      EXPECT_EQ(m.as_object().at("embedding_dimension"),
                static_cast<int64_t>(dimension));
    }
    ASSERT_EQ(import(project, R"([{"content": "late )" + std::to_string(pages)
                                 + R"(", "type": "semantic"}])")
                .status,
              201);
    cursor = page["next_cursor"].is_null() ? "" : str(page["next_cursor"]);
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"m8", "m7", "m6", "m5", "m4", "m3",
                                            "m2", "m1", "m0"}));

  auto refused = [&](const std::string& query_string, const std::string& needle,
                     int status = 400) {
    auto r = call("GET", "/api/projects/" + project + "/memories" + query_string);
    EXPECT_EQ(r.status, status) << query_string << " → " << r.body;
    EXPECT_NE(message_of(r).find(needle), std::string::npos) << message_of(r);
  };
  refused("?type=dream", "query parameter type must be");
  refused("?status=deleted", "query parameter status must be");
  refused("?tier=tepid", "query parameter tier must be");
  refused("?agent_id=bob", "query parameter agent_id must be a UUID");
  refused("?limit=0", "query parameter limit must be an integer between 1 and 1000");
  refused("?limit=1001", "query parameter limit");
  refused("?cursor=garbage", "cursor: malformed page cursor");
  auto unknown = call("GET", std::string{"/api/projects/"} + unknown_id + "/memories");
  EXPECT_EQ(unknown.status, 404);
}

// -- reading and restoring ------------------------------------------------------------

TEST_F(memory_routes_test, a_memory_shows_its_audit_and_superseded_or_archived_ones_are_restored) {
  serve();
  auto project = make_project();
  auto r = import(project, R"([{"content": "kept", "type": "semantic"},
                              {"content": "absorbed", "type": "semantic"},
                              {"content": "expired", "type": "episodic", "tier": "hot"},
                              {"content": "current", "type": "semantic"}])");
  ASSERT_EQ(r.status, 201) << r.body;
  auto ids = object_of(r)["ids"].as_array();
  auto kept = str(ids[0]);
  auto absorbed = str(ids[1]);
  auto expired = str(ids[2]);
  auto current = str(ids[3]);
  // What merge and decay would have done, with their audit rows.
  exec("UPDATE engram.memories SET status = 'superseded', superseded_by = '"
       + kept + "' WHERE id = '" + absorbed + "'");
  exec("INSERT INTO engram.memory_audit (memory_id, project_id, action, "
       "detail, at) VALUES ('" + absorbed + "', '" + project
       + "', 'superseded', '{\"superseded_by\": \"" + kept + "\"}', "
       + sql_time(noon() + 1h) + ")");
  exec("UPDATE engram.memories SET status = 'archived', tier = 'cold' "
       "WHERE id = '" + expired + "'");
  exec("INSERT INTO engram.memory_audit (memory_id, project_id, action, "
       "detail, at) VALUES ('" + expired + "', '" + project
       + "', 'archived', '{\"previous_tier\": \"hot\"}', "
       + sql_time(noon() + 1h) + ")");

  auto before = object_of(call("GET", "/api/memories/" + absorbed));
  EXPECT_EQ(str(before["status"]), "superseded");
  EXPECT_EQ(str(before["superseded_by"]), kept);
  ASSERT_EQ(before["audit"].as_array().size(), 1u);
  auto& first_audit = before["audit"].as_array()[0].as_object();
  EXPECT_EQ(str(first_audit.at("action")), "superseded");
  EXPECT_TRUE(first_audit.at("job_id").is_null());
  EXPECT_EQ(str(first_audit.at("detail").as_object().at("superseded_by")), kept);
  EXPECT_EQ(str(first_audit.at("at")), "2024-03-10T13:00:00.000000Z");

  clock.advance(2h);
  auto restored = call("POST", "/api/memories/" + absorbed + "/restore");
  ASSERT_EQ(restored.status, 200) << restored.body;
  auto m = object_of(restored);
  EXPECT_EQ(str(m["status"]), "active");
  EXPECT_TRUE(m["superseded_by"].is_null());
  EXPECT_EQ(str(m["updated_at"]), "2024-03-10T14:00:00.000000Z");
  auto after = object_of(call("GET", "/api/memories/" + absorbed));
  auto& audit = after["audit"].as_array();
  ASSERT_EQ(audit.size(), 2u);
  auto& restore_row = audit[1].as_object();
  EXPECT_EQ(str(restore_row.at("action")), "restored");
  EXPECT_EQ(str(restore_row.at("detail").as_object().at("previous_status")),
            "superseded");
  EXPECT_EQ(str(restore_row.at("detail").as_object().at("previous_superseded_by")),
            kept);

  auto unarchived = call("POST", "/api/memories/" + expired + "/restore");
  ASSERT_EQ(unarchived.status, 200) << unarchived.body;
  EXPECT_EQ(str(object_of(unarchived)["tier"]), "hot");
  EXPECT_EQ(str(object_of(unarchived)["status"]), "active");

  auto active = call("POST", "/api/memories/" + current + "/restore");
  EXPECT_EQ(active.status, 409) << active.body;
  EXPECT_NE(message_of(active).find("is active"), std::string::npos);
  auto unknown = call("POST", std::string{"/api/memories/"} + unknown_id + "/restore");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(call("GET", std::string{"/api/memories/"} + unknown_id).status, 404);
  auto malformed = call("POST", "/api/memories/xyz/restore");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(message_of(malformed).find("memory id must be a UUID"),
            std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE action = "
                  "'restored'"),
            2);
}

TEST_F(memory_routes_test, an_http_import_of_384_dimension_rows_is_measured) {
  serve();
  auto project = make_project();
  // 10,000 NDJSON rows with 384-float vectors (about 40 MB of JSON), as a
  // client exporting another store would send them.
  constexpr size_t n = 10000;
  std::string body;
  body.reserve(n * 4200);
  char number[32];
  for (size_t i = 0; i < n; ++i) {
    body += R"({"content": "memory number )" + std::to_string(i)
            + R"(", "type": "semantic", "embedding_model": "bench-384", "embedding": [)";
    for (size_t j = 0; j < dimension; ++j) {
      std::snprintf(number, sizeof(number), j == 0 ? "%.7g" : ",%.7g",
                    std::sin(static_cast<double>(i * dimension + j)) * 0.05);
      body += number;
    }
    body += "]}\n";
  }
  auto start = std::chrono::steady_clock::now();
  auto r = import(project, body, "application/x-ndjson");
  auto seconds = std::chrono::duration<double>(
                   std::chrono::steady_clock::now() - start)
                   .count();
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 500);
  std::printf("[ measure  ] POSTed %zu NDJSON rows of %zu floats (%.1f MB) in "
              "%.3f s: %.0f rows/s (parse, store, commit, answer)\n",
              n, dimension, static_cast<double>(body.size()) / 1e6, seconds,
              static_cast<double>(n) / seconds);
  EXPECT_EQ(stored(), static_cast<int64_t>(n));
  EXPECT_EQ(*embed_calls, 0);
}
