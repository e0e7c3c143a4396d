#pragma once

// Projects and their memories as the API and consolidation see them
// (DESIGN §3, §6, §8): putting and reading a project, the bulk import of
// memories, listing and reading memories (with their audit history), and
// restoring a superseded or archived memory. The storage worker answers
// each with a value or an `errc` error; see the signatures in
// messages/storage.hpp and storage/memory_repository.hpp. Also the
// EMBEDDER interface: what turns the text of imported memories into
// vectors.
//
// Conventions (the protocol carries no optionals): an empty id string means
// "none", times are epoch microseconds with 0 meaning "none", JSON columns
// travel as JSON text, an empty embedding means "none". `now_us` is the
// caller's clock (the daemon's injectable clock), never the database
// server's.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace engram::memories {

// -- projects -------------------------------------------------------------------

/// A project as stored.
struct project_record {
  std::string id;
  std::string name;
  bool consolidation_enabled = true;
  /// A JSON object: overrides of the consolidation defaults.
  std::string consolidation_config_json = "{}";
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, project_record& x) {
  return f(caf::meta::type_name("project_record"), x.id, x.name,
           x.consolidation_enabled, x.consolidation_config_json,
           x.created_at_us, x.updated_at_us);
}

/// Creates project `id` or replaces its name, flag and config (created_at
/// stays). The caller validated the config (http/project_routes.hpp); a
/// malformed id, an empty name or a config that is not a JSON object is
/// invalid_argument.
struct put_project_request {
  std::string id;
  std::string name;
  bool consolidation_enabled = true;
  std::string consolidation_config_json = "{}";
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, put_project_request& x) {
  return f(caf::meta::type_name("put_project_request"), x.id, x.name,
           x.consolidation_enabled, x.consolidation_config_json, x.now_us);
}

/// The project after a put, and whether the put created it.
struct put_project_result {
  project_record project;
  bool created = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, put_project_result& x) {
  return f(caf::meta::type_name("put_project_result"), x.project, x.created);
}

/// Reads a project; not_found for an unknown (or malformed) id.
struct get_project_request {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_project_request& x) {
  return f(caf::meta::type_name("get_project_request"), x.id);
}

// -- import ---------------------------------------------------------------------

/// One memory to import, as the client gave it (defaults filled in).
struct memory_row {
  /// Empty: a new random id.
  std::string id;
  /// Empty: a project-wide memory.
  std::string agent_id;
  /// episodic, semantic, procedural, identity or principle.
  std::string type;
  /// hot, warm or cold.
  std::string tier = "warm";
  /// active, superseded or archived.
  std::string status = "active";
  std::string source_type = "import";
  /// 1–10.
  int32_t importance = 5;
  bool pinned = false;
  int32_t access_count = 0;
  /// 0: the import's now.
  int64_t created_at_us = 0;
  /// 0: none.
  int64_t last_accessed_at_us = 0;
  /// 0: none.
  int64_t expires_at_us = 0;
  /// A JSON object.
  std::string metadata_json = "{}";
  std::string content;
  /// Empty: none. Stored as float32 little-endian.
  std::vector<float> embedding;
  /// The model that made `embedding`; required with one.
  std::string embedding_model;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_row& x) {
  return f(caf::meta::type_name("memory_row"), x.id, x.agent_id, x.type,
           x.tier, x.status, x.source_type, x.importance, x.pinned,
           x.access_count, x.created_at_us, x.last_accessed_at_us,
           x.expires_at_us, x.metadata_json, x.content, x.embedding,
           x.embedding_model);
}

/// Imports `rows` into project `project_id` in one transaction: all or
/// nothing. not_found for an unknown project; invalid_argument naming the
/// row ("memories[3].id: ...") for a bad value, a duplicate id within the
/// request, an id that an existing memory has, or an embedding whose
/// dimension differs from the other vectors of its model (in the request
/// or already stored in the project).
struct import_memories_request {
  std::string project_id;
  std::vector<memory_row> rows;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        import_memories_request& x) {
  return f(caf::meta::type_name("import_memories_request"), x.project_id,
           x.rows, x.now_us);
}

/// What an import stored: the ids of the rows, in request order.
struct import_result {
  int64_t count = 0;
  std::vector<std::string> ids;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, import_result& x) {
  return f(caf::meta::type_name("import_result"), x.count, x.ids);
}

// -- reading --------------------------------------------------------------------

