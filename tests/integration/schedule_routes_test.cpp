// The schedule API over real HTTP against a real PostgreSQL: every
// endpoint's success, and bad input answered with 400 naming the field (or
// 404 for unknown ids) with nothing stored. The scheduler behind it runs on
// a manual clock, so next_run_at values are exact.

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>

#include "http/router.hpp"
#include "http/schedule_routes.hpp"
#include "http/server.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/metrics.hpp"
#include "tests/integration/scheduler_fixture.hpp"
#include "tests/support/http_client.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr auto unknown_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";

class schedule_routes_test : public test::scheduler_fixture {
protected:
  void SetUp() override {
    scheduler_fixture::SetUp();
    agent = make_agent();
    clock.set(at("2024-03-10T12:01:30Z"));
    scheduler = start(options());
    http::router r;
    http::schedule_route_deps deps;
    deps.sys = &sys;
    // Found in the registry at each request, as the supervisor publishes it.
    sys.registry().put(caf::atom_from_string(scheduler_name), scheduler);
    deps.timeout = 10s;
    http::add_schedule_routes(r, deps);
    http::server_options opts;
    opts.bind = "127.0.0.1";
    opts.port = 0;
    server = std::make_unique<http::server>(io.context(), opts, std::move(r),
                                            metrics);
    ASSERT_FALSE(server->start());
  }

  void TearDown() override {
    server->stop();
    io.stop();
    scheduler_fixture::TearDown();
  }

  test::http_reply call(const std::string& method, const std::string& target,
                        const std::string& body = {}) {
    return test::http_request(server->port(), method, target, body,
                              {{"content-type", "application/json"}});
  }

  static json::object object_of(const test::http_reply& r) {
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v.is_object() ? v.as_object() : json::object{};
  }

  /// The error message of a 4xx reply.
  static std::string message_of(const test::http_reply& r) {
    auto body = object_of(r);
    if (!body.contains("error"))
      return "(no error) " + r.body;
    return std::string{body.at("error").at("message").as_string()};
  }

  std::string create_body(const std::string& extra = {}) {
    return R"({"agent_id": ")" + agent
           + R"(", "name": "digest", "message": "Summarise my inbox",
                "cron_expression": "*/5 * * * *")"
           + extra + "}";
  }

  /// Creates a schedule and returns its JSON.
  json::object create(const std::string& extra = {}) {
    auto r = call("POST", "/api/schedules", create_body(extra));
    EXPECT_EQ(r.status, 201) << r.body;
    return object_of(r);
  }

  int64_t stored_jobs() {
    return count("SELECT count(*) FROM engram.scheduled_jobs");
  }

  /// POST /api/schedules with `body` is refused with 400, the message
  /// containing `needle`, and nothing is stored.
  void expect_refused(const std::string& body, const std::string& needle) {
    auto before = stored_jobs();
    auto r = call("POST", "/api/schedules", body);
    EXPECT_EQ(r.status, 400) << body << " → " << r.body;
    EXPECT_NE(message_of(r).find(needle), std::string::npos)
      << "'" << needle << "' not in: " << message_of(r);
    EXPECT_EQ(stored_jobs(), before);
  }

  std::string agent;
  scheduler_actor scheduler;
  metrics::registry metrics;
  io_threads io{2};
  std::unique_ptr<http::server> server;
};

std::string str(const json::value& v) {
  return v.is_null() ? "null" : std::string{v.as_string()};
}

} // namespace

