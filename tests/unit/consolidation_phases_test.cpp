// The phases of consolidation (DESIGN §6) as pure functions on hand-built
// snapshots: who is a candidate, the visiting orders, the strict thresholds
// and windows, what is protected, and what applying a plan does.

#include "actors/consolidation/phases.hpp"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "messages/errc.hpp"
#include "runtime/memory_text.hpp"
#include "runtime/vector_kernel.hpp"
#include "tests/unit/consolidation_test_support.hpp"

namespace engram::consolidation {
namespace {

using namespace testing;
using ids = std::vector<uint32_t>;

const settings defaults;

float kernel_cosine(const snapshot& s, uint32_t a, uint32_t b) {
  return vec::cosine(s.vector_of(s.memories[a]), s.vector_of(s.memories[b]),
                     s.spaces[s.memories[a].space].vectors.dim());
}

// -- patterns ----------------------------------------------------------------------

TEST(ConsolidationPatterns, AClusterOfThreeIsAPatternTwoIsNot) {
  builder b;
  auto a = b.add(1, at_angle(0));
  auto c = b.add(2, at_angle(10));
  auto d = b.add(3, at_angle(20));
  b.add(4, at_angle(90));
  b.add(5, at_angle(95));
  b[a].content = "deploy to staging on friday";
  b[c].content = "staging deploy failed";
  b[d].content = "deploy staging again";
  auto plan = plan_patterns(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 5);
  ASSERT_EQ(plan.patterns.size(), 1u);
  EXPECT_EQ(plan.patterns_extracted, 1);
  const auto& p = plan.patterns[0];
  // Equal importance: created_at decides the visiting order.
  EXPECT_EQ(p.members, (ids{a, c, d}));
  EXPECT_EQ(p.space, 0);
  EXPECT_EQ(p.label, engram::pattern_label({b[a].content, b[c].content,
                                            b[d].content}));
  EXPECT_EQ(p.label.rfind("deploy staging", 0), 0u) << p.label;
  std::vector<float> mean(4);
  std::vector<uint32_t> rows{b[a].row, b[c].row, b[d].row};
  ASSERT_TRUE(vec::normalized_mean(b.s.spaces[0].vectors.view(), rows, mean));
  EXPECT_EQ(p.centroid, mean);
  EXPECT_TRUE(p.id.empty());
  EXPECT_TRUE(plan.agents_changed.empty());
}

TEST(ConsolidationPatterns, SeedIsTheMostImportantAndMembersJoinTheSeedOnly) {
  builder b;
  // Visiting order: importance desc. The seed is x (importance 9); y at 30
  // degrees from x joins (cos 0.866 > 0.80); z at 60 degrees from x (cos
  // 0.5) does not join, though it is at 30 degrees from y.
  auto z = b.add(1, at_angle(60));
  auto y = b.add(2, at_angle(30));
  auto x = b.add(3, at_angle(0));
  b[x].importance = 9;
  b[y].importance = 7;
  b[z].importance = 6;
  auto cfg = defaults;
  cfg.pattern_min_support = 2;
  auto plan = plan_patterns(b.s, cfg);
  ASSERT_EQ(plan.patterns.size(), 1u);
  EXPECT_EQ(plan.patterns[0].members, (ids{x, y}));
}

TEST(ConsolidationPatterns, ThresholdIsStrictOnTheFloatCosine) {
  for (bool above : {false, true}) {
    builder b;
    // 0.80f is what float(0.80) is; the kernel's cosine of these vectors
    // with axis 0 is exactly c (see at_cosine).
    float c = above ? std::nextafter(0.80f, 1.0f) : 0.80f;
    auto seed = b.add(1, axis(0));
    auto m1 = b.add(2, at_cosine(c));
    auto m2 = b.add(3, at_cosine(c));
    b[seed].importance = 9;
    ASSERT_EQ(kernel_cosine(b.s, seed, m1), c);
    auto plan = plan_patterns(b.s, defaults);
    if (above) {
      ASSERT_EQ(plan.patterns.size(), 1u);
      EXPECT_EQ(plan.patterns[0].members, (ids{seed, m1, m2}));
    } else {
      EXPECT_TRUE(plan.patterns.empty());
    }
  }
}

TEST(ConsolidationPatterns, IdentityInactiveNewAndUnembeddedMemoriesAreLeftOut) {
  builder b;
  auto a = b.add(1, axis(0));
  auto i = b.add(2, axis(0));
  auto s = b.add(3, axis(0));
  auto n = b.add(4, axis(0));
  b.add(5, {});
  b[i].type = memory_type::identity;
  b[s].status = memory_status::superseded;
  b[n].created_in_run = true;
  auto cfg = defaults;
  cfg.pattern_min_support = 2;
  auto plan = plan_patterns(b.s, cfg);
  EXPECT_EQ(plan.memories_processed, 1);
  EXPECT_TRUE(plan.patterns.empty());
  // With one more plain memory the two form a pattern, still without i.
  auto c = b.add(6, axis(0));
  plan = plan_patterns(b.s, cfg);
  ASSERT_EQ(plan.patterns.size(), 1u);
  EXPECT_EQ(plan.patterns[0].members, (ids{a, c}));
}

TEST(ConsolidationPatterns, ManyPatternsAreTheSameWhateverTheKernelThreads) {
  // 40 models with three patterns each: labels and centroids are made at
  // once on the kernel's threads, and the plan is the one of one thread.
  builder b;
  const char* words[] = {"deploy", "billing", "latency", "invoice", "login"};
  int n = 0;
  for (int model = 0; model < 40; ++model)
    for (double centre : {0.0, 90.0, 180.0})
      for (double offset : {0.0, 5.0, 10.0, 15.0}) {
        auto i = b.add(++n, at_angle(centre + offset),
                       "model-" + std::to_string(model));
        b[i].content = std::string{words[n % 5]} + " issue "
                       + words[(n / 5) % 5] + " " + std::to_string(n);
      }
  auto before = vec::kernel_threads();
  vec::set_kernel_threads(1);
  auto one = plan_patterns(b.s, defaults);
  ASSERT_EQ(one.patterns.size(), 120u);
  for (size_t threads : {2u, 3u, 4u}) {
    vec::set_kernel_threads(threads);
    auto many = plan_patterns(b.s, defaults);
    ASSERT_EQ(many.patterns.size(), one.patterns.size());
    for (size_t k = 0; k < one.patterns.size(); ++k) {
      EXPECT_EQ(many.patterns[k].members, one.patterns[k].members) << k;
      EXPECT_EQ(many.patterns[k].label, one.patterns[k].label) << k;
      EXPECT_EQ(many.patterns[k].centroid, one.patterns[k].centroid) << k;
      EXPECT_EQ(many.patterns[k].space, one.patterns[k].space) << k;
    }
  }
  vec::set_kernel_threads(before);
}

TEST(ConsolidationPatterns, SpacesAreSeparateAndComeInIndexOrder) {
  builder b;
  // Space "m4" (index 0): a low-importance pattern. Space "other" (index
  // 1): a high-importance pattern with the very same vectors.
  auto a1 = b.add(1, axis(0), "m4");
  auto a2 = b.add(2, axis(0), "m4");
  auto a3 = b.add(3, axis(0), "m4");
  auto o1 = b.add(4, axis(0), "other");
  auto o2 = b.add(5, axis(0), "other");
  auto o3 = b.add(6, axis(0), "other");
  for (auto i : {o1, o2, o3})
    b[i].importance = 9;
  auto plan = plan_patterns(b.s, defaults);
  ASSERT_EQ(plan.patterns.size(), 2u);
  EXPECT_EQ(plan.patterns[0].members, (ids{a1, a2, a3}));
  EXPECT_EQ(plan.patterns[0].space, 0);
  EXPECT_EQ(plan.patterns[1].members, (ids{o1, o2, o3}));
  EXPECT_EQ(plan.patterns[1].space, 1);
}

TEST(ConsolidationPatterns, ApplyReplacesTheSnapshotsPatterns) {
  builder b;
  for (int n = 1; n <= 3; ++n)
    b.add(n, axis(0));
  b.s.patterns.push_back(pattern{{0}, "old", 0, axis(0), uuid(77)});
  auto plan = plan_patterns(b.s, defaults);
  apply_patterns(b.s, plan);
  ASSERT_EQ(b.s.patterns.size(), 1u);
  EXPECT_EQ(b.s.patterns[0].members, (ids{0, 1, 2}));
}

// -- merge -------------------------------------------------------------------------

TEST(ConsolidationMerge, CosineExactlyAtTheThresholdDoesNotMerge) {
  for (bool above : {false, true}) {
    builder b;
    // float(0.92) = 0.92f; these unit vectors have kernel cosine exactly
    // c, so at 0.92f the strict rule keeps them apart and one float step
    // above merges them.
    float c = above ? std::nextafter(0.92f, 1.0f) : 0.92f;
    auto a = b.add(1, axis(0));
    auto x = b.add(2, at_cosine(c));
    ASSERT_EQ(kernel_cosine(b.s, a, x), c);
    auto plan = plan_merge(b.s, defaults);
    EXPECT_EQ(plan.memories_processed, 2);
    if (above) {
      ASSERT_EQ(plan.groups.size(), 1u);
      EXPECT_EQ(plan.groups[0].kept, a);
      EXPECT_EQ(plan.groups[0].absorbed, (ids{x}));
      EXPECT_EQ(plan.memories_merged, 1);
      EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"a1"}));
    } else {
      EXPECT_TRUE(plan.groups.empty());
      EXPECT_EQ(plan.memories_merged, 0);
      EXPECT_TRUE(plan.agents_changed.empty());
    }
  }
}

