#pragma once

// What a finished step attempt means and what comes after it: pure
// functions beside the chain actor (actors/workflows/chain_actor.hpp),
// unit-tested without processes, actors or a database.

#include <chrono>
#include <cstdint>
#include <string>

#include "actors/workflows/definition.hpp"
#include "actors/workflows/step_process.hpp"
#include "messages/tasks.hpp"

namespace engram::workflows {

/// The name of the durable task that runs one step attempt.
inline constexpr const char* step_task_name = "workflow.step";

/// What the chain saw of an attempt.
struct step_observation {
  /// The run was cancelled while the step ran (its group was killed).
  bool cancelled = false;
  /// The step ran past `timeout` (its group was killed).
  bool timed_out = false;
  std::chrono::milliseconds timeout{0};
  step_exit exit;
  /// stdout as read (at most max_output_bytes + 1 bytes).
  std::string stdout_text;
  size_t max_output_bytes = 16u << 20;
  /// The end of stderr, for the error message.
  std::string stderr_tail;
};

/// The attempt's recorded outcome.
struct step_decision {
  /// succeeded, failed or cancelled.
  std::string status;
  /// The JSON result (succeeded only).
  std::string payload_json;
  std::string error;
  /// A `failure` name (messages/workflows.hpp), "cancelled" or empty.
  std::string error_kind;
};

/// Cancelled wins over everything; then a timeout; then a failed exit
/// (exit code or signal, with the end of stderr); then stdout that is not
/// one JSON value; else succeeded with stdout as the payload.
[[nodiscard]] step_decision decide_step(const step_observation& seen);

/// What follows an attempt.
struct next_move {
  enum kind_t { none, next_step, retry };
  kind_t kind = none;
  int32_t step_index = 0;
  int32_t try_number = 1;
  std::chrono::milliseconds delay{0};
};

/// succeeded → the next step (try 1) unless it was the last; failed →
/// the same step's next try after its backoff while tries remain
/// (try_number <= retries); cancelled or out of tries → none.
[[nodiscard]] next_move plan_next(const step_definition& step,
                                  int32_t step_index, int32_t step_count,
                                  int32_t try_number,
                                  const std::string& status);

/// The `workflow.step` task of one try: args {run_id, step_index,
/// run_attempt, try}, unique key "workflow:<run>:<run_attempt>:<index>:<try>"
/// (so a try is queued at most once), on `queue`, with a hard time limit
/// of the step's timeout + `kill_grace` + one minute.
[[nodiscard]] tasks::enqueue_request
step_task(const std::string& queue, const std::string& run_id,
          int32_t step_index, int32_t run_attempt, int32_t try_number,
          std::chrono::milliseconds step_timeout,
          std::chrono::milliseconds kill_grace,
          std::chrono::milliseconds delay = std::chrono::milliseconds{0});

/// The last `max_bytes` of `text`, cut at a line start when one is near,
/// trimmed of trailing whitespace.
[[nodiscard]] std::string tail_of(const std::string& text, size_t max_bytes);

} // namespace engram::workflows
