#include "runtime/memory_text.hpp"

#include <algorithm>
#include <exception>
#include <map>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "messages/errc.hpp"
#include "runtime/text_words.hpp"

namespace engram {

namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
         || c == '\v';
}

std::string_view trim(std::string_view x) noexcept {
  while (!x.empty() && is_space(x.front()))
    x.remove_prefix(1);
  while (!x.empty() && is_space(x.back()))
    x.remove_suffix(1);
  return x;
}

/// Whether `s` ends in '.', '!' or '?', possibly followed by closing quotes
/// or brackets.
bool has_end_mark(std::string_view s) {
  auto end = s.find_last_not_of("\"')]");
  return end != std::string_view::npos
         && (s[end] == '.' || s[end] == '!' || s[end] == '?');
}

/// `s` with a final '.' unless it already ends a sentence.
std::string closed(std::string_view s) {
  std::string result{s};
  if (!result.empty() && !has_end_mark(result))
    result += '.';
  return result;
}

std::set<std::string> word_set(std::string_view text) {
  auto words = content_words(text);
  return {std::make_move_iterator(words.begin()),
          std::make_move_iterator(words.end())};
}

/// Lower case, runs of whitespace as one space: duplicate detection.
std::string sentence_key(std::string_view s) {
  std::string result;
  for (char c : trim(s)) {
    if (is_space(c)) {
      if (!result.empty() && result.back() != ' ')
        result += ' ';
    } else {
      result += c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  return result;
}

bool all_blank(const std::vector<std::string>& contents) {
  return std::all_of(contents.begin(), contents.end(),
                     [](const std::string& x) { return trim(x).empty(); });
}

/// The memories as a numbered list, for a prompt.
std::string numbered(const std::vector<std::string>& contents) {
  std::string result;
  size_t n = 0;
  for (const auto& c : contents) {
    auto text = trim(c);
    if (text.empty())
      continue;
    result += std::to_string(++n);
    result += ". ";
    // One line per memory: line breaks inside a memory would read as new
    // list items.
    for (char ch : text)
      result += ch == '\n' || ch == '\r' ? ' ' : ch;
    result += '\n';
  }
  return result;
}

/// Asks `llm` and returns its trimmed answer; an empty answer is an error.
/// Temperature 0 (a re-run should write the same text) and at most
/// `max_tokens` tokens (a memory is short).
caf::expected<std::string> ask(llm_provider& llm, std::string system,
                               std::string user, const char* what,
                               int64_t max_tokens) {
  completion_options opts;
  opts.temperature = 0.0;
  opts.max_tokens = max_tokens;
  auto answer = llm.complete({{"system", std::move(system)},
                              {"user", std::move(user)}},
                             opts);
  if (!answer)
    return std::move(answer.error());
  auto text = trim(answer->content);
  if (text.empty())
    return make_error(errc::unspecified,
                      std::string{what} + ": the " + llm.name()
                        + " provider answered with an empty text");
  return std::string{text};
}

} // namespace

std::string merge_memory_texts(const std::vector<std::string>& contents) {
  if (contents.empty())
    return {};
  const auto& kept = contents.front();
  auto kept_text = trim(kept);
  auto covered = word_set(kept_text);
  auto sentences = split_sentences(kept_text).size();
  auto tokens = count_tokens(kept_text);
  std::vector<std::string> added;
  for (size_t i = 1; i < contents.size(); ++i) {
    for (const auto& sentence : split_sentences(contents[i])) {
      if (sentences >= merge_max_sentences)
        break;
      auto words = word_set(sentence);
      if (words.size() < merge_min_content_words)
        continue; // "Ok.", "Yes!", "Again": nothing to add.
      auto known = std::count_if(words.begin(), words.end(),
                                 [&](const std::string& w) {
                                   return covered.count(w) > 0;
                                 });
      if (static_cast<double>(known)
          >= merge_covered_share * static_cast<double>(words.size()))
        continue;
      auto text = closed(sentence);
      auto n = count_tokens(text);
      if (tokens + n > merge_max_tokens)
        continue;
      tokens += n;
      ++sentences;
      covered.insert(words.begin(), words.end());
      added.push_back(std::move(text));
    }
  }
  if (added.empty())
    return kept;
  std::string result = closed(kept_text);
  for (const auto& s : added) {
    if (!result.empty())
      result += ' ';
    result += s;
  }
  return result;
}

std::string summarize_memory_texts(const std::vector<std::string>& contents) {
  // One sentence per line: a member without a final '.' must not run into
  // the next one, and a repeated sentence must not be picked twice.
  std::string joined;
  std::unordered_set<std::string> seen;
  for (const auto& c : contents)
    for (const auto& sentence : split_sentences(c))
      if (seen.insert(sentence_key(sentence)).second) {
        joined += closed(sentence);
        joined += '\n';
      }
  auto summary = summarize_extractive(joined, summary_max_tokens);
  if (split_sentences(summary).size() > summary_max_sentences)
    summary = summarize_extractive(summary, summary_max_tokens);
  return summary;
}

std::string pattern_label(const std::vector<std::string>& contents,
                          size_t max_words) {
  // Word -> number of members that contain it.
  std::map<std::string, size_t> support;
  for (const auto& c : contents)
    for (const auto& w : word_set(c)) {
      if (w.size() < 2
          || std::all_of(w.begin(), w.end(),
                         [](char ch) { return ch >= '0' && ch <= '9'; }))
        continue;
      ++support[w];
    }
  std::vector<std::pair<std::string, size_t>> ranked(support.begin(),
                                                     support.end());
  // The map is alphabetical already; a stable sort keeps that for ties.
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) {
                     return a.second > b.second;
                   });
  std::string result;
  for (size_t i = 0; i < ranked.size() && i < max_words; ++i) {
    if (!result.empty())
      result += ' ';
    result += ranked[i].first;
  }
  return result;
}

caf::expected<std::string>
merged_text(llm_provider& llm, const std::vector<std::string>& contents) {
  if (all_blank(contents))
    return make_error(errc::invalid_argument,
                      "merged text: every memory text is blank");
  if (llm.name() == "extractive") {
    try {
      return merge_memory_texts(contents);
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"merged text: "} + e.what());
    }
  }
  return ask(llm,
             "You maintain the long-term memory of an AI agent. Merge these "
             "near-duplicate memories into one memory. Keep every distinct "
             "fact (names, numbers, dates, decisions), drop repetitions, do "
             "not add anything that is not in them. The first memory is the "
             "one kept: keep its wording where you can. Answer with one short "
             "paragraph in the third person, without a preamble, a list or "
             "quotes.",
             "Memories:\n" + numbered(contents), "merged text", 400);
}

caf::expected<std::string>
summary_text(llm_provider& llm, const std::vector<std::string>& contents) {
  if (all_blank(contents))
    return make_error(errc::invalid_argument,
                      "summary text: every memory text is blank");
  if (llm.name() == "extractive") {
    try {
      return summarize_memory_texts(contents);
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"summary text: "} + e.what());
    }
  }
  return ask(llm,
             "You maintain the long-term memory of an AI agent. Summarise "
             "these episodic memories (things that happened) into one "
             "semantic memory: the lasting fact, habit or lesson they show "
             "together. Keep names, numbers and decisions that matter, do not "
             "add anything that is not in them. Answer with at most three "
             "short sentences, without a preamble, a list or quotes.",
             "Episodic memories:\n" + numbered(contents), "summary text", 200);
}

} // namespace engram