TEST(ConsolidationMerge, TheMostImportantIsKeptThenTheOlderThenTheSmallerId) {
  {
    builder b;
    auto low = b.add(1, axis(0));
    auto high = b.add(2, axis(0));
    auto mid = b.add(3, axis(0));
    b[low].importance = 5;
    b[high].importance = 9;
    b[mid].importance = 7;
    auto plan = plan_merge(b.s, defaults);
    ASSERT_EQ(plan.groups.size(), 1u);
    EXPECT_EQ(plan.groups[0].kept, high);
    EXPECT_EQ(plan.groups[0].absorbed, (ids{mid, low}));
  }
  {
    builder b;
    auto newer = b.add(1, axis(0));
    auto older = b.add(2, axis(0));
    b[newer].created_at_us = as_of - 1 * day_us;
    b[older].created_at_us = as_of - 2 * day_us;
    auto plan = plan_merge(b.s, defaults);
    ASSERT_EQ(plan.groups.size(), 1u);
    EXPECT_EQ(plan.groups[0].kept, older);
  }
  {
    builder b;
    // Same importance and created_at: the smaller id, wherever it is.
    auto big = b.add(7, axis(0));
    auto small = b.add(3, axis(0));
    b[big].created_at_us = b[small].created_at_us = as_of - day_us;
    auto plan = plan_merge(b.s, defaults);
    ASSERT_EQ(plan.groups.size(), 1u);
    EXPECT_EQ(plan.groups[0].kept, small);
    EXPECT_EQ(plan.groups[0].absorbed, (ids{big}));
  }
}

TEST(ConsolidationMerge, AMemoryMatchingTwoKeptJoinsTheFirstInKeepingOrder) {
  builder b;
  // k1 and k2 are 30 degrees apart (cos 0.866): both kept. x is at 18
  // degrees from k1 (cos 0.951) and 12 from k2 (cos 0.978): it matches
  // both, is closer to k2, and joins k1, the first kept.
  auto k1 = b.add(1, at_angle(0));
  auto k2 = b.add(2, at_angle(30));
  auto x = b.add(3, at_angle(18));
  b[k1].importance = 9;
  b[k2].importance = 8;
  b[x].importance = 1;
  ASSERT_GT(kernel_cosine(b.s, x, k2), kernel_cosine(b.s, x, k1));
  auto plan = plan_merge(b.s, defaults);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].kept, k1);
  EXPECT_EQ(plan.groups[0].absorbed, (ids{x}));
}

TEST(ConsolidationMerge, MatchingIsAgainstKeptMemoriesOnlyNotTransitive) {
  builder b;
  // b joins a (20 degrees, cos 0.940); c is 20 degrees from b but 40 from
  // a (cos 0.766): it is compared with kept memories only, so it is kept.
  auto a = b.add(1, at_angle(0));
  auto m = b.add(2, at_angle(20));
  auto c = b.add(3, at_angle(40));
  b[a].importance = 9;
  b[m].importance = 8;
  b[c].importance = 7;
  auto plan = plan_merge(b.s, defaults);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].kept, a);
  EXPECT_EQ(plan.groups[0].absorbed, (ids{m}));
}

