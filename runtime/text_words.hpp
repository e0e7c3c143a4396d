#pragma once

// Word-level helpers shared by the deterministic text code (the extractive
// provider, the hashing embedder, memory merging): which words are English
// stop words, and the content words of a text. Words are the word tokens of
// `tokenize` (llm_provider.hpp), lower-cased (ASCII only; bytes >= 0x80 are
// kept as they are).

#include <string>
#include <string_view>
#include <vector>

namespace engram {

/// Returns whether `lower_word` (already lower case) is one of the English
/// stop words the extractive code ignores ("the", "and", "is", ...).
[[nodiscard]] bool is_stop_word(std::string_view lower_word) noexcept;

/// The lower-cased word tokens of `text` that are not stop words, in order,
/// repeats included; punctuation and other single-character tokens are
/// dropped. No stemming.
[[nodiscard]] std::vector<std::string> content_words(std::string_view text);

} // namespace engram
