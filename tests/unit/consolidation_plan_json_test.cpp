// Consolidation plans as the JSON of a dry run and of a job's metrics: ids,
// never indices; what merges into what, what a summary supersedes, what
// decays and why, the patterns, principles and playbook entries.

#include "actors/consolidation/plan_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "tests/unit/consolidation_test_support.hpp"

namespace engram::consolidation {
namespace {

using namespace testing;
namespace json = boost::json;

const settings defaults;

json::value parsed(std::string_view text) {
  return json::parse(text);
}

TEST(ConsolidationPlanJson, MergeNamesKeptAndAbsorbedIds) {
  builder b;
  auto kept = b.add(1, axis(0));
  b.add(2, axis(0));
  b.add(3, axis(0));
  b[kept].importance = 9;
  auto plan = plan_merge(b.s, defaults);
  EXPECT_EQ(json::value(plan_json(b.s, plan)), parsed(R"({
    "phase": "merge",
    "metrics": {"memories_processed": 3, "memories_merged": 2, "groups": 1},
    "groups": [{"kept_id": "00000000-0000-0000-0000-000000000001",
                "type": "semantic", "agent_id": "a1",
                "absorbed_ids": ["00000000-0000-0000-0000-000000000002",
                                 "00000000-0000-0000-0000-000000000003"]}]
  })")) << json::serialize(plan_json(b.s, plan));
}

TEST(ConsolidationPlanJson, SummariesNameTheSupersededIds) {
  builder b;
  for (int n = 1; n <= 3; ++n) {
    auto i = b.add(n, axis(0));
    b[i].type = memory_type::episodic;
    b[i].agent_id = "";
  }
  auto plan = plan_summaries(b.s, defaults);
  EXPECT_EQ(json::value(plan_json(b.s, plan)), parsed(R"({
    "phase": "summarize",
    "metrics": {"memories_processed": 3, "summaries_created": 1,
                "memories_summarized": 3},
    "summaries": [{"agent_id": null, "importance": 5, "model": "m4",
                   "superseded_ids": ["00000000-0000-0000-0000-000000000001",
                                      "00000000-0000-0000-0000-000000000002",
                                      "00000000-0000-0000-0000-000000000003"]}]
  })")) << json::serialize(plan_json(b.s, plan));
}

TEST(ConsolidationPlanJson, DecaySaysWhyAndWhatTierWasLeft) {
  builder b;
  auto expired = b.add(1, axis(0));
  auto idle = b.add(2, axis(0));
  b[expired].expires_at_us = as_of - 1;
  b[expired].tier = memory_tier::hot;
  b[idle].created_at_us = as_of - 45 * day_us - 5;
  auto plan = plan_decay(b.s, defaults);
  // last_used_at_us = as_of - 45 days - 5 us: 45 whole days idle.
  EXPECT_EQ(json::value(plan_json(b.s, plan)),
            parsed(R"({
    "phase": "decay",
    "metrics": {"memories_processed": 2, "memories_archived": 1,
                "memories_demoted": 1},
    "archived": [{"id": "00000000-0000-0000-0000-000000000001",
                  "reason": "expired", "previous_tier": "hot",
                  "agent_id": "a1", "expires_at_us": 1699999999999999}],
    "demoted": [{"id": "00000000-0000-0000-0000-000000000002",
                 "reason": "not_accessed", "previous_tier": "warm",
                 "agent_id": "a1", "last_used_at_us": 1696111999999995,
                 "idle_days": 45}]
  })")) << json::serialize(plan_json(b.s, plan));
}

TEST(ConsolidationPlanJson, PatternsPrinciplesAndPlaybook) {
  builder b;
  for (int n = 1; n <= 5; ++n) {
    auto i = b.add(n, axis(0));
    b[i].content = "rotate the keys";
  }
  auto patterns = plan_patterns(b.s, defaults);
  auto pj = json::value(plan_json(b.s, patterns));
  EXPECT_EQ(pj.at("metrics"), parsed(R"({"memories_processed": 5,
                                         "patterns_extracted": 1})"));
  const auto& p = pj.at("patterns").at(0);
  EXPECT_EQ(p.at("seed_id"), "00000000-0000-0000-0000-000000000001");
  EXPECT_EQ(p.at("support"), 5);
  EXPECT_EQ(p.at("model"), "m4");
  EXPECT_EQ(p.at("label"), json::value(patterns.patterns[0].label));
  EXPECT_EQ(p.at("member_ids").as_array().size(), 5u);
  apply_patterns(b.s, patterns);
  b.s.patterns[0].id = uuid(500);

  auto hierarchy = plan_hierarchy(b.s, defaults);
  auto hj = json::value(plan_json(b.s, hierarchy));
  EXPECT_EQ(hj.at("metrics"), parsed(R"({"memories_processed": 5,
    "principles_created": 1, "principles_updated": 0,
    "memories_linked": 5})"));
  const auto& a = hj.at("principles").at(0);
  EXPECT_EQ(a.at("action"), "create");
  EXPECT_TRUE(a.at("principle_id").is_null());
  EXPECT_EQ(a.at("new_principle"), 0);
  EXPECT_EQ(a.at("pattern_id"), json::value(uuid(500)));
  EXPECT_EQ(a.at("member_ids").at(4), json::value(uuid(5)));
  ASSERT_FALSE(apply_hierarchy(b.s, hierarchy,
                               {{uuid(600), as_of, "Rotate keys. Often.", {},
                                 ""}}));

  auto playbook = plan_playbook(b.s, defaults);
  auto bj = json::value(plan_json(b.s, playbook));
  EXPECT_EQ(bj, parsed(R"({
    "phase": "playbook",
    "metrics": {"memories_processed": 1, "playbook_entries_created": 1,
                "playbook_entries_updated": 0},
    "entries": [{"action": "create", "entry_id": null, "new_entry": 0,
                 "principle_id": "00000000-0000-0000-0000-000000000600",
                 "title": "Rotate keys."}]
  })")) << json::serialize(bj);
  ASSERT_FALSE(apply_playbook(b.s, playbook, {{uuid(700), as_of}}));
  bj = json::value(plan_json(b.s, plan_playbook(b.s, defaults)));
  EXPECT_EQ(bj.at("entries").at(0), parsed(R"({"action": "update",
    "entry_id": "00000000-0000-0000-0000-000000000700", "new_entry": null,
    "principle_id": "00000000-0000-0000-0000-000000000600",
    "changes": false})"));

  // A second hierarchy plan updates the principle it made.
  hj = json::value(plan_json(b.s, plan_hierarchy(b.s, defaults)));
  EXPECT_EQ(hj.at("principles").at(0).at("action"), "update");
  EXPECT_EQ(hj.at("principles").at(0).at("principle_id"),
            json::value(uuid(600)));
  EXPECT_TRUE(hj.at("principles").at(0).at("new_principle").is_null());
  EXPECT_EQ(hj.at("principles").at(0).at("member_ids").as_array().size(), 0u);
}

} // namespace
} // namespace engram::consolidation
