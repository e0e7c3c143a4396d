// The conversation API over HTTP against a real PostgreSQL: the routes, the
// storage pool and the platform tasks wired as the daemon wires them.
// Extraction is queued (202), or runs inline (200) when background work is
// off or the queue cannot be reached; bad input is a 400 that names the
// field and changes nothing.

#include <memory>
#include <string>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include "http/conversation_routes.hpp"
#include "http/server.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/metrics.hpp"
#include "storage/conversation_repository.hpp"
#include "tests/integration/platform_tasks_fixture.hpp"
#include "tests/support/http_client.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

class conversation_routes_test : public test::platform_tasks_test {
protected:
  void SetUp() override {
    platform_tasks_test::SetUp();
    if (HasFatalFailure())
      return;
    use_extractive();
    project_id = project();
    agent_id = agent(project_id);
  }

  void serve(bool background = true, std::chrono::milliseconds timeout = 5s) {
    http::router routes;
    http::conversation_route_deps deps;
    deps.sys = &sys;
    deps.registry = &registry;
    deps.services = &services;
    deps.background_enabled = background;
    deps.timeout = timeout;
    http::add_conversation_routes(routes, deps);
    http::server_options opts;
    opts.max_body_bytes = 4 * 1024 * 1024;
    server = std::make_unique<http::server>(io.context(), opts,
                                            std::move(routes), metrics);
    ASSERT_FALSE(server->start());
  }

  void TearDown() override {
    if (server)
      server->stop();
    io.stop();
    platform_tasks_test::TearDown();
  }

  test::http_reply post(const std::string& target, const std::string& body) {
    return test::http_request(server->port(), "POST", target, body,
                              {{"Content-Type", "application/json"}});
  }

  test::http_reply get(const std::string& target) {
    return test::http_get(server->port(), target);
  }

  static json::object body_of(const test::http_reply& reply) {
    json::error_code ec;
    auto v = json::parse(reply.body, ec);
    EXPECT_FALSE(ec) << reply.body;
    return ec || !v.is_object() ? json::object{} : v.as_object();
  }

  static std::string error_message(const test::http_reply& reply) {
    auto body = body_of(reply);
    auto* error = body.if_contains("error");
    if (error == nullptr || !error->is_object())
      return "(no error object: " + reply.body + ")";
    return std::string{error->as_object().at("message").as_string()};
  }

  /// A conversation of the agent with two messages, made over HTTP.
  std::string conversation_with_facts() {
    auto created = post("/api/conversations",
                        R"({"agent_id":")" + agent_id + R"(","messages":[)"
                          R"({"role":"user","content":"Hi! I moved to Lisbon last spring."},)"
                          R"({"role":"user","content":"I prefer oat milk in my coffee."}]})");
    EXPECT_EQ(created.status, 201) << created.body;
    return std::string{body_of(created)["id"].as_string()};
  }

  /// Rows of the tables the API writes, to show a refusal changed nothing.
  std::string row_counts() {
    return query("SELECT (SELECT count(*) FROM engram.conversations) || '/' || "
                 "(SELECT count(*) FROM engram.messages) || '/' || "
                 "(SELECT count(*) FROM engram.tasks) || '/' || "
                 "(SELECT count(*) FROM engram.memories)");
  }

  io_threads io{2};
  metrics::registry metrics;
  std::unique_ptr<http::server> server;
  std::string project_id;
  std::string agent_id;
};

constexpr auto unknown_id = "0b5c3c3e-1f7a-4a55-9f3e-2b6d8f9e4c21";

} // namespace

