#pragma once

// Splitting a text at a separator, the one copy for lists the daemon reads:
// array_to_string results, /proc/<pid>/cmdline, comma lists in settings.

#include <string>
#include <string_view>
#include <vector>

namespace engram {

/// The items of `text` between the `sep`s, in order: none for an empty text,
/// and no item after a separator that ends the text ("a,b," and "a,b" are
/// both {"a", "b"}); an empty item between two separators is kept.
[[nodiscard]] inline std::vector<std::string> split_on(std::string_view text,
                                                       char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find(sep, start);
    if (end == std::string_view::npos)
      end = text.size();
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

} // namespace engram
