#pragma once

// The agent platform's tasks (DESIGN §4, §5), registered with
// `register_platform_tasks(registry)`:
//
// - `cleanup.expire_tokens` {batch_size?}, `cleanup.close_stale_sessions`
//   {idle_minutes? = 30, batch_size?}, `cleanup.archive_old_conversations`
//   {days? = 90, batch_size?}, `cleanup.archive_expired_memories`
//   {batch_size?}, `cleanup.purge_finished_tasks` {succeeded_days? = 7,
//   dead_days? = 30, batch_size?} (queue "default"): each takes the clock once, then commits
//   batches of `batch_size` rows (default 1000) until a batch comes back
//   short, checking for a stop request between batches. Idempotent: a rerun
//   (retry, two nodes) finds nothing left to change. Result: the count
//   changed and the number of batches.
//
// - `agent.scheduled_run` {job_id, run_id, fire_time?} (queue "agents"):
//   loads the job; a deleted job, an inactive job (run recorded skipped) and
//   a run that already finished (at-least-once redelivery) end the task
//   successfully with {"status": "skipped", "reason": ...}. Otherwise the
//   run is marked running, the LLM provider ("llm" service) answers the
//   job's message under the agent's system prompt and model, a new
//   conversation of the agent (title = the job's name, user = the job's
//   user) receives both messages with their token counts (the user
//   message's counted locally with `count_tokens`, the answer's as the
//   provider reports it) in one transaction, the answer is POSTed to
//   `delivery_config.webhook_url` when set ("http" service; JSON
//   {event, job_id, job_name, run_id, fire_time, agent_id, conversation_id,
//   content, model, usage, finished_at}; headers `Idempotency-Key:
//   <job_id>:<run_id>` and any `delivery_config.webhook_headers`), and the run is
//   recorded succeeded (consecutive_failures back to 0, run_count + 1).
//
//   Retries and run tracking: DESIGN §5 counts *runs*, and a run is
//   recorded once (schedule_repository's record_run_result). A failure
//   fails the task attempt, so the task's retry policy applies; the run
//   stays "running" and the job's counters do not move while a retry is
//   still to come (the attempt's error is kept in the task's error
//   history). The failure is recorded on the run and the job
//   (consecutive_failures + 1, last_error, deactivation at the fifth) only
//   when no retry will follow: on the task's last attempt, or at once for a
//   failure no retry can fix (the provider refuses the request, a webhook
//   answers 4xx, a malformed delivery config). A retry after a failed
//   delivery asks the model again and makes a new conversation: the earlier
//   one stays as the record of that attempt; the run points to the last.
//
// - `memory.extract` {conversation_id} (queue "memory", retry base 30 s):
//   the conversation's user and assistant messages become facts — with the
//   offline `extract_facts` when the "llm" service is absent or is the
//   extractive provider, otherwise by asking the model for one fact per
//   line — and the facts become active semantic memories (importance 5) of
//   the conversation's project (else its agent's) and agent. Exact
//   duplicates of active memories (and of earlier facts of the same
//   extraction) are skipped and counted, so a rerun creates nothing new.
//   Result: {"conversation_id", "method", "facts", "created",
//   "skipped_duplicates", "memory_ids"}. An unknown conversation, or one
//   with neither project nor agent project, is a permanent failure.
//
// Services (task_services::extra): "llm" holds an `engram::llm_provider`,
// "http" an `engram::http_client`. `get<T>` casts the stored pointer back,
// so store them as `std::shared_ptr<llm_provider>` and
// `std::shared_ptr<http_client>` (the interface types), not as a derived
// type's pointer.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "actors/tasks/task_registry.hpp"
#include "runtime/outbound_http.hpp"

namespace engram::tasks {

/// Settings of the platform tasks that do not travel in their arguments.
struct platform_task_settings {
  /// Rows per cleanup transaction unless the task's `batch_size` says
  /// otherwise.
  int64_t cleanup_batch = 1000;
  /// Bound on one webhook delivery attempt.
  std::chrono::milliseconds webhook_timeout{10000};
  /// Attempts of one delivery within a task attempt (408, 429, 5xx,
  /// timeouts and connection failures are retried).
  retry_options webhook_retry{3, std::chrono::milliseconds{500},
                              std::chrono::milliseconds{10000}};
  /// Upper bound on the answer of a scheduled run (0: the provider's).
  int64_t max_answer_tokens = 0;
  /// Largest number of facts one extraction takes from the model.
  size_t max_facts = 200;
};

/// Registers the cleanup, agent and memory tasks listed at the top of this
/// file.
void register_platform_tasks(task_registry& registry,
                             platform_task_settings settings = {});

/// The facts in a model's "one fact per line" answer: lines trimmed, list
/// markers ("- ", "* ", "• ", "1. ", "1) ") dropped, empty lines and a
/// "none" answer skipped, at most `max_facts`.
[[nodiscard]] std::vector<std::string> parse_fact_lines(std::string_view text,
                                                        size_t max_facts);

/// Whether the attempt running `task` is its last: no retry follows a
/// failure.
[[nodiscard]] inline bool is_last_attempt(const claimed_task& task) {
  return task.attempts > task.max_retries;
}

} // namespace engram::tasks
