#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timestamp.hpp>

namespace engram::tasks {

/// What a producer asks for when it enqueues a task.
struct enqueue_request {
  /// Registered task name, e.g. "cleanup.expire_tokens".
  std::string name;
  std::string queue = "default";
  /// Arguments as a JSON object text.
  std::string args_json = "{}";
  /// Higher runs first.
  int32_t priority = 0;
  int32_t max_retries = 3;
  /// Delay before the task may run (0 = now).
  int64_t delay_ms = 0;
  /// At most one queued-or-running task per key; empty = no key.
  std::string unique_key;
  /// Soft limit (cooperative stop) and hard limit (attempt abandoned); 0 = none.
  int64_t soft_time_limit_ms = 0;
  int64_t time_limit_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_request& x) {
  return f(caf::meta::type_name("enqueue_request"), x.name, x.queue,
           x.args_json, x.priority, x.max_retries, x.delay_ms, x.unique_key,
           x.soft_time_limit_ms, x.time_limit_ms);
}

/// The answer to an enqueue: the task's id and whether this call created it
/// (false: a queued-or-running task with the same unique key existed).
struct enqueue_result {
  int64_t id = 0;
  bool created = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_result& x) {
  return f(caf::meta::type_name("enqueue_result"), x.id, x.created);
}

/// A task handed to a worker by a claim, with the lease that fences it.
struct claimed_task {
  int64_t id = 0;
  std::string name;
  std::string queue;
  std::string args_json;
  /// Attempt number of this run (1 for the first).
  int32_t attempts = 0;
  int32_t max_retries = 0;
  int64_t soft_time_limit_ms = 0;
  int64_t time_limit_ms = 0;
  /// Changes at every claim; completion and heartbeats must present it.
  std::string lease_token;
  caf::timestamp lease_until;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, claimed_task& x) {
  return f(caf::meta::type_name("claimed_task"), x.id, x.name, x.queue,
           x.args_json, x.attempts, x.max_retries, x.soft_time_limit_ms,
           x.time_limit_ms, x.lease_token, x.lease_until);
}

/// How a finished attempt ended, reported by the lease holder.
struct task_outcome {
  int64_t id = 0;
  std::string lease_token;
  bool succeeded = false;
  /// Result JSON on success.
  std::string result_json;
  /// Error text on failure.
  std::string error;
  /// Failure that no retry can fix (bad args): dead at once.
  bool permanent = false;
  /// Delay before the retry, from the task's retry policy.
  int64_t retry_delay_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_outcome& x) {
  return f(caf::meta::type_name("task_outcome"), x.id, x.lease_token,
           x.succeeded, x.result_json, x.error, x.permanent, x.retry_delay_ms);
}

} // namespace engram::tasks