TEST(ConsolidationMerge, IdentityPinnedInactiveNewAndUnembeddedNeverMerge) {
  builder b;
  auto a = b.add(1, axis(0));
  auto identity = b.add(2, axis(0));
  auto pinned = b.add(3, axis(0));
  auto superseded = b.add(4, axis(0));
  auto archived = b.add(5, axis(0));
  auto fresh = b.add(6, axis(0));
  auto bare = b.add(7, {});
  auto bare2 = b.add(8, {});
  b[identity].type = memory_type::identity;
  b[pinned].pinned = true;
  b[superseded].status = memory_status::superseded;
  b[archived].status = memory_status::archived;
  b[fresh].created_in_run = true;
  b[bare].content = b[bare2].content = "same text";
  b[a].importance = 1;
  auto plan = plan_merge(b.s, defaults);
  // Looked at: a and the two without an embedding.
  EXPECT_EQ(plan.memories_processed, 3);
  EXPECT_TRUE(plan.groups.empty());
}

TEST(ConsolidationMerge, GroupsAreTypeAgentAndModel) {
  builder b;
  auto a = b.add(1, axis(0));
  auto other_agent = b.add(2, axis(0));
  auto other_type = b.add(3, axis(0));
  auto project_wide = b.add(4, axis(0));
  // The same vector in another model: never compared.
  auto other_model = b.add(5, axis(0), "other-model");
  b[other_agent].agent_id = "a2";
  b[other_type].type = memory_type::episodic;
  b[project_wide].agent_id = "";
  b[other_model].content = b[a].content;
  EXPECT_TRUE(plan_merge(b.s, defaults).groups.empty());
  // Partners for each: now every group merges, in (type, agent, kept)
  // order: episodic before semantic, "" before "a1" before "a2"; the two
  // models of (semantic, a1) by their kept's visiting position.
  auto a_twin = b.add(11, axis(0));
  auto other_agent_twin = b.add(12, axis(0));
  auto other_type_twin = b.add(13, axis(0));
  auto project_wide_twin = b.add(14, axis(0));
  auto other_model_twin = b.add(15, axis(0), "other-model");
  b[other_agent_twin].agent_id = "a2";
  b[other_type_twin].type = memory_type::episodic;
  b[project_wide_twin].agent_id = "";
  b[other_model].importance = 6;
  b[other_model_twin].importance = 6;
  auto plan = plan_merge(b.s, defaults);
  ASSERT_EQ(plan.groups.size(), 5u);
  EXPECT_EQ(plan.groups[0].kept, other_type);
  EXPECT_EQ(plan.groups[0].absorbed, (ids{other_type_twin}));
  EXPECT_EQ(plan.groups[1].kept, project_wide);
  EXPECT_EQ(plan.groups[1].absorbed, (ids{project_wide_twin}));
  EXPECT_EQ(plan.groups[2].kept, other_model);
  EXPECT_EQ(plan.groups[2].absorbed, (ids{other_model_twin}));
  EXPECT_EQ(plan.groups[3].kept, a);
  EXPECT_EQ(plan.groups[3].absorbed, (ids{a_twin}));
  EXPECT_EQ(plan.groups[4].kept, other_agent);
  EXPECT_EQ(plan.groups[4].absorbed, (ids{other_agent_twin}));
  EXPECT_EQ(plan.memories_merged, 5);
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"", "a1", "a2"}));
}

TEST(ConsolidationMerge, ApplySupersedesTheAbsorbedAndRewritesTheKept) {
  builder b;
  auto kept = b.add(1, axis(0));
  auto x = b.add(2, axis(0));
  auto y = b.add(3, at_angle(5));
  auto other = b.add(4, axis(2));
  b[kept].importance = 9;
  auto plan = plan_merge(b.s, defaults);
  ASSERT_EQ(plan.groups.size(), 1u);
  // Wrong number of outcomes: nothing changes.
  auto err = apply_merge(b.s, plan, {});
  EXPECT_EQ(code_of(err), errc::invalid_argument);
  EXPECT_TRUE(b[x].active());
  // A vector of the wrong dimension: nothing changes.
  err = apply_merge(b.s, plan, {{"merged", std::vector<float>{1, 2}}});
  EXPECT_EQ(code_of(err), errc::invalid_argument);
  EXPECT_TRUE(b[x].active());
  EXPECT_EQ(b[kept].content, "memory 1");
  // The new vector is normalised and replaces the kept one's row.
  err = apply_merge(b.s, plan, {{"merged", std::vector<float>{0, 3, 0, 4}}});
  ASSERT_FALSE(err) << describe(err);
  EXPECT_EQ(b[kept].content, "merged");
  EXPECT_EQ(b[kept].importance, 9);
  EXPECT_TRUE(b[kept].active());
  for (auto i : {x, y}) {
    EXPECT_EQ(b[i].status, memory_status::superseded);
    EXPECT_EQ(b[i].superseded_by, b[kept].id);
  }
  EXPECT_TRUE(b[other].active());
  const float* v = b.s.vector_of(b[kept]);
  EXPECT_EQ((std::vector<float>{v, v + 4}),
            (std::vector<float>{0, 0.6f, 0, 0.8f}));
  // Applying the same plan again is refused: the absorbed are not active.
  err = apply_merge(b.s, plan, {{"again", std::nullopt}});
  EXPECT_EQ(code_of(err), errc::invalid_argument);
  EXPECT_EQ(b[kept].content, "merged");
  // The next plan sees nothing left to merge.
  EXPECT_TRUE(plan_merge(b.s, defaults).groups.empty());
}

TEST(ConsolidationMerge, WithoutANewVectorTheKeptKeepsItsOwn) {
  builder b;
  auto kept = b.add(1, at_angle(3));
  b.add(2, at_angle(0));
  auto plan = plan_merge(b.s, defaults);
  ASSERT_EQ(plan.groups.size(), 1u);
  auto before = at_angle(3);
  ASSERT_FALSE(apply_merge(b.s, plan, {{"merged", std::nullopt}}));
  const float* v = b.s.vector_of(b[kept]);
  EXPECT_EQ((std::vector<float>{v, v + 4}), before);
}

// -- summarize ---------------------------------------------------------------------

uint32_t add_episode(builder& b, int n, std::vector<float> v,
                     int64_t age_us = 10 * day_us) {
  auto i = b.add(n, std::move(v));
  b[i].type = memory_type::episodic;
  b[i].created_at_us = as_of - age_us;
  return i;
}

