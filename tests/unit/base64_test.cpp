// engram::base64_decode: embeddings sent as base64 of float32 bytes.

#include "runtime/base64.hpp"

#include <gtest/gtest.h>

using namespace engram;

namespace {

std::optional<std::string> decode(std::string_view text) {
  std::vector<std::byte> out{std::byte{0x2a}}; // appended to, not replaced
  auto n = base64_decode(text, out);
  if (!n) {
    EXPECT_EQ(out.size(), 1u) << "a refused text leaves the output alone";
    return std::nullopt;
  }
  EXPECT_EQ(*n + 1, out.size());
  std::string s;
  for (size_t i = 1; i < out.size(); ++i)
    s.push_back(static_cast<char>(out[i]));
  return s;
}

} // namespace

TEST(base64, decodes_the_rfc_4648_vectors_padded_or_not) {
  EXPECT_EQ(decode(""), "");
  EXPECT_EQ(decode("Zg=="), "f");
  EXPECT_EQ(decode("Zm8="), "fo");
  EXPECT_EQ(decode("Zm9v"), "foo");
  EXPECT_EQ(decode("Zm9vYg=="), "foob");
  EXPECT_EQ(decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode("Zg"), "f");
  EXPECT_EQ(decode("Zm8"), "fo");
  EXPECT_EQ(decode("Zm9vYg"), "foob");
  EXPECT_EQ(decode("+/+/"), "\xfb\xff\xbf");
}

TEST(base64, refuses_what_no_encoder_makes) {
  EXPECT_EQ(decode("Z"), std::nullopt);        // one character: no byte
  EXPECT_EQ(decode("Zm9vY"), std::nullopt);    // the same after a group
  EXPECT_EQ(decode("Zg="), std::nullopt);      // padding short of a group
  EXPECT_EQ(decode("Zg==Zg=="), std::nullopt); // padding inside
  EXPECT_EQ(decode("Z==="), std::nullopt);
  EXPECT_EQ(decode("Zm9v!"), std::nullopt);
  EXPECT_EQ(decode("Zm 9v"), std::nullopt);
  EXPECT_EQ(decode("Zm-_"), std::nullopt); // the URL alphabet is not this one
  EXPECT_EQ(decode(std::string_view{"Zm\0v", 4}), std::nullopt);
}
