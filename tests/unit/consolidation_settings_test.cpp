// A project's consolidation_config (DESIGN §6: thresholds and windows are
// defaults a project may override) and the snapshot's enum names and
// embedding spaces.

#include "actors/consolidation/settings.hpp"

#include <gtest/gtest.h>

#include "actors/consolidation/snapshot.hpp"
#include "messages/errc.hpp"

namespace engram::consolidation {
namespace {

std::string error_of(std::string_view json) {
  auto r = settings_from_json(json);
  if (r) {
    ADD_FAILURE() << "accepted: " << json;
    return {};
  }
  EXPECT_EQ(code_of(r.error()), errc::invalid_argument) << json;
  return message_of(r.error());
}

TEST(ConsolidationSettings, DefaultsAreDesignSection6) {
  settings s;
  EXPECT_EQ(s.pattern_threshold, 0.80);
  EXPECT_EQ(s.pattern_min_support, 3);
  EXPECT_EQ(s.merge_threshold, 0.92);
  EXPECT_EQ(s.summarize_threshold, 0.80);
  EXPECT_EQ(s.summarize_min_age_days, 7);
  EXPECT_EQ(s.summarize_max_access_count, 3);
  EXPECT_EQ(s.principle_threshold, 0.92);
  EXPECT_EQ(s.playbook_threshold, 0.90);
  EXPECT_EQ(s.demote_after_days, 30);
  EXPECT_EQ(s.demote_importance_floor, 8);
  for (auto json : {"", "  \n", "{}", "null", " { } "}) {
    auto r = settings_from_json(json);
    ASSERT_TRUE(r) << json << ": " << describe(r.error());
    EXPECT_EQ(*r, settings{}) << json;
  }
}

TEST(ConsolidationSettings, EveryKeyOverridesItsField) {
  auto r = settings_from_json(R"({
    "pattern_threshold": 0.75, "pattern_min_support": 4,
    "merge_threshold": 1, "summarize_threshold": 0.5,
    "summarize_min_age_days": 1.5, "summarize_max_access_count": 0,
    "principle_min_support": 2, "principle_threshold": 0.95,
    "playbook_threshold": 0.85, "demote_after_days": 60,
    "demote_importance_floor": 10})");
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->pattern_threshold, 0.75);
  EXPECT_EQ(r->pattern_min_support, 4);
  EXPECT_EQ(r->merge_threshold, 1.0);
  EXPECT_EQ(r->summarize_threshold, 0.5);
  EXPECT_EQ(r->summarize_min_age_days, 1.5);
  EXPECT_EQ(r->summarize_max_access_count, 0);
  EXPECT_EQ(r->principle_min_support, 2);
  EXPECT_EQ(r->principle_threshold, 0.95);
  EXPECT_EQ(r->playbook_threshold, 0.85);
  EXPECT_EQ(r->demote_after_days, 60);
  EXPECT_EQ(r->demote_importance_floor, 10);
  // Keys left out keep their defaults.
  r = settings_from_json(R"({"merge_threshold": 0.95})");
  ASSERT_TRUE(r);
  auto expected = settings{};
  expected.merge_threshold = 0.95;
  EXPECT_EQ(*r, expected);
  // An integral number written with a fraction is still an integer.
  r = settings_from_json(R"({"demote_importance_floor": 1.0})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->demote_importance_floor, 1);
}

TEST(ConsolidationSettings, ToJsonListsEveryKeyAndReadsBack) {
  EXPECT_EQ(to_json(settings{}),
            R"({"pattern_threshold":0.8,"pattern_min_support":3,)"
            R"("merge_threshold":0.92,"summarize_threshold":0.8,)"
            R"("summarize_min_age_days":7,"summarize_max_access_count":3,)"
            R"("principle_min_support":5,"principle_threshold":0.92,)"
            R"("playbook_threshold":0.9,"demote_after_days":30,)"
            R"("demote_importance_floor":8})");
  settings s;
  s.pattern_threshold = 0.1 + 0.2; // not a short decimal
  s.summarize_min_age_days = 0.25;
  s.principle_min_support = 7;
  auto r = settings_from_json(to_json(s));
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(*r, s);
}

TEST(ConsolidationSettings, BadValuesNameTheKey) {
  struct bad {
    const char* json;
    const char* key;
  };
  for (auto [json, key] : std::initializer_list<bad>{
         {R"({"pattern_threshold": 0})", "pattern_threshold"},
         {R"({"pattern_threshold": 1.01})", "pattern_threshold"},
         {R"({"pattern_threshold": -0.5})", "pattern_threshold"},
         {R"({"pattern_threshold": "0.8"})", "pattern_threshold"},
         {R"({"pattern_threshold": null})", "pattern_threshold"},
         {R"({"pattern_threshold": 1e999})", "pattern_threshold"},
         {R"({"merge_threshold": true})", "merge_threshold"},
         {R"({"merge_threshold": 2})", "merge_threshold"},
         {R"({"summarize_threshold": 0.0})", "summarize_threshold"},
         {R"({"principle_threshold": [0.9]})", "principle_threshold"},
         {R"({"playbook_threshold": {}})", "playbook_threshold"},
         {R"({"pattern_min_support": 1})", "pattern_min_support"},
         {R"({"pattern_min_support": 3.5})", "pattern_min_support"},
         {R"({"pattern_min_support": "3"})", "pattern_min_support"},
         {R"({"pattern_min_support": 4294967296})", "pattern_min_support"},
         {R"({"principle_min_support": 0})", "principle_min_support"},
         {R"({"summarize_min_age_days": 0})", "summarize_min_age_days"},
         {R"({"summarize_min_age_days": -7})", "summarize_min_age_days"},
         {R"({"summarize_min_age_days": "7d"})", "summarize_min_age_days"},
         {R"({"demote_after_days": 0})", "demote_after_days"},
         {R"({"summarize_max_access_count": -1})",
          "summarize_max_access_count"},
         {R"({"summarize_max_access_count": 2.5})",
          "summarize_max_access_count"},
         {R"({"demote_importance_floor": 0})", "demote_importance_floor"},
         {R"({"demote_importance_floor": 11})", "demote_importance_floor"},
         {R"({"demote_importance_floor": 18446744073709551615})",
          "demote_importance_floor"},
         {R"({"merge_threshold": 0.95, "merge_treshold": 0.9})",
          "merge_treshold"},
       }) {
    auto message = error_of(json);
    EXPECT_EQ(message.rfind("consolidation_config." + std::string{key}, 0), 0u)
      << json << " -> " << message;
  }
  EXPECT_EQ(error_of(R"({"pattern_threshold": 1.5})"),
            "consolidation_config.pattern_threshold must be a number in "
            "(0, 1], got 1.5");
  EXPECT_EQ(error_of(R"({"pattern_min_support": 1})"),
            "consolidation_config.pattern_min_support must be an integer >= "
            "2, got 1");
  EXPECT_EQ(error_of(R"({"colour": "blue"})"),
            "consolidation_config.colour is not a consolidation setting");
}

TEST(ConsolidationSettings, TheBoundariesThemselvesAreAccepted) {
  for (auto json : {R"({"pattern_threshold": 1})",
                    R"({"pattern_min_support": 2})",
                    R"({"summarize_max_access_count": 0})",
                    R"({"demote_importance_floor": 1})",
                    R"({"demote_importance_floor": 10})",
                    R"({"demote_after_days": 0.000001})"}) {
    auto r = settings_from_json(json);
    EXPECT_TRUE(r) << json << ": " << describe(r.error());
  }
}

TEST(ConsolidationSettings, NotAnObjectOrNotJson) {
  EXPECT_EQ(error_of("[1, 2]").rfind("consolidation_config must be a JSON "
                                     "object",
                                     0),
            0u);
  EXPECT_EQ(error_of("0.8").rfind("consolidation_config must be a JSON "
                                  "object",
                                  0),
            0u);
  EXPECT_EQ(error_of("{\"merge_threshold\": ").rfind("consolidation_config "
                                                     "is not valid JSON",
                                                     0),
            0u);
}

// -- snapshot ----------------------------------------------------------------------

TEST(ConsolidationSnapshot, EnumNamesReadBack) {
  for (auto x : {memory_type::episodic, memory_type::semantic,
                 memory_type::procedural, memory_type::identity,
                 memory_type::principle})
    EXPECT_EQ(parse_memory_type(to_string(x)), x);
  for (auto x : {memory_tier::hot, memory_tier::warm, memory_tier::cold})
    EXPECT_EQ(parse_memory_tier(to_string(x)), x);
  for (auto x : {memory_status::active, memory_status::superseded,
                 memory_status::archived})
    EXPECT_EQ(parse_memory_status(to_string(x)), x);
  EXPECT_EQ(to_string(memory_type::episodic), "episodic");
  EXPECT_EQ(to_string(memory_tier::hot), "hot");
  EXPECT_EQ(to_string(memory_status::superseded), "superseded");
  EXPECT_FALSE(parse_memory_type("Episodic"));
  EXPECT_FALSE(parse_memory_type(""));
  EXPECT_FALSE(parse_memory_tier("lukewarm"));
  EXPECT_FALSE(parse_memory_status("deleted"));
}

TEST(ConsolidationSnapshot, SpacesAreFoundByModelAndCreatedOnce) {
  snapshot s;
  EXPECT_EQ(s.find_space("m"), no_space);
  auto a = s.space_for("m", 4);
  EXPECT_EQ(a, 0);
  EXPECT_EQ(s.spaces[0].model, "m");
  EXPECT_EQ(s.spaces[0].vectors.dim(), 4u);
  auto b = s.space_for("n", 3);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(s.space_for("m", 4), 0);
  EXPECT_EQ(s.find_space("n"), 1);
  EXPECT_EQ(s.spaces.size(), 2u);
  memory m;
  EXPECT_EQ(s.vector_of(m), nullptr);
}

} // namespace
} // namespace engram::consolidation
