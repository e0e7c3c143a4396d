#include "runtime/vector_kernel.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <system_error>
#include <thread>

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

/// Rows left in a block, at most this many, are compared among themselves
/// with one sgemm of every pair; more go through `greedy` again in blocks
/// of a quarter as many rows, which skips most of the pairs a row does not
/// need (those with the rows after it).
constexpr size_t direct_max = 128;
constexpr size_t inner_split = 4;

/// The first j in [from, n) whose `sims[j]` is not below `low` (NaN
/// included), or n: the pairs `above` could pass.
size_t next_candidate(const float* sims, size_t from, size_t n, float low) {
  auto j = from;
  for (; j + 16 <= n; j += 16) {
    bool any = false;
    for (size_t k = 0; k < 16; ++k)
      any |= !(sims[j + k] < low);
    if (any)
      break;
  }
  for (; j < n; ++j)
    if (!(sims[j] < low))
      return j;
  return n;
}

/// The greedy rule among `rows` alone (no zero rows, no leaders before),
/// from one sgemm of every pair.
leader_assignment among(matrix_view rows, float threshold, float margin) {
  leader_assignment out;
  auto k = rows.rows;
  out.leader_of.resize(k);
  std::vector<float> sims(k * k);
  dot_block(rows, rows, sims.data());
  for (size_t t = 0; t < k; ++t) {
    const float* s = sims.data() + t * k;
    auto number = out.new_leader_rows.size();
    for (size_t q = 0; q < out.new_leader_rows.size(); ++q) {
      auto u = out.new_leader_rows[q];
      if (above(s[u], threshold, margin, rows.row(t), rows.row(u), rows.dim)) {
        number = q;
        break;
      }
    }
    out.leader_of[t] = static_cast<uint32_t>(number);
    if (number == out.new_leader_rows.size())
      out.new_leader_rows.push_back(static_cast<uint32_t>(t));
  }
  return out;
}

/// Rows of a block (`open`: offsets in the block, `open_rows`: their
/// vectors) against the leaders [0, before), chunk by chunk: a row that
/// finds its leader in a chunk gets it in `found` and leaves `open` (and
/// the next chunk's sgemm); the others are compacted to the front in order.
/// Each row's search is its own: rows never look at each other here.
void search_leaders(std::vector<uint32_t>& open, std::vector<float>& open_rows,
                    std::vector<int64_t>& found, const matrix& leaders,
                    const std::vector<bool>& leader_live, size_t before,
                    size_t chunk, float threshold, float margin) {
  constexpr int64_t none = -1;
  auto dim = leaders.dim();
  auto low = threshold - margin;
  // Reused by the thread's next search: a fresh buffer per block was fresh
  // pages (page faults) per block.
  thread_local std::vector<float> sims;
  for (size_t c = 0; c < before && !open.empty(); c += chunk) {
    auto n = std::min(chunk, before - c);
    auto k = open.size();
    sims.resize(k * n);
    dot_block({open_rows.data(), k, dim}, leaders.slice(c, n), sims.data());
    size_t kept = 0;
    for (size_t t = 0; t < k; ++t) {
      const float* row = open_rows.data() + t * dim;
      const float* s = sims.data() + t * n;
      auto& f = found[open[t]];
      for (size_t j = next_candidate(s, 0, n, low); j < n;
           j = next_candidate(s, j + 1, n, low))
        if (leader_live[c + j]
            && above(s[j], threshold, margin, row, leaders.row(c + j), dim)) {
          f = static_cast<int64_t>(c + j);
          break;
        }
      if (f != none)
        continue;
      if (kept != t) {
        std::memcpy(open_rows.data() + kept * dim, row, dim * sizeof(float));
        open[kept] = open[t];
      }
      ++kept;
    }
    open.resize(kept);
    open_rows.resize(kept * dim);
  }
}

/// Whether this thread is running a piece of an in_parts.
thread_local bool in_a_piece = false;

std::atomic<size_t> kernel_thread_count{
  std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4)};

/// Rows per part below which a block's search is not split.
constexpr size_t rows_per_part_min = 128;

/// `search_leaders` for a block, its rows split into consecutive parts
/// searched at once (`in_parts`): their results are independent of each
/// other, so the outcome is the one of a single search.
void search_in_parts(std::vector<uint32_t>& open, std::vector<float>& open_rows,
                     std::vector<int64_t>& found, const matrix& leaders,
                     const std::vector<bool>& leader_live, size_t before,
                     size_t chunk, float threshold, float margin) {
  auto parts = std::min(kernel_threads(), open.size() / rows_per_part_min);
  if (parts <= 1 || before == 0) {
    search_leaders(open, open_rows, found, leaders, leader_live, before,
                   chunk, threshold, margin);
    return;
  }
  auto dim = leaders.dim();
  struct part {
    std::vector<uint32_t> open;
    std::vector<float> rows;
  };
  std::vector<part> split(parts);
  auto size = (open.size() + parts - 1) / parts;
  for (size_t p = 0; p < parts; ++p) {
    auto from = std::min(open.size(), size * p);
    auto to = std::min(open.size(), from + size);
    split[p].open.assign(open.begin() + from, open.begin() + to);
    split[p].rows.assign(open_rows.begin() + from * dim,
                         open_rows.begin() + to * dim);
  }
  in_parts(parts, 1, [&](size_t first, size_t last) {
    for (auto p = first; p < last; ++p)
      search_leaders(split[p].open, split[p].rows, found, leaders,
                     leader_live, before, chunk, threshold, margin);
  });
  open.clear();
  open_rows.clear();
  for (auto& x : split) {
    open.insert(open.end(), x.open.begin(), x.open.end());
    open_rows.insert(open_rows.end(), x.rows.begin(), x.rows.end());
  }
}

