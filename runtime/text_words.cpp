#include "runtime/text_words.hpp"

#include <algorithm>
#include <array>

#include "runtime/llm_provider.hpp"

namespace engram {

namespace {

// Sorted, so that a lookup is a binary search without allocation (the
// hashing embedder asks for every word of every text it embeds).
constexpr auto stop_word_list = std::to_array<std::string_view>({
  "a",      "about",   "after", "all",   "also",  "am",    "an",
  "and",    "any",     "are",   "as",    "at",    "be",    "because",
  "been",   "before",  "being", "but",   "by",    "can",   "could",
  "did",    "do",      "does",  "doing", "for",   "from",  "had",
  "has",    "have",    "having", "he",   "her",   "here",  "hers",
  "him",    "his",     "how",   "i",     "if",    "in",    "into",
  "is",     "it",      "its",   "just",  "me",    "more",  "most",
  "my",     "no",      "not",   "now",   "of",    "on",    "once",
  "only",   "or",      "other", "our",   "ours",  "out",   "over",
  "s",      "she",     "should", "so",   "some",  "such",  "t",
  "than",   "that",    "the",   "their", "them",  "then",  "there",
  "these",  "they",    "this",  "those", "through", "to",  "too",
  "under",  "until",   "up",    "very",  "was",   "we",    "were",
  "what",   "when",    "where", "which", "while", "who",   "whom",
  "why",    "will",    "with",  "would", "you",   "your",  "yours",
});

static_assert(std::is_sorted(stop_word_list.begin(), stop_word_list.end()),
              "keep the stop words sorted: lookups are binary searches");

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_word_start(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
         || (c >= 'A' && c <= 'Z') || c == '_';
}

} // namespace

bool is_stop_word(std::string_view lower_word) noexcept {
  return std::binary_search(stop_word_list.begin(), stop_word_list.end(),
                            lower_word);
}

std::vector<std::string> content_words(std::string_view text) {
  std::vector<std::string> result;
  for (auto tok : tokenize(text)) {
    if (!is_word_start(tok.front()))
      continue;
    std::string w{tok};
    std::transform(w.begin(), w.end(), w.begin(), lower);
    if (!is_stop_word(w))
      result.push_back(std::move(w));
  }
  return result;
}

} // namespace engram