/// A memory as stored. The vector itself travels only in a single read
/// (get_memory_request); lists carry its model and dimension.
struct memory_record {
  std::string id;
  std::string project_id;
  /// Empty: project-wide.
  std::string agent_id;
  std::string type;
  std::string tier;
  std::string status;
  std::string content;
  /// Empty: no embedding.
  std::string embedding_model;
  /// 0: no embedding.
  int32_t embedding_dimension = 0;
  /// Filled by get_memory_request only.
  std::vector<float> embedding;
  int32_t importance = 5;
  bool pinned = false;
  int32_t access_count = 0;
  std::string source_type;
  /// Empty: none.
  std::string superseded_by;
  std::string parent_id;
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
  /// 0: none.
  int64_t last_accessed_at_us = 0;
  int64_t expires_at_us = 0;
  /// A JSON object.
  std::string metadata_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_record& x) {
  return f(caf::meta::type_name("memory_record"), x.id, x.project_id,
           x.agent_id, x.type, x.tier, x.status, x.content, x.embedding_model,
           x.embedding_dimension, x.embedding, x.importance, x.pinned,
           x.access_count, x.source_type, x.superseded_by, x.parent_id,
           x.created_at_us, x.updated_at_us, x.last_accessed_at_us,
           x.expires_at_us, x.metadata_json);
}

/// Lists a project's memories newest first (created_at, then id, both
/// descending); every non-empty filter must match. `cursor` is the
/// `next_cursor` of the previous page (empty: the first page); a page
/// continues after its cursor's row, so memories added meanwhile never
/// repeat or hide rows of later pages. not_found for an unknown project;
/// invalid_argument for a bad filter value or cursor.
struct list_memories_request {
  std::string project_id;
  std::string agent_id;
  std::string type;
  std::string status;
  std::string tier;
  std::string cursor;
  /// 1–1000.
  int64_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        list_memories_request& x) {
  return f(caf::meta::type_name("list_memories_request"), x.project_id,
           x.agent_id, x.type, x.status, x.tier, x.cursor, x.limit);
}

/// One page of memories; `next_cursor` is empty on the last page.
struct memory_page {
  std::vector<memory_record> memories;
  std::string next_cursor;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_page& x) {
  return f(caf::meta::type_name("memory_page"), x.memories, x.next_cursor);
}

/// One entry of a memory's audit history.
struct memory_audit_row {
  int64_t id = 0;
  /// Empty: not made by a consolidation job (e.g. a restore).
  std::string job_id;
  std::string action;
  /// A JSON object.
  std::string detail_json = "{}";
  int64_t at_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_audit_row& x) {
  return f(caf::meta::type_name("memory_audit_row"), x.id, x.job_id, x.action,
           x.detail_json, x.at_us);
}

/// Reads a memory (with its vector) and its audit history, oldest first;
/// not_found for an unknown id.
struct get_memory_request {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_memory_request& x) {
  return f(caf::meta::type_name("get_memory_request"), x.id);
}

/// A memory and its audit history.
struct memory_detail {
  memory_record memory;
  std::vector<memory_audit_row> audit;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_detail& x) {
  return f(caf::meta::type_name("memory_detail"), x.memory, x.audit);
}

// -- restore --------------------------------------------------------------------

/// Makes a superseded or archived memory active again and records an audit
/// row "restored": a superseded one loses its superseded_by, an archived one
/// gets back the tier its archiving audit row recorded ("previous_tier";
/// warm when there is none). Answers the memory as restored; not_found for
/// an unknown id, conflict for an active memory.
struct restore_memory_request {
  std::string memory_id;
  int64_t now_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        restore_memory_request& x) {
  return f(caf::meta::type_name("restore_memory_request"), x.memory_id,
           x.now_us);
}

// -- embedding ------------------------------------------------------------------

/// Texts to embed, with the embedding provider the daemon is configured
/// with.
struct embed_texts_request {
  std::vector<std::string> texts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, embed_texts_request& x) {
  return f(caf::meta::type_name("embed_texts_request"), x.texts);
}

/// One vector per text, in order: `values` holds texts.size() rows of
/// `dimension` floats (row-major), all made by `model`.
struct embed_texts_result {
  std::string model;
  int64_t dimension = 0;
  std::vector<float> values;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, embed_texts_result& x) {
  return f(caf::meta::type_name("embed_texts_result"), x.model, x.dimension,
           x.values);
}

} // namespace engram::memories

namespace engram {

/// The EMBEDDER interface: embeds texts with the configured embedding
/// provider (DESIGN §6, Providers). Errors: `unavailable` when the provider
/// cannot be reached (retryable), `invalid_argument` for input it refuses.
using embedder_actor = caf::typed_actor<
  // Returns one vector per text, in order, and the model that made them.
  caf::replies_to<memories::embed_texts_request>::with<memories::embed_texts_result>>;

} // namespace engram
