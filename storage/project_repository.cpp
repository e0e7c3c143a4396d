#include "storage/project_repository.hpp"

#include <pqxx/pqxx>

#include "messages/errc.hpp"
#include "storage/platform_sql.hpp"

namespace engram::storage {

namespace {

using namespace platform_detail;

/// Whether `text` (already valid JSON, checked by the caller) is an object.
bool json_object_text(const std::string& text) {
  auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && text[first] == '{';
}

} // namespace

memories::project_record to_record(const project_row& row) {
  memories::project_record result;
  result.id = row.id;
  result.name = row.name;
  result.consolidation_enabled = row.consolidation_enabled;
  result.consolidation_config_json = row.consolidation_config_json;
  result.created_at_us = to_epoch_us(row.created_at);
  result.updated_at_us = to_epoch_us(row.updated_at);
  return result;
}

caf::expected<memories::put_project_result>
put_project(pqxx::transaction_base& tx, const memories::put_project_request& req,
            wall_time now) {
  if (!is_uuid(req.id))
    return make_error(errc::invalid_argument,
                      "id: must be a UUID, got '" + req.id.substr(0, 64) + "'");
  if (req.name.empty())
    return make_error(errc::invalid_argument, "name: must not be empty");
  auto config = req.consolidation_config_json.empty()
                  ? std::string{"{}"}
                  : req.consolidation_config_json;
  if (!json_object_text(config))
    return make_error(errc::invalid_argument,
                      "consolidation_config: must be a JSON object");
  // xmax is 0 for a row this statement inserted, the locking transaction's
  // id for one it updated.
  auto row = tx.exec_params1(
    "INSERT INTO engram.projects AS p (id, name, consolidation_enabled, "
    "  consolidation_config, created_at, updated_at) "
    "VALUES ($1::uuid, $2, $3, $4::jsonb, engram.from_us($5), "
    "  engram.from_us($5)) "
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
    "  consolidation_enabled = EXCLUDED.consolidation_enabled, "
    "  consolidation_config = EXCLUDED.consolidation_config, "
    "  updated_at = EXCLUDED.updated_at "
    "RETURNING p.id::text, p.name, p.consolidation_enabled, "
    "  p.consolidation_config::text, engram.to_us(p.created_at), "
    "  engram.to_us(p.updated_at), p.xmax = 0",
    req.id, req.name, req.consolidation_enabled, config, to_epoch_us(now));
  memories::put_project_result result;
  result.project.id = row[0].as<std::string>();
  result.project.name = row[1].as<std::string>();
  result.project.consolidation_enabled = row[2].as<bool>();
  result.project.consolidation_config_json = row[3].as<std::string>();
  result.project.created_at_us = row[4].as<int64_t>();
  result.project.updated_at_us = row[5].as<int64_t>();
  result.created = row[6].as<bool>();
  return result;
}

caf::expected<memories::project_record>
read_project(pqxx::transaction_base& tx, const std::string& id) {
  auto row = get_project(tx, id);
  if (!row)
    return make_error(errc::not_found, "project_id: no project with id " + id);
  return to_record(*row);
}

} // namespace engram::storage
