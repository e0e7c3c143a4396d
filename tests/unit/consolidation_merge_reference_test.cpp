// plan_merge against the merge rule of DESIGN §6 written the slow way: every
// candidate compared with every kept memory of its group, pair by pair with
// vec::cosine, on ~2000 memories with clustered vectors (a fixed seed, so
// the data is the same on every run).

#include "actors/consolidation/phases.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

#include "runtime/vector_kernel.hpp"
#include "tests/unit/consolidation_test_support.hpp"

namespace engram::consolidation {
namespace {

using namespace testing;

/// DESIGN §6 merge, naively: candidates are active, not identity, not
/// pinned, not created by this run, with an embedding; visited by (type,
/// agent, importance desc, created_at asc, id asc); one joins the first kept
/// memory of its (type, agent, model) with cosine > threshold, else is kept.
std::vector<merge_group> naive_merge(const snapshot& s, double threshold) {
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < s.memories.size(); ++i) {
    const auto& m = s.memories[i];
    if (m.active() && m.type != memory_type::identity && !m.pinned
        && !m.created_in_run && has_embedding(s, m))
      order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = s.memories[a];
    const auto& y = s.memories[b];
    return std::tuple{x.type, x.agent_id, -x.importance, x.created_at_us, x.id}
           < std::tuple{y.type, y.agent_id, -y.importance, y.created_at_us,
                        y.id};
  });
  auto limit = static_cast<float>(threshold);
  std::map<std::tuple<memory_type, std::string, int32_t>,
           std::vector<uint32_t>>
    kept;
  std::map<uint32_t, std::vector<uint32_t>> absorbed;
  std::vector<uint32_t> kept_in_order;
  for (auto i : order) {
    const auto& m = s.memories[i];
    auto& list = kept[{m.type, m.agent_id, m.space}];
    auto dim = s.spaces[m.space].vectors.dim();
    bool joined = false;
    for (auto k : list)
      if (vec::cosine(s.vector_of(m), s.vector_of(s.memories[k]), dim)
          > limit) {
        absorbed[k].push_back(i);
        joined = true;
        break;
      }
    if (!joined) {
      list.push_back(i);
      kept_in_order.push_back(i);
    }
  }
  std::vector<merge_group> result;
  for (auto k : kept_in_order)
    if (auto it = absorbed.find(k); it != absorbed.end())
      result.push_back(merge_group{k, it->second});
  return result;
}

TEST(ConsolidationMerge, AgreesWithTheNaiveRuleOnFourThousandMemories) {
  constexpr size_t n = 4000;
  constexpr size_t dim = 32;
  std::mt19937 gen{20240607};
  std::normal_distribution<float> normal{0.0f, 1.0f};
  std::uniform_real_distribution<float> spread{0.02f, 0.08f};
  // Per model, 60 cluster centres, each with its own spread: with 32
  // dimensions a spread of about 0.05 puts the cosine of two members near
  // 0.92, so pairs fall on both sides of the threshold.
  const std::vector<std::string> models{"model-a", "model-b"};
  struct centre {
    std::vector<float> v;
    float noise;
  };
  std::vector<std::vector<centre>> centres(models.size());
  for (auto& cs : centres)
    for (int c = 0; c < 60; ++c) {
      centre x{std::vector<float>(dim), spread(gen)};
      for (auto& f : x.v)
        f = normal(gen);
      vec::normalize(x.v);
      cs.push_back(std::move(x));
    }
  // Many agents: 36 groups, which the plan clusters on several threads.
  const std::vector<std::string> agents{"",   "a1", "a2", "a3", "a4",  "a5",
                                       "a6", "a7", "a8", "a9", "a10", "a11"};
  const std::vector<memory_type> types{memory_type::episodic,
                                       memory_type::semantic,
                                       memory_type::procedural};
  builder b;
  std::vector<int> numbers(n);
  for (size_t i = 0; i < n; ++i)
    numbers[i] = static_cast<int>(i + 1);
  // Ids in an order unrelated to the memories' positions.
  std::shuffle(numbers.begin(), numbers.end(), gen);
  std::uniform_int_distribution<int> pick(0, 1'000'000);
  for (size_t i = 0; i < n; ++i) {
    auto model = static_cast<size_t>(pick(gen) % models.size());
    const auto& c = centres[model][static_cast<size_t>(pick(gen)) % 60];
    std::vector<float> v(dim);
    for (size_t k = 0; k < dim; ++k)
      v[k] = c.v[k] + c.noise * normal(gen);
    vec::normalize(v);
    auto roll = pick(gen) % 100;
    if (roll < 2)
      v.clear(); // no embedding
    auto m = b.add(numbers[i], std::move(v), models[model]);
    b[m].type = types[static_cast<size_t>(pick(gen)) % types.size()];
    b[m].agent_id = agents[static_cast<size_t>(pick(gen)) % agents.size()];
    b[m].importance = 1 + pick(gen) % 10;
    // Few distinct instants, so ties on created_at go to the id.
    b[m].created_at_us = as_of - (1 + pick(gen) % 20) * day_us;
    if (roll >= 2 && roll < 4)
      b[m].type = memory_type::identity;
    else if (roll >= 4 && roll < 6)
      b[m].pinned = true;
    else if (roll >= 6 && roll < 8)
      b[m].status = memory_status::superseded;
    else if (roll == 8)
      b[m].created_in_run = true;
  }
  auto expected = naive_merge(b.s, settings{}.merge_threshold);
  int64_t absorbed = 0;
  for (const auto& g : expected)
    absorbed += static_cast<int64_t>(g.absorbed.size());
  auto threads_before = vec::kernel_threads();
  for (size_t threads : {1u, 2u, 3u}) {
    vec::set_kernel_threads(threads);
    auto plan = plan_merge(b.s, settings{});
    ASSERT_EQ(plan.groups.size(), expected.size()) << threads << " threads";
    for (size_t g = 0; g < expected.size(); ++g) {
      EXPECT_EQ(plan.groups[g].kept, expected[g].kept)
        << "group " << g << ", " << threads << " threads";
      EXPECT_EQ(plan.groups[g].absorbed, expected[g].absorbed)
        << "group " << g << ", " << threads << " threads";
    }
    EXPECT_EQ(plan.memories_merged, absorbed);
  }
  vec::set_kernel_threads(threads_before);
  // The data exercises the rule: many groups, many kept memories that
  // absorbed nothing.
  EXPECT_GT(expected.size(), 100u);
  EXPECT_GT(absorbed, 300);
  EXPECT_LT(absorbed, 3400);
}

} // namespace
} // namespace engram::consolidation
