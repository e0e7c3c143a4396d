#include "runtime/vector_kernel.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <chrono>
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

// The rule written the slow way: each row against every leader so far
// (the `initial` ones first), on the cosine as the kernel defines it
// (double accumulation rounded to float) against the float threshold; zero
// rows never join and always lead, zero leaders attract nothing.
std::vector<uint32_t> naive_leaders(matrix_view rows, float threshold,
                                    matrix_view initial = {}) {
  auto zero = [&](const float* p) {
    return std::all_of(p, p + rows.dim, [](float x) { return x == 0.0f; });
  };
  std::vector<const float*> leaders;
  for (size_t j = 0; j < initial.rows; ++j)
    leaders.push_back(initial.row(j));
  std::vector<uint32_t> out(rows.rows);
  for (size_t i = 0; i < rows.rows; ++i) {
    bool joined = false;
    for (size_t j = 0; j < leaders.size() && !zero(rows.row(i)); ++j)
      if (!zero(leaders[j])
          && static_cast<float>(exact_dot(rows.row(i), leaders[j], rows.dim))
               > threshold) {
        out[i] = static_cast<uint32_t>(j);
        joined = true;
        break;
      }
    if (!joined) {
      out[i] = static_cast<uint32_t>(leaders.size());
      leaders.push_back(rows.row(i));
    }
  }
  return out;
}

/// Unit vector e_k of dimension `dim`.
std::vector<float> basis(size_t dim, size_t k) {
  std::vector<float> v(dim, 0.0f);
  v[k] = 1.0f;
  return v;
}

