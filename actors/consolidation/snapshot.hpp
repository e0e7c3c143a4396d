#pragma once

// A project's consolidation snapshot (DESIGN §6): its active memories and
// their unit embeddings, loaded once and handed from phase to phase. Each
// phase plans on the snapshot with pure functions, commits, then applies
// its plan to the snapshot so the next phase sees the result.
//
// Embeddings live per model ("embedding space"): one contiguous matrix of
// unit vectors per model, so cosine is never computed across models.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vector_kernel.hpp"

namespace engram::consolidation {

enum class memory_type : uint8_t {
  episodic,
  semantic,
  procedural,
  identity,
  principle,
};

enum class memory_tier : uint8_t { hot, warm, cold };

enum class memory_status : uint8_t { active, superseded, archived };

[[nodiscard]] std::string_view to_string(memory_type x);
[[nodiscard]] std::string_view to_string(memory_tier x);
[[nodiscard]] std::string_view to_string(memory_status x);
[[nodiscard]] std::optional<memory_type> parse_memory_type(std::string_view s);
[[nodiscard]] std::optional<memory_tier> parse_memory_tier(std::string_view s);
[[nodiscard]] std::optional<memory_status>
parse_memory_status(std::string_view s);

/// No embedding (`memory::space`).
constexpr int32_t no_space = -1;

/// One memory as the phases see it.
struct memory {
  /// Canonical lower-case UUID text (orders like PostgreSQL's uuid).
  std::string id;
  /// Empty: a project-wide memory.
  std::string agent_id;
  memory_type type = memory_type::semantic;
  memory_tier tier = memory_tier::warm;
  memory_status status = memory_status::active;
  int32_t importance = 5;
  bool pinned = false;
  int32_t access_count = 0;
  std::string source_type;
  /// Epoch microseconds.
  int64_t created_at_us = 0;
  std::optional<int64_t> last_accessed_at_us;
  std::optional<int64_t> expires_at_us;
  std::string content;
  /// Empty: none.
  std::string parent_id;
  /// The memory that superseded this one (set by apply_merge and
  /// apply_summaries); empty: none.
  std::string superseded_by;
  /// Index into `snapshot::spaces`, or `no_space`.
  int32_t space = no_space;
  /// Row of its unit vector in that space's matrix.
  uint32_t row = 0;
  /// Created by this run (a summary or principle): takes no further part
  /// in merge and summarize.
  bool created_in_run = false;

  [[nodiscard]] bool active() const {
    return status == memory_status::active;
  }
};

/// The unit vectors of one embedding model.
struct embedding_space {
  std::string model;
  vec::matrix vectors;
};

/// A pattern found by the patterns phase (consumed by hierarchy).
struct pattern {
  /// Indexes into `snapshot::memories`; the first is the seed.
  std::vector<uint32_t> members;
  std::string label;
  int32_t space = no_space;
  /// Normalised mean of the members' vectors (`dim` of its space).
  std::vector<float> centroid;
  /// Set once stored.
  std::string id;
};

/// A playbook entry of the project.
struct playbook_entry {
  std::string id;
  std::string agent_id;
  /// The principle it was made from (empty: none any more).
  std::string principle_id;
  std::string title;
  std::string content;
  int64_t created_at_us = 0;
  int32_t space = no_space;
  uint32_t row = 0;
};

struct snapshot {
  std::string project_id;
  /// The instant the age rules are evaluated at (epoch microseconds).
  int64_t as_of_us = 0;
  /// Active memories at load in (created_at, id) order, then the ones this
  /// run created, in creation order.
  std::vector<memory> memories;
  std::vector<embedding_space> spaces;
  std::vector<pattern> patterns;
  /// Entries in (created_at, id) order, then the ones this run created.
  std::vector<playbook_entry> playbook;

  /// The unit vector of `m`, or nullptr without one.
  [[nodiscard]] const float* vector_of(const memory& m) const {
    return m.space == no_space ? nullptr
                               : spaces[m.space].vectors.row(m.row);
  }
  /// The space of `model`, created (empty) when new; `dim` fixes a new
  /// space's dimension.
  int32_t space_for(std::string_view model, size_t dim);
  /// The index of the space of `model`, or `no_space`.
  [[nodiscard]] int32_t find_space(std::string_view model) const;
};

} // namespace engram::consolidation
