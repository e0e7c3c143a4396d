// The task API as an operator uses it: enqueue over HTTP, watch the task
// run, list, cancel and retry; and every bad input answered with a 4xx that
// changes nothing.

#include <chrono>
#include <string>
#include <thread>

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

/// Polls GET /api/tasks/{id} until the task has `status`.
json::value wait_for_status(uint16_t port, int64_t id, const std::string& status) {
  json::value last;
  for (int i = 0; i < 500; ++i) {
    auto r = http_get(port, "/api/tasks/" + std::to_string(id));
    last = parse(r);
    if (last.at("status").as_string() == status)
      return last;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "task " << id << " never became " << status << ": "
                << json::serialize(last);
  return last;
}

int64_t task_count(uint16_t port) {
  auto r = http_get(port, "/api/tasks?limit=1000");
  return static_cast<int64_t>(parse(r).at("tasks").as_array().size());
}

} // namespace

TEST(task_api, enqueue_run_list_cancel_and_retry) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data"};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();

  auto created = http_request(port, "POST", "/api/tasks",
                              R"({"name":"engram.noop"})");
  ASSERT_EQ(created.status, 202) << created.body;
  auto id = parse(created).at("task").at("id").as_int64();
  auto done = wait_for_status(port, id, "succeeded");
  EXPECT_EQ(json::serialize(done.at("result")), R"({"ok":true})");
  EXPECT_EQ(done.at("attempts").as_int64(), 1);

  // A batch is one transaction; unique keys admit one queued task per key.
  auto batch = http_request(
    port, "POST", "/api/tasks",
    R"([{"name":"engram.sleep","args":{"ms":1},"unique_key":"k"},
        {"name":"engram.sleep","args":{"ms":1},"unique_key":"k"},
        {"name":"engram.noop","countdown":3600}])");
  ASSERT_EQ(batch.status, 202) << batch.body;
  auto tasks = parse(batch).at("tasks").as_array();
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_TRUE(tasks[0].at("created").as_bool());
  EXPECT_FALSE(tasks[1].at("created").as_bool());
  EXPECT_EQ(tasks[1].at("id"), tasks[0].at("id"));
  auto later = tasks[2].at("id").as_int64();
  EXPECT_EQ(parse(http_get(port, "/api/tasks/" + std::to_string(later)))
              .at("status")
              .as_string(),
            "queued")
    << "not due for an hour";

  // Cancel the delayed one at once; cancelling again changes nothing.
  auto cancel = http_request(port, "POST",
                             "/api/tasks/" + std::to_string(later) + "/cancel", "");
  ASSERT_EQ(cancel.status, 200) << cancel.body;
  EXPECT_EQ(parse(cancel).at("status").as_string(), "cancelled");
  auto again = http_request(port, "POST",
                            "/api/tasks/" + std::to_string(later) + "/cancel", "");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(parse(again).at("status").as_string(), "cancelled");
  EXPECT_EQ(http_request(port, "POST",
                         "/api/tasks/" + std::to_string(id) + "/cancel", "")
              .status,
            409)
    << "a succeeded task cannot be cancelled";
  // Retry puts a cancelled (or dead) task back; a succeeded one is refused.
  auto retry = http_request(port, "POST",
                            "/api/tasks/" + std::to_string(later) + "/retry", "");
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(parse(retry).at("status").as_string(), "queued");
  wait_for_status(port, later, "succeeded");
  EXPECT_EQ(http_request(port, "POST",
                         "/api/tasks/" + std::to_string(id) + "/retry", "")
              .status,
            409);

  // Bad args are dead at once when they reach a worker some other way; over
  // HTTP a failing task retries and its errors are kept.
  auto failing = http_request(
    port, "POST", "/api/tasks",
    R"({"name":"engram.fail","args":{"failures":5},"max_retries":0})");
  ASSERT_EQ(failing.status, 202);
  auto dead = wait_for_status(port, parse(failing).at("task").at("id").as_int64(),
                              "dead");
  EXPECT_EQ(dead.at("errors").as_array().size(), 1u);

  // Listing: newest first, filtered, with a cursor that pages.
  auto page = parse(http_get(port, "/api/tasks?status=succeeded&limit=1"));
  ASSERT_EQ(page.at("tasks").as_array().size(), 1u);
  auto cursor = std::string{page.at("next_cursor").as_string()};
  auto next = parse(http_get(port, "/api/tasks?status=succeeded&limit=1&cursor="
                                     + cursor));
  ASSERT_EQ(next.at("tasks").as_array().size(), 1u);
  EXPECT_LT(next.at("tasks").as_array()[0].at("id").as_int64(),
            page.at("tasks").as_array()[0].at("id").as_int64());

  auto metrics = http_get(port, "/metrics").body;
  EXPECT_NE(metrics.find("engram_tasks_total{name=\"engram.noop\",state=\"succeeded\"}"),
            std::string::npos)
    << metrics;
}

