#include "runtime/vector_kernel.hpp"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace engram::vec {
namespace {

matrix random_clusters(size_t n, size_t dim, size_t centers, float noise,
                       uint32_t seed) {
  std::mt19937 gen{seed};
  std::normal_distribution<float> normal{0.0f, 1.0f};
  std::uniform_int_distribution<size_t> pick{0, centers - 1};
  std::vector<std::vector<float>> c(centers, std::vector<float>(dim));
  for (auto& v : c) {
    for (auto& x : v)
      x = normal(gen);
    normalize(v);
  }
  // `noise` is the noise vector's expected length (per component:
  // noise / sqrt(dim)).
  float scale = noise / std::sqrt(static_cast<float>(dim));
  matrix m{dim};
  std::vector<float> v(dim);
  for (size_t i = 0; i < n; ++i) {
    auto& center = c[pick(gen)];
    for (size_t k = 0; k < dim; ++k)
      v[k] = center[k] + scale * normal(gen);
    normalize(v);
    m.append(v.data());
  }
  return m;
}

double exact_dot(const float* a, const float* b, size_t dim) {
  double s = 0;
  for (size_t k = 0; k < dim; ++k)
    s += static_cast<double>(a[k]) * b[k];
  return s;
}

// The rule written the slow way: each row against every leader so far, on
// the cosine as the kernel defines it (double accumulation rounded to
// float) against the float threshold.
std::vector<uint32_t> naive_leaders(matrix_view rows, float threshold) {
  std::vector<uint32_t> leader_rows;
  std::vector<uint32_t> out(rows.rows);
  for (size_t i = 0; i < rows.rows; ++i) {
    bool joined = false;
    for (size_t j = 0; j < leader_rows.size(); ++j)
      if (static_cast<float>(
            exact_dot(rows.row(i), rows.row(leader_rows[j]), rows.dim))
          > threshold) {
        out[i] = static_cast<uint32_t>(j);
        joined = true;
        break;
      }
    if (!joined) {
      out[i] = static_cast<uint32_t>(leader_rows.size());
      leader_rows.push_back(static_cast<uint32_t>(i));
    }
  }
  return out;
}

TEST(VectorKernel, NormalizeMakesUnitLengthAndRejectsZeroAndNaN) {
  std::vector<float> v{3, 4};
  EXPECT_TRUE(normalize(v));
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> zero{0, 0, 0};
  EXPECT_FALSE(normalize(zero));
  std::vector<float> bad{1, NAN, 2};
  EXPECT_FALSE(normalize(bad));
  EXPECT_EQ(bad, (std::vector<float>{0, 0, 0}));
}

TEST(VectorKernel, DotBlockComputesEveryPair) {
  auto a = random_clusters(37, 19, 5, 0.3f, 1);
  auto b = random_clusters(23, 19, 5, 0.3f, 2);
  std::vector<float> out(37 * 23);
  dot_block(a.view(), b.view(), out.data());
  for (size_t i = 0; i < 37; ++i)
    for (size_t j = 0; j < 23; ++j)
      EXPECT_NEAR(out[i * 23 + j], exact_dot(a.row(i), b.row(j), 19), 1e-5);
}

TEST(VectorKernel, ThresholdIsStrictOnTheFloatCosine) {
  // Unit vectors whose kernel cosine is exactly 0.92f: 0.92f * 1 + y * 0.
  float y = std::sqrt(1.0f - 0.92f * 0.92f);
  std::vector<float> rows{1, 0, 0.92f, y};
  matrix_view m{rows.data(), 2, 2};
  ASSERT_EQ(cosine(m.row(0), m.row(1), 2), 0.92f);
  auto at = assign_leaders(m, 0.92f);
  EXPECT_EQ(at.leader_of, (std::vector<uint32_t>{0, 1}));
  auto below = assign_leaders(m, std::nextafter(0.92f, 0.0f));
  EXPECT_EQ(below.leader_of, (std::vector<uint32_t>{0, 0}));
}

TEST(VectorKernel, JoinsTheFirstLeaderNotTheClosest) {
  // Row 2 is closer to leader 1 but also above the threshold with leader 0.
  std::vector<float> rows{1, 0, 0, 1, 0.8f, 0.9f};
  normalize(std::span<float>{rows.data() + 4, 2});
  matrix_view m{rows.data(), 3, 2};
  auto at = assign_leaders(m, 0.5f);
  EXPECT_EQ(at.leader_of, (std::vector<uint32_t>{0, 1, 0}));
  EXPECT_EQ(at.new_leader_rows, (std::vector<uint32_t>{0, 1}));
  EXPECT_TRUE(at.is_leader_row(1));
  EXPECT_FALSE(at.is_leader_row(2));
}

TEST(VectorKernel, InitialLeadersComeFirst) {
  std::vector<float> initial{0, 1};
  std::vector<float> rows{0.1f, 0.995f, 1, 0};
  normalize(std::span<float>{rows.data(), 2});
  auto at = assign_leaders({rows.data(), 2, 2}, 0.9f, {initial.data(), 1, 2});
  EXPECT_EQ(at.initial_count, 1u);
  EXPECT_EQ(at.leader_of, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(at.new_leader_rows, (std::vector<uint32_t>{1}));
}

TEST(VectorKernel, ZeroRowsNeverJoinAndNeverAttract) {
  std::vector<float> rows{0, 0, 0, 0, 1, 0};
  auto at = assign_leaders({rows.data(), 3, 2}, -1.0f);
  EXPECT_EQ(at.leader_of, (std::vector<uint32_t>{0, 1, 2}));
}

TEST(VectorKernel, BlockedResultEqualsTheNaiveRuleForAnyBlockSize) {
  auto m = random_clusters(1500, 48, 40, 0.6f, 7);
  auto expected = naive_leaders(m.view(), 0.80f);
  for (size_t block : {1u, 7u, 64u, 256u, 4096u}) {
    auto at = assign_leaders(m.view(), 0.80f, {}, block);
    EXPECT_EQ(at.leader_of, expected) << "block " << block;
  }
  size_t leaders = 1 + *std::max_element(expected.begin(), expected.end());
  EXPECT_GT(leaders, 20u); // the data has real clusters and real joins
  EXPECT_LT(leaders, 1000u);
}

TEST(VectorKernel, PairsAtTheThresholdAreDecidedTheSameWhateverTheBlocking) {
  // Rows whose cosine with the first row lies within a few ulp of 0.92 at
  // dim 384: sgemm's rounding differs with the call's shape, the decisions
  // must not.
  constexpr size_t dim = 384;
  std::mt19937 gen{11};
  std::normal_distribution<double> normal{0, 1};
  std::uniform_real_distribution<double> tiny{-3e-7, 3e-7};
  std::vector<double> a(dim);
  for (auto& x : a)
    x = normal(gen);
  double n = 0;
  for (auto x : a)
    n += x * x;
  for (auto& x : a)
    x /= std::sqrt(n);
  matrix m{dim};
  std::vector<float> row(dim);
  for (size_t k = 0; k < dim; ++k)
    row[k] = static_cast<float>(a[k]);
  m.append(row.data());
  for (int r = 0; r < 600; ++r) {
    // An orthogonal unit direction, then cos = 0.92 + tiny.
    std::vector<double> o(dim);
    for (auto& x : o)
      x = normal(gen);
    double d = 0;
    for (size_t k = 0; k < dim; ++k)
      d += o[k] * a[k];
    double on = 0;
    for (size_t k = 0; k < dim; ++k) {
      o[k] -= d * a[k];
      on += o[k] * o[k];
    }
    double c = 0.92 + tiny(gen);
    double sn = std::sqrt(1 - c * c);
    for (size_t k = 0; k < dim; ++k)
      row[k] = static_cast<float>(c * a[k] + sn * o[k] / std::sqrt(on));
    m.append(row.data());
  }
  auto expected = naive_leaders(m.view(), 0.92f);
  size_t joined = 0;
  for (size_t i = 1; i < expected.size(); ++i)
    joined += expected[i] == 0;
  EXPECT_GT(joined, 0u) << "some rows pass the threshold";
  EXPECT_LT(joined, 600u) << "some rows do not";
  for (size_t block : {1u, 7u, 64u, 512u, 1024u})
    EXPECT_EQ(assign_leaders(m.view(), 0.92f, {}, block).leader_of, expected)
      << "block " << block;
}

TEST(VectorKernel, CountersCountFlops) {
  reset_counters();
  auto a = random_clusters(10, 8, 2, 0.1f, 3);
  std::vector<float> out(100);
  dot_block(a.view(), a.view(), out.data());
  EXPECT_EQ(counters().flops, 2.0 * 10 * 10 * 8);
}

} // namespace
} // namespace engram::vec
