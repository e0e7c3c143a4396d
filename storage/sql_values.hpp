#pragma once

// Internal helpers of the repositories that move memories, vectors and
// arrays in and out of PostgreSQL: bytea text for float32 vectors (COPY and
// parameters), reading them back without a detour, array literals (and
// array_to_string results split again) and timestamps as COPY text. Not an
// API.

#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/field>

#include "runtime/clock.hpp"
#include "runtime/split.hpp"

namespace engram::storage::sql_values {

/// `n` floats as the text form of bytea ("\x" and the hex digits of their
/// float32 little-endian bytes); nullopt for none (n == 0).
[[nodiscard]] inline std::optional<std::string> bytea_text(const float* v,
                                                           size_t n) {
  if (n == 0)
    return std::nullopt;
  static constexpr char digits[] = "0123456789abcdef";
  std::string result(2 + n * 8, '\0');
  result[0] = '\\';
  result[1] = 'x';
  char* out = result.data() + 2;
  for (size_t k = 0; k < n; ++k) {
    auto u = std::bit_cast<uint32_t>(v[k]);
    for (int i = 0; i < 4; ++i) {
      auto byte = (u >> (8 * i)) & 0xff;
      *out++ = digits[byte >> 4];
      *out++ = digits[byte & 0xf];
    }
  }
  return result;
}

[[nodiscard]] inline std::optional<std::string>
bytea_text(const std::vector<float>& v) {
  return bytea_text(v.data(), v.size());
}

namespace detail {

/// Hex digit values by character; -1 for a character that is not one.
struct hex_table {
  int8_t value[256];
  constexpr hex_table() : value{} {
    for (int c = 0; c < 256; ++c)
      value[c] = c >= '0' && c <= '9'   ? static_cast<int8_t>(c - '0')
                 : c >= 'a' && c <= 'f' ? static_cast<int8_t>(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? static_cast<int8_t>(c - 'A' + 10)
                                        : int8_t{-1};
  }
};

inline constexpr hex_table hex_digits{};

} // namespace detail

/// Appends the floats of a bytea column (hex output, the server's default)
/// to `out`; returns how many. NULL appends nothing. Throws
/// std::runtime_error for a value that is not hex bytea of whole floats.
/// A consolidation snapshot decodes ~150 MB of vectors per 100,000
/// memories here, hence the table and one validity check per value.
inline size_t append_floats(const pqxx::field& f, std::vector<float>& out) {
  if (f.is_null())
    return 0;
  std::string_view text{f.c_str(), f.size()};
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x'
      || (text.size() - 2) % 8 != 0)
    throw std::runtime_error("a vector column is not hex bytea of float32");
  auto n = (text.size() - 2) / 8;
  auto first = out.size();
  out.resize(first + n);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + 2;
  const auto& digit = detail::hex_digits.value;
  int invalid = 0;
  for (size_t k = 0; k < n; ++k, p += 8) {
    uint32_t u = 0;
    for (int b = 0; b < 4; ++b) {
      int hi = digit[p[2 * b]];
      int lo = digit[p[2 * b + 1]];
      invalid |= hi | lo; // negative once any digit is not one
      u |= static_cast<uint32_t>((hi << 4 | lo) & 0xff) << (8 * b);
    }
    out[first + k] = std::bit_cast<float>(u);
  }
  if (invalid < 0) {
    out.resize(first);
    throw std::runtime_error("a vector column is not hex bytea");
  }
  return n;
}

/// `items` as a PostgreSQL array literal of quoted elements.
[[nodiscard]] inline std::string
array_literal(const std::vector<std::string>& items) {
  std::string result = "{";
  for (const auto& item : items) {
    if (result.size() > 1)
      result += ',';
    result += '"';
    for (char c : item) {
      if (c == '"' || c == '\\')
        result += '\\';
      result += c;
    }
    result += '"';
  }
  result += '}';
  return result;
}

/// The items of an `array_to_string(column, ',')` result, none for an empty
/// one: for arrays whose items have no commas (ids, phase names).
[[nodiscard]] inline std::vector<std::string>
split_commas(const std::string& s) {
  return split_on(s, ',');
}

/// An epoch-microsecond time as timestamptz text; nullopt for 0 (none).
[[nodiscard]] inline std::optional<std::string> time_text(int64_t us) {
  if (us == 0)
    return std::nullopt;
  return format_utc(from_epoch_us(us));
}

/// nullopt (NULL) for an empty string.
[[nodiscard]] inline std::optional<std::string>
optional_text(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  return s;
}

} // namespace engram::storage::sql_values
