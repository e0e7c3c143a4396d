#pragma once

#include <string_view>

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

} // namespace engram