TEST(ConsolidationSummarize, OnlyMemoriesOlderThanSevenDaysStrictly) {
  // 7 days = 604'800'000'000 us: exactly that old is not "more than".
  ASSERT_EQ(7 * day_us, int64_t{604'800'000'000});
  builder b;
  auto a = add_episode(b, 1, axis(0), 7 * day_us + 3);
  auto c = add_episode(b, 2, axis(0), 7 * day_us + 2);
  auto exactly = add_episode(b, 3, axis(0), 7 * day_us);
  auto plan = plan_summaries(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 2);
  EXPECT_TRUE(plan.clusters.empty());
  // One microsecond older and it is a candidate: three make a summary.
  b[exactly].created_at_us -= 1;
  plan = plan_summaries(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 3);
  ASSERT_EQ(plan.clusters.size(), 1u);
  EXPECT_EQ(plan.clusters[0].members, (ids{a, c, exactly}));
  EXPECT_TRUE(older_than(as_of, as_of - 7 * day_us - 1, 7.0));
  EXPECT_FALSE(older_than(as_of, as_of - 7 * day_us, 7.0));
}

TEST(ConsolidationSummarize, AccessCountMustBeBelowThree) {
  builder b;
  auto a = add_episode(b, 1, axis(0));
  auto c = add_episode(b, 2, axis(0));
  auto d = add_episode(b, 3, axis(0));
  b[a].access_count = 2;
  b[c].access_count = 0;
  b[d].access_count = 3;
  auto plan = plan_summaries(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 2);
  EXPECT_TRUE(plan.clusters.empty());
  b[d].access_count = 2;
  plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 1u);
}

TEST(ConsolidationSummarize, TwoMembersAreNotSummarisedThreeAre) {
  builder b;
  add_episode(b, 1, axis(0));
  add_episode(b, 2, axis(0));
  add_episode(b, 3, axis(1));
  add_episode(b, 4, axis(1));
  add_episode(b, 5, axis(1));
  auto plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 1u);
  EXPECT_EQ(plan.clusters[0].members, (ids{2, 3, 4}));
  EXPECT_EQ(plan.summaries_created, 1);
  EXPECT_EQ(plan.memories_summarized, 3);
}

TEST(ConsolidationSummarize, PerAgentInAgentOrder) {
  builder b;
  // Two of agent a1 and one of a2 are alike: no cluster has three.
  auto x1 = add_episode(b, 1, axis(0));
  auto x2 = add_episode(b, 2, axis(0));
  auto y1 = add_episode(b, 3, axis(0));
  b[y1].agent_id = "a2";
  EXPECT_TRUE(plan_summaries(b.s, defaults).clusters.empty());
  auto y2 = add_episode(b, 4, axis(0));
  auto y3 = add_episode(b, 5, axis(0));
  b[y2].agent_id = b[y3].agent_id = "a2";
  auto x3 = add_episode(b, 6, axis(0));
  auto plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 2u);
  EXPECT_EQ(plan.clusters[0].agent_id, "a1");
  EXPECT_EQ(plan.clusters[0].members, (ids{x1, x2, x3}));
  EXPECT_EQ(plan.clusters[1].agent_id, "a2");
  EXPECT_EQ(plan.clusters[1].members, (ids{y1, y2, y3}));
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"a1", "a2"}));
}

TEST(ConsolidationSummarize, TheOldestSeedsAndOthersJoinTheFirstSeedAbove) {
  builder b;
  // Visiting by created_at: s1 (0 deg), s2 (60 deg) seed clusters; m (30
  // deg, cos 0.866 with both) joins s1, the first seed; n (90 deg) joins
  // s2 (cos 0.866); t (5 deg) joins s1.
  auto s1 = add_episode(b, 1, at_angle(0), 20 * day_us);
  auto s2 = add_episode(b, 2, at_angle(60), 19 * day_us);
  auto m = add_episode(b, 3, at_angle(30), 18 * day_us);
  auto n = add_episode(b, 4, at_angle(90), 17 * day_us);
  auto t = add_episode(b, 5, at_angle(5), 16 * day_us);
  b[m].importance = 8;
  auto plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 1u);
  EXPECT_EQ(plan.clusters[0].members, (ids{s1, m, t}));
  EXPECT_EQ(plan.clusters[0].importance, 8);
  EXPECT_EQ(plan.clusters[0].space, 0);
  (void) s2;
  (void) n;
}

TEST(ConsolidationSummarize, CosineExactlyAtTheThresholdDoesNotJoin) {
  for (bool above : {false, true}) {
    builder b;
    float c = above ? std::nextafter(0.80f, 1.0f) : 0.80f;
    add_episode(b, 1, axis(0), 12 * day_us);
    add_episode(b, 2, at_cosine(c), 11 * day_us);
    add_episode(b, 3, at_cosine(c), 10 * day_us);
    EXPECT_EQ(plan_summaries(b.s, defaults).clusters.size(), above ? 1u : 0u);
  }
}

TEST(ConsolidationSummarize, PinnedOtherTypesInactiveNewAndUnembeddedAreLeftOut) {
  builder b;
  add_episode(b, 1, axis(0));
  add_episode(b, 2, axis(0));
  auto pinned = add_episode(b, 3, axis(0));
  auto semantic = add_episode(b, 4, axis(0));
  auto archived = add_episode(b, 5, axis(0));
  auto fresh = add_episode(b, 6, axis(0));
  add_episode(b, 7, {});
  b[pinned].pinned = true;
  b[semantic].type = memory_type::semantic;
  b[archived].status = memory_status::archived;
  b[fresh].created_in_run = true;
  auto plan = plan_summaries(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 3);
  EXPECT_TRUE(plan.clusters.empty());
}

TEST(ConsolidationSummarize, ApplyAppendsTheSummaryAndSupersedesTheMembers) {
  builder b;
  auto m1 = add_episode(b, 1, at_angle(0), 12 * day_us);
  auto m2 = add_episode(b, 2, at_angle(10), 11 * day_us);
  auto m3 = add_episode(b, 3, at_angle(20), 10 * day_us);
  b[m2].importance = 7;
  auto plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 1u);
  EXPECT_EQ(code_of(apply_summaries(b.s, plan, {})), errc::invalid_argument);
  EXPECT_EQ(b.s.memories.size(), 3u);
  // No embedding from the provider: the normalised mean of the members.
  summary_outcome o{uuid(100), "the summary", as_of, {}, ""};
  ASSERT_FALSE(apply_summaries(b.s, plan, {o}));
  ASSERT_EQ(b.s.memories.size(), 4u);
  const auto& s = b.s.memories.back();
  EXPECT_EQ(s.id, uuid(100));
  EXPECT_EQ(s.agent_id, "a1");
  EXPECT_EQ(s.type, memory_type::semantic);
  EXPECT_EQ(s.tier, memory_tier::warm);
  EXPECT_TRUE(s.active());
  EXPECT_EQ(s.source_type, "consolidation");
  EXPECT_EQ(s.importance, 7);
  EXPECT_EQ(s.content, "the summary");
  EXPECT_EQ(s.created_at_us, as_of);
  EXPECT_TRUE(s.created_in_run);
  EXPECT_EQ(s.space, 0);
  auto mean = centroid_of(b.s, std::vector<uint32_t>{m1, m2, m3}, 0);
  const float* v = b.s.vector_of(s);
  EXPECT_EQ((std::vector<float>{v, v + 4}), mean);
  // The mean of 0, 10 and 20 degrees points at 10 degrees.
  EXPECT_NEAR(kernel_cosine(b.s, 3, m2), 1.0f, 1e-5f);
  for (auto i : {m1, m2, m3}) {
    EXPECT_EQ(b[i].status, memory_status::superseded);
    EXPECT_EQ(b[i].superseded_by, uuid(100));
  }
  // The summary takes no further part in the run.
  EXPECT_TRUE(plan_summaries(b.s, defaults).clusters.empty());
  EXPECT_TRUE(plan_merge(b.s, defaults).groups.empty());
}

