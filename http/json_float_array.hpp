#pragma once

// The import's fast path for an embedding sent as a JSON array of numbers
// (hundreds per memory, tens of millions per bulk import): parses the array
// text straight into float32 values, eight digits at a time, without
// simdjson's per-element iteration. Each number becomes the correctly
// rounded double of its decimal text, then a float, exactly as
// simdjson's get_double followed by a cast: Clinger's exact fast path
// (at most 19 significant digits whose value fits 53 bits, a power of ten
// within ±22), std::from_chars for the rest.
//
// It accepts only what is plainly valid and answers nullopt for everything
// else (malformed JSON, a non-number element, a value beyond float's range,
// too many values), so that the caller can re-read the array with its
// precise error path. Pure, so unit-tested against strtod.

#include <cstddef>
#include <string_view>
#include <vector>

namespace engram::http {

/// Reads `text`, a JSON array of numbers with optional whitespace around
/// its tokens and after it, into `out` (emptied first; its capacity is
/// kept). Returns false, with `out` unspecified, unless every element is a
/// JSON number whose float value is finite and there are at most
/// `max_values` of them. The SIMDJSON_PADDING bytes after `text` must be
/// readable (numbers are read eight bytes at a time); simdjson's padded
/// input guarantees it.
[[nodiscard]] bool parse_float_array(std::string_view text,
                                     std::vector<float>& out,
                                     size_t max_values);

} // namespace engram::http
