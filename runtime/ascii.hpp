#pragma once

// Case folding of ASCII text, the same in every place that compares names
// without case. Not std::tolower, whose answer depends on the locale.

#include <string>
#include <string_view>

namespace engram {

/// `text` with the ASCII letters A-Z lower-cased and every other byte as it
/// is: a UUID in its canonical form (any text is_uuid accepts), and the
/// other ASCII names compared without case (option names, URL schemes and
/// hosts, keywords).
[[nodiscard]] inline std::string ascii_lower(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return result;
}

} // namespace engram