TEST(ConsolidationSummarize, ApplyPutsAProviderVectorInItsModelsSpace) {
  builder b;
  for (int n = 1; n <= 3; ++n)
    add_episode(b, n, axis(0));
  auto plan = plan_summaries(b.s, defaults);
  ASSERT_EQ(plan.clusters.size(), 1u);
  summary_outcome o{uuid(100), "s", as_of, {0, 0, 2}, "another-model"};
  ASSERT_FALSE(apply_summaries(b.s, plan, {o}));
  const auto& s = b.s.memories.back();
  EXPECT_EQ(b.s.spaces[s.space].model, "another-model");
  const float* v = b.s.vector_of(s);
  EXPECT_EQ((std::vector<float>{v, v + 3}), (std::vector<float>{0, 0, 1}));
}

TEST(ConsolidationSummarize, ApplyRefusesAVectorOfTheWrongDimension) {
  builder b;
  for (int n = 1; n <= 3; ++n)
    add_episode(b, n, axis(0));
  auto plan = plan_summaries(b.s, defaults);
  summary_outcome o{uuid(100), "s", as_of, {1, 0}, "m4"};
  EXPECT_EQ(code_of(apply_summaries(b.s, plan, {o})), errc::invalid_argument);
  EXPECT_EQ(b.s.memories.size(), 3u);
  EXPECT_TRUE(b[0].active());
}

// -- hierarchy ---------------------------------------------------------------------

/// A pattern of members `members` with centroid `centroid` in space 0.
pattern make_pattern(std::vector<uint32_t> members, std::vector<float> centroid,
                     std::string label = "label") {
  pattern p;
  p.members = std::move(members);
  p.label = std::move(label);
  p.space = 0;
  p.centroid = std::move(centroid);
  return p;
}

/// Five memories at axis `k`, numbered from `first`; their indices.
ids five(builder& b, int first, size_t k) {
  ids result;
  for (int n = first; n < first + 5; ++n)
    result.push_back(b.add(n, axis(k)));
  return result;
}

uint32_t add_principle(builder& b, int n, std::vector<float> v) {
  auto i = b.add(n, std::move(v));
  b[i].type = memory_type::principle;
  b[i].content = "principle " + std::to_string(n) + ". More text.";
  return i;
}

TEST(ConsolidationHierarchy, APatternOfFiveMembersBecomesANewPrinciple) {
  builder b;
  auto members = five(b, 1, 0);
  b[members[2]].importance = 8;
  auto small = ids{b.add(10, axis(1)), b.add(11, axis(1)), b.add(12, axis(1)),
                   b.add(13, axis(1))};
  b.s.patterns.push_back(make_pattern(members, axis(0)));
  b.s.patterns.push_back(make_pattern(small, axis(1)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  const auto& a = plan.actions[0];
  EXPECT_EQ(a.pattern, 0u);
  EXPECT_TRUE(a.creates);
  EXPECT_FALSE(a.existing);
  EXPECT_EQ(a.new_number, 0u);
  EXPECT_EQ(a.members_to_link, members);
  EXPECT_EQ(a.importance, 8);
  EXPECT_EQ(a.agent_id, "a1");
  EXPECT_EQ(plan.principles_created, 1);
  EXPECT_EQ(plan.principles_updated, 0);
  EXPECT_EQ(plan.memories_processed, 5);
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"a1"}));
}

TEST(ConsolidationHierarchy, ExistingPrincipleAboveTheThresholdIsUpdated) {
  for (bool above : {false, true}) {
    builder b;
    float c = above ? std::nextafter(0.92f, 1.0f) : 0.92f;
    auto p = add_principle(b, 50, at_cosine(c));
    auto members = five(b, 1, 0);
    b.s.patterns.push_back(make_pattern(members, axis(0)));
    auto plan = plan_hierarchy(b.s, defaults);
    ASSERT_EQ(plan.actions.size(), 1u);
    const auto& a = plan.actions[0];
    if (above) {
      EXPECT_FALSE(a.creates);
      ASSERT_TRUE(a.existing);
      EXPECT_EQ(*a.existing, p);
      EXPECT_EQ(plan.principles_updated, 1);
      EXPECT_EQ(plan.principles_created, 0);
    } else {
      EXPECT_TRUE(a.creates);
      EXPECT_EQ(plan.principles_created, 1);
      EXPECT_EQ(plan.principles_updated, 0);
    }
  }
}

TEST(ConsolidationHierarchy, MembersToLinkAreActiveNonPrinciplesNotYetLinked) {
  builder b;
  auto p = add_principle(b, 50, axis(0));
  auto members = five(b, 1, 0);
  auto other_principle = add_principle(b, 51, axis(2));
  members.push_back(other_principle);
  b[members[1]].parent_id = b[p].id;
  b[members[2]].status = memory_status::superseded;
  b[members[3]].parent_id = uuid(60);
  b[members[4]].agent_id = "a2";
  b.s.patterns.push_back(make_pattern(members, axis(0)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].existing, std::optional<uint32_t>{p});
  EXPECT_EQ(plan.actions[0].members_to_link,
            (ids{members[0], members[3], members[4]}));
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"a1", "a2"}));
}

TEST(ConsolidationHierarchy, TheFirstMatchingPrincipleByCreationThenIdWins) {
  builder b;
  // Both match the centroid; p_old was created first, then p_small and
  // p_big at the same instant (the smaller id first).
  auto p_big = add_principle(b, 52, at_angle(5));
  auto p_small = add_principle(b, 51, at_angle(3));
  auto p_old = add_principle(b, 53, at_angle(10));
  b[p_old].created_at_us = as_of - 300 * day_us;
  b[p_big].created_at_us = b[p_small].created_at_us = as_of - 200 * day_us;
  b.s.patterns.push_back(make_pattern(five(b, 1, 0), axis(0)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].existing, std::optional<uint32_t>{p_old});
  b[p_old].status = memory_status::archived;
  plan = plan_hierarchy(b.s, defaults);
  EXPECT_EQ(plan.actions[0].existing, std::optional<uint32_t>{p_small});
}

