#include "runtime/llm_provider.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <map>
#include <numeric>
#include <set>
#include <unordered_set>

#include <boost/json.hpp>

#include "messages/errc.hpp"
#include "runtime/openai_api.hpp"
#include "runtime/text_words.hpp"
#include "runtime/ascii.hpp"

namespace engram {

namespace json = boost::json;

namespace {

// -- text helpers --------------------------------------------------------------

bool is_space(char c) noexcept {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool is_word_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

char lower(char c) noexcept {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string_view trim(std::string_view x) noexcept {
  while (!x.empty() && is_space(x.front()))
    x.remove_prefix(1);
  while (!x.empty() && is_space(x.back()))
    x.remove_suffix(1);
  return x;
}

std::vector<std::string_view> words_of(std::string_view x) {
  std::vector<std::string_view> result;
  size_t i = 0;
  while (i < x.size()) {
    while (i < x.size() && is_space(x[i]))
      ++i;
    auto start = i;
    while (i < x.size() && !is_space(x[i]))
      ++i;
    if (i > start)
      result.push_back(x.substr(start, i - start));
  }
  return result;
}

/// Drops a list marker ("- ", "* ", "• ", "+ ", "1. ", "2) ") from a line.
std::string_view drop_list_marker(std::string_view line) {
  for (std::string_view marker : {"- ", "* ", "+ ", "\u2022 "})
    if (line.substr(0, marker.size()) == marker)
      return trim(line.substr(marker.size()));
  size_t i = 0;
  while (i < line.size() && i < 3 && std::isdigit(static_cast<unsigned char>(line[i])))
    ++i;
  if (i > 0 && i + 1 < line.size() && (line[i] == '.' || line[i] == ')')
      && line[i + 1] == ' ')
    return trim(line.substr(i + 2));
  return line;
}

bool is_closing(char c) noexcept {
  return c == '"' || c == '\'' || c == ')' || c == ']';
}

/// Whether the '.' at `pos` of `line` belongs to an abbreviation or an
/// initial rather than ending a sentence.
bool is_abbreviation(std::string_view line, size_t pos) {
  static const std::set<std::string, std::less<>> known{
    "e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs",
    "cf", "approx", "fig", "no"};
  auto start = pos;
  while (start > 0
         && (std::isalpha(static_cast<unsigned char>(line[start - 1]))
             || line[start - 1] == '.'))
    --start;
  auto word = ascii_lower(line.substr(start, pos - start));
  if (word.empty())
    return false;
  if (word.size() == 1)
    return true; // an initial: "J. Smith"
  return known.count(word) > 0;
}

void split_line(std::string_view line, std::vector<std::string>& out) {
  size_t start = 0;
  size_t i = 0;
  auto emit = [&](size_t end) {
    auto s = trim(line.substr(start, end - start));
    if (!s.empty())
      out.emplace_back(s);
    start = end;
  };
  while (i < line.size()) {
    char c = line[i];
    if (c != '.' && c != '!' && c != '?') {
      ++i;
      continue;
    }
    auto mark = i;
    auto j = i + 1;
    while (j < line.size() && (line[j] == '.' || line[j] == '!' || line[j] == '?'))
      ++j;
    while (j < line.size() && is_closing(line[j]))
      ++j;
    if (j < line.size() && !is_space(line[j])) {
      i = j; // "3.14", "example.com"
      continue;
    }
    if (c == '.' && j == mark + 1 && is_abbreviation(line, mark)) {
      i = j;
      continue;
    }
    emit(j);
    i = j;
  }
  emit(line.size());
}

/// The first `n` tokens of `x`, as a prefix of `x`.
std::string_view token_prefix(std::string_view x, int64_t n) {
  auto toks = tokenize(x);
  if (n <= 0 || toks.empty())
    return {};
  if (static_cast<size_t>(n) >= toks.size())
    return x;
  const auto& last = toks[static_cast<size_t>(n) - 1];
  return x.substr(0, static_cast<size_t>(last.data() + last.size() - x.data()));
}

// -- fact extraction -------------------------------------------------------------

/// Letters, digits and single spaces, lower case: for comparisons.
std::string normalize(std::string_view x) {
  std::string result;
  for (char c : x) {
    if (is_word_char(c) || c == '\'') {
      result += lower(c);
    } else if (!result.empty() && result.back() != ' ') {
      result += ' ';
    }
  }
  while (!result.empty() && result.back() == ' ')
    result.pop_back();
  return result;
}

/// Drops a leading interjection ("Hi there,", "Thanks!", "Ok,") from `s`.
std::string_view drop_interjection(std::string_view s) {
  static const std::set<std::string, std::less<>> fillers{
    "hi", "hello", "hey", "there", "thanks", "thank", "you", "ok", "okay",
    "sure", "great", "yes", "yeah", "yep", "no", "nope", "well", "oh", "ah",
    "alright", "cool", "nice", "awesome", "perfect", "right", "so", "and",
    "also", "wow", "hmm", "good", "morning", "evening", "afternoon"};
  for (;;) {
    auto cut = s.find_first_of(",!");
    if (cut == std::string_view::npos)
      return s;
    auto head = normalize(s.substr(0, cut));
    auto words = words_of(head);
    if (words.empty() || words.size() > 3)
      return s;
    for (auto w : words)
      if (fillers.count(w) == 0)
        return s;
    s = trim(s.substr(cut + 1));
  }
}

bool is_pleasantry(std::string_view s) {
  static constexpr std::string_view openings[] = {
    "thank you", "thanks", "have a nice", "have a great", "have a good",
    "you are welcome", "you're welcome", "nice to meet you",
    "good morning", "good night", "good evening", "good afternoon",
    "see you", "talk to you later", "let me know if", "i hope this helps",
    "hope this helps", "glad i could help", "happy to help", "no problem",
    "how can i help", "is there anything else"};
  auto n = normalize(s);
  for (auto o : openings)
    if (n.rfind(o, 0) == 0)
      return true;
  return false;
}

std::string fact_key(std::string_view s) {
  return normalize(s);
}

// -- providers -----------------------------------------------------------------

class extractive_provider final : public llm_provider {
public:
  caf::expected<completion> complete(const std::vector<chat_message>& messages,
                                     const completion_options& opts) override {
    if (messages.empty())
      return make_error(errc::invalid_argument,
                        "extractive completion: no messages");
    try {
      const chat_message* source = &messages.back();
      for (auto i = messages.rbegin(); i != messages.rend(); ++i)
        if (i->role == "user") {
          source = &*i;
          break;
        }
      completion result;
      result.content = summarize_extractive(
        source->content, std::max<int64_t>(opts.max_tokens.value_or(200), 1));
      for (const auto& m : messages)
        result.prompt_tokens += count_tokens(m.content);
      result.completion_tokens = count_tokens(result.content);
      result.model = "extractive";
      return result;
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"extractive completion: "} + e.what());
    }
  }

  std::string name() const override {
    return "extractive";
  }
};

class openai_provider final : public llm_provider {
public:
  openai_provider(llm_options opts, openai_endpoint endpoint)
    : opts_{std::move(opts)}, endpoint_{std::move(endpoint)} {
  }

