#include "actors/workflows/step_outcome.hpp"

#include <algorithm>

#include <boost/json.hpp>

#include "messages/errc.hpp"

namespace engram::workflows {

std::string tail_of(const std::string& text, size_t max_bytes) {
  auto end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos)
    return {};
  std::string_view body{text.data(), end + 1};
  if (body.size() <= max_bytes)
    return std::string{body};
  auto start = body.size() - max_bytes;
  // Start at a line when one begins within the first quarter of the window.
  auto nl = body.find('\n', start);
  if (nl != std::string_view::npos && nl + 1 < body.size()
      && nl - start < max_bytes / 4)
    start = nl + 1;
  return "…" + std::string{body.substr(start)};
}

step_decision decide_step(const step_observation& seen) {
  step_decision d;
  auto with_stderr = [&](std::string msg) {
    if (!seen.stderr_tail.empty())
      msg += "; stderr: " + seen.stderr_tail;
    return msg;
  };
  if (seen.cancelled) {
    d.status = "cancelled";
    d.error = "cancelled by an operator; the step's process group was "
              "stopped";
    d.error_kind = "cancelled";
    return d;
  }
  d.status = "failed";
  if (seen.timed_out) {
    d.error = with_stderr("timed out after "
                          + std::to_string(seen.timeout.count())
                          + " ms; the step's process group was killed");
    d.error_kind = failure::timeout;
    return d;
  }
  if (!seen.exit.success()) {
    d.error = with_stderr("the step failed: " + seen.exit.to_string());
    d.error_kind = failure::exit;
    return d;
  }
  auto payload = parse_step_output(seen.stdout_text, seen.max_output_bytes);
  if (!payload) {
    d.error = message_of(payload.error());
    if (d.error.empty())
      d.error = "stdout is not valid JSON";
    d.error_kind = failure::invalid_output;
    return d;
  }
  d.status = "succeeded";
  d.payload_json = std::move(*payload);
  return d;
}

next_move plan_next(const step_definition& step, int32_t step_index,
                    int32_t step_count, int32_t try_number,
                    const std::string& status) {
  next_move m;
  if (status == "succeeded") {
    if (step_index + 1 < step_count) {
      m.kind = next_move::next_step;
      m.step_index = step_index + 1;
      m.try_number = 1;
    }
    return m;
  }
  if (status == "failed" && try_number <= step.retries) {
    m.kind = next_move::retry;
    m.step_index = step_index;
    m.try_number = try_number + 1;
    m.delay = retry_delay(step, try_number + 1);
  }
  return m;
}

tasks::enqueue_request step_task(const std::string& queue,
                                 const std::string& run_id,
                                 int32_t step_index, int32_t run_attempt,
                                 int32_t try_number,
                                 std::chrono::milliseconds step_timeout,
                                 std::chrono::milliseconds kill_grace,
                                 std::chrono::milliseconds delay) {
  tasks::enqueue_request req;
  req.name = step_task_name;
  req.queue = queue;
  boost::json::object args;
  args["run_id"] = run_id;
  args["step_index"] = step_index;
  args["run_attempt"] = run_attempt;
  args["try"] = try_number;
  req.args_json = boost::json::serialize(args);
  // Retries of the task itself cover what is not the step's fault: a
  // database away, a worker that died mid-step.
  req.max_retries = 10;
  req.delay_ms = delay.count();
  req.unique_key = "workflow:" + run_id + ":" + std::to_string(run_attempt)
                   + ":" + std::to_string(step_index) + ":"
                   + std::to_string(try_number);
  req.time_limit_ms
    = (step_timeout + kill_grace + std::chrono::minutes{1}).count();
  return req;
}

} // namespace engram::workflows