TEST(ConsolidationHierarchy, ALaterPatternUpdatesAPrincipleCreatedEarlier) {
  builder b;
  auto first = five(b, 1, 0);
  auto second = five(b, 10, 0);
  for (auto i : second)
    b[i].agent_id = "a2";
  auto third = five(b, 20, 1);
  b.s.patterns.push_back(make_pattern(first, axis(0)));
  b.s.patterns.push_back(make_pattern(third, axis(1)));
  b.s.patterns.push_back(make_pattern(second, at_angle(5)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 3u);
  EXPECT_TRUE(plan.actions[0].creates);
  EXPECT_EQ(plan.actions[0].new_number, 0u);
  EXPECT_TRUE(plan.actions[1].creates);
  EXPECT_EQ(plan.actions[1].new_number, 1u);
  EXPECT_FALSE(plan.actions[2].creates);
  EXPECT_FALSE(plan.actions[2].existing);
  EXPECT_EQ(plan.actions[2].new_number, 0u);
  EXPECT_EQ(plan.actions[2].members_to_link, second);
  // The target's agent, not the pattern's.
  EXPECT_EQ(plan.actions[2].agent_id, "a1");
  EXPECT_EQ(plan.principles_created, 2);
  EXPECT_EQ(plan.principles_updated, 0);
  // Apply: two principles appear; the third pattern's members are linked
  // to the first new one.
  std::vector<principle_outcome> outcomes{
    {uuid(100), as_of, "First principle.", {}, ""},
    {uuid(101), as_of, "Second principle.", {}, ""},
    {"", 0, "First principle, revised.", {}, ""},
  };
  ASSERT_FALSE(apply_hierarchy(b.s, plan, outcomes));
  ASSERT_EQ(b.s.memories.size(), 17u);
  const auto& p0 = b.s.memories[15];
  EXPECT_EQ(p0.id, uuid(100));
  EXPECT_EQ(p0.type, memory_type::principle);
  EXPECT_EQ(p0.content, "First principle, revised.");
  EXPECT_TRUE(p0.created_in_run);
  EXPECT_EQ(p0.source_type, "consolidation");
  EXPECT_EQ(p0.agent_id, "a1");
  // No provider vector: the pattern's centroid.
  const float* v = b.s.vector_of(p0);
  EXPECT_EQ((std::vector<float>{v, v + 4}), axis(0));
  for (auto i : first)
    EXPECT_EQ(b[i].parent_id, uuid(100));
  for (auto i : second)
    EXPECT_EQ(b[i].parent_id, uuid(100));
  for (auto i : third)
    EXPECT_EQ(b[i].parent_id, uuid(101));
  // A re-run matches the principles it created: updates, nothing new.
  plan = plan_hierarchy(b.s, defaults);
  EXPECT_EQ(plan.principles_created, 0);
  EXPECT_EQ(plan.principles_updated, 2);
  for (const auto& a : plan.actions)
    EXPECT_TRUE(a.members_to_link.empty());
}

TEST(ConsolidationHierarchy, AMemberOfTwoPatternsIsLinkedOnce) {
  builder b;
  // Patterns loaded from storage may overlap: the first pattern links the
  // shared member, the second leaves it.
  auto first = five(b, 1, 0);
  auto second = five(b, 10, 1);
  second[4] = first[0];
  b.s.patterns.push_back(make_pattern(first, axis(0)));
  b.s.patterns.push_back(make_pattern(second, axis(1)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 2u);
  EXPECT_EQ(plan.actions[0].members_to_link, first);
  EXPECT_EQ(plan.actions[1].members_to_link,
            (ids{second[0], second[1], second[2], second[3]}));
  std::vector<principle_outcome> outcomes{{uuid(100), as_of, "one", {}, ""},
                                          {uuid(101), as_of, "two", {}, ""}};
  ASSERT_FALSE(apply_hierarchy(b.s, plan, outcomes));
  EXPECT_EQ(b[first[0]].parent_id, uuid(100));
}

TEST(ConsolidationHierarchy, ApplyUpdatesContentAndRaisesImportance) {
  builder b;
  auto p = add_principle(b, 50, axis(0));
  b[p].importance = 4;
  auto members = five(b, 1, 0);
  b[members[0]].importance = 9;
  b.s.patterns.push_back(make_pattern(members, axis(0)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(code_of(apply_hierarchy(b.s, plan, {})), errc::invalid_argument);
  principle_outcome bad_dim{"", 0, "updated", {1, 0}, ""};
  EXPECT_EQ(code_of(apply_hierarchy(b.s, plan, {bad_dim})),
            errc::invalid_argument);
  EXPECT_EQ(b[p].importance, 4);
  principle_outcome o{"", 0, "updated", {0, 1, 0, 0}, ""};
  ASSERT_FALSE(apply_hierarchy(b.s, plan, {o}));
  EXPECT_EQ(b[p].content, "updated");
  EXPECT_EQ(b[p].importance, 9);
  EXPECT_EQ(b.s.memories.size(), 6u);
  const float* v = b.s.vector_of(b[p]);
  EXPECT_EQ((std::vector<float>{v, v + 4}), axis(1));
  for (auto i : members)
    EXPECT_EQ(b[i].parent_id, b[p].id);
}

TEST(ConsolidationHierarchy, ANewPrinciplesAgentIsSharedOrProjectWide) {
  builder b;
  auto members = five(b, 1, 0);
  b[members[3]].agent_id = "a2";
  b.s.patterns.push_back(make_pattern(members, axis(0)));
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].agent_id, "");
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"", "a1", "a2"}));
}

