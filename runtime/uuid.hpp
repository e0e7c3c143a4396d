#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "runtime/ascii.hpp"

namespace engram {

/// Whether `s` is a UUID in its canonical text form
/// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, any case). Callers answer "not
/// found" or a 400 for anything else instead of making PostgreSQL refuse
/// the cast.
[[nodiscard]] constexpr bool is_uuid(std::string_view s) noexcept {
  if (s.size() != 36)
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                 || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

namespace detail {

/// 128 bits as canonical lower-case UUID text.
[[nodiscard]] inline std::string format_uuid(uint64_t hi, uint64_t lo) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result(36, '-');
  size_t pos = 0;
  auto put = [&](uint64_t word) {
    for (int shift = 60; shift >= 0; shift -= 4) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
        ++pos;
      result[pos++] = digits[(word >> shift) & 0xf];
    }
  };
  put(hi);
  put(lo);
  return result;
}

} // namespace detail

/// A random (version 4) UUID in canonical lower-case text form.
[[nodiscard]] inline std::string random_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return detail::format_uuid(hi, lo);
}

/// A UUID derived from `name` alone (the same name gives the same UUID on
/// every node and in every build): two 64-bit FNV-1a hashes of the name,
/// laid out as a version 8 UUID. For idempotent creation: a retried
/// request derives the id of what it created the first time.
[[nodiscard]] inline std::string name_uuid(std::string_view name) {
  auto fnv = [&](uint64_t h) {
    for (unsigned char c : name) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    return h;
  };
  uint64_t hi = fnv(0xcbf29ce484222325ULL);
  uint64_t lo = fnv(0x84222325cbf29ce4ULL ^ name.size());
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000008000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return detail::format_uuid(hi, lo);
}

} // namespace engram
