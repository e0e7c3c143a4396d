#include "runtime/memory_text.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace engram;

namespace {

using strings = std::vector<std::string>;

/// An LLM that answers `answer` (or fails with `error`) and records what it
/// was asked.
class fake_llm final : public llm_provider {
public:
  std::string answer = "A merged memory.";
  caf::error error;
  std::vector<std::vector<chat_message>> asked;
  std::vector<completion_options> options;

  caf::expected<completion> complete(const std::vector<chat_message>& messages,
                                     const completion_options& opts) override {
    asked.push_back(messages);
    options.push_back(opts);
    if (error)
      return error;
    completion result;
    result.content = answer;
    return result;
  }

  std::string name() const override {
    return "openai";
  }
};

std::unique_ptr<llm_provider> extractive() {
  auto p = make_llm_provider(llm_options{});
  EXPECT_TRUE(p) << describe(p.error());
  return p ? std::move(*p) : nullptr;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kept = "The staging deploy runs every Friday at 5 pm.";

// Old episodic memories of one agent about the same topic.
const strings episodes{
  "Deployed the billing service to staging on Monday; the migration took "
  "ten minutes.",
  "The billing service deploy to staging failed because the migration "
  "locked the invoices table.",
  "Rolled back the billing deploy after the migration locked the invoices "
  "table again.",
  "Lunch with the team was nice.",
  "The billing migration now runs before the staging deploy, in its own "
  "step.",
};

} // namespace

// -- merge -----------------------------------------------------------------------

TEST(memory_text_merge, keeps_the_kept_text_and_adds_a_new_fact) {
  auto merged = merge_memory_texts(
    {kept, "The staging deploy runs on Friday at 5 pm. It needs approval "
           "from Bob."});
  // The first absorbed sentence repeats the kept one (6 of its 6 content
  // words are known); the second is new (0 of 3).
  EXPECT_EQ(merged, kept + " It needs approval from Bob.");
}

TEST(memory_text_merge, identical_inputs_give_the_kept_text_unchanged) {
  EXPECT_EQ(merge_memory_texts({kept, kept, kept}), kept);
  // As given, spacing included.
  EXPECT_EQ(merge_memory_texts({"  Uses vim.\n", "uses VIM"}), "  Uses vim.\n");
  EXPECT_EQ(merge_memory_texts({kept}), kept);
  EXPECT_EQ(merge_memory_texts({}), "");
}

TEST(memory_text_merge, skips_facts_already_covered) {
  auto merged = merge_memory_texts({
    kept,
    // 1 of 5 content words known (no stemming: "deploys" is new): added;
    // "Ok." has a single content word: skipped.
    "Staging deploys need approval from Bob. Ok.",
    // 4 of 5 content words known (80% >= 70%): skipped.
    "Bob approves every staging deploy.",
    // The same fact again, and small talk.
    "Staging deploys need approval from Bob! Yes.",
    // 2 of 4 known (friday, deploy): added.
    "The Friday deploy sends a report.",
  });
  EXPECT_EQ(merged, kept
                      + " Staging deploys need approval from Bob. The Friday "
                        "deploy sends a report.");
}

TEST(memory_text_merge, closes_sentences_it_joins) {
  EXPECT_EQ(merge_memory_texts({"Prefers dark mode", "Works from Lisbon"}),
            "Prefers dark mode. Works from Lisbon.");
}

TEST(memory_text_merge, is_bounded_and_never_a_plain_concatenation) {
  strings contents{kept};
  for (int i = 0; i < 20; ++i)
    contents.push_back("Fact number " + std::to_string(i)
                       + " mentions topic" + std::to_string(i)
                       + " and detail" + std::to_string(i) + ".");
  auto merged = merge_memory_texts(contents);
  EXPECT_EQ(split_sentences(merged).size(), merge_max_sentences);
  EXPECT_LE(count_tokens(merged), merge_max_tokens);
  EXPECT_TRUE(merged.starts_with(kept));
  // The first absorbed facts come first.
  EXPECT_TRUE(contains(merged, "Fact number 0 mentions topic0"));
  EXPECT_FALSE(contains(merged, "topic4"));
  // Long sentences: the token cap binds before the sentence cap. The kept
  // text is 10 tokens, each long sentence 82: two fit (174), a third would
  // not (256 > 200) and is skipped, a short one after it still fits (179).
  auto long_sentence = [](const std::string& prefix) {
    std::string result = "Detail";
    for (int i = 0; i < 80; ++i)
      result += " " + prefix + std::to_string(i);
    return result + ".";
  };
  merged = merge_memory_texts({kept, long_sentence("a"), long_sentence("b"),
                               long_sentence("c"), "Short new fact here."});
  EXPECT_EQ(merged, kept + " " + long_sentence("a") + " " + long_sentence("b")
                      + " Short new fact here.");
  EXPECT_EQ(count_tokens(merged), 179);
}

TEST(memory_text_merge, is_deterministic) {
  strings contents{kept, episodes[0], episodes[1], episodes[4]};
  auto a = merge_memory_texts(contents);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(merge_memory_texts(contents), a);
}

// -- summary ------------------------------------------------------------------------

TEST(memory_text_summary, is_bounded_and_not_a_concatenation) {
  auto summary = summarize_memory_texts(episodes);
  ASSERT_FALSE(summary.empty());
  EXPECT_LE(split_sentences(summary).size(), summary_max_sentences);
  EXPECT_LE(count_tokens(summary), summary_max_tokens);
  std::string all;
  for (const auto& e : episodes)
    all += (all.empty() ? "" : " ") + e;
  EXPECT_NE(summary, all);
  EXPECT_LT(summary.size(), all.size());
  // Small talk is not salient.
  EXPECT_FALSE(contains(summary, "Lunch")) << summary;
  // Every sentence is one of the members'.
  for (const auto& s : split_sentences(summary)) {
    bool found = false;
    for (const auto& e : episodes)
      found = found || contains(e, s);
    EXPECT_TRUE(found) << s;
  }
  EXPECT_EQ(summarize_memory_texts(episodes), summary);
}

TEST(memory_text_summary, many_members_still_give_at_most_3_sentences) {
  strings contents;
  for (int i = 0; i < 15; ++i)
    contents.push_back("Deploy " + std::to_string(i)
                       + " of the billing service to staging went fine");
  auto summary = summarize_memory_texts(contents);
  EXPECT_GE(split_sentences(summary).size(), 1u);
  EXPECT_LE(split_sentences(summary).size(), summary_max_sentences);
  EXPECT_LE(count_tokens(summary), summary_max_tokens);
}

TEST(memory_text_summary, repeated_sentences_count_once) {
  EXPECT_EQ(summarize_memory_texts(strings(6, "Backups ran at night.")),
            "Backups ran at night.");
  EXPECT_EQ(summarize_memory_texts({"", "  "}), "");
  EXPECT_EQ(summarize_memory_texts({}), "");
}

// -- label ----------------------------------------------------------------------------

TEST(memory_text_label, most_frequent_content_words_ties_alphabetical) {
  strings members{"Deploy staging on Friday at 5",
                  "The staging deploy failed on Friday",
                  "Friday deploy to staging needs Bob",
                  "Bob approved the deploy"};
  // deploy 4, friday 3, staging 3, bob 2; "5" is a number.
  EXPECT_EQ(pattern_label(members), "deploy friday staging bob");
  EXPECT_EQ(pattern_label(members, 2), "deploy friday");
  EXPECT_EQ(pattern_label(members, 0), "");
  // A word repeated within one member counts once for it.
  EXPECT_EQ(pattern_label({"tea tea tea tea", "coffee", "coffee"}, 1),
            "coffee");
  EXPECT_EQ(pattern_label({"the and of", "2024 1 x"}), "");
}

// -- with an LLM provider -------------------------------------------------------------

TEST(memory_text_llm, extractive_uses_the_deterministic_functions) {
  auto llm = extractive();
  ASSERT_NE(llm, nullptr);
  strings contents{kept, "It needs approval from Bob."};
  auto merged = merged_text(*llm, contents);
  ASSERT_TRUE(merged) << describe(merged.error());
  EXPECT_EQ(*merged, merge_memory_texts(contents));
  auto summary = summary_text(*llm, episodes);
  ASSERT_TRUE(summary) << describe(summary.error());
  EXPECT_EQ(*summary, summarize_memory_texts(episodes));
}

TEST(memory_text_llm, another_provider_is_asked_and_its_answer_trimmed) {
  fake_llm llm;
  llm.answer = "  The staging deploy runs Fridays at 5 pm; Bob approves it.\n";
  auto merged = merged_text(llm, {kept, "It needs approval from Bob."});
  ASSERT_TRUE(merged) << describe(merged.error());
  EXPECT_EQ(*merged,
            "The staging deploy runs Fridays at 5 pm; Bob approves it.");
  ASSERT_EQ(llm.asked.size(), 1u);
  ASSERT_EQ(llm.asked[0].size(), 2u);
  EXPECT_EQ(llm.asked[0][0].role, "system");
  EXPECT_TRUE(contains(llm.asked[0][0].content, "near-duplicate"));
  EXPECT_TRUE(contains(llm.asked[0][0].content, "every distinct fact"));
  EXPECT_EQ(llm.asked[0][1].role, "user");
  EXPECT_TRUE(contains(llm.asked[0][1].content, "1. " + kept));
  EXPECT_TRUE(contains(llm.asked[0][1].content,
                       "2. It needs approval from Bob."));
  llm.answer = "Billing migrations run before staging deploys.";
  auto summary = summary_text(llm, episodes);
  ASSERT_TRUE(summary);
  EXPECT_EQ(*summary, llm.answer);
  EXPECT_TRUE(contains(llm.asked[1][0].content, "episodic memories"));
  EXPECT_TRUE(contains(llm.asked[1][0].content, "one semantic memory"));
  EXPECT_TRUE(contains(llm.asked[1][1].content, "5. " + episodes[4]));
  // A re-run should write the same text, and a memory is short.
  ASSERT_EQ(llm.options.size(), 2u);
  for (const auto& o : llm.options) {
    EXPECT_EQ(o.temperature, 0.0);
    ASSERT_TRUE(o.max_tokens.has_value());
    EXPECT_LE(*o.max_tokens, 400);
  }
}

TEST(memory_text_llm, empty_answers_and_provider_errors_fail) {
  fake_llm llm;
  llm.answer = " \n ";
  auto merged = merged_text(llm, {kept, kept});
  ASSERT_FALSE(merged);
  EXPECT_EQ(code_of(merged.error()), errc::unspecified);
  llm.error = make_error(errc::unavailable, "HTTP 503");
  auto summary = summary_text(llm, episodes);
  ASSERT_FALSE(summary);
  EXPECT_EQ(code_of(summary.error()), errc::unavailable);
  EXPECT_TRUE(is_retryable(summary.error()));
  // Nothing to merge: refused before asking.
  auto before = llm.asked.size();
  auto blank = merged_text(llm, {" ", ""});
  ASSERT_FALSE(blank);
  EXPECT_EQ(code_of(blank.error()), errc::invalid_argument);
  EXPECT_FALSE(summary_text(llm, {}));
  EXPECT_EQ(llm.asked.size(), before);
}
