#pragma once

// Projects, agents, and the memories that extraction (memory.extract)
// writes (DESIGN §3). Ids are UUIDs in canonical text form; a malformed id
// is "not found". JSON columns travel as JSON text.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "runtime/clock.hpp"

namespace engram::storage {

/// What a caller gives to create a project.
struct new_project {
  /// Empty: a new random id.
  std::string id;
  std::string name;
  bool consolidation_enabled = true;
  /// A JSON object: overrides of the consolidation defaults.
  std::string consolidation_config_json = "{}";
};

/// A row of engram.projects.
struct project_row {
  std::string id;
  std::string name;
  bool consolidation_enabled = true;
  std::string consolidation_config_json;
  wall_time created_at;
  wall_time updated_at;
};

/// What a caller gives to create an agent.
struct new_agent {
  /// Empty: a new random id.
  std::string id;
  /// None: a global agent.
  std::optional<std::string> project_id;
  std::string name;
  std::string system_prompt;
  /// Empty: the daemon's default model.
  std::string model;
};

/// A row of engram.agents.
struct agent_row {
  std::string id;
  std::optional<std::string> project_id;
  std::string name;
  std::string system_prompt;
  std::string model;
  wall_time created_at;
  wall_time updated_at;
};

/// One fact extracted from a conversation, to become a memory.
struct extracted_fact {
  /// "episodic" or "semantic".
  std::string type = "semantic";
  std::string content;
  /// 1–10.
  int32_t importance = 5;
  /// Empty: none yet. Stored as float32 little-endian.
  std::vector<float> embedding;
  /// The model that made `embedding`; required with one.
  std::string embedding_model;
};

/// What insert_extracted_memories did.
struct extraction_result {
  int64_t created = 0;
  /// Facts not inserted because their exact content is already an active
  /// memory of the project and agent, or came earlier in the same input.
  int64_t skipped_duplicates = 0;
  /// Ids of the created memories, in input order.
  std::vector<std::string> ids;
};

/// Creates a project created (and updated) at `now`. Throws what libpqxx
/// throws for a duplicate id or a consolidation config that is not a JSON
/// object.
[[nodiscard]] project_row create_project(pqxx::transaction_base& tx,
                                         const new_project& p, wall_time now);

/// The project `id`, or nullopt when there is none.
[[nodiscard]] std::optional<project_row>
get_project(pqxx::transaction_base& tx, const std::string& id);

/// Locks project `id` against deletion (FOR KEY SHARE) until the
/// transaction ends; false when there is no such project. Every
/// transaction that inserts memories takes it first: memories.project_id
/// has no foreign key (migration 011).
[[nodiscard]] bool lock_project(pqxx::transaction_base& tx,
                                const std::string& id);

/// Creates an agent created (and updated) at `now`. An unknown project
/// violates a foreign key, a malformed id is refused by the cast (pqxx
/// exceptions either way).
[[nodiscard]] agent_row create_agent(pqxx::transaction_base& tx,
                                     const new_agent& a, wall_time now);

/// The agent `id`, or nullopt when there is none.
[[nodiscard]] std::optional<agent_row> get_agent(pqxx::transaction_base& tx,
                                                 const std::string& id);

/// Inserts the facts extracted from conversation `conversation_id` as active
/// warm memories of `project_id` and `agent_id` (none: project-wide), with
/// source_type "conversation", metadata {"conversation_id": ...}, created at
/// `now`. A fact whose exact content (byte for byte, no trimming) equals an
/// active memory of the same project and agent, of any type, or an earlier
/// fact of `facts`, is skipped. Concurrent extractions for the same project
/// and agent are serialised (transaction-scoped advisory lock), so two of
/// them never insert the same content twice. Throws std::invalid_argument,
/// before writing anything, for a type other than episodic/semantic, empty
/// content, importance outside 1–10, or an embedding without its model.
[[nodiscard]] extraction_result
insert_extracted_memories(pqxx::transaction_base& tx,
                          const std::string& project_id,
                          const std::optional<std::string>& agent_id,
                          const std::string& conversation_id,
                          const std::vector<extracted_fact>& facts,
                          wall_time now);

} // namespace engram::storage
