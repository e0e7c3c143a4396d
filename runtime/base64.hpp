#pragma once

// Base64 (RFC 4648, the standard alphabet, padded or not) for embeddings
// sent as little-endian float32 bytes, the form OpenAI-compatible APIs
// answer with `encoding_format: "base64"`: a third of the text of the
// decimal numbers and decoded at memory speed instead of parsed number by
// number.

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace engram {

/// Decodes `text` and appends its bytes to `out`; nullopt (and `out` as it
/// was) when `text` is not base64: a character outside the alphabet,
/// padding anywhere but at the end, or a length no encoder makes. Returns
/// how many bytes were appended.
std::optional<size_t> base64_decode(std::string_view text,
                                    std::vector<std::byte>& out);

} // namespace engram