TEST_F(conversation_routes_test, a_conversation_is_created_read_and_grows_by_messages) {
  serve();
  auto created = post("/api/conversations",
                      R"({"project_id":")" + project_id + R"(","agent_id":")"
                        + agent_id
                        + R"(","user_id":"user-9","title":"Trip planning"})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto c = body_of(created);
  auto id = std::string{c["id"].as_string()};
  EXPECT_EQ(c["project_id"], project_id.c_str());
  EXPECT_EQ(c["agent_id"], agent_id.c_str());
  EXPECT_EQ(c["user_id"], "user-9");
  EXPECT_EQ(c["title"], "Trip planning");
  EXPECT_EQ(c["status"], "active");
  EXPECT_EQ(c["created_at"], "2024-03-10T12:00:00.000000Z") << "the clock's now";
  EXPECT_TRUE(c["last_message_at"].is_null());
  EXPECT_EQ(c["messages"].as_array().size(), 0u);

  // One message; its token count is estimated when not given.
  clock.advance(5s);
  auto one = post("/api/conversations/" + id + "/messages",
                  R"({"role":"user","content":"Where should we stay, Porto?"})");
  ASSERT_EQ(one.status, 201) << one.body;
  auto first = body_of(one)["messages"].as_array().at(0).as_object();
  EXPECT_EQ(first["role"], "user");
  EXPECT_EQ(first["token_count"],
            count_tokens("Where should we stay, Porto?"));
  EXPECT_EQ(first["created_at"], "2024-03-10T12:00:05.000000Z");

  // An array, appended in order, all or nothing.
  auto two = post("/api/conversations/" + id + "/messages",
                  R"([{"role":"assistant","content":"Ribeira is central.","token_count":4},)"
                  R"({"role":"user","content":"Booked!","token_count":null}])");
  ASSERT_EQ(two.status, 201) << two.body;
  auto added = body_of(two);
  EXPECT_EQ(added["conversation_id"], id.c_str());
  ASSERT_EQ(added["messages"].as_array().size(), 2u);
  EXPECT_EQ(added["messages"].as_array()[0].as_object()["token_count"], 4);

  auto read = get("/api/conversations/" + id);
  ASSERT_EQ(read.status, 200) << read.body;
  auto full = body_of(read);
  auto& messages = full["messages"].as_array();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].as_object()["content"], "Where should we stay, Porto?");
  EXPECT_EQ(messages[1].as_object()["content"], "Ribeira is central.");
  EXPECT_EQ(messages[2].as_object()["content"], "Booked!");
  EXPECT_LT(messages[0].as_object()["id"].as_int64(),
            messages[2].as_object()["id"].as_int64());
  EXPECT_EQ(full["last_message_at"], "2024-03-10T12:00:05.000000Z");

  // Upper-case ids are the same conversation.
  std::string upper = id;
  for (auto& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(get("/api/conversations/" + upper).status, 200);
}

TEST_F(conversation_routes_test, a_conversation_takes_its_agents_project_and_refuses_another_projects_agent) {
  serve();
  auto created = post("/api/conversations", R"({"agent_id":")" + agent_id + R"("})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(body_of(created)["project_id"], project_id.c_str());

  auto other = project("other");
  auto before = row_counts();
  auto refused = post("/api/conversations", R"({"project_id":")" + other
                                              + R"(","agent_id":")" + agent_id
                                              + R"("})");
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(error_message(refused).find("agent_id: agent " + agent_id
                                        + " belongs to project " + project_id),
            std::string::npos)
    << refused.body;
  EXPECT_EQ(row_counts(), before);
}

TEST_F(conversation_routes_test, unknown_ids_are_404_and_change_nothing) {
  serve();
  auto before = row_counts();
  auto no_project = post("/api/conversations",
                         R"({"project_id":")" + std::string{unknown_id} + R"("})");
  EXPECT_EQ(no_project.status, 404);
  EXPECT_EQ(error_message(no_project),
            std::string{"project_id: no project with id "} + unknown_id);
  auto no_agent = post("/api/conversations",
                       R"({"agent_id":")" + std::string{unknown_id} + R"("})");
  EXPECT_EQ(no_agent.status, 404);
  EXPECT_EQ(error_message(no_agent),
            std::string{"agent_id: no agent with id "} + unknown_id);
  auto missing = std::string{"/api/conversations/"} + unknown_id;
  EXPECT_EQ(get(missing).status, 404);
  auto msg = post(missing + "/messages", R"({"role":"user","content":"hello there"})");
  EXPECT_EQ(msg.status, 404);
  EXPECT_EQ(body_of(msg)["error"].as_object()["code"], "not_found");
  auto extract = post(missing + "/extract", "");
  EXPECT_EQ(extract.status, 404) << extract.body;
  EXPECT_EQ(row_counts(), before) << "no task for an unknown conversation";
}

