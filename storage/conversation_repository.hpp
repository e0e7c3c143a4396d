#pragma once

// Conversations and their messages (DESIGN §3). A conversation is active,
// idle (no activity for a while: cleanup.close_stale_sessions) or closed
// (archived: cleanup.archive_old_conversations, terminal). A new message
// makes an idle conversation active again; a closed one takes no messages.
// Ids are UUIDs in canonical text form; a malformed id is "not found".

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "runtime/clock.hpp"

namespace engram::storage {

/// What a caller gives to create a conversation.
struct new_conversation {
  std::optional<std::string> project_id;
  std::optional<std::string> agent_id;
  std::optional<std::string> user_id;
  std::string title;
};

/// A row of engram.conversations.
struct conversation_row {
  std::string id;
  std::optional<std::string> project_id;
  std::optional<std::string> agent_id;
  std::optional<std::string> user_id;
  std::string title;
  /// "active", "idle" or "closed".
  std::string status;
  wall_time created_at;
  wall_time updated_at;
  std::optional<wall_time> last_message_at;
};

/// What a caller gives to add a message.
struct new_message {
  /// "system", "user", "assistant" or "tool".
  std::string role;
  std::string content;
  std::optional<int32_t> token_count;
};

/// A row of engram.messages.
struct message_row {
  int64_t id = 0;
  std::string conversation_id;
  std::string role;
  std::string content;
  std::optional<int32_t> token_count;
  wall_time created_at;
};

/// A conversation with all its messages, oldest first.
struct conversation_with_messages {
  conversation_row conversation;
  std::vector<message_row> messages;
};

/// The answer to add_messages.
struct add_messages_result {
  enum class outcome {
    /// The messages were added (in `messages`, in the given order).
    added,
    /// No conversation with that id.
    not_found,
    /// The conversation is closed; nothing was added.
    closed,
  };
  outcome result = outcome::not_found;
  std::vector<message_row> messages;
};

/// Creates an active conversation created (and updated) at `now`. An unknown
/// project or agent violates a foreign key, a malformed id is refused by
/// the cast (pqxx exceptions either way).
[[nodiscard]] conversation_row
create_conversation(pqxx::transaction_base& tx, const new_conversation& c,
                    wall_time now);

/// The conversation `id`, or nullopt when there is none.
[[nodiscard]] std::optional<conversation_row>
get_conversation(pqxx::transaction_base& tx, const std::string& id);

/// The conversation `id` with all its messages (created_at, then id), or
/// nullopt when there is none.
[[nodiscard]] std::optional<conversation_with_messages>
get_conversation_with_messages(pqxx::transaction_base& tx,
                               const std::string& id);

/// Appends `messages` (in order, all created at `now`) to conversation
/// `conversation_id`: its last_message_at and updated_at become `now` and an
/// idle conversation becomes active. Throws std::invalid_argument for a role
/// outside system/user/assistant/tool or a negative token count (before
/// writing anything).
[[nodiscard]] add_messages_result
add_messages(pqxx::transaction_base& tx, const std::string& conversation_id,
             const std::vector<new_message>& messages, wall_time now);

/// Messages of `conversation_id` in order (created_at, then id): those after
/// the message `after_id` in that order (0: from the first), at most
/// `limit` (<= 0: all). Empty for an unknown conversation.
[[nodiscard]] std::vector<message_row>
list_messages(pqxx::transaction_base& tx, const std::string& conversation_id,
              int64_t after_id = 0, int64_t limit = 0);

} // namespace engram::storage