  caf::expected<completion> complete(const std::vector<chat_message>& messages,
                                     const completion_options& opts) override {
    try {
      return do_complete(messages, opts);
    } catch (const std::exception& e) {
      return make_error(errc::unspecified,
                        std::string{"openai completion: "} + e.what());
    }
  }

  std::string name() const override {
    return "openai";
  }

private:
  caf::error fail(errc code, const std::string& what) const {
    return endpoint_.fail(code, what);
  }

  caf::expected<completion> do_complete(const std::vector<chat_message>& messages,
                                        const completion_options& opts) {
    if (messages.empty())
      return fail(errc::invalid_argument, "no messages");
    auto model = opts.model.empty() ? opts_.model : opts.model;
    json::object body;
    body["model"] = model;
    json::array msgs;
    for (const auto& m : messages)
      msgs.push_back(json::object{{"role", m.role}, {"content", m.content}});
    body["messages"] = std::move(msgs);
    if (opts.temperature)
      body["temperature"] = *opts.temperature;
    if (opts.max_tokens)
      body["max_tokens"] = *opts.max_tokens;
    auto res = endpoint_.post_json(json::serialize(body));
    if (!res)
      return std::move(res.error());
    return parse(*res, model, messages);
  }

  caf::expected<completion> parse(const http_response& res,
                                  const std::string& model,
                                  const std::vector<chat_message>& messages) const {
    json::error_code ec;
    auto doc = json::parse(res.body, ec);
    if (ec)
      return fail(errc::unspecified,
                  "malformed response: not JSON (" + ec.message() + ")");
    auto malformed = [&](const char* what) {
      return fail(errc::unspecified, std::string{"malformed response: "} + what);
    };
    if (!doc.is_object())
      return malformed("not a JSON object");
    const auto& root = doc.as_object();
    auto* choices = root.if_contains("choices");
    if (choices == nullptr || !choices->is_array()
        || choices->as_array().empty())
      return malformed("no choices");
    const auto& first = choices->as_array().front();
    const json::value* message
      = first.is_object() ? first.as_object().if_contains("message") : nullptr;
    const json::value* content
      = message != nullptr && message->is_object()
          ? message->as_object().if_contains("content")
          : nullptr;
    if (content == nullptr || !content->is_string())
      return malformed("choices[0].message.content is missing or not a string");
    completion result;
    result.content = std::string{content->as_string()};
    result.model = model;
    if (auto* m = root.if_contains("model"); m != nullptr && m->is_string())
      result.model = std::string{m->as_string()};
    auto token_count = [](const json::object& usage,
                          const char* key) -> std::optional<int64_t> {
      auto* v = usage.if_contains(key);
      if (v == nullptr)
        return std::nullopt;
      if (v->is_int64())
        return v->as_int64();
      if (v->is_uint64())
        return static_cast<int64_t>(v->as_uint64());
      return std::nullopt;
    };
    std::optional<int64_t> prompt, completion_count;
    if (auto* usage = root.if_contains("usage");
        usage != nullptr && usage->is_object()) {
      prompt = token_count(usage->as_object(), "prompt_tokens");
      completion_count = token_count(usage->as_object(), "completion_tokens");
    }
    // Without usage, estimate with the local tokenizer rather than report 0.
    result.completion_tokens
      = completion_count.value_or(count_tokens(result.content));
    if (prompt) {
      result.prompt_tokens = *prompt;
    } else {
      for (const auto& m : messages)
        result.prompt_tokens += count_tokens(m.content);
    }
    return result;
  }

