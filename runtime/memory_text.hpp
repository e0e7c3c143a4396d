#pragma once

// The text a consolidation writes (DESIGN §6): the merged text of a kept
// memory that absorbed near-duplicates (merge phase), the summary of a
// cluster of old episodic memories (summarize phase) and the label of a
// pattern (patterns phase). With the `extractive` LLM provider these are
// deterministic and offline (the functions below); with another provider the
// model writes the merged text and the summary.
//
// Content words are the lower-cased word tokens that are not English stop
// words (`content_words` in text_words.hpp); no stemming.

#include <cstddef>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/llm_provider.hpp"

namespace engram {

/// Most sentences `merge_memory_texts` lets the merged text reach by adding
/// sentences of absorbed memories (the kept text itself is never cut).
inline constexpr size_t merge_max_sentences = 5;

/// Most tokens (`count_tokens`) `merge_memory_texts` lets the merged text
/// reach by adding sentences of absorbed memories.
inline constexpr int64_t merge_max_tokens = 200;

/// An absorbed sentence with fewer distinct content words than this is
/// skipped ("Ok.", "Thanks!", "Again.").
inline constexpr size_t merge_min_content_words = 2;

/// An absorbed sentence is skipped when at least this share of its distinct
/// content words already occurs in the sentences kept so far.
inline constexpr double merge_covered_share = 0.7;

/// Most sentences of `summarize_memory_texts`.
inline constexpr size_t summary_max_sentences = 3;

/// Most tokens of `summarize_memory_texts`.
inline constexpr int64_t summary_max_tokens = 120;

/// The deterministic merge of a kept memory (`contents[0]`) with the
/// near-duplicates it absorbs (`contents[1..]`). Starts from the kept text,
/// unchanged; then visits the sentences (`split_sentences`) of each absorbed
/// text in order and appends a sentence only if it adds information: it has
/// at least `merge_min_content_words` distinct content words and less than
/// `merge_covered_share` (70%) of them occur in the kept text or the
/// sentences appended so far. A
/// sentence that would take the result beyond `merge_max_tokens` tokens is
/// skipped; appending stops once the result has `merge_max_sentences`
/// sentences (a kept text that long absorbs no sentence). Appended
/// sentences are separated by a space, each ending in '.', '!' or '?' (a
/// '.' is added where one is missing, also after the kept text). When
/// nothing is appended the result is `contents[0]` as given. Empty input:
/// "".
[[nodiscard]] std::string
merge_memory_texts(const std::vector<std::string>& contents);

/// The deterministic summary of a cluster of memories: their sentences
/// (duplicates, ignoring case and spacing, dropped after the first), each
/// member's last sentence closed with '.', summarised by
/// `summarize_extractive` with `summary_max_tokens`; if that keeps more than
/// `summary_max_sentences` sentences, the selection is summarised once more.
/// At most 3 sentences and 120 tokens; "" when the members have no text.
[[nodiscard]] std::string
summarize_memory_texts(const std::vector<std::string>& contents);

/// A pattern's label: its `max_words` most frequent content words, by the
/// number of members that contain them (ties: alphabetical), joined by
/// spaces, e.g. "deploy staging friday". Words of one character and
/// numbers are left out. "" if the members have no such word.
[[nodiscard]] std::string pattern_label(const std::vector<std::string>& contents,
                                        size_t max_words = 4);

/// The merged text of `contents` (as in `merge_memory_texts`): with the
/// `extractive` provider `merge_memory_texts`, otherwise the model's answer
/// to a merge prompt, trimmed. Fails with invalid_argument when every text
/// is blank, with the provider's error when it fails, and with unspecified
/// when the model answers nothing. Blocks while the model answers.
[[nodiscard]] caf::expected<std::string>
merged_text(llm_provider& llm, const std::vector<std::string>& contents);

/// The summary of the episodic memories `contents`: with the `extractive`
/// provider `summarize_memory_texts`, otherwise the model's answer to a
/// summary prompt, trimmed. Errors as for `merged_text`.
[[nodiscard]] caf::expected<std::string>
summary_text(llm_provider& llm, const std::vector<std::string>& contents);

} // namespace engram
