#pragma once

// The thresholds and windows of consolidation (DESIGN §6) with their
// defaults; a project's `consolidation_config` overrides any of them under
// the same key names.

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace engram::consolidation {

struct settings {
  /// patterns: greedy clustering by cosine > pattern_threshold; a cluster
  /// of at least pattern_min_support members is a pattern.
  double pattern_threshold = 0.80;
  int32_t pattern_min_support = 3;
  /// merge: near-duplicates have cosine > merge_threshold.
  double merge_threshold = 0.92;
  /// summarize: old episodic memories (created more than
  /// summarize_min_age_days before as_of, access_count <
  /// summarize_max_access_count) cluster by cosine > summarize_threshold
  /// with a cluster's seed; clusters of more than 2 members are summarised.
  double summarize_threshold = 0.80;
  double summarize_min_age_days = 7;
  int32_t summarize_max_access_count = 3;
  /// hierarchy: patterns of at least principle_min_support members become
  /// principles; an existing principle with cosine > principle_threshold
  /// is updated instead.
  int32_t principle_min_support = 5;
  double principle_threshold = 0.92;
  /// playbook: a principle updates the entry with cosine >
  /// playbook_threshold, else creates one.
  double playbook_threshold = 0.90;
  /// decay: warm memories not accessed (else created) for more than
  /// demote_after_days are demoted to cold, except identity, pinned and
  /// importance >= demote_importance_floor.
  double demote_after_days = 30;
  int32_t demote_importance_floor = 8;

  bool operator==(const settings&) const = default;
};

/// The defaults overridden by the keys of `config_json` (a JSON object as
/// stored in projects.consolidation_config). Unknown keys and out-of-range
/// values are errors (errc::invalid_argument naming
/// "consolidation_config.<key>"): thresholds in (0, 1], supports >= 2,
/// windows > 0 days, summarize_max_access_count >= 0,
/// demote_importance_floor in 1..10.
[[nodiscard]] caf::expected<settings>
settings_from_json(std::string_view config_json);

/// Every key of `settings` with its value, as a JSON object (recorded in a
/// job's options so a job says which thresholds it used).
[[nodiscard]] std::string to_json(const settings& s);

} // namespace engram::consolidation