  llm_options opts_;
  openai_endpoint endpoint_;
};

} // namespace

// -- public text helpers ------------------------------------------------------

std::vector<std::string_view> tokenize(std::string_view text) {
  std::vector<std::string_view> result;
  size_t i = 0;
  while (i < text.size()) {
    if (is_space(text[i])) {
      ++i;
    } else if (is_word_char(text[i])) {
      auto start = i;
      while (i < text.size() && is_word_char(text[i]))
        ++i;
      result.push_back(text.substr(start, i - start));
    } else {
      result.push_back(text.substr(i, 1));
      ++i;
    }
  }
  return result;
}

int64_t count_tokens(std::string_view text) {
  int64_t n = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (is_space(text[i])) {
      ++i;
    } else if (is_word_char(text[i])) {
      while (i < text.size() && is_word_char(text[i]))
        ++i;
      ++n;
    } else {
      ++i;
      ++n;
    }
  }
  return n;
}

std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> result;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    if (!line.empty())
      split_line(drop_list_marker(line), result);
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return result;
}

std::string summarize_extractive(std::string_view text, int64_t max_tokens) {
  auto sentences = split_sentences(text);
  if (sentences.empty())
    return {};
  max_tokens = std::max<int64_t>(max_tokens, 1);
  // Term frequencies over the whole text.
  std::vector<std::vector<std::string>> words;
  std::map<std::string, int64_t, std::less<>> tf;
  for (const auto& s : sentences) {
    words.push_back(content_words(s));
    for (const auto& w : words.back())
      ++tf[w];
  }
  std::vector<double> score(sentences.size(), 0.0);
  for (size_t i = 0; i < sentences.size(); ++i) {
    if (words[i].empty())
      continue;
    int64_t sum = 0;
    for (const auto& w : words[i])
      sum += tf.find(w)->second;
    score[i] = static_cast<double>(sum)
               / std::sqrt(static_cast<double>(words[i].size()));
  }
  std::vector<size_t> order(sentences.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return score[a] > score[b]; });
  auto keep = std::clamp<size_t>((sentences.size() + 2) / 3, 1, 5);
  std::vector<size_t> chosen;
  int64_t used = 0;
  for (auto i : order) {
    if (chosen.size() == keep)
      break;
    auto n = count_tokens(sentences[i]);
    if (used + n > max_tokens)
      continue;
    chosen.push_back(i);
    used += n;
  }
  if (chosen.empty()) {
    // Even the best sentence is over budget: cut it.
    const auto& best = sentences[order.front()];
    return std::string{trim(token_prefix(best, max_tokens))} + "\u2026";
  }
  std::sort(chosen.begin(), chosen.end());
  std::string result;
  for (auto i : chosen) {
    if (!result.empty())
      result += ' ';
    result += sentences[i];
  }
  return result;
}

