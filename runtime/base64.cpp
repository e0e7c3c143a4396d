#include "runtime/base64.hpp"

#include <array>
#include <cstdint>

namespace engram {

namespace {

constexpr uint8_t invalid = 0xff;

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (auto& x : t)
    x = invalid;
  constexpr std::string_view alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < alphabet.size(); ++i)
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<uint8_t>(i);
  return t;
}

constexpr auto table = make_table();

} // namespace

std::optional<size_t> base64_decode(std::string_view text,
                                    std::vector<std::byte>& out) {
  // Up to two '=' at the end, and only to fill the last group of four.
  size_t padding = 0;
  while (padding < 2 && padding < text.size()
         && text[text.size() - 1 - padding] == '=')
    ++padding;
  if (padding > 0 && text.size() % 4 != 0)
    return std::nullopt;
  auto data = text.substr(0, text.size() - padding);
  // A last group of one character carries no whole byte.
  if (data.size() % 4 == 1)
    return std::nullopt;
  auto first = out.size();
  auto tail = data.size() % 4; // 0, 2 or 3 characters: 0, 1 or 2 bytes
  out.resize(first + data.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1));
  auto* o = out.data() + first;
  size_t i = 0;
  for (; i + 4 <= data.size(); i += 4) {
    uint8_t a = table[static_cast<unsigned char>(data[i])];
    uint8_t b = table[static_cast<unsigned char>(data[i + 1])];
    uint8_t c = table[static_cast<unsigned char>(data[i + 2])];
    uint8_t d = table[static_cast<unsigned char>(data[i + 3])];
    if (((a | b | c | d) & 0xc0) != 0) { // one was `invalid`
      out.resize(first);
      return std::nullopt;
    }
    uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12)
                 | (uint32_t{c} << 6) | d;
    *o++ = static_cast<std::byte>(v >> 16);
    *o++ = static_cast<std::byte>((v >> 8) & 0xff);
    *o++ = static_cast<std::byte>(v & 0xff);
  }
  auto left = data.size() - i;
  if (left > 0) {
    uint32_t v = 0;
    for (size_t k = 0; k < left; ++k) {
      uint8_t x = table[static_cast<unsigned char>(data[i + k])];
      if (x == invalid) {
        out.resize(first);
        return std::nullopt;
      }
      v |= uint32_t{x} << (18 - 6 * k);
    }
    *o++ = static_cast<std::byte>(v >> 16);
    if (left == 3)
      *o++ = static_cast<std::byte>((v >> 8) & 0xff);
  }
  return out.size() - first;
}

} // namespace engram