TEST(task_api, bad_inputs_get_a_clear_error_and_change_nothing) {
  temp_dir dir{"engram-e2e"};
  daemon_process d{dir.path() / "data", {"--http.max_body_bytes", "300000"}};
  auto port = d.wait_for_port();
  ASSERT_NE(port, 0) << d.log();
  struct bad {
    std::string body;
    int status;
    std::string message;
  };
  std::string oversized_batch = "[";
  for (int i = 0; i < 10001; ++i)
    oversized_batch += std::string{i ? "," : ""} + R"({"name":"engram.noop"})";
  oversized_batch += "]";
  std::string too_large = "[" + std::string(300000, ' ') + "]";
  for (const auto& c : std::vector<bad>{
         {"", 400, "the request body is empty"},
         {R"({"name":)", 400, "not valid JSON"},
         {R"("engram.noop")", 400, "a task object or an array"},
         {R"({})", 400, "name is required"},
         {R"({"name":42})", 400, "name must be a string"},
         {R"({"name":"no.such.task"})", 400, "unknown task name 'no.such.task'"},
         {R"({"name":"engram.sleep"})", 400, "args.ms is required"},
         {R"({"name":"engram.sleep","args":{"ms":-1}})", 400,
          "args.ms must be between 0 and 3600000"},
         {R"({"name":"engram.noop","args":[1]})", 400, "args must be a JSON object"},
         {R"({"name":"engram.noop","args":{"x":1}})", 400, "unknown argument args.x"},
         {R"({"name":"engram.noop","priorty":1})", 400, "unknown field priorty"},
         {R"({"name":"engram.noop","priority":"high"})", 400,
          "priority must be an integer"},
         {R"({"name":"engram.noop","run_at":"tomorrow"})", 400,
          "run_at must be an RFC 3339 date-time"},
         {R"({"name":"engram.noop","run_at":"2030-01-01T00:00:00Z","countdown":5})",
          400, "either run_at or countdown"},
         {R"([{"name":"engram.noop"},{"name":"engram.sleep","args":{}}])", 400,
          "tasks[1]. args.ms is required"},
         {"[]", 400, "the array holds no tasks"},
         {oversized_batch, 400, "at most 10000 tasks per request"},
         {too_large, 413, "payload_too_large"},
       }) {
    auto r = http_request(port, "POST", "/api/tasks", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " → " << r.body;
    EXPECT_NE(r.body.find(c.message), std::string::npos)
      << c.body.substr(0, 80) << " → " << r.body;
  }
  EXPECT_EQ(task_count(port), 0) << "no bad request stored anything";

  EXPECT_EQ(http_get(port, "/api/tasks/abc").status, 400);
  EXPECT_EQ(http_get(port, "/api/tasks/0").status, 400);
  EXPECT_EQ(http_get(port, "/api/tasks/424242").status, 404);
  EXPECT_EQ(http_request(port, "POST", "/api/tasks/424242/cancel", "").status, 404);
  EXPECT_EQ(http_request(port, "POST", "/api/tasks/424242/retry", "").status, 404);
  EXPECT_EQ(http_get(port, "/api/tasks?status=done").status, 400);
  EXPECT_EQ(http_get(port, "/api/tasks?limit=0").status, 400);
  EXPECT_EQ(http_get(port, "/api/tasks?cursor=x").status, 400);
}
