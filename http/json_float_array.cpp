#include "http/json_float_array.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace engram::http {

namespace {

/// The eight bytes at `p`, the first in the lowest byte.
inline uint64_t load8(const char* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big)
    v = __builtin_bswap64(v);
  return v;
}

/// How many of the eight bytes of `v` (first in the lowest byte) are ASCII
/// digits before the first that is not. A byte is a digit when its high
/// nibble is 3 and adding 6 keeps it so; a carry out of a non-digit only
/// reaches the bytes after it, which do not count.
inline unsigned leading_digits(uint64_t v) {
  constexpr uint64_t high = 0xF0F0F0F0F0F0F0F0ULL;
  constexpr uint64_t threes = 0x3030303030303030ULL;
  uint64_t bad = ((v & high) ^ threes)
                 | (((v + 0x0606060606060606ULL) & high) ^ threes);
  return bad == 0 ? 8 : static_cast<unsigned>(std::countr_zero(bad)) / 8;
}

/// The value of the first `n` (1..8) bytes of `v`, all digits: the bytes
/// after them are shifted out (a borrow from one of them only reaches the
/// bytes after it), zero digits shifted in ahead; then eight digits are
/// combined in three multiplications.
inline uint64_t digits_value(uint64_t v, unsigned n) {
  v -= 0x3030303030303030ULL;
  v <<= 8 * (8 - n);
  v = v * 10 + (v >> 8);
  constexpr uint64_t mask = 0x000000FF000000FFULL;
  constexpr uint64_t mul1 = 100 + (1000000ULL << 32);
  constexpr uint64_t mul2 = 1 + (10000ULL << 32);
  return (((v & mask) * mul1) + (((v >> 16) & mask) * mul2)) >> 32;
}

constexpr uint64_t pow10_u64[] = {1,      10,      100,      1000,     10000,
                                  100000, 1000000, 10000000, 100000000};

constexpr double pow10_exact[] = {
  1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/// Reads the digits at `p` onto `m` (m·10ⁿ + their value), eight at a
/// time; adds their number to `count` (m is meaningless once it passes
/// 19). Returns the end of the digits.
inline const char* digit_run(const char* p, uint64_t& m, int& count) {
  for (;;) {
    uint64_t v = load8(p);
    unsigned n = leading_digits(v);
    if (n == 0)
      return p;
    m = m * pow10_u64[n] + digits_value(v, n);
    count += static_cast<int>(n);
    p += n;
    if (n < 8)
      return p;
  }
}

inline bool is_digit(char c) {
  return static_cast<unsigned char>(c - '0') < 10;
}

/// Reads the JSON number at `p` (strict grammar: -?(0|[1-9][0-9]*)
/// (.[0-9]+)?([eE][+-]?[0-9]+)?) as the correctly rounded double. Returns
/// its end, or nullptr when `p` holds no valid number or std::from_chars
/// refuses it (out of double's range).
const char* read_number(const char* p, double& out) {
  const char* start = p;
  bool negative = *p == '-';
  p += negative;
  uint64_t m = 0;
  int count = 0;
  int64_t exp10 = 0;
  if (*p == '0') {
    ++p;
    if (is_digit(*p))
      return nullptr; // a leading zero
  } else {
    if (static_cast<unsigned char>(*p - '1') >= 9)
      return nullptr;
    p = digit_run(p, m, count);
  }
  if (*p == '.') {
    ++p;
    const char* fraction = p;
    p = digit_run(p, m, count);
    if (p == fraction)
      return nullptr;
    exp10 -= p - fraction;
  }
  if ((*p | 0x20) == 'e') {
    ++p;
    bool below = *p == '-';
    if (*p == '-' || *p == '+')
      ++p;
    if (!is_digit(*p))
      return nullptr;
    int64_t e = 0;
    for (; is_digit(*p); ++p)
      if (e < 1000000)
        e = e * 10 + (*p - '0');
    exp10 += below ? -e : e;
  }
  double d = 0;
  if (count <= 19 && m <= (uint64_t{1} << 53) && exp10 >= -22
      && exp10 <= 22) {
    // Clinger: both operands exact, so the one rounding is IEEE's.
    d = static_cast<double>(m);
    d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    out = negative ? -d : d;
    return p;
  }
  if (count <= 19 && m == 0) {
    out = negative ? -0.0 : 0.0;
    return p;
  }
  auto [end, ec] = std::from_chars(start, p, d);
  if (ec != std::errc{} || end != p)
    return nullptr;
  out = d;
  return p;
}

inline bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

} // namespace

bool parse_float_array(std::string_view text, std::vector<float>& out,
                       size_t max_values) {
  out.clear();
  const char* p = text.data();
  const char* end = p + text.size();
  auto skip_space = [&] {
    while (p < end && is_space(*p))
      ++p;
  };
  skip_space();
  if (p == end || *p != '[')
    return false;
  ++p;
  skip_space();
  if (p < end && *p == ']') {
    ++p;
  } else {
    for (;;) {
      if (p == end || out.size() == max_values)
        return false;
      double d = 0;
      p = read_number(p, d);
      if (p == nullptr || p > end)
        return false;
      auto f = static_cast<float>(d);
      if (!std::isfinite(f))
        return false;
      out.push_back(f);
      skip_space();
      if (p == end)
        return false;
      if (*p == ',') {
        ++p;
        skip_space();
        continue;
      }
      if (*p != ']')
        return false;
      ++p;
      break;
    }
  }
  skip_space();
  return p == end;
}

} // namespace engram::http