/// `assign_leaders` (see the header): block by block, each against the
/// leaders before it chunk by chunk with early exit, then the rows left
/// among themselves.
leader_assignment greedy(matrix_view rows, float threshold,
                         matrix_view initial, size_t block, size_t chunk,
                         float margin) {
  leader_assignment out;
  out.initial_count = initial.rows;
  out.leader_of.resize(rows.rows);
  if (rows.rows == 0)
    return out;
  auto dim = rows.dim;
  // The leaders so far, contiguous, and which of them can match at all.
  matrix leaders{dim};
  leaders.reserve(initial.rows + std::min<size_t>(rows.rows, 4096));
  std::vector<bool> leader_live;
  for (size_t j = 0; j < initial.rows; ++j) {
    leaders.append(initial.row(j));
    leader_live.push_back(!is_zero(initial.row(j), dim));
  }
  constexpr int64_t none = -1;
  // Per row of the block: the leader it joined, or `none`.
  std::vector<int64_t> found;
  // The rows of the block still looking for a leader (offsets in the
  // block, in order) and a contiguous copy of them for sgemm.
  std::vector<uint32_t> open;
  std::vector<float> open_rows;
  // The numbers of the leaders made among the rows left in a block.
  std::vector<uint32_t> numbers;
  for (size_t first = 0; first < rows.rows; first += block) {
    auto m = std::min(block, rows.rows - first);
    auto before = leaders.rows();
    found.assign(m, none);
    open.clear();
    open_rows.clear();
    for (size_t i = 0; i < m; ++i)
      if (!is_zero(rows.row(first + i), dim)) {
        open.push_back(static_cast<uint32_t>(i));
        open_rows.insert(open_rows.end(), rows.row(first + i),
                         rows.row(first + i) + dim);
      }
    search_in_parts(open, open_rows, found, leaders, leader_live, before,
                    chunk, threshold, margin);
    // The rows left, against each other: the greedy rule among them alone,
    // directly or, for many, in smaller blocks.
    auto k = open.size();
    matrix_view left{open_rows.data(), k, dim};
    auto inner = k <= direct_max
                   ? among(left, threshold, margin)
                   : greedy(left, threshold, {}, k / inner_split, chunk,
                            margin);
    numbers.clear();
    for (size_t i = 0, t = 0; i < m; ++i) {
      auto row = first + i;
      bool live = t < k && open[t] == i; // neither zero nor joined yet
      if (live) {
        auto l = inner.leader_of[t++];
        if (l < numbers.size())
          found[i] = numbers[l];
      }
      if (found[i] != none) {
        out.leader_of[row] = static_cast<uint32_t>(found[i]);
        continue;
      }
      auto number = static_cast<uint32_t>(leaders.rows());
      out.leader_of[row] = number;
      out.new_leader_rows.push_back(static_cast<uint32_t>(row));
      leader_live.push_back(live);
      leaders.append(rows.row(row));
      if (live)
        numbers.push_back(number);
    }
  }
  return out;
}

} // namespace

leader_assignment assign_leaders(matrix_view rows, float threshold,
                                 matrix_view initial, size_t block,
                                 size_t chunk) {
  assert(initial.rows == 0 || initial.dim == rows.dim);
  return greedy(rows, threshold, initial, std::max<size_t>(block, 1),
                std::max<size_t>(chunk, 1), recheck_margin(rows.dim));
}

void set_kernel_threads(size_t n) {
  kernel_thread_count.store(std::max<size_t>(n, 1), std::memory_order_relaxed);
}

size_t kernel_threads() {
  return kernel_thread_count.load(std::memory_order_relaxed);
}

void in_parts(size_t count, size_t min_part,
              const std::function<void(size_t, size_t)>& work) {
  auto grain = std::max<size_t>(min_part, 1);
  auto threads = std::min(kernel_threads(), count / grain);
  // Inside a piece of another in_parts (e.g. a merge group's kernel), the
  // threads are taken already: the work runs here.
  if (threads <= 1 || in_a_piece) {
    if (count > 0)
      work(0, count);
    return;
  }
  // Pieces taken in turn by whichever thread is free, so that items of
  // uneven cost (groups of very different sizes) still end together: about
  // eight per thread, at most `min_part` items each.
  auto step = std::max<size_t>(1, std::min(grain, count / (threads * 8)));
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex failed_mutex;
  std::exception_ptr failed;
  auto take_pieces = [&] {
    struct piece_scope {
      piece_scope() { in_a_piece = true; }
      ~piece_scope() { in_a_piece = false; }
    } scope;
    try {
      while (!stop.load(std::memory_order_relaxed)) {
        auto first = next.fetch_add(step, std::memory_order_relaxed);
        if (first >= count)
          return;
        work(first, std::min(count, first + step));
      }
    } catch (...) {
      std::lock_guard lock{failed_mutex};
      if (!failed)
        failed = std::current_exception();
      stop.store(true, std::memory_order_relaxed);
    }
  };
  std::vector<std::future<std::pair<uint64_t, uint64_t>>> helpers;
  for (size_t t = 1; t < threads; ++t) {
    try {
      helpers.push_back(std::async(std::launch::async, [&take_pieces] {
        take_pieces();
        return std::pair{flop_count, kernel_ns}; // this thread's own
      }));
    } catch (const std::system_error&) {
      break; // no thread: the others take its pieces
    }
  }
  take_pieces();
  for (auto& h : helpers) {
    auto [flops, ns] = h.get();
    flop_count += flops;
    kernel_ns += ns;
  }
  if (failed)
    std::rethrow_exception(failed);
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
