// What a finished step attempt means and what follows it (pure functions
// beside the chain actor).

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "actors/workflows/step_outcome.hpp"

using namespace engram;
using namespace engram::workflows;
using namespace std::chrono_literals;

namespace {

step_observation exited(int code, std::string out = "{}") {
  step_observation s;
  s.exit.exit_code = code;
  s.stdout_text = std::move(out);
  s.timeout = 30s;
  return s;
}

step_definition step_with(int retries) {
  step_definition s;
  s.name = "apply";
  s.retries = retries;
  s.backoff = 1s;
  s.backoff_max = 3s;
  return s;
}

} // namespace

TEST(workflow_step_outcome, a_clean_exit_with_json_succeeds_with_it) {
  auto d = decide_step(exited(0, " {\"branch\": \"speckit/login\"}\n"));
  EXPECT_EQ(d.status, "succeeded");
  EXPECT_EQ(boost::json::parse(d.payload_json).at("branch").as_string(),
            "speckit/login");
  EXPECT_TRUE(d.error.empty());
}

TEST(workflow_step_outcome, empty_stdout_is_an_empty_object) {
  auto d = decide_step(exited(0, ""));
  EXPECT_EQ(d.status, "succeeded");
  EXPECT_EQ(d.payload_json, "{}");
}

TEST(workflow_step_outcome, a_failed_exit_names_the_code_and_the_end_of_stderr) {
  auto seen = exited(3);
  seen.stderr_tail = "patch does not apply";
  auto d = decide_step(seen);
  EXPECT_EQ(d.status, "failed");
  EXPECT_EQ(d.error_kind, "exit");
  EXPECT_NE(d.error.find("exit code 3"), std::string::npos) << d.error;
  EXPECT_NE(d.error.find("patch does not apply"), std::string::npos);
  seen = exited(-1);
  seen.exit.term_signal = 9;
  EXPECT_NE(decide_step(seen).error.find("signal 9"), std::string::npos);
}

TEST(workflow_step_outcome, invalid_json_on_stdout_fails_the_step) {
  auto d = decide_step(exited(0, "done: 3 files\n"));
  EXPECT_EQ(d.status, "failed");
  EXPECT_EQ(d.error_kind, "invalid_output");
  EXPECT_NE(d.error.find("JSON"), std::string::npos) << d.error;
  EXPECT_EQ(decide_step(exited(0, "{} {}")).status, "failed");
}

TEST(workflow_step_outcome, a_timeout_wins_over_the_exit_status) {
  auto seen = exited(-1);
  seen.exit.term_signal = 15;
  seen.timed_out = true;
  auto d = decide_step(seen);
  EXPECT_EQ(d.error_kind, "timeout");
  EXPECT_NE(d.error.find("30000 ms"), std::string::npos) << d.error;
}

TEST(workflow_step_outcome, a_cancel_wins_over_everything) {
  auto seen = exited(0);
  seen.cancelled = true;
  seen.timed_out = true;
  EXPECT_EQ(decide_step(seen).status, "cancelled");
}

TEST(workflow_step_outcome, success_moves_to_the_next_step_until_the_last) {
  auto s = step_with(0);
  auto m = plan_next(s, 1, 5, 1, "succeeded");
  EXPECT_EQ(m.kind, next_move::next_step);
  EXPECT_EQ(m.step_index, 2);
  EXPECT_EQ(m.try_number, 1);
  EXPECT_EQ(plan_next(s, 4, 5, 1, "succeeded").kind, next_move::none);
}

TEST(workflow_step_outcome, failures_retry_with_doubling_backoff_then_stop) {
  auto s = step_with(3);
  auto m = plan_next(s, 2, 5, 1, "failed");
  EXPECT_EQ(m.kind, next_move::retry);
  EXPECT_EQ(m.step_index, 2);
  EXPECT_EQ(m.try_number, 2);
  EXPECT_EQ(m.delay, 1s);
  EXPECT_EQ(plan_next(s, 2, 5, 2, "failed").delay, 2s);
  EXPECT_EQ(plan_next(s, 2, 5, 3, "failed").delay, 3s); // capped
  EXPECT_EQ(plan_next(s, 2, 5, 4, "failed").kind, next_move::none);
  EXPECT_EQ(plan_next(s, 2, 5, 1, "cancelled").kind, next_move::none);
  EXPECT_EQ(plan_next(step_with(0), 2, 5, 1, "failed").kind, next_move::none);
}

TEST(workflow_step_outcome, a_step_task_names_its_try_and_bounds_its_time) {
  auto t = step_task("workflows", "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10", 3,
                     2, 4, 60s, 5s, 1500ms);
  EXPECT_EQ(t.name, "workflow.step");
  EXPECT_EQ(t.queue, "workflows");
  EXPECT_EQ(t.unique_key,
            "workflow:0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10:2:3:4");
  EXPECT_EQ(t.delay_ms, 1500);
  EXPECT_EQ(t.time_limit_ms, 125000);
  auto args = boost::json::parse(t.args_json).as_object();
  EXPECT_EQ(args.at("step_index").as_int64(), 3);
  EXPECT_EQ(args.at("run_attempt").as_int64(), 2);
  EXPECT_EQ(args.at("try").as_int64(), 4);
}

TEST(workflow_step_outcome, tail_keeps_the_end_of_long_output) {
  EXPECT_EQ(tail_of("short\n\n", 100), "short");
  std::string long_text(300, 'x');
  long_text += "\nlast line";
  auto t = tail_of(long_text, 50);
  EXPECT_LE(t.size(), 50u + 3u);
  EXPECT_NE(t.find("last line"), std::string::npos);
  EXPECT_EQ(tail_of("   \n", 10), "");
}