TEST_F(conversation_routes_test, bad_input_is_400_naming_the_field_and_changes_nothing) {
  serve();
  auto id = conversation_with_facts();
  auto messages = "/api/conversations/" + id + "/messages";
  struct bad_case {
    std::string target;
    std::string body;
    std::string message; // a part of the error message
  };
  const bad_case cases[] = {
    // Creating a conversation.
    {"/api/conversations", "", "the request body is empty"},
    {"/api/conversations", "{", "not valid JSON"},
    {"/api/conversations", R"({"title":"a",})", "malformed JSON"},
    {"/api/conversations", R"({"title":"a"} {})", "unexpected content after"},
    {"/api/conversations", "[]", "must be a conversation object"},
    {"/api/conversations", R"({"title":7})", "title must be a string"},
    {"/api/conversations", R"({"titel":"x"})", "unknown field titel"},
    {"/api/conversations", R"({"title":"a","title":"b"})",
     "field title appears twice"},
    {"/api/conversations", R"({"project_id":"p-1"})",
     "project_id must be a UUID"},
    {"/api/conversations", R"({"agent_id":42})", "agent_id must be a string"},
    {"/api/conversations", R"({"user_id":""})", "user_id must not be empty"},
    {"/api/conversations", R"({"title":")" + std::string(1001, 'x') + R"("})",
     "title is longer than 1000 bytes"},
    {"/api/conversations", R"({"messages":{}})", "messages must be an array"},
    {"/api/conversations", R"({"messages":[{"role":"user"}]})",
     "messages[0].content is required"},
    // Adding messages.
    {messages, R"({"content":"hello there"})", "role is required"},
    {messages, R"({"role":"robot","content":"beep"})",
     "role must be system, user, assistant or tool, got 'robot'"},
    {messages, R"({"role":"user","content":""})", "content must not be empty"},
    {messages, R"({"role":"user","content":["a"]})", "content must be a string"},
    {messages, R"({"role":"user","content":"hi","token_count":-1})",
     "token_count must be between 0 and 2147483647"},
    {messages, R"({"role":"user","content":"hi","token_count":"3"})",
     "token_count must be an integer"},
    {messages, R"({"role":"user","content":"hi","tokens":3})",
     "unknown field tokens"},
    {messages, "[]", "the array holds no messages"},
    {messages, R"([{"role":"user","content":"ok"},"two"])",
     "messages[1] must be an object"},
    {messages,
     R"([{"role":"user","content":"ok"},{"role":"user","content":"ok","x":1}])",
     "unknown field messages[1].x"},
    {messages, "42", "must be a message object or an array"},
    {messages,
     R"({"role":"user","content":")" + std::string(1024 * 1024 + 1, 'a') + R"("})",
     "content is longer than 1048576 bytes"},
    {"/api/conversations/not-a-uuid/messages",
     R"({"role":"user","content":"hi"})",
     "conversation id must be a UUID"},
    // Extraction takes no options.
    {"/api/conversations/" + id + "/extract", R"({"mode":"inline"})",
     "unknown field mode"},
    {"/api/conversations/" + id + "/extract", "[1]", "must be empty or an empty"},
  };
  auto before = row_counts();
  for (const auto& c : cases) {
    auto reply = post(c.target, c.body);
    EXPECT_EQ(reply.status, 400) << c.body.substr(0, 80) << " → " << reply.body;
    EXPECT_EQ(body_of(reply)["error"].as_object()["code"], "invalid_argument");
    EXPECT_NE(error_message(reply).find(c.message), std::string::npos)
      << "expected '" << c.message << "' in: " << error_message(reply);
  }
  // Too many messages in one request.
  json::array many;
  for (size_t i = 0; i <= http::max_messages_per_request; ++i)
    many.push_back(json::object{{"role", "user"}, {"content", "x"}});
  auto too_many = post(messages, json::serialize(many));
  EXPECT_EQ(too_many.status, 400);
  EXPECT_EQ(error_message(too_many), "at most 1000 messages per request");
  EXPECT_EQ(get("/api/conversations/nope").status, 400);
  // Past the server's body limit: 413 before any handler runs.
  auto huge = post(messages, std::string(5 * 1024 * 1024, ' '));
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(row_counts(), before);
}

TEST_F(conversation_routes_test, a_closed_conversation_takes_no_messages) {
  serve();
  auto id = conversation_with_facts();
  exec("UPDATE engram.conversations SET status = 'closed' WHERE id = "
       + quoted(id));
  auto reply = post("/api/conversations/" + id + "/messages",
                    R"({"role":"user","content":"still there?"})");
  EXPECT_EQ(reply.status, 409);
  EXPECT_EQ(error_message(reply),
            "conversation " + id + " is closed and takes no more messages");
}

