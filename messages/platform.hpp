#pragma once

// Storage messages of the agent platform (DESIGN §3–§5): the periodic
// cleanups, conversations and their messages, memories extracted from a
// conversation, agents, and the bookkeeping of scheduled agent runs. The
// storage worker answers each with a value or an `errc` error; see the
// signatures in messages/storage.hpp.
//
// Conventions (the protocol carries no optionals): an empty id string means
// "none", times are epoch microseconds with 0 meaning "none", a token count
// of -1 means "unknown". `now_us` is the caller's clock (the daemon's
// injectable clock), never the database server's.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "messages/tasks.hpp"

namespace engram::platform {

// -- cleanups (each changes at most `limit` rows and returns how many) -------

/// Deletes refresh tokens whose expires_at <= now.
struct expire_tokens {
  int64_t now_us = 0;
  int64_t limit = 1000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expire_tokens& x) {
  return f(caf::meta::type_name("expire_tokens"), x.now_us, x.limit);
}

/// Marks active conversations idle after `idle_minutes` without activity.
struct close_stale_sessions {
  int64_t now_us = 0;
  int64_t idle_minutes = 30;
  int64_t limit = 1000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, close_stale_sessions& x) {
  return f(caf::meta::type_name("close_stale_sessions"), x.now_us,
           x.idle_minutes, x.limit);
}

/// Closes open conversations after `days` days without activity.
struct archive_old_conversations {
  int64_t now_us = 0;
  int64_t days = 90;
  int64_t limit = 1000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        archive_old_conversations& x) {
  return f(caf::meta::type_name("archive_old_conversations"), x.now_us, x.days,
           x.limit);
}

/// Archives active memories whose expires_at <= now.
struct archive_expired_memories {
  int64_t now_us = 0;
  int64_t limit = 1000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        archive_expired_memories& x) {
  return f(caf::meta::type_name("archive_expired_memories"), x.now_us,
           x.limit);
}

// -- conversations ------------------------------------------------------------

/// A conversation as stored.
struct conversation_info {
  std::string id;
  /// Empty: none.
  std::string project_id;
  std::string agent_id;
  std::string user_id;
  std::string title;
  /// "active", "idle" or "closed".
  std::string status;
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
  /// 0: no message yet.
  int64_t last_message_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_info& x) {
  return f(caf::meta::type_name("conversation_info"), x.id, x.project_id,
           x.agent_id, x.user_id, x.title, x.status, x.created_at_us,
           x.updated_at_us, x.last_message_at_us);
}

/// A message as stored.
struct message_info {
  int64_t id = 0;
  std::string conversation_id;
  std::string role;
  std::string content;
  /// -1: unknown.
  int32_t token_count = -1;
  int64_t created_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_info& x) {
  return f(caf::meta::type_name("message_info"), x.id, x.conversation_id,
           x.role, x.content, x.token_count, x.created_at_us);
}

/// A message to append.
struct new_message {
  /// "system", "user", "assistant" or "tool".
  std::string role;
  std::string content;
  /// -1: unknown.
  int32_t token_count = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_message& x) {
  return f(caf::meta::type_name("new_message"), x.role, x.content,
           x.token_count);
}

/// A conversation with its messages, oldest first.
struct conversation_detail {
  conversation_info conversation;
  std::vector<message_info> messages;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_detail& x) {
  return f(caf::meta::type_name("conversation_detail"), x.conversation,
           x.messages);
}

/// Creates an active conversation and appends `messages` to it, in one
/// transaction. Project and agent must exist (not_found naming the field
/// otherwise); an agent of another project than `project_id` is
/// invalid_argument; without `project_id` the conversation takes its
/// agent's project. A role outside system/user/assistant/tool or a
/// negative token count is invalid_argument, and nothing is written.
struct create_conversation {
  std::string project_id;
  std::string agent_id;
  std::string user_id;
  std::string title;
  std::vector<new_message> messages;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_conversation& x) {
  return f(caf::meta::type_name("create_conversation"), x.project_id,
           x.agent_id, x.user_id, x.title, x.messages, x.now_us);
}

/// Reads a conversation with all its messages; not_found for an unknown id.
struct get_conversation {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_conversation& x) {
  return f(caf::meta::type_name("get_conversation"), x.id);
}

/// Appends messages (in order, all at `now_us`) to a conversation and
/// returns them as stored. not_found for an unknown conversation, conflict
/// for a closed one, invalid_argument for a bad role or token count; all or
/// nothing.
struct add_messages {
  std::string conversation_id;
  std::vector<new_message> messages;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, add_messages& x) {
  return f(caf::meta::type_name("add_messages"), x.conversation_id,
           x.messages, x.now_us);
}

// -- memories -----------------------------------------------------------------

/// One fact extracted from a conversation.
struct extracted_fact {
  /// "episodic" or "semantic".
  std::string type = "semantic";
  std::string content;
  /// 1–10.
  int32_t importance = 5;
  /// Empty: none.
  std::vector<float> embedding;
  /// Required with an embedding.
  std::string embedding_model;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, extracted_fact& x) {
  return f(caf::meta::type_name("extracted_fact"), x.type, x.content,
           x.importance, x.embedding, x.embedding_model);
}

/// Inserts facts as active memories of a project (and agent; empty:
/// project-wide), skipping exact duplicates of active memories and of
/// earlier facts (storage/platform_repository.hpp).
struct insert_extracted_memories {
  std::string project_id;
  std::string agent_id;
  std::string conversation_id;
  std::vector<extracted_fact> facts;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        insert_extracted_memories& x) {
  return f(caf::meta::type_name("insert_extracted_memories"), x.project_id,
           x.agent_id, x.conversation_id, x.facts, x.now_us);
}

/// What an insertion did.
struct extraction_info {
  int64_t created = 0;
  int64_t skipped_duplicates = 0;
  /// Ids of the created memories, in input order.
  std::vector<std::string> memory_ids;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, extraction_info& x) {
  return f(caf::meta::type_name("extraction_info"), x.created,
           x.skipped_duplicates, x.memory_ids);
}

/// Enqueues `task` (a memory.extract request) in the same transaction that
/// checks that conversation `conversation_id` exists: not_found, and no
/// task, for an unknown conversation. Returns the task as stored.
struct request_extraction {
  std::string conversation_id;
  tasks::enqueue_request task;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_extraction& x) {
  return f(caf::meta::type_name("request_extraction"), x.conversation_id,
           x.task, x.now_us);
}

// -- agents -------------------------------------------------------------------

/// An agent as stored.
struct agent_info {
  std::string id;
  /// Empty: a global agent.
  std::string project_id;
  std::string name;
  std::string system_prompt;
  /// Empty: the daemon's default model.
  std::string model;
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, agent_info& x) {
  return f(caf::meta::type_name("agent_info"), x.id, x.project_id, x.name,
           x.system_prompt, x.model, x.created_at_us, x.updated_at_us);
}

/// Creates an agent (empty id: a new random one); not_found naming
/// project_id for an unknown project.
struct create_agent {
  std::string id;
  std::string project_id;
  std::string name;
  std::string system_prompt;
  std::string model;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_agent& x) {
  return f(caf::meta::type_name("create_agent"), x.id, x.project_id, x.name,
           x.system_prompt, x.model, x.now_us);
}

/// Reads an agent; not_found for an unknown id.
struct get_agent {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_agent& x) {
  return f(caf::meta::type_name("get_agent"), x.id);
}

// -- scheduled agent runs (DESIGN §5) ------------------------------------------

/// A scheduled job as stored.
struct scheduled_job_info {
  std::string id;
  std::string team_id;
  std::string agent_id;
  std::string user_id;
  std::string name;
  std::string message;
  std::string cron_expression;
  std::string timezone;
  bool is_active = true;
  int64_t last_run_at_us = 0;
  int64_t next_run_at_us = 0;
  int64_t run_count = 0;
  int32_t consecutive_failures = 0;
  std::string last_error;
  /// A JSON object, e.g. {"webhook_url": "https://..."}.
  std::string delivery_config_json = "{}";
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduled_job_info& x) {
  return f(caf::meta::type_name("scheduled_job_info"), x.id, x.team_id,
           x.agent_id, x.user_id, x.name, x.message, x.cron_expression,
           x.timezone, x.is_active, x.last_run_at_us, x.next_run_at_us,
           x.run_count, x.consecutive_failures, x.last_error,
           x.delivery_config_json, x.created_at_us, x.updated_at_us);
}

/// Reads a scheduled job; not_found for an unknown id.
struct get_scheduled_job {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_scheduled_job& x) {
  return f(caf::meta::type_name("get_scheduled_job"), x.id);
}

/// Marks a run running; false when there is no such run or it already
/// finished (the caller must not run it again).
struct record_run_start {
  std::string job_id;
  int64_t run_id = 0;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_run_start& x) {
  return f(caf::meta::type_name("record_run_start"), x.job_id, x.run_id,
           x.now_us);
}

/// Finishes a run and applies the job's tracking (DESIGN §5) once per run.
struct record_run_result {
  std::string job_id;
  int64_t run_id = 0;
  bool succeeded = false;
  std::string error;
  /// The conversation the run produced; empty: none.
  std::string conversation_id;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_run_result& x) {
  return f(caf::meta::type_name("record_run_result"), x.job_id, x.run_id,
           x.succeeded, x.error, x.conversation_id, x.now_us);
}

/// The job's tracking after a run result.
struct run_tracking_info {
  /// False: the run did not exist or had finished already; nothing changed.
  bool recorded = false;
  int64_t run_count = 0;
  int32_t consecutive_failures = 0;
  bool is_active = true;
  /// This result deactivated the job.
  bool deactivated = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_tracking_info& x) {
  return f(caf::meta::type_name("run_tracking_info"), x.recorded, x.run_count,
           x.consecutive_failures, x.is_active, x.deactivated);
}

/// Finishes a run as skipped (the job's tracking does not change); false
/// when there is no such unfinished run.
struct record_run_skipped {
  std::string job_id;
  int64_t run_id = 0;
  std::string reason;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_run_skipped& x) {
  return f(caf::meta::type_name("record_run_skipped"), x.job_id, x.run_id,
           x.reason, x.now_us);
}

} // namespace engram::platform
