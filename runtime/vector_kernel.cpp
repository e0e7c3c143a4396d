#include "runtime/vector_kernel.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>

#include <cblas.h>

namespace engram::vec {

namespace {

// Per thread: a phase actor runs on its own thread, so its counters are
// its own work only.
thread_local uint64_t flop_count = 0;
thread_local uint64_t kernel_ns = 0;

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

} // namespace

size_t matrix::append(const float* values) {
  auto at = data_.size();
  data_.resize(at + dim_);
  std::memcpy(data_.data() + at, values, dim_ * sizeof(float));
  return at / dim_;
}

size_t matrix::append_zero(size_t n) {
  auto first = rows();
  data_.resize(data_.size() + n * dim_, 0.0f);
  return first;
}

bool normalize(std::span<float> v) {
  double sum = 0;
  for (float x : v) {
    if (!std::isfinite(x)) {
      std::fill(v.begin(), v.end(), 0.0f);
      return false;
    }
    sum += static_cast<double>(x) * x;
  }
  if (sum == 0 || !std::isfinite(sum)) {
    std::fill(v.begin(), v.end(), 0.0f);
    return false;
  }
  auto norm = std::sqrt(sum);
  for (auto& x : v)
    x = static_cast<float>(static_cast<double>(x) / norm);
  return true;
}

bool normalized_mean(matrix_view m, std::span<const uint32_t> members,
                     std::span<float> out) {
  assert(out.size() == m.dim);
  std::vector<double> sum(m.dim, 0.0);
  for (auto r : members) {
    auto* p = m.row(r);
    for (size_t k = 0; k < m.dim; ++k)
      sum[k] += p[k];
  }
  for (size_t k = 0; k < m.dim; ++k)
    out[k] = static_cast<float>(sum[k]);
  return normalize(out);
}

void dot_block(matrix_view a, matrix_view b, float* out) {
  assert(a.dim == b.dim);
  if (a.rows == 0 || b.rows == 0)
    return;
  single_threaded_blas();
  auto start = std::chrono::steady_clock::now();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
              static_cast<blasint>(a.rows), static_cast<blasint>(b.rows),
              static_cast<blasint>(a.dim), 1.0f, a.data,
              static_cast<blasint>(a.dim), b.data, static_cast<blasint>(b.dim),
              0.0f, out, static_cast<blasint>(b.rows));
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - start)
              .count();
  flop_count += 2ull * a.rows * b.rows * a.dim;
  kernel_ns += static_cast<uint64_t>(ns);
}

float cosine(const float* a, const float* b, size_t dim) {
  double sum = 0;
  for (size_t k = 0; k < dim; ++k)
    sum += static_cast<double>(a[k]) * b[k];
  return static_cast<float>(sum);
}

namespace {

/// sgemm's error on a dot product of unit vectors stays far below this
/// (about n · 2^-24 in the worst case, much less in practice).
float recheck_margin(size_t dim) {
  return std::max(1e-5f, static_cast<float>(dim) * 1.2e-7f);
}

/// The decision for one pair whose sgemm result is `sim`: trusted away from
/// the threshold; near it, decided on `cosine` (a fixed order of
/// operations), so no decision depends on the block's shape or on which
/// sgemm kernel the CPU runs.
bool above(float sim, float threshold, float margin, const float* a,
           const float* b, size_t dim) {
  if (sim > threshold + margin)
    return true;
  if (sim < threshold - margin)
    return false;
  return cosine(a, b, dim) > threshold;
}

bool is_zero(const float* p, size_t dim) {
  for (size_t k = 0; k < dim; ++k)
    if (p[k] != 0.0f)
      return false;
  return true;
}

} // namespace

leader_assignment assign_leaders(matrix_view rows, float threshold,
                                 matrix_view initial, size_t block) {
  leader_assignment out;
  out.initial_count = initial.rows;
  out.leader_of.resize(rows.rows);
  if (rows.rows == 0)
    return out;
  auto dim = rows.dim;
  assert(initial.rows == 0 || initial.dim == dim);
  block = std::max<size_t>(block, 1);
  auto margin = recheck_margin(dim);
  // The leaders so far, contiguous, and which of them can match at all.
  matrix leaders{dim};
  leaders.reserve(initial.rows + std::min<size_t>(rows.rows, 4096));
  std::vector<bool> leader_live;
  for (size_t j = 0; j < initial.rows; ++j) {
    leaders.append(initial.row(j));
    leader_live.push_back(!is_zero(initial.row(j), dim));
  }
  std::vector<float> against_leaders;
  std::vector<float> within_block;
  std::vector<uint32_t> block_leaders; // offsets in the block, in order
  for (size_t first = 0; first < rows.rows; first += block) {
    auto m = std::min(block, rows.rows - first);
    auto q = matrix_view{rows.row(first), m, dim};
    auto before = leaders.rows();
    against_leaders.resize(m * before);
    dot_block(q, leaders.view(), against_leaders.data());
    within_block.resize(m * m);
    dot_block(q, q, within_block.data());
    block_leaders.clear();
    for (size_t i = 0; i < m; ++i) {
      auto row = first + i;
      bool live = !is_zero(q.row(i), dim);
      int64_t found = -1;
      if (live) {
        const float* sims = against_leaders.data() + i * before;
        for (size_t j = 0; j < before; ++j)
          if (leader_live[j]
              && above(sims[j], threshold, margin, q.row(i), leaders.row(j),
                       dim)) {
            found = static_cast<int64_t>(j);
            break;
          }
        if (found < 0) {
          const float* local = within_block.data() + i * m;
          for (size_t k = 0; k < block_leaders.size(); ++k)
            if (leader_live[before + k]
                && above(local[block_leaders[k]], threshold, margin, q.row(i),
                         q.row(block_leaders[k]), dim)) {
              found = static_cast<int64_t>(before + k);
              break;
            }
        }
      }
      if (found >= 0) {
        out.leader_of[row] = static_cast<uint32_t>(found);
        continue;
      }
      auto number = before + block_leaders.size();
      out.leader_of[row] = static_cast<uint32_t>(number);
      out.new_leader_rows.push_back(static_cast<uint32_t>(row));
      block_leaders.push_back(static_cast<uint32_t>(i));
      leader_live.push_back(live);
    }
    for (auto i : block_leaders)
      leaders.append(q.row(i));
  }
  return out;
}

kernel_counters counters() {
  return {static_cast<double>(flop_count),
          static_cast<double>(kernel_ns) * 1e-9};
}

void reset_counters() {
  flop_count = 0;
  kernel_ns = 0;
}

} // namespace engram::vec