TEST_F(conversation_routes_test, extract_queues_a_memory_extract_task) {
  serve();
  auto id = conversation_with_facts();
  auto reply = post("/api/conversations/" + id + "/extract", "");
  ASSERT_EQ(reply.status, 202) << reply.body;
  auto body = body_of(reply);
  EXPECT_EQ(body["mode"], "queued");
  auto task = body["task"].as_object();
  EXPECT_EQ(task["name"], "memory.extract");
  EXPECT_EQ(task["queue"], "memory");
  EXPECT_EQ(task["status"], "queued");
  EXPECT_EQ(json::serialize(task["args"]),
            R"({"conversation_id":")" + id + R"("})");
  EXPECT_EQ(query("SELECT name || '|' || status || '|' || (args->>'conversation_id') "
                  "FROM engram.tasks WHERE id = "
                  + std::to_string(task["id"].as_int64())),
            "memory.extract|queued|" + id);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 0)
    << "the worker extracts, not the request";
  // An empty object is as good as no body.
  EXPECT_EQ(post("/api/conversations/" + id + "/extract", "{}").status, 202);
}

TEST_F(conversation_routes_test, extract_runs_inline_when_background_work_is_off) {
  serve(false);
  auto id = conversation_with_facts();
  auto reply = post("/api/conversations/" + id + "/extract", "");
  ASSERT_EQ(reply.status, 200) << reply.body;
  auto body = body_of(reply);
  EXPECT_EQ(body["mode"], "inline");
  EXPECT_EQ(body["reason"], "background.enabled is off");
  auto result = body["result"].as_object();
  EXPECT_EQ(result["method"], "extractive");
  EXPECT_EQ(result["created"], 2);
  EXPECT_EQ(result["skipped_duplicates"], 0);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE agent_id = "
                  + quoted(agent_id)),
            2);
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 0);

  auto again = body_of(post("/api/conversations/" + id + "/extract", "{}"));
  EXPECT_EQ(again["result"].as_object()["created"], 0);
  EXPECT_EQ(again["result"].as_object()["skipped_duplicates"], 2);
}

TEST_F(conversation_routes_test, extract_runs_inline_when_the_queue_cannot_be_reached) {
  serve(true, 500ms);
  auto id = conversation_with_facts();
  // Another session holds the task table: the enqueue cannot finish in time.
  pqxx::connection other{db};
  pqxx::work holder{other};
  holder.exec("LOCK TABLE engram.tasks IN EXCLUSIVE MODE");
  auto reply = post("/api/conversations/" + id + "/extract", "");
  ASSERT_EQ(reply.status, 200) << reply.body;
  auto body = body_of(reply);
  EXPECT_EQ(body["mode"], "inline");
  EXPECT_NE(std::string{body["reason"].as_string()}.find(
              "the task queue is unavailable"),
            std::string::npos)
    << reply.body;
  EXPECT_EQ(body["result"].as_object()["created"], 2);
  holder.abort();
  // The enqueue that timed out may still commit once the lock is gone: the
  // task then finds every fact known (at-least-once, never lost).
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 2);
}

TEST_F(conversation_routes_test, an_inline_extraction_that_cannot_succeed_answers_422) {
  serve(false);
  auto created = post("/api/conversations",
                      R"({"messages":[{"role":"user","content":"I keep bees on my roof."}]})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto id = std::string{body_of(created)["id"].as_string()};
  auto reply = post("/api/conversations/" + id + "/extract", "");
  EXPECT_EQ(reply.status, 422) << reply.body;
  EXPECT_EQ(body_of(reply)["error"].as_object()["code"], "extraction_failed");
  EXPECT_NE(error_message(reply).find("belongs to no project"), std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 0);
}

TEST_F(conversation_routes_test, without_the_storage_pool_extraction_answers_503_and_claims_nothing) {
  serve(true, 500ms);
  auto id = conversation_with_facts();
  sys.registry().erase(caf::atom(storage_pool_name));
  auto reply = post("/api/conversations/" + id + "/extract", "");
  EXPECT_EQ(reply.status, 503) << reply.body;
  EXPECT_EQ(body_of(reply)["error"].as_object()["code"], "shutting_down");
  sys.registry().put(caf::atom(storage_pool_name), pool);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 0);
}