TEST_F(schedule_routes_test, create_returns_the_schedule_with_its_next_run) {
  auto r = call("POST", "/api/schedules",
                create_body(R"(, "timezone": "Europe/Berlin", "team_id": "t1",
                    "delivery_config": {"webhook_url": "https://hooks.example.com/x"})"));
  ASSERT_EQ(r.status, 201) << r.body;
  auto job = object_of(r);
  EXPECT_EQ(job.at("id").as_string().size(), 36u);
  EXPECT_EQ(str(job.at("agent_id")), agent);
  EXPECT_EQ(str(job.at("team_id")), "t1");
  EXPECT_EQ(str(job.at("user_id")), "null");
  EXPECT_EQ(str(job.at("name")), "digest");
  EXPECT_EQ(str(job.at("message")), "Summarise my inbox");
  EXPECT_EQ(str(job.at("cron_expression")), "*/5 * * * *");
  EXPECT_EQ(str(job.at("timezone")), "Europe/Berlin");
  EXPECT_TRUE(job.at("is_active").as_bool());
  EXPECT_EQ(str(job.at("next_run_at")), "2024-03-10T12:05:00.000000Z");
  EXPECT_EQ(str(job.at("last_run_at")), "null");
  EXPECT_EQ(job.at("run_count").as_int64(), 0);
  EXPECT_EQ(str(job.at("created_at")), "2024-03-10T12:01:30.000000Z");
  EXPECT_EQ(str(job.at("delivery_config").at("webhook_url")),
            "https://hooks.example.com/x");
  EXPECT_EQ(stored_jobs(), 1);
  // Inactive from the start: no next run.
  auto paused = create(R"(, "is_active": false)");
  EXPECT_EQ(str(paused.at("next_run_at")), "null");
}

TEST_F(schedule_routes_test, create_refuses_bad_input_naming_the_field) {
  expect_refused(R"({"agent_id": ")" + agent
                   + R"(", "name": "n", "message": "m",
                        "cron_expression": "*/0 * * * *"})",
                 "cron_expression: minute");
  expect_refused(R"({"agent_id": ")" + agent
                   + R"(", "name": "n", "message": "m",
                        "cron_expression": "0 9 * * MON-FRY"})",
                 "cron_expression: day-of-week");
  expect_refused(create_body(R"(, "timezone": "Europe/Atlantis")"),
                 "timezone: unknown time zone \"Europe/Atlantis\"");
  expect_refused(create_body(R"(, "delivery_config": {"webhook_url": "ftp://x.org/"})"),
                 "delivery_config.webhook_url must be an http or https URL");
  expect_refused(create_body(R"(, "delivery_config": {"webhook_url": "https://"})"),
                 "delivery_config.webhook_url");
  expect_refused(create_body(R"(, "delivery_config": {"email": "a@b.c"})"),
                 "unknown field delivery_config.email");
  expect_refused(create_body(R"(, "delivery_config": "https://x.org")"),
                 "delivery_config must be a JSON object");
  expect_refused(create_body(R"(, "is_active": "yes")"),
                 "is_active must be true or false");
  expect_refused(create_body(R"(, "timezone": 1)"), "timezone must be a string");
  expect_refused(create_body(R"(, "colour": "blue")"), "unknown field colour");
  expect_refused(create_body(R"(, "name": "again")"),
                 "field name is given more than once");
  expect_refused(R"({"agent_id": ")" + agent
                   + R"(", "name": "n", "message": "m"})",
                 "cron_expression is required");
  expect_refused(R"({"agent_id": ")" + agent
                   + R"(", "name": ")" + std::string(201, 'x')
                   + R"(", "message": "m", "cron_expression": "@daily"})",
                 "name is longer than 200 characters");
  expect_refused(R"({"agent_id": "agent-7", "name": "n", "message": "m",
                     "cron_expression": "@daily"})",
                 "agent_id must be a UUID");
  expect_refused(std::string{R"({"agent_id": ")"} + unknown_id
                   + R"(", "name": "n", "message": "m",
                        "cron_expression": "@daily"})",
                 "agent_id: no agent");
  expect_refused(R"({"agent_id": ")" + agent + R"(", "name": )",
                 "JSON");
  expect_refused("[1, 2]", "the request body must be a JSON object");
  expect_refused("", "the request body is empty");
  EXPECT_EQ(stored_jobs(), 0);
}

