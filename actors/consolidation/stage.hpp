#pragma once

// What the phase actors do around the pure plans of phases.hpp: building a
// snapshot from what a project session loaded, and turning a phase's plan
// plus what the providers answer (merged text, summaries, principles, new
// vectors) into the phase's commit (its changes, audit rows and metrics)
// and the function that applies it to the snapshot afterwards.
//
// Providers (DESIGN §6): texts come from the LLM provider; a new vector is
// made by the embedding provider only when its model is the model of the
// memories involved. Otherwise a merged memory keeps its own vector and a
// summary gets the normalised mean of its members'. A principle's vector is
// always its pattern's centroid, so that the next run matches it again.
//
// Audit actions: "merged" (a kept memory; detail absorbed ids and the
// previous content), "superseded" (detail: by, phase), "created" (a summary
// or principle; detail: phase, members), "principle_updated" (detail:
// previous content, pattern), "parent_set" (detail: parent, previous
// parent), "archived" (detail: reason, previous_tier, expires_at) and
// "demoted" (detail: reason, previous_tier, last_used_at).

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "actors/consolidation/settings.hpp"
#include "actors/consolidation/snapshot.hpp"
#include "messages/consolidation.hpp"
#include "runtime/clock.hpp"
#include "runtime/embedding_provider.hpp"
#include "runtime/llm_provider.hpp"

namespace engram::consolidation {

/// What phases need besides the snapshot.
struct phase_services {
  /// Merge, summary and principle texts. Required.
  std::shared_ptr<llm_provider> llm;
  /// New vectors; null: every new vector follows the other-model rule.
  std::shared_ptr<embedding_provider> embedder;
  /// Timestamps of new rows; null: `real_clock()`.
  const clock* clk = nullptr;
};

/// Builds a snapshot from a session's load: vectors normalised once into
/// one matrix per model; a vector whose dimension differs from its model's
/// first one, or that is zero or not finite, counts as none. Stored
/// patterns become `snapshot::patterns` with their members that are still
/// active (a pattern left with none is dropped).
[[nodiscard]] snapshot make_snapshot(std::string project_id, int64_t as_of_us,
                                     snapshot_data data);

/// A phase ready to commit.
struct prepared_phase {
  /// The changes, audit rows and metrics (job_id and project_id filled in
  /// by the caller).
  phase_commit commit;
  /// The plan as JSON (dry runs answer it).
  std::string plan_json;
  /// Agents whose memories the phase changes ("" = project-wide ones).
  std::vector<std::string> agents_changed;
  /// Applies the committed phase to the snapshot.
  std::function<caf::error(snapshot&)> apply;
};

/// Plans phase `phase` (one of patterns, merge, summarize, hierarchy,
/// playbook, decay) on `s` and asks the providers for what it needs.
/// Errors: invalid_argument for an unknown phase, the provider's errors.
[[nodiscard]] caf::expected<prepared_phase>
prepare_phase(std::string_view phase, const snapshot& s, const settings& cfg,
              const phase_services& services);

} // namespace engram::consolidation
