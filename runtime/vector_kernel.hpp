#pragma once

// The similarity kernel of consolidation (DESIGN §6): unit vectors in
// contiguous row-major float32 matrices, cosine as the dot product of unit
// vectors computed block by block with OpenBLAS `sgemm`, and the greedy
// "first leader above the threshold" rule every phase uses, evaluated
// exactly without ever building an n × n matrix.
//
// The greedy rule runs block by block: the rows of a block go against the
// leaders before it in chunks of leader order, one sgemm per chunk, and a
// row leaves the block's working set (a compacted copy of the rows still
// looking) as soon as a chunk holds its leader, so later chunks' sgemm only
// carries the rows that have not found one. The rows left after the last
// chunk then follow the same rule among themselves, in row order: a few
// (<= 128) with one sgemm of every pair, more in blocks of a quarter as
// many, recursively. Work grows with how far down the leader order each row
// finds its leader, not with the number of leaders.
//
// Exactness: a pair's cosine is `cosine` (a fixed order of operations,
// double accumulation rounded to float), and every comparison is strict
// against the threshold converted to float (`cos > float(threshold)`): a
// pair whose cosine is exactly 0.92f does not pass 0.92. sgemm's result
// decides alone only where it is clearly away from the threshold, and a
// pair within the error margin of it is decided on `cosine`. A row is
// compared with every leader before its own, in order, until the first that
// passes; skipping the pairs after it changes nothing. So no decision
// depends on the block or chunk size, on the shape of an sgemm call or on
// the CPU's sgemm kernel.
//
// Threads: OpenBLAS runs single-threaded here (callers run the kernel on
// their own detached actor, so CPU-heavy phase work never takes the
// cooperative scheduler's threads). The rows of a block search the leaders
// before it each on their own, so a block's rows are split into parts
// searched at once, on the caller's thread and short-lived helper threads
// (`in_parts`, `set_kernel_threads`; one per CPU, at most four, by
// default): a 100k project's kernel takes about half the wall time on two
// cores, and the outcome is the one of a single thread's search.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace engram::vec {

/// A read-only row-major matrix: `rows` vectors of `dim` floats.
struct matrix_view {
  const float* data = nullptr;
  size_t rows = 0;
  size_t dim = 0;

  [[nodiscard]] const float* row(size_t i) const {
    return data + i * dim;
  }
};

/// An owning row-major matrix of `dim`-float rows.
class matrix {
public:
  matrix() = default;
  explicit matrix(size_t dim) : dim_{dim} {
  }
  /// Takes `data` over as its rows (its capacity too, for appends);
  /// `data.size()` must be a multiple of `dim`.
  matrix(size_t dim, std::vector<float>&& data)
    : dim_{dim}, data_{std::move(data)} {
  }

  [[nodiscard]] size_t rows() const {
    return dim_ == 0 ? 0 : data_.size() / dim_;
  }
  [[nodiscard]] size_t dim() const {
    return dim_;
  }
  [[nodiscard]] const float* row(size_t i) const {
    return data_.data() + i * dim_;
  }
  [[nodiscard]] float* row(size_t i) {
    return data_.data() + i * dim_;
  }
  /// Appends a copy of `values` (`dim()` floats) and returns its row index.
  size_t append(const float* values);
  /// Appends `n` zero rows and returns the index of the first.
  size_t append_zero(size_t n = 1);
  void reserve(size_t rows) {
    data_.reserve(rows * dim_);
  }
  [[nodiscard]] matrix_view view() const {
    return {data_.data(), rows(), dim_};
  }
  /// Rows [first, first + count).
  [[nodiscard]] matrix_view slice(size_t first, size_t count) const {
    return {data_.data() + first * dim_, count, dim_};
  }

private:
  size_t dim_ = 0;
  std::vector<float> data_;
};

/// Scales `v` to unit length (the norm is taken in double). Returns false,
/// leaving `v` all zeros, when `v` is zero or has a non-finite value: such
/// a vector matches nothing.
bool normalize(std::span<float> v);

/// The normalised mean of the rows `members` of `m` (a centroid), written
/// to `out` (`m.dim` floats). Returns false when the mean is zero.
bool normalized_mean(matrix_view m, std::span<const uint32_t> members,
                     std::span<float> out);

/// out[i * b.rows + j] = a.row(i) · b.row(j) for all i, j (one sgemm;
/// `a.dim == b.dim`). Counts into `counters()`.
void dot_block(matrix_view a, matrix_view b, float* out);

/// The cosine of two unit vectors as the kernel decides on it: the dot
/// product accumulated in double in index order, rounded to float.
[[nodiscard]] float cosine(const float* a, const float* b, size_t dim);

/// The outcome of `assign_leaders`: leaders are numbered in order, first
/// the `initial` ones (0 … initial.rows - 1), then the rows that became
/// leaders, in row order.
struct leader_assignment {
  /// For each row, the number of the leader it joined; a row that became
  /// a leader has its own number.
  std::vector<uint32_t> leader_of;
  /// For each new leader (number initial.rows + k), its row.
  std::vector<uint32_t> new_leader_rows;
  /// The number of initial leaders.
  size_t initial_count = 0;

  [[nodiscard]] bool is_leader_row(size_t row) const {
    return leader_of[row] >= initial_count
           && new_leader_rows[leader_of[row] - initial_count] == row;
  }
};

/// The greedy rule of every phase: visit `rows` in order; a row joins the
/// first leader (in leader order) whose cosine with it is > `threshold`,
/// otherwise it becomes a leader itself. `initial` leaders (may be empty)
/// come before every new one. Computed in blocks of `block` rows, each
/// against the leaders before it in chunks of `chunk` leaders, a row
/// leaving the sgemm calls once it has found its leader (see the top of
/// this file); memory besides the leaders stays O(block × (chunk + dim)).
/// The result does not depend on `block` or `chunk`. All-zero rows never
/// join and always lead.
[[nodiscard]] leader_assignment assign_leaders(matrix_view rows, float threshold,
                                               matrix_view initial = {},
                                               size_t block = 1024,
                                               size_t chunk = 128);

/// How many threads kernel work runs on at once (`in_parts`: the caller's
/// and helpers). At least 1; by default the number of CPUs, at most four.
void set_kernel_threads(size_t n);
[[nodiscard]] size_t kernel_threads();

/// Calls `work(first, last)` for consecutive pieces of [0, count), at once
/// on up to `kernel_threads()` threads (the calling thread and short-lived
/// helpers; fewer when there are fewer than `min_part` items per thread):
/// whichever thread is free takes the next piece (at most `min_part`
/// items), so items of uneven cost end together. Returns when every piece
/// is done, with the helpers' counters added to the caller's. A helper that
/// cannot be started leaves its pieces to the others; the first exception
/// thrown by `work` stops the taking of pieces and is rethrown once every
/// thread is done. Called from inside a piece (nested), it runs `work` on
/// the calling thread: never more than `kernel_threads()` threads at once.
/// `work` must not write what another piece reads.
void in_parts(size_t count, size_t min_part,
              const std::function<void(size_t, size_t)>& work);

/// Floating-point work done by `dot_block` on the calling thread since its
/// last `reset_counters` (2 · m · n · dim per call; `assign_leaders` counts
/// the products it computed, not the pairs it skipped, its helper threads'
/// included) and the time spent in it: thread time, the helpers' added, so
/// flops / seconds is the rate of one core.
struct kernel_counters {
  double flops = 0;
  double seconds = 0;
};

[[nodiscard]] kernel_counters counters();
void reset_counters();

} // namespace engram::vec