TEST_F(schedule_routes_test, get_and_list_with_a_cursor) {
  auto a = create();
  clock.advance(1s);
  auto b = create();
  clock.advance(1s);
  auto c = create(R"(, "is_active": false)");
  auto r = call("GET", "/api/schedules/" + std::string{a.at("id").as_string()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(object_of(r), a);

  r = call("GET", "/api/schedules?limit=2");
  ASSERT_EQ(r.status, 200) << r.body;
  auto page = object_of(r);
  auto& items = page.at("schedules").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].at("id"), c.at("id")); // newest first
  EXPECT_EQ(items[1].at("id"), b.at("id"));
  auto cursor = str(page.at("next_cursor"));
  ASSERT_NE(cursor, "null");
  r = call("GET", "/api/schedules?limit=2&cursor=" + cursor);
  ASSERT_EQ(r.status, 200) << r.body;
  page = object_of(r);
  ASSERT_EQ(page.at("schedules").as_array().size(), 1u);
  EXPECT_EQ(page.at("schedules").as_array()[0].at("id"), a.at("id"));
  EXPECT_TRUE(page.at("next_cursor").is_null());

  r = call("GET", "/api/schedules?is_active=false&agent_id=" + agent);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(object_of(r).at("schedules").as_array().size(), 1u);

  EXPECT_EQ(call("GET", "/api/schedules?limit=0").status, 400);
  EXPECT_EQ(call("GET", "/api/schedules?limit=many").status, 400);
  r = call("GET", "/api/schedules?cursor=garbage");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(message_of(r).find("cursor"), std::string::npos) << r.body;
  EXPECT_EQ(call("GET", "/api/schedules?is_active=maybe").status, 400);

  r = call("GET", std::string{"/api/schedules/"} + unknown_id);
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(call("GET", "/api/schedules/not-a-uuid").status, 404);
}

