#include "storage/conversation_repository.hpp"

#include <stdexcept>

#include <pqxx/pqxx>

#include "storage/platform_sql.hpp"

namespace engram::storage {

namespace {

using namespace platform_detail;

constexpr auto conversation_columns
  = "id::text, project_id::text, agent_id::text, user_id, title, status, "
    "engram.to_us(created_at), engram.to_us(updated_at), "
    "engram.to_us(last_message_at)";

constexpr auto message_columns
  = "id, conversation_id::text, role, content, token_count, "
    "engram.to_us(created_at)";

conversation_row to_conversation(const pqxx::row& row) {
  conversation_row c;
  c.id = row[0].as<std::string>();
  c.project_id = optional_string_of(row[1]);
  c.agent_id = optional_string_of(row[2]);
  c.user_id = optional_string_of(row[3]);
  c.title = row[4].as<std::string>();
  c.status = row[5].as<std::string>();
  c.created_at = time_of(row[6]);
  c.updated_at = time_of(row[7]);
  c.last_message_at = optional_time_of(row[8]);
  return c;
}

message_row to_message(const pqxx::row& row) {
  message_row m;
  m.id = row[0].as<int64_t>();
  m.conversation_id = row[1].as<std::string>();
  m.role = row[2].as<std::string>();
  m.content = row[3].as<std::string>();
  m.token_count = optional_of<int32_t>(row[4]);
  m.created_at = time_of(row[5]);
  return m;
}

bool is_role(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant"
         || role == "tool";
}

} // namespace

conversation_row create_conversation(pqxx::transaction_base& tx,
                                     const new_conversation& c,
                                     wall_time now) {
  auto row = tx.exec_params1(
    std::string{"INSERT INTO engram.conversations "
                "(project_id, agent_id, user_id, title, created_at, updated_at) "
                "VALUES ($1::uuid, $2::uuid, $3, $4, engram.from_us($5), "
                "  engram.from_us($5)) RETURNING "}
      + conversation_columns,
    c.project_id, c.agent_id, c.user_id, c.title, to_epoch_us(now));
  return to_conversation(row);
}

std::optional<conversation_row> get_conversation(pqxx::transaction_base& tx,
                                                 const std::string& id) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + conversation_columns
                               + " FROM engram.conversations WHERE id = $1::uuid",
                             id);
  if (rows.empty())
    return std::nullopt;
  return to_conversation(rows[0]);
}

std::optional<conversation_with_messages>
get_conversation_with_messages(pqxx::transaction_base& tx,
                               const std::string& id) {
  auto conversation = get_conversation(tx, id);
  if (!conversation)
    return std::nullopt;
  conversation_with_messages result;
  result.conversation = std::move(*conversation);
  result.messages = list_messages(tx, id);
  return result;
}

add_messages_result add_messages(pqxx::transaction_base& tx,
                                 const std::string& conversation_id,
                                 const std::vector<new_message>& messages,
                                 wall_time now) {
  for (const auto& m : messages) {
    if (!is_role(m.role))
      throw std::invalid_argument("message role must be system, user, "
                                  "assistant or tool, not \""
                                  + m.role + "\"");
    if (m.token_count && *m.token_count < 0)
      throw std::invalid_argument("message token_count must not be negative");
  }
  add_messages_result result;
  if (!is_uuid(conversation_id))
    return result;
  // The row lock orders concurrent appends and keeps a closing cleanup out
  // until this commits.
  auto current = tx.exec_params("SELECT status FROM engram.conversations "
                                "WHERE id = $1::uuid FOR UPDATE",
                                conversation_id);
  if (current.empty())
    return result;
  if (current[0][0].as<std::string>() == "closed") {
    result.result = add_messages_result::outcome::closed;
    return result;
  }
  auto us = to_epoch_us(now);
  result.messages.reserve(messages.size());
  // One statement per message: ids follow the given order.
  for (const auto& m : messages) {
    auto row = tx.exec_params1(
      std::string{"INSERT INTO engram.messages "
                  "(conversation_id, role, content, token_count, created_at) "
                  "VALUES ($1::uuid, $2, $3, $4, engram.from_us($5)) "
                  "RETURNING "}
        + message_columns,
      conversation_id, m.role, m.content, m.token_count, us);
    result.messages.push_back(to_message(row));
  }
  if (!messages.empty())
    tx.exec_params("UPDATE engram.conversations SET status = 'active', "
                   "  last_message_at = greatest(last_message_at, "
                   "    engram.from_us($2)), "
                   "  updated_at = engram.from_us($2) "
                   "WHERE id = $1::uuid",
                   conversation_id, us);
  result.result = add_messages_result::outcome::added;
  return result;
}

std::vector<message_row> list_messages(pqxx::transaction_base& tx,
                                       const std::string& conversation_id,
                                       int64_t after_id, int64_t limit) {
  std::vector<message_row> result;
  if (!is_uuid(conversation_id))
    return result;
  auto rows = tx.exec_params(
    std::string{"SELECT "} + message_columns
      + " FROM engram.messages m WHERE m.conversation_id = $1::uuid "
        "AND ($2::bigint = 0 OR (m.created_at, m.id) > (SELECT a.created_at, a.id "
        "  FROM engram.messages a WHERE a.id = $2::bigint "
        "  AND a.conversation_id = $1::uuid)) "
        "ORDER BY m.created_at, m.id LIMIT $3",
    conversation_id, after_id, limit_param(limit));
  result.reserve(rows.size());
  for (const auto& row : rows)
    result.push_back(to_message(row));
  return result;
}

} // namespace engram::storage
