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

/// A random engine seeded with 256 bits from the system's entropy source
/// (one 32-bit word would let two threads draw the same ids).
[[nodiscard]] inline std::mt19937_64 seeded_engine() {
  std::random_device device;
  std::seed_seq seeds{device(), device(), device(), device(),
                      device(), device(), device(), device()};
  return std::mt19937_64{seeds};
}

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
  thread_local std::mt19937_64 rng = detail::seeded_engine();
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return detail::format_uuid(hi, lo);
}

/// A time-ordered (version 7, RFC 9562) UUID in canonical lower-case text
/// form: the Unix time in milliseconds, then a 12-bit sequence, then 62
/// random bits. The ids one thread makes increase strictly: within a
/// millisecond the sequence counts up from a random start below 2048, and
/// when it runs out the next ids borrow the following millisecond. Rows
/// keyed by these ids are appended at the right edge of their B-tree index
/// instead of at a random leaf, which is what makes a bulk insert's primary
/// key cheap.
[[nodiscard]] inline std::string time_ordered_uuid(uint64_t unix_ms) {
  thread_local std::mt19937_64 rng = detail::seeded_engine();
  thread_local uint64_t last_ms = 0;
  thread_local uint64_t sequence = 0;
  if (unix_ms > last_ms) {
    last_ms = unix_ms;
    sequence = rng() & 0x7ff;
  } else if (++sequence > 0xfff) {
    ++last_ms;
    sequence = rng() & 0x7ff;
  }
  uint64_t hi = ((last_ms & 0xffffffffffffULL) << 16) | 0x7000 | sequence;
  uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
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
