#pragma once

// Vectors as bytes: little-endian float32, the form engram stores them in
// (memories.embedding) and the form base64 embeddings carry (OpenAI's
// `encoding_format: "base64"`). One decoder for the storage, the import and
// the embedding provider.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace engram {

/// Appends `bytes` (little-endian float32 values: a multiple of 4 bytes,
/// which the caller checks) to `out` as floats, whatever the host's byte
/// order; returns how many. Values are taken as they are (NaN included).
inline size_t append_float32le(std::span<const std::byte> bytes,
                               std::vector<float>& out) {
  auto n = bytes.size() / 4;
  auto first = out.size();
  out.resize(first + n);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out.data() + first, bytes.data(), n * 4);
  } else {
    for (size_t k = 0; k < n; ++k) {
      uint32_t u = 0;
      for (size_t b = 0; b < 4; ++b)
        u |= std::to_integer<uint32_t>(bytes[4 * k + b]) << (8 * b);
      out[first + k] = std::bit_cast<float>(u);
    }
  }
  return n;
}

} // namespace engram