/// The flops of the scheme before early exit: each block of m rows against
/// every leader before it and against itself.
double full_flops(const leader_assignment& a, size_t rows, size_t dim,
                  size_t block) {
  double pairs = 0;
  for (size_t first = 0; first < rows; first += block) {
    auto m = std::min(block, rows - first);
    size_t before = a.initial_count;
    for (auto r : a.new_leader_rows)
      before += r < first;
    pairs += static_cast<double>(m) * (before + m);
  }
  return 2 * pairs * static_cast<double>(dim);
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

/// A unit row `a` of dimension `dim`, then `count` unit rows whose cosine
/// with it lies within a few ulp of 0.92 (where sgemm's rounding differs
/// with the call's shape).
matrix near_threshold_rows(size_t dim, size_t count, uint32_t seed) {
  std::mt19937 gen{seed};
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
  for (size_t r = 0; r < count; ++r) {
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
  return m;
}

TEST(VectorKernel, PairsAtTheThresholdAreDecidedTheSameWhateverTheBlocking) {
  // Rows whose cosine with the first row lies within a few ulp of 0.92 at
  // dim 384: sgemm's rounding differs with the call's shape, the decisions
  // must not.
  auto m = near_threshold_rows(384, 600, 11);
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

TEST(VectorKernel, EarlyExitEqualsTheNaiveRuleForAnyBlockAndChunk) {
  // Clustered rows, some zero, after initial leaders: a few of the true
  // centres' neighbours, unrelated vectors and a zero leader.
  constexpr size_t dim = 40;
  auto m = random_clusters(3000, dim, 120, 0.4f, 21);
  for (size_t i : {0u, 17u, 511u, 512u, 1999u})
    std::fill(m.row(i), m.row(i) + dim, 0.0f);
  auto seeds = random_clusters(60, dim, 120, 0.4f, 21);
  auto others = random_clusters(200, dim, 200, 0.0f, 99);
  matrix initial{dim};
  for (size_t j = 0; j < 200; ++j) {
    initial.append(others.row(j));
    if (j % 4 == 0)
      initial.append(seeds.row(j / 4 % 60));
    if (j == 100)
      initial.append_zero();
  }
  for (float threshold : {0.80f, 0.86f}) {
    auto expected = naive_leaders(m.view(), threshold, initial.view());
    size_t to_initial = 0, to_late_initial = 0;
    for (auto l : expected) {
      to_initial += l < initial.rows();
      to_late_initial += l >= 128 && l < initial.rows();
    }
    EXPECT_GT(to_initial, 100u) << "rows join initial leaders";
    EXPECT_GT(to_late_initial, 20u) << "late ones too";
    size_t leaders = 1 + *std::max_element(expected.begin(), expected.end());
    EXPECT_GT(leaders, initial.rows() + 50) << "and new leaders";
    for (size_t block : {1u, 5u, 64u, 512u, 5000u})
      for (size_t chunk : {1u, 3u, 16u, 256u, 100000u}) {
        auto at = assign_leaders(m.view(), threshold, initial.view(), block,
                                 chunk);
        EXPECT_EQ(at.leader_of, expected)
          << "threshold " << threshold << " block " << block << " chunk "
          << chunk;
      }
    EXPECT_EQ(assign_leaders(m.view(), threshold).leader_of,
              naive_leaders(m.view(), threshold))
      << "no initial leaders, default block and chunk";
  }
}

TEST(VectorKernel, ManyRowsLeftInABlockFollowTheRuleAmongThemselves) {
  // Mostly distinct rows, so most of a large block is left after the
  // leaders before it and goes through the smaller blocks among itself
  // (twice over for 4096), with near-duplicates of earlier rows and zero
  // rows spread through it.
  constexpr size_t dim = 24;
  auto distinct = random_clusters(2400, dim, 2400, 0.0f, 31);
  auto twins = random_clusters(2400, dim, 2400, 0.2f, 31);
  matrix m{dim};
  std::mt19937 gen{32};
  std::uniform_int_distribution<size_t> earlier{0, 2399};
  for (size_t i = 0; i < 2400; ++i) {
    m.append(distinct.row(i));
    if (i % 5 == 4)
      m.append(twins.row(earlier(gen) % (i + 1)));
    if (i % 301 == 7)
      m.append_zero();
  }
  auto expected = naive_leaders(m.view(), 0.9f);
  size_t leaders = 1 + *std::max_element(expected.begin(), expected.end());
  EXPECT_GT(leaders, 1500u);
  EXPECT_LT(leaders, m.rows() - 100);
  for (size_t block : {200u, 1000u, 4096u})
    for (size_t chunk : {7u, 128u})
      EXPECT_EQ(assign_leaders(m.view(), 0.9f, {}, block, chunk).leader_of,
                expected)
        << "block " << block << " chunk " << chunk;
}

TEST(VectorKernel, ARowJoinsTheFirstLeaderEvenWhenItIsInALateChunk) {
  // 64 orthogonal initial leaders e_0 … e_63; in chunks of 8 leader 50 sits
  // in the seventh chunk. Row 0 passes only e_50, row 1 passes e_3 and e_60
  // (joins e_3, dropped after the first chunk), row 2 passes only e_63 (the
  // last chunk, with the rows that dropped out before it).
  constexpr size_t dim = 64;
  matrix initial{dim};
  for (size_t k = 0; k < dim; ++k)
    initial.append(basis(dim, k).data());
  matrix m{dim};
  auto v = basis(dim, 50);
  v[1] = 0.3f;
  normalize(v);
  m.append(v.data());
  v = basis(dim, 3);
  v[60] = 1.0f;
  normalize(v);
  m.append(v.data());
  v = basis(dim, 63);
  m.append(v.data());
  for (size_t block : {1u, 2u, 3u})
    for (size_t chunk : {1u, 8u, 50u, 51u, 64u}) {
      auto at = assign_leaders(m.view(), 0.6f, initial.view(), block, chunk);
      EXPECT_EQ(at.leader_of, (std::vector<uint32_t>{50, 3, 63}))
        << "block " << block << " chunk " << chunk;
      EXPECT_TRUE(at.new_leader_rows.empty());
    }
}

TEST(VectorKernel, ThresholdIsStrictInALateChunkToo) {
  // Cosine exactly 0.92f with e_50 (0.92f · 1 + y · 0 on e_50, e_51 · 0):
  // not above 0.92, above the float just below it.
  constexpr size_t dim = 64;
  matrix initial{dim};
  for (size_t k = 0; k < dim; ++k)
    initial.append(basis(dim, k).data());
  auto v = basis(dim, 50);
  v[50] = 0.92f;
  v[2] = std::sqrt(1.0f - 0.92f * 0.92f);
  ASSERT_EQ(cosine(v.data(), initial.row(50), dim), 0.92f);
  matrix_view m{v.data(), 1, dim};
  for (size_t chunk : {1u, 8u, 64u}) {
    EXPECT_EQ(assign_leaders(m, 0.92f, initial.view(), 1, chunk).leader_of,
              (std::vector<uint32_t>{64}))
      << "chunk " << chunk;
    EXPECT_EQ(assign_leaders(m, std::nextafter(0.92f, 0.0f), initial.view(),
                             1, chunk)
                .leader_of,
              (std::vector<uint32_t>{50}))
      << "chunk " << chunk;
  }
}

TEST(VectorKernel, PairsAtTheThresholdInALateChunkAreDecidedOnTheCosine) {
  // The near-threshold rows against initial leaders: 100 unrelated ones,
  // then their centre (leader 100, in a late chunk for chunks below 100).
  constexpr size_t dim = 384;
  auto near = near_threshold_rows(dim, 600, 12);
  auto others = random_clusters(100, dim, 100, 0.0f, 13);
  matrix initial{dim};
  for (size_t j = 0; j < 100; ++j)
    initial.append(others.row(j));
  initial.append(near.row(0));
  matrix_view m{near.row(1), 600, dim};
  auto expected = naive_leaders(m, 0.92f, initial.view());
  auto joined = std::count(expected.begin(), expected.end(), 100u);
  EXPECT_GT(joined, 0) << "some rows pass the threshold";
  EXPECT_LT(joined, 600) << "some rows do not";
  for (size_t block : {1u, 7u, 512u, 1024u})
    for (size_t chunk : {1u, 16u, 100u, 101u, 512u})
      EXPECT_EQ(assign_leaders(m, 0.92f, initial.view(), block, chunk)
                  .leader_of,
                expected)
        << "block " << block << " chunk " << chunk;
}

TEST(VectorKernel, AZeroInitialLeaderAttractsNothingWhateverTheChunk) {
  // Even at a threshold every other pair passes (-1): row 0 leads (1), the
  // zero row 1 leads too (2).
  std::vector<float> initial{0, 0};
  std::vector<float> rows{1, 0, 0, 0};
  for (size_t chunk : {1u, 2u})
    EXPECT_EQ(assign_leaders({rows.data(), 2, 2}, -1.0f,
                             {initial.data(), 1, 2}, 1, chunk)
                .leader_of,
              (std::vector<uint32_t>{1, 2}))
      << "chunk " << chunk;
}

TEST(VectorKernel, ANearMissDoesNotHideTheNextLeader) {
  // The row's cosine with leader 50 (e_50) is exactly 0.92f, close enough
  // to be rechecked, and fails; leader 51, next to it in the same chunk, is
  // the row itself and passes.
  constexpr size_t dim = 64;
  auto v = basis(dim, 50);
  v[50] = 0.92f;
  v[2] = std::sqrt(1.0f - 0.92f * 0.92f);
  matrix initial{dim};
  for (size_t k = 0; k < dim; ++k)
    initial.append(k == 51 ? v.data() : basis(dim, k).data());
  matrix_view m{v.data(), 1, dim};
  for (size_t chunk : {2u, 8u, 64u})
    EXPECT_EQ(assign_leaders(m, 0.92f, initial.view(), 1, chunk).leader_of,
              (std::vector<uint32_t>{51}))
      << "chunk " << chunk;
}

TEST(VectorKernel, ALeaderMadeEarlierInTheBlockComesAfterTheOldLeaders) {
  // Initial leaders e_3 (0) and e_1 (1), then one block: row 0 (e_0) leads
  // (2); row 1 passes the late initial leader 1 and row 0, and joins 1;
  // row 2 passes only row 1, which joined and leads nothing: it leads (3);
  // row 3, row 2's twin, joins it (a leader made earlier in the block);
  // row 4 is zero and leads (4) without attracting anything; row 5 joins
  // e_3 in the first chunk.
  constexpr size_t dim = 4;
  std::vector<float> initial{0, 0, 0, 1, //
                             0, 1, 0, 0};
  std::vector<float> rows{1, 0, 0,     0, //
                          1, 1, 0,     0, //
                          1, 1, 1.15f, 0, //
                          1, 1, 1.2f,  0, //
                          0, 0, 0,     0, //
                          0, 0, 0.2f,  1};
  for (size_t i = 0; i < 6; ++i)
    if (i != 4)
      normalize(std::span<float>{rows.data() + i * dim, dim});
  matrix_view m{rows.data(), 6, dim};
  matrix_view init{initial.data(), 2, dim};
  auto expected = naive_leaders(m, 0.65f, init);
  ASSERT_EQ(expected, (std::vector<uint32_t>{2, 1, 3, 3, 4, 0}));
  for (size_t block : {1u, 2u, 4u, 6u})
    for (size_t chunk : {1u, 2u})
      EXPECT_EQ(assign_leaders(m, 0.65f, init, block, chunk).leader_of,
                expected)
        << "block " << block << " chunk " << chunk;
}

TEST(VectorKernel, CountersCountFlops) {
  reset_counters();
  auto a = random_clusters(10, 8, 2, 0.1f, 3);
  std::vector<float> out(100);
  dot_block(a.view(), a.view(), out.data());
  EXPECT_EQ(counters().flops, 2.0 * 10 * 10 * 8);
}

TEST(VectorKernel, CountersCountTheFlopsAssignLeadersDoes) {
  // Orthogonal rows join nothing: every pair before early exit is computed,
  // 2 · dim per pair, against the leaders before each block and within it.
  constexpr size_t dim = 64;
  matrix m{dim};
  for (size_t k = 0; k < dim; ++k)
    m.append(basis(dim, k).data());
  for (size_t chunk : {1u, 5u, 1000u}) {
    reset_counters();
    auto at = assign_leaders(m.view(), 0.5f, {}, 10, chunk);
    EXPECT_EQ(at.new_leader_rows.size(), dim);
    EXPECT_EQ(counters().flops, full_flops(at, dim, dim, 10))
      << "chunk " << chunk;
  }
  // Clustered rows mostly stop early: fewer flops than every pair.
  auto c = random_clusters(2000, 32, 30, 0.4f, 5);
  reset_counters();
  auto at = assign_leaders(c.view(), 0.8f, {}, 256, 16);
  EXPECT_GT(counters().flops, 0);
  EXPECT_LT(counters().flops, 0.5 * full_flops(at, 2000, 32, 256));
}

TEST(VectorKernel, ABlockSearchedByManyThreadsDecidesAndCountsAsOne) {
  // Blocks of 2,048 rows after initial leaders: each block's rows split into
  // parts searched at once. Decisions and flop counts are those of a single
  // thread, for any number of threads.
  constexpr size_t dim = 48;
  auto m = random_clusters(6000, dim, 150, 0.4f, 7);
  auto seeds = random_clusters(300, dim, 150, 0.4f, 7);
  matrix initial{dim};
  for (size_t j = 0; j < 300; j += 3)
    initial.append(seeds.row(j));
  auto before = kernel_threads();
  set_kernel_threads(1);
  reset_counters();
  auto one = assign_leaders(m.view(), 0.85f, initial.view(), 2048, 64);
  auto one_flops = counters().flops;
  EXPECT_EQ(one.leader_of, naive_leaders(m.view(), 0.85f, initial.view()));
  for (size_t threads : {2u, 3u, 4u, 7u}) {
    set_kernel_threads(threads);
    EXPECT_EQ(kernel_threads(), threads);
    reset_counters();
    auto many = assign_leaders(m.view(), 0.85f, initial.view(), 2048, 64);
    EXPECT_EQ(many.leader_of, one.leader_of) << threads << " threads";
    EXPECT_EQ(many.new_leader_rows, one.new_leader_rows) << threads;
    EXPECT_EQ(counters().flops, one_flops) << threads << " threads";
  }
  set_kernel_threads(0);
  EXPECT_EQ(kernel_threads(), 1u) << "at least one";
  set_kernel_threads(before);
}

/// How many threads are between enter() and leave() now, and the most
/// there ever were at once.
class at_once {
public:
  void enter() {
    auto n = ++now_;
    auto seen = most_.load();
    while (n > seen && !most_.compare_exchange_weak(seen, n)) {
    }
  }
  void leave() { --now_; }
  [[nodiscard]] int now() const { return now_.load(); }
  [[nodiscard]] int most() const { return most_.load(); }

private:
  std::atomic<int> now_{0};
  std::atomic<int> most_{0};
};

TEST(VectorKernel, InPartsCoversEveryItemOnceOnAnyNumberOfThreads) {
  auto before = kernel_threads();
  for (size_t threads : {1u, 2u, 3u, 8u})
    for (size_t count : {0u, 1u, 7u, 64u, 1000u, 4097u})
      for (size_t min_part : {1u, 16u, 5000u}) {
        set_kernel_threads(threads);
        std::vector<std::atomic<int>> seen(count);
        std::atomic<size_t> calls{0};
        in_parts(count, min_part, [&](size_t first, size_t last) {
          ASSERT_LT(first, last);
          ASSERT_LE(last, count);
          if (threads > 1 && count >= 2 * min_part) {
            EXPECT_LE(last - first, min_part);
          }
          ++calls;
          for (auto i = first; i < last; ++i)
            ++seen[i];
        });
        for (size_t i = 0; i < count; ++i)
          ASSERT_EQ(seen[i].load(), 1)
            << "item " << i << " of " << count << ", " << threads
            << " threads, parts of " << min_part;
        if (count > 0 && (threads == 1 || count < 2 * min_part)) {
          EXPECT_EQ(calls.load(), 1u) << "one piece on the caller";
        }
      }
  set_kernel_threads(before);
}

TEST(VectorKernel, InPartsInsideAPieceRunsOnItsThread) {
  // Nested calls (a merge group's kernel inside the groups' in_parts) take
  // no threads of their own: never more than kernel_threads at once.
  auto before = kernel_threads();
  set_kernel_threads(3);
  at_once pieces;
  at_once nested;
  std::atomic<size_t> inner_items{0};
  in_parts(300, 10, [&](size_t first, size_t last) {
    pieces.enter();
    for (auto i = first; i < last; ++i)
      in_parts(100, 1, [&](size_t a, size_t b) {
        nested.enter();
        inner_items += b - a;
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        nested.leave();
      });
    pieces.leave();
  });
  EXPECT_EQ(inner_items.load(), 300u * 100u);
  EXPECT_LE(pieces.most(), 3);
  EXPECT_LE(nested.most(), 3) << "nested calls run on their piece's thread";
  // Outside any piece, a call takes the threads again.
  at_once outer;
  in_parts(300, 10, [&](size_t, size_t) {
    outer.enter();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    outer.leave();
  });
  EXPECT_GT(outer.most(), 1);
  set_kernel_threads(before);
}

TEST(VectorKernel, InPartsRethrowsTheFirstErrorAfterEveryThreadIsDone) {
  auto before = kernel_threads();
  set_kernel_threads(4);
  at_once pieces;
  try {
    in_parts(1000, 10, [&](size_t first, size_t) {
      pieces.enter();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      pieces.leave();
      if (first >= 500)
        throw std::runtime_error("piece " + std::to_string(first));
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string{e.what()}.rfind("piece ", 0), 0u) << e.what();
  }
  EXPECT_EQ(pieces.now(), 0) << "every thread finished before the rethrow";
  EXPECT_GT(pieces.most(), 1) << "pieces ran at once";
  set_kernel_threads(before);
}

} // namespace
} // namespace engram::vec
