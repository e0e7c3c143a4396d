// engram::http::parse_float_array: the import's fast path for embeddings
// sent as JSON arrays of numbers. Every value must be the float of the
// correctly rounded double (glibc's strtod is the reference), and anything
// not plainly valid must be refused, so that the precise error path runs.

#include "http/json_float_array.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using engram::http::parse_float_array;

namespace {

/// `text` with readable bytes after it, as simdjson's padded input has.
/// The padding is digits, so that a parser reading past the text's end
/// would take them for more of the number.
std::optional<std::vector<float>> parse(const std::string& text,
                                        size_t max_values = 4096) {
  std::string buffer = text + std::string(64, '7');
  std::vector<float> out{42.0f};
  if (!parse_float_array(std::string_view{buffer.data(), text.size()}, out,
                         max_values))
    return std::nullopt;
  return out;
}

float reference(const std::string& number) {
  return static_cast<float>(std::strtod(number.c_str(), nullptr));
}

/// Parses the numbers as one array (with `separator` between them) and
/// checks each value bit for bit against strtod.
void expect_exact(const std::vector<std::string>& numbers,
                  const std::string& separator = ",") {
  std::string text = "[";
  for (size_t i = 0; i < numbers.size(); ++i) {
    if (i > 0)
      text += separator;
    text += numbers[i];
  }
  text += "]";
  auto values = parse(text, numbers.size());
  ASSERT_TRUE(values) << text.substr(0, 200);
  ASSERT_EQ(values->size(), numbers.size());
  for (size_t i = 0; i < numbers.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>((*values)[i]),
              std::bit_cast<uint32_t>(reference(numbers[i])))
      << numbers[i];
}

} // namespace

TEST(json_float_array, reads_an_embedding_as_clients_print_it) {
  auto v = parse("[0.0123456,-0.5,1,-0,0.25e1,3E-2]");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (std::vector<float>{0.0123456f, -0.5f, 1.0f, -0.0f, 2.5f,
                                     0.03f}));
  EXPECT_TRUE(std::signbit((*v)[3])) << "-0 keeps its sign";
}

TEST(json_float_array, matches_strtod_bit_for_bit_on_random_floats_in_every_format) {
  std::mt19937_64 rng{20261207};
  std::normal_distribution<float> normal{0.0f, 0.08f};
  std::uniform_int_distribution<int> scale{-45, 38};
  std::vector<std::string> six, shortest, seventeen, wide;
  char buf[64];
  for (int i = 0; i < 20000; ++i) {
    float x = normal(rng);
    // As bench/memory_generator and many clients write them.
    std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(x));
    six.emplace_back(buf);
    // Shortest round trip, as Python's json writes tolist() floats.
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
    shortest.emplace_back(buf, end);
    std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(x));
    seventeen.emplace_back(buf);
    // Every magnitude float has, down to its subnormals.
    double y = std::ldexp(static_cast<double>(x), 0)
               * std::pow(10.0, scale(rng));
    if (std::isfinite(static_cast<float>(y))) {
      std::snprintf(buf, sizeof buf, "%.9e", y);
      wide.emplace_back(buf);
    }
  }
  expect_exact(six);
  expect_exact(shortest, ", ");
  expect_exact(seventeen, " ,\n\t");
  expect_exact(wide);
}

TEST(json_float_array, matches_strtod_at_the_edges_of_the_exact_fast_path) {
  expect_exact({
    // 19 and 20 significant digits (the second takes the slow path).
    "1234567890123456789", "12345678901234567891", "0.1234567890123456789",
    "0.12345678901234567891", "-9999999999999999999",
    // Mantissas about 2^53.
    "9007199254740992", "9007199254740993", "9007199254740993e-5",
    // Powers of ten within and past the exact ±22.
    "1e22", "1e23", "3e-22", "3e-23", "123e-25", "1.5e+30",
    // Digit runs of every length around eight.
    "1", "12", "1234567", "12345678", "123456789", "1234567812345678",
    "0.00000001", "0.000000012", "100000000.5",
    // Zeros.
    "0", "-0", "0.0", "0e0", "0E+400", "-0.000e-5",
    // Float's ends: the largest, the smallest normal and subnormal, and a
    // value that rounds to zero as a float.
    "3.4028234e38", "1.17549435e-38", "1.4e-45", "1e-46"});
}

TEST(json_float_array, takes_whitespace_around_tokens_and_after_the_array) {
  auto v = parse(" \n[ 1 ,\t2\r\n, 3 ]  \n");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (std::vector<float>{1, 2, 3}));
  auto empty = parse("[ ]");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(json_float_array, refuses_what_is_not_a_plain_array_of_numbers) {
  for (const std::string text :
       {"", " ", "[", "[1", "[1,", "[1,]", "[,1]", "[1 2]", "[1,,2]",
        "1", "{}", "[[1]]", "[1}", "[1]x", "[1] ]",
        // Numbers JSON does not allow.
        "[01]", "[-01]", "[1.]", "[.5]", "[+1]", "[-]", "[1e]", "[1e+]",
        "[--1]", "[0x10]", "[1.5.2]", "[NaN]", "[Infinity]", "[-Infinity]",
        // Elements that are not numbers.
        "[\"1\"]", "[null]", "[true]", "[1,false]",
        // Beyond float's range.
        "[3.5e38]", "[-1e39]", "[1e309]", "[1e99999999999]"})
    EXPECT_FALSE(parse(text)) << "'" << text << "'";
}

TEST(json_float_array, refuses_more_values_than_allowed) {
  EXPECT_FALSE(parse("[1,2,3]", 2));
  auto v = parse("[1,2,3]", 3);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->size(), 3u);
}

TEST(json_float_array, refuses_a_text_that_ends_inside_a_number) {
  // The padding after the text is digits: they are not the number's.
  EXPECT_FALSE(parse("[1,23"));
  EXPECT_FALSE(parse("[1,0.5"));
}
