#include "storage/platform_repository.hpp"

#include <bit>
#include <stdexcept>

#include <pqxx/pqxx>

#include "storage/platform_sql.hpp"

namespace engram::storage {

namespace {

using namespace platform_detail;

/// Class id of the advisory locks that serialise extractions per project
/// and agent ("eng" + 0x01).
constexpr int32_t extraction_lock_class = 0x656e6701;

constexpr auto project_columns
  = "id::text, name, consolidation_enabled, consolidation_config::text, "
    "engram.to_us(created_at), engram.to_us(updated_at)";

constexpr auto agent_columns
  = "id::text, project_id::text, name, system_prompt, model, "
    "engram.to_us(created_at), engram.to_us(updated_at)";

project_row to_project(const pqxx::row& row) {
  project_row p;
  p.id = row[0].as<std::string>();
  p.name = row[1].as<std::string>();
  p.consolidation_enabled = row[2].as<bool>();
  p.consolidation_config_json = row[3].as<std::string>();
  p.created_at = time_of(row[4]);
  p.updated_at = time_of(row[5]);
  return p;
}

agent_row to_agent(const pqxx::row& row) {
  agent_row a;
  a.id = row[0].as<std::string>();
  a.project_id = optional_string_of(row[1]);
  a.name = row[2].as<std::string>();
  a.system_prompt = row[3].as<std::string>();
  a.model = row[4].as<std::string>();
  a.created_at = time_of(row[5]);
  a.updated_at = time_of(row[6]);
  return a;
}

/// float32 little-endian, whatever the host's byte order.
std::string encode_embedding(const std::vector<float>& v) {
  std::string bytes;
  bytes.reserve(v.size() * 4);
  for (float f : v) {
    auto u = std::bit_cast<uint32_t>(f);
    for (int i = 0; i < 4; ++i)
      bytes.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  return bytes;
}

void validate(const extracted_fact& f) {
  if (f.type != "episodic" && f.type != "semantic")
    throw std::invalid_argument("an extracted memory is episodic or "
                                "semantic, not \""
                                + f.type + "\"");
  if (f.content.empty())
    throw std::invalid_argument("an extracted memory needs content");
  if (f.importance < 1 || f.importance > 10)
    throw std::invalid_argument("memory importance must be 1-10, not "
                                + std::to_string(f.importance));
  if (!f.embedding.empty() && f.embedding_model.empty())
    throw std::invalid_argument("an embedding needs its embedding_model");
}

} // namespace

project_row create_project(pqxx::transaction_base& tx, const new_project& p,
                           wall_time now) {
  auto row = tx.exec_params1(
    std::string{"INSERT INTO engram.projects (id, name, consolidation_enabled, "
                "  consolidation_config, created_at, updated_at) "
                "VALUES (coalesce(nullif($1, '')::uuid, gen_random_uuid()), "
                "  $2, $3, $4::jsonb, engram.from_us($5), engram.from_us($5)) "
                "RETURNING "}
      + project_columns,
    p.id, p.name, p.consolidation_enabled,
    p.consolidation_config_json.empty() ? std::string{"{}"}
                                        : p.consolidation_config_json,
    to_epoch_us(now));
  return to_project(row);
}

std::optional<project_row> get_project(pqxx::transaction_base& tx,
                                       const std::string& id) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + project_columns
                               + " FROM engram.projects WHERE id = $1::uuid",
                             id);
  if (rows.empty())
    return std::nullopt;
  return to_project(rows[0]);
}

bool lock_project(pqxx::transaction_base& tx, const std::string& id) {
  if (!is_uuid(id))
    return false;
  return !tx.exec_params("SELECT 1 FROM engram.projects WHERE id = $1::uuid "
                         "FOR KEY SHARE",
                         id)
            .empty();
}

agent_row create_agent(pqxx::transaction_base& tx, const new_agent& a,
                       wall_time now) {
  auto row = tx.exec_params1(
    std::string{"INSERT INTO engram.agents (id, project_id, name, "
                "  system_prompt, model, created_at, updated_at) "
                "VALUES (coalesce(nullif($1, '')::uuid, gen_random_uuid()), "
                "  $2::uuid, $3, $4, $5, engram.from_us($6), "
                "  engram.from_us($6)) "
                "RETURNING "}
      + agent_columns,
    a.id, a.project_id, a.name, a.system_prompt, a.model, to_epoch_us(now));
  return to_agent(row);
}

std::optional<agent_row> get_agent(pqxx::transaction_base& tx,
                                   const std::string& id) {
  if (!is_uuid(id))
    return std::nullopt;
  auto rows = tx.exec_params(std::string{"SELECT "} + agent_columns
                               + " FROM engram.agents WHERE id = $1::uuid",
                             id);
  if (rows.empty())
    return std::nullopt;
  return to_agent(rows[0]);
}

extraction_result
insert_extracted_memories(pqxx::transaction_base& tx,
                          const std::string& project_id,
                          const std::optional<std::string>& agent_id,
                          const std::string& conversation_id,
                          const std::vector<extracted_fact>& facts,
                          wall_time now) {
  for (const auto& f : facts)
    validate(f);
  extraction_result result;
  if (facts.empty())
    return result;
  if (!lock_project(tx, project_id))
    throw std::invalid_argument("project " + project_id
                                + " does not exist (any more)");
  // Held until the transaction ends: a concurrent extraction for the same
  // project and agent waits, then sees what this one inserted.
  tx.exec_params("SELECT pg_advisory_xact_lock($1, "
                 "  hashtext($2 || '/' || coalesce($3, '')))",
                 extraction_lock_class, project_id, agent_id);
  // Separate statements for a project-wide memory and an agent's, so the
  // duplicate lookup uses memories_active_content_idx either way.
  const std::string same_agent = agent_id ? "m.agent_id = $2::uuid"
                                          : "m.agent_id IS NULL "
                                            "AND $2::uuid IS NULL";
  const std::string sql
    = "INSERT INTO engram.memories (project_id, agent_id, type, tier, status, "
      "  content, embedding, embedding_model, importance, source_type, "
      "  metadata, created_at, updated_at) "
      "SELECT $1::uuid, $2::uuid, $3::text, 'warm', 'active', $4::text, "
      "  nullif($5::bytea, ''::bytea), nullif($6::text, ''), $7::integer, "
      "  'conversation', "
      "  jsonb_build_object('conversation_id', $8::text), "
      "  engram.from_us($9::bigint), engram.from_us($9::bigint) "
      "WHERE NOT EXISTS (SELECT 1 FROM engram.memories m "
      "  WHERE m.project_id = $1::uuid AND "
      + same_agent
      + "  AND m.status = 'active' AND hashtext(m.content) = hashtext($4::text) "
        "  AND m.content = $4::text) "
        "RETURNING id::text";
  auto us = to_epoch_us(now);
  // One statement per fact: a fact sees the ones inserted before it, so
  // duplicates within the input are skipped too.
  for (const auto& f : facts) {
    auto embedding = encode_embedding(f.embedding);
    pqxx::binarystring bytes{embedding.data(), embedding.size()};
    auto rows = tx.exec_params(sql, project_id, agent_id, f.type, f.content,
                               bytes, f.embedding_model, f.importance,
                               conversation_id, us);
    if (rows.empty()) {
      ++result.skipped_duplicates;
    } else {
      ++result.created;
      result.ids.push_back(rows[0][0].as<std::string>());
    }
  }
  return result;
}

} // namespace engram::storage