TEST(ConsolidationHierarchy, PatternsFromThePatternsPhaseFeedIt) {
  builder b;
  five(b, 1, 0);
  auto pp = plan_patterns(b.s, defaults);
  ASSERT_EQ(pp.patterns.size(), 1u);
  apply_patterns(b.s, pp);
  auto plan = plan_hierarchy(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_TRUE(plan.actions[0].creates);
  auto cfg = defaults;
  cfg.principle_min_support = 6;
  EXPECT_TRUE(plan_hierarchy(b.s, cfg).actions.empty());
}

// -- playbook ----------------------------------------------------------------------

TEST(ConsolidationPlaybook, APrincipleWithoutAMatchCreatesAnEntry) {
  builder b;
  auto p = add_principle(b, 1, axis(0));
  b.add_entry(10, axis(1), "other", uuid(99));
  auto plan = plan_playbook(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  const auto& a = plan.actions[0];
  EXPECT_EQ(a.principle, p);
  EXPECT_TRUE(a.creates);
  EXPECT_EQ(a.title, "principle 1.");
  EXPECT_EQ(plan.playbook_entries_created, 1);
  EXPECT_EQ(plan.playbook_entries_updated, 0);
  EXPECT_EQ(plan.memories_processed, 1);
  EXPECT_EQ(code_of(apply_playbook(b.s, plan, {})), errc::invalid_argument);
  ASSERT_FALSE(apply_playbook(b.s, plan, {{uuid(200), as_of}}));
  ASSERT_EQ(b.s.playbook.size(), 2u);
  const auto& e = b.s.playbook[1];
  EXPECT_EQ(e.id, uuid(200));
  EXPECT_EQ(e.principle_id, b[p].id);
  EXPECT_EQ(e.content, b[p].content);
  EXPECT_EQ(e.title, "principle 1.");
  EXPECT_EQ(e.agent_id, "a1");
  EXPECT_EQ(e.created_at_us, as_of);
  EXPECT_EQ(e.space, 0);
  const float* v = b.s.spaces[0].vectors.row(e.row);
  EXPECT_EQ((std::vector<float>{v, v + 4}), axis(0));
  // A re-run finds the entry and changes nothing.
  plan = plan_playbook(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_FALSE(plan.actions[0].creates);
  EXPECT_EQ(plan.actions[0].existing, std::optional<uint32_t>{1});
  EXPECT_FALSE(plan.actions[0].changes);
  EXPECT_EQ(plan.playbook_entries_updated, 0);
}

TEST(ConsolidationPlaybook, AMatchIsUpdatedAndCountedOnlyWhenSomethingChanges) {
  builder b;
  auto p = add_principle(b, 1, axis(0));
  // Above 0.90: the same content and principle: a no-op update.
  auto same = b.add_entry(10, at_angle(10), b[p].content, b[p].id);
  auto plan = plan_playbook(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_EQ(plan.actions[0].existing, std::optional<uint32_t>{same});
  EXPECT_FALSE(plan.actions[0].changes);
  EXPECT_EQ(plan.playbook_entries_updated, 0);
  EXPECT_EQ(plan.playbook_entries_created, 0);
  // Another principle id: an update.
  b.s.playbook[same].principle_id = uuid(77);
  plan = plan_playbook(b.s, defaults);
  EXPECT_TRUE(plan.actions[0].changes);
  EXPECT_EQ(plan.playbook_entries_updated, 1);
  // Other content: an update too, applied.
  b.s.playbook[same].principle_id = b[p].id;
  b.s.playbook[same].content = "stale";
  plan = plan_playbook(b.s, defaults);
  EXPECT_TRUE(plan.actions[0].changes);
  EXPECT_EQ(plan.playbook_entries_updated, 1);
  ASSERT_FALSE(apply_playbook(b.s, plan, {}));
  EXPECT_EQ(b.s.playbook[same].content, b[p].content);
  EXPECT_EQ(b.s.playbook[same].title, "entry 10");
  EXPECT_EQ(b.s.playbook.size(), 1u);
}

TEST(ConsolidationPlaybook, CosineExactlyAtTheThresholdCreates) {
  for (bool above : {false, true}) {
    builder b;
    float c = above ? std::nextafter(0.90f, 1.0f) : 0.90f;
    add_principle(b, 1, axis(0));
    b.add_entry(10, at_cosine(c), "old", uuid(1));
    auto plan = plan_playbook(b.s, defaults);
    ASSERT_EQ(plan.actions.size(), 1u);
    EXPECT_EQ(plan.actions[0].creates, !above);
  }
}

TEST(ConsolidationPlaybook, PrinciplesAreVisitedOldestFirstNewOnesLast) {
  builder b;
  // All three match the one entry (and each other); the new principle
  // (created by this run) is visited last although its created_at is the
  // oldest; among the others the older is first.
  auto fresh = add_principle(b, 1, axis(0));
  auto later = add_principle(b, 2, axis(0));
  auto older = add_principle(b, 3, axis(0));
  b[fresh].created_in_run = true;
  b[fresh].created_at_us = as_of - 1000 * day_us;
  b[older].created_at_us = as_of - 500 * day_us;
  b[later].created_at_us = as_of - 400 * day_us;
  auto plan = plan_playbook(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 3u);
  EXPECT_EQ(plan.actions[0].principle, older);
  EXPECT_EQ(plan.actions[1].principle, later);
  EXPECT_EQ(plan.actions[2].principle, fresh);
  // The first creates an entry, the others update that new entry.
  EXPECT_TRUE(plan.actions[0].creates);
  EXPECT_FALSE(plan.actions[1].creates);
  EXPECT_FALSE(plan.actions[1].existing);
  EXPECT_EQ(plan.actions[1].new_number, 0u);
  EXPECT_TRUE(plan.actions[1].changes);
  EXPECT_EQ(plan.playbook_entries_created, 1);
  EXPECT_EQ(plan.playbook_entries_updated, 0);
  ASSERT_FALSE(apply_playbook(b.s, plan, {{uuid(200), as_of}}));
  ASSERT_EQ(b.s.playbook.size(), 1u);
  EXPECT_EQ(b.s.playbook[0].principle_id, b[fresh].id);
  EXPECT_EQ(b.s.playbook[0].content, b[fresh].content);
  EXPECT_EQ(b.s.playbook[0].title, "principle 3.");
}

TEST(ConsolidationPlaybook, InactiveAndUnembeddedPrinciplesAndOtherModelsAreLeftOut) {
  builder b;
  auto archived = add_principle(b, 1, axis(0));
  b[archived].status = memory_status::archived;
  add_principle(b, 2, {});
  b.add_entry(10, axis(0), "old", uuid(1));
  auto plan = plan_playbook(b.s, defaults);
  EXPECT_TRUE(plan.actions.empty());
  EXPECT_EQ(plan.memories_processed, 0);
  // A principle of another model never matches the entry of "m4".
  add_principle(b, 3, axis(0));
  b[2].space = b.s.space_for("other", 4);
  b[2].row = static_cast<uint32_t>(b.s.spaces[b[2].space].vectors.append(
    axis(0).data()));
  plan = plan_playbook(b.s, defaults);
  ASSERT_EQ(plan.actions.size(), 1u);
  EXPECT_TRUE(plan.actions[0].creates);
}

TEST(ConsolidationPlaybook, TitleIsTheFirstSentenceCutAtAWord) {
  EXPECT_EQ(playbook_title("Deploy on Tuesdays. Never on Friday."),
            "Deploy on Tuesdays.");
  EXPECT_EQ(playbook_title("  no full stop  "), "no full stop");
  std::string long_sentence;
  for (int i = 0; i < 30; ++i)
    long_sentence += "word" + std::to_string(i) + " ";
  auto t = playbook_title(long_sentence);
  EXPECT_LE(t.size(), 80u);
  EXPECT_EQ(t.substr(t.size() - 3), "...");
  EXPECT_EQ(long_sentence.rfind(t.substr(0, t.size() - 3), 0), 0u);
  // Cut where a word ended.
  EXPECT_EQ(long_sentence[t.size() - 3], ' ');
  // A multi-byte character is never split.
  std::string accents(60, 'a');
  for (int i = 0; i < 20; ++i)
    accents += "\xc3\xa9";
  t = playbook_title(accents);
  EXPECT_LE(t.size(), 80u);
  EXPECT_EQ(t.size() % 2, 1u) << "an odd byte count splits an e-acute";
}

// -- decay -------------------------------------------------------------------------

TEST(ConsolidationDecay, ExpiredMemoriesAreArchivedWhateverTheyAre) {
  builder b;
  auto pinned = b.add(1, axis(0));
  auto identity = b.add(2, axis(0));
  auto hot = b.add(3, axis(0));
  auto at_now = b.add(4, axis(0));
  auto future = b.add(5, axis(0));
  for (auto i : {pinned, identity, hot})
    b[i].expires_at_us = as_of - 1;
  b[pinned].pinned = true;
  b[pinned].importance = 10;
  b[identity].type = memory_type::identity;
  b[hot].tier = memory_tier::hot;
  // Expiring exactly now is not past.
  b[at_now].expires_at_us = as_of;
  b[at_now].tier = memory_tier::hot;
  b[future].expires_at_us = as_of + day_us;
  b[future].tier = memory_tier::hot;
  auto plan = plan_decay(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 5);
  ASSERT_EQ(plan.archived.size(), 3u);
  EXPECT_EQ(plan.memories_archived, 3);
  EXPECT_EQ(plan.archived[0].memory, pinned);
  EXPECT_EQ(plan.archived[1].memory, identity);
  EXPECT_EQ(plan.archived[2].memory, hot);
  EXPECT_EQ(plan.archived[2].previous_tier, memory_tier::hot);
  EXPECT_EQ(plan.archived[0].reason, decay_reason::expired);
  // The warm identity and pinned ones (never accessed, 100 days old) would
  // not be demoted: archived is all that happens to them.
  EXPECT_TRUE(plan.demoted.empty());
  ASSERT_FALSE(apply_decay(b.s, plan));
  for (auto i : {pinned, identity, hot}) {
    EXPECT_EQ(b[i].status, memory_status::archived);
    EXPECT_EQ(b[i].tier, memory_tier::cold);
  }
  EXPECT_TRUE(b[at_now].active());
  EXPECT_EQ(b[at_now].tier, memory_tier::hot);
  // Archived memories are not active: a second plan leaves them alone.
  plan = plan_decay(b.s, defaults);
  EXPECT_TRUE(plan.archived.empty());
  decay_plan again;
  again.archived.push_back({pinned, decay_reason::expired, memory_tier::warm});
  EXPECT_EQ(code_of(apply_decay(b.s, again)), errc::invalid_argument);
}

TEST(ConsolidationDecay, WarmMemoriesUnusedForMoreThanThirtyDaysAreDemoted) {
  builder b;
  auto exactly = b.add(1, axis(0));
  auto older = b.add(2, axis(0));
  auto accessed = b.add(3, axis(0));
  auto stale_access = b.add(4, axis(0));
  // Created exactly 30 days before: not more than 30.
  b[exactly].created_at_us = as_of - 30 * day_us;
  b[older].created_at_us = as_of - 30 * day_us - 1;
  // Old, but accessed 30 days ago exactly: the last access counts.
  b[accessed].last_accessed_at_us = as_of - 30 * day_us;
  b[stale_access].last_accessed_at_us = as_of - 30 * day_us - 1;
  auto plan = plan_decay(b.s, defaults);
  ASSERT_EQ(plan.demoted.size(), 2u);
  EXPECT_EQ(plan.demoted[0].memory, older);
  EXPECT_EQ(plan.demoted[1].memory, stale_access);
  EXPECT_EQ(plan.demoted[0].reason, decay_reason::not_accessed);
  EXPECT_EQ(plan.demoted[0].previous_tier, memory_tier::warm);
  EXPECT_EQ(plan.memories_demoted, 2);
  EXPECT_EQ(plan.agents_changed, (std::vector<std::string>{"a1"}));
  ASSERT_FALSE(apply_decay(b.s, plan));
  EXPECT_EQ(b[older].tier, memory_tier::cold);
  EXPECT_TRUE(b[older].active());
  EXPECT_EQ(b[exactly].tier, memory_tier::warm);
  EXPECT_EQ(b[accessed].tier, memory_tier::warm);
}

TEST(ConsolidationDecay, ProtectedMemoriesAreNotDemoted) {
  builder b;
  auto seven = b.add(1, axis(0));
  auto eight = b.add(2, axis(0));
  auto identity = b.add(3, axis(0));
  auto pinned = b.add(4, axis(0));
  auto hot = b.add(5, axis(0));
  auto cold = b.add(6, axis(0));
  auto superseded = b.add(7, axis(0));
  auto fresh = b.add(8, axis(0));
  b[seven].importance = 7;
  b[eight].importance = 8;
  b[identity].type = memory_type::identity;
  b[pinned].pinned = true;
  b[hot].tier = memory_tier::hot;
  b[cold].tier = memory_tier::cold;
  b[superseded].status = memory_status::superseded;
  b[fresh].created_in_run = true;
  auto plan = plan_decay(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 6);
  ASSERT_EQ(plan.demoted.size(), 1u);
  EXPECT_EQ(plan.demoted[0].memory, seven);
  EXPECT_TRUE(plan.archived.empty());
  auto cfg = defaults;
  cfg.demote_importance_floor = 9;
  plan = plan_decay(b.s, cfg);
  ASSERT_EQ(plan.demoted.size(), 2u);
  EXPECT_EQ(plan.demoted[1].memory, eight);
}

TEST(ConsolidationDecay, InactiveMemoriesAreNeverTouchedEvenWhenExpired) {
  builder b;
  auto s = b.add(1, axis(0));
  b[s].status = memory_status::superseded;
  b[s].expires_at_us = as_of - day_us;
  auto plan = plan_decay(b.s, defaults);
  EXPECT_EQ(plan.memories_processed, 0);
  EXPECT_TRUE(plan.archived.empty());
  EXPECT_TRUE(plan.demoted.empty());
}

} // namespace
} // namespace engram::consolidation
