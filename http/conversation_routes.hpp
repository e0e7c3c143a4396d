#pragma once

#include <chrono>
#include <cstddef>

#include <caf/actor_system.hpp>

#include "actors/tasks/task_registry.hpp"
#include "http/router.hpp"

namespace engram::http {

/// What the conversation routes need.
struct conversation_route_deps {
  /// Where the storage pool runs (requests go to it by message).
  caf::actor_system* sys = nullptr;
  /// Holds `memory.extract`: its defaults make the queued task, its handler
  /// runs an inline extraction.
  const tasks::task_registry* registry = nullptr;
  /// What an inline extraction's handler sees (clock, providers); its clock
  /// also stamps every write of these routes.
  const tasks::task_services* services = nullptr;
  /// `background.enabled`: queue extractions (true) or run them inline.
  bool background_enabled = true;
  /// Bound on each request to the storage pool.
  std::chrono::milliseconds timeout{10000};
};

/// Limits on what one request may carry (larger: 400 naming the field; the
/// server's body limit answers 413 before any of these).
inline constexpr size_t max_messages_per_request = 1000;
inline constexpr size_t max_message_bytes = 1024 * 1024;
inline constexpr size_t max_title_bytes = 1000;
inline constexpr size_t max_user_id_bytes = 255;
/// Inline extractions running at once (each on a thread of its own); more
/// are answered 503 `unavailable`.
inline constexpr size_t max_inline_extractions = 8;

/// Registers the conversation API (times in RFC 3339 UTC, ids as UUIDs):
/// - `POST /api/conversations` {project_id?, agent_id?, user_id?, title?,
///   messages?} → 201 with the conversation and its messages. Unknown
///   project or agent → 404; an agent of another project → 400; without a
///   project the conversation takes its agent's.
/// - `GET /api/conversations/{id}` → 200 with its messages, oldest first.
/// - `POST /api/conversations/{id}/messages` one {role, content,
///   token_count?} or an array of up to 1000 → 201 {"conversation_id",
///   "messages"}; all or nothing; a closed conversation → 409. Without
///   token_count a message is counted with `count_tokens`.
/// - `POST /api/conversations/{id}/extract` (no body, or {}) → 202
///   {"mode":"queued","task":{...}}: `memory.extract` enqueued in the
///   transaction that checks the conversation exists. With
///   `background_enabled` off, or when the queue cannot be reached
///   (database unavailable, timeout, storage pool not running), the
///   extraction runs inline on a blocking actor of its own and answers 200
///   {"mode":"inline","reason":...,"result":{...}}; an inline extraction
///   that fails answers 422 (no retry can fix it) or 503 (try again),
///   code `extraction_failed`; past `max_inline_extractions` at once, 503
///   `unavailable`. An enqueue that timed out may still commit later: the
///   task then finds the facts known (duplicates are skipped), so the
///   fallback can run an extraction twice but never loses one.
/// Bad input (malformed JSON, wrong types, unknown or repeated fields,
/// malformed UUIDs, values past the limits above) is refused with 400 naming
/// the field, before anything is written.
/// Throws std::logic_error when `sys`, `registry` or `services` is missing.
void add_conversation_routes(router& r, conversation_route_deps deps);

} // namespace engram::http