TEST_F(schedule_routes_test, patch_recomputes_the_next_run_and_refuses_bad_input) {
  auto job = create();
  auto path = "/api/schedules/" + std::string{job.at("id").as_string()};
  clock.set(at("2024-03-10T12:07:00Z"));
  auto r = call("PATCH", path,
                R"({"cron_expression": "0 9 * * *", "timezone": "America/New_York",
                    "name": "morning"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto patched = object_of(r);
  EXPECT_EQ(str(patched.at("name")), "morning");
  EXPECT_EQ(str(patched.at("cron_expression")), "0 9 * * *");
  // 09:00 EDT: New York moved its clocks this morning.
  EXPECT_EQ(str(patched.at("next_run_at")), "2024-03-10T13:00:00.000000Z");
  EXPECT_EQ(str(patched.at("updated_at")), "2024-03-10T12:07:00.000000Z");
  // Only the message: the next run stays.
  r = call("PATCH", path, R"({"message": "Something else"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(object_of(r).at("next_run_at")), "2024-03-10T13:00:00.000000Z");
  // Paused: no next run; resumed: from now.
  r = call("PATCH", path, R"({"is_active": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(object_of(r).at("next_run_at")), "null");
  clock.set(at("2024-03-11T14:00:00Z"));
  r = call("PATCH", path, R"({"is_active": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(object_of(r).at("next_run_at")), "2024-03-12T13:00:00.000000Z");
  // An empty patch changes nothing.
  auto before = object_of(call("GET", path));
  r = call("PATCH", path, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(object_of(r), before);

  auto refused = [&](const std::string& body, const std::string& needle) {
    auto r = call("PATCH", path, body);
    EXPECT_EQ(r.status, 400) << body << " → " << r.body;
    EXPECT_NE(message_of(r).find(needle), std::string::npos)
      << "'" << needle << "' not in: " << message_of(r);
    EXPECT_EQ(object_of(call("GET", path)), before) << body;
  };
  refused(R"({"cron_expression": "0 24 * * *"})", "cron_expression: hour");
  refused(R"({"timezone": "Nowhere"})", "timezone: unknown time zone");
  refused(R"({"delivery_config": {"webhook_url": "gopher://x"}})",
          "delivery_config.webhook_url");
  refused(R"({"agent_id": ")" + agent + "\"}", "agent_id cannot be changed");
  refused(R"({"nmae": "typo"})", "unknown field nmae");
  refused(R"({"is_active": 1})", "is_active must be true or false");
  refused(R"({"name": ""})", "name must not be empty");
  refused(R"({"name": )", "JSON");

  r = call("PATCH", std::string{"/api/schedules/"} + unknown_id,
           R"({"name": "x"})");
  EXPECT_EQ(r.status, 404) << r.body;
}

TEST_F(schedule_routes_test, delete_removes_the_schedule) {
  auto job = create();
  auto path = "/api/schedules/" + std::string{job.at("id").as_string()};
  auto r = call("DELETE", path);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(object_of(r).at("deleted").as_bool());
  EXPECT_EQ(call("GET", path).status, 404);
  EXPECT_EQ(call("DELETE", path).status, 404);
  EXPECT_EQ(stored_jobs(), 0);
}

TEST_F(schedule_routes_test, run_now_is_accepted_and_listed_among_the_runs) {
  auto job = create();
  auto id = std::string{job.at("id").as_string()};
  auto r = call("POST", "/api/schedules/" + id + "/run");
  ASSERT_EQ(r.status, 202) << r.body;
  auto body = object_of(r);
  EXPECT_TRUE(body.at("created").as_bool());
  auto& task = body.at("task").as_object();
  EXPECT_EQ(str(task.at("name")), "agent.scheduled_run");
  EXPECT_EQ(str(task.at("status")), "queued");
  EXPECT_EQ(str(task.at("unique_key")), "schedule:job:" + id + "@manual");
  EXPECT_EQ(str(task.at("args").at("job_id")), id);
  auto& run = body.at("run").as_object();
  EXPECT_TRUE(run.at("manual").as_bool());
  EXPECT_TRUE(run.at("fire_time").is_null());
  EXPECT_EQ(run.at("task_id"), task.at("id"));
  EXPECT_EQ(str(run.at("status")), "queued");
  // Asked again while queued: the same task.
  r = call("POST", "/api/schedules/" + id + "/run");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_FALSE(object_of(r).at("created").as_bool());
  EXPECT_EQ(object_of(r).at("task").at("id"), task.at("id"));

  // The scheduler fires it at its slot too: two runs, newest first.
  ASSERT_TRUE(ready(scheduler));
  clock.set(at("2024-03-10T12:05:00Z"));
  ASSERT_TRUE(wait_for("SELECT count(*) FROM engram.scheduled_job_runs", "2"));
  r = call("GET", "/api/schedules/" + id + "/runs");
  ASSERT_EQ(r.status, 200) << r.body;
  auto runs = object_of(r).at("runs").as_array();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(str(runs[0].at("fire_time")), "2024-03-10T12:05:00.000000Z");
  EXPECT_FALSE(runs[0].at("manual").as_bool());
  EXPECT_EQ(runs[1].at("id"), run.at("id"));
  r = call("GET", "/api/schedules/" + id + "/runs?limit=1");
  ASSERT_EQ(r.status, 200) << r.body;
  auto page = object_of(r);
  ASSERT_EQ(page.at("runs").as_array().size(), 1u);
  auto cursor = str(page.at("next_cursor"));
  r = call("GET", "/api/schedules/" + id + "/runs?limit=1&cursor=" + cursor);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(object_of(r).at("runs").as_array()[0].at("id"), run.at("id"));
  EXPECT_TRUE(object_of(r).at("next_cursor").is_null());
  // And the schedule moved on.
  ASSERT_TRUE(eventually([&] {
    return str(object_of(call("GET", "/api/schedules/" + id))
                 .at("next_run_at"))
           == "2024-03-10T12:10:00.000000Z";
  }));

  EXPECT_EQ(call("GET", "/api/schedules/" + id + "/runs?cursor=x").status, 400);
  EXPECT_EQ(call("GET", std::string{"/api/schedules/"} + unknown_id + "/runs")
              .status,
            404);
  r = call("POST", std::string{"/api/schedules/"} + unknown_id + "/run");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(count("SELECT count(*) FROM engram.tasks"), 2);
}

TEST_F(schedule_routes_test, a_scheduler_that_is_not_running_is_503) {
  // The supervisor unpublishes a stopped child.
  sys.registry().erase(caf::atom_from_string(scheduler_name));
  auto r = call("GET", "/api/schedules");
  EXPECT_EQ(r.status, 503) << r.body;
  r = call("POST", "/api/schedules", create_body());
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(stored_jobs(), 0);
}