std::vector<std::string> extract_facts(const std::vector<chat_message>& messages) {
  std::vector<std::string> result;
  std::unordered_set<std::string> seen;
  for (const auto& m : messages) {
    if (m.role != "user" && m.role != "assistant")
      continue;
    for (const auto& sentence : split_sentences(m.content)) {
      auto s = trim(drop_interjection(sentence));
      if (s.empty() || s.back() == '?')
        continue;
      if (words_of(s).size() < 4 || is_pleasantry(s))
        continue;
      std::string fact{s};
      if (std::islower(static_cast<unsigned char>(fact.front())))
        fact.front() = static_cast<char>(
          std::toupper(static_cast<unsigned char>(fact.front())));
      auto end = fact.find_last_not_of("\"')]");
      if (end == std::string::npos
          || (fact[end] != '.' && fact[end] != '!'))
        fact += '.';
      if (seen.insert(fact_key(fact)).second)
        result.push_back(std::move(fact));
    }
  }
  return result;
}

// -- factory ----------------------------------------------------------------------

std::string chat_completions_url(std::string_view base_url) {
  return openai_api_url(base_url, "chat/completions");
}

caf::expected<std::unique_ptr<llm_provider>>
make_llm_provider(const llm_options& opts, llm_environment env) {
  if (opts.provider == "extractive")
    return std::unique_ptr<llm_provider>{new extractive_provider};
  if (opts.provider != "openai")
    return make_error(errc::invalid_config,
                      "unknown LLM provider '" + opts.provider
                        + "' (known: extractive, openai)");
  openai_endpoint_options endpoint_opts;
  endpoint_opts.kind = "LLM";
  endpoint_opts.operation = "openai completion";
  endpoint_opts.api_key_env = opts.api_key_env;
  endpoint_opts.timeout = opts.timeout;
  endpoint_opts.retry = retry_options{opts.max_attempts, opts.retry_base_delay,
                                      opts.retry_max_delay};
  auto endpoint = openai_endpoint::make(chat_completions_url(opts.base_url),
                                        std::move(endpoint_opts),
                                        std::move(env));
  if (!endpoint)
    return std::move(endpoint.error());
  return std::unique_ptr<llm_provider>{
    new openai_provider{opts, std::move(*endpoint)}};
}

} // namespace engram
