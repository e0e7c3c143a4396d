#include "runtime/split.hpp"

#include <gtest/gtest.h>

using engram::split_on;
using list = std::vector<std::string>;

TEST(split_on, items_in_order_none_for_an_empty_text) {
  EXPECT_EQ(split_on("", ','), list{});
  EXPECT_EQ(split_on("a", ','), list{"a"});
  EXPECT_EQ(split_on("a,bc,d", ','), (list{"a", "bc", "d"}));
}

TEST(split_on, a_final_separator_ends_the_last_item_an_inner_empty_item_stays) {
  // /proc/<pid>/cmdline ends each argument with a NUL.
  using namespace std::string_literals;
  EXPECT_EQ(split_on("postgres\0-D\0/data\0"s, '\0'),
            (list{"postgres", "-D", "/data"}));
  EXPECT_EQ(split_on("a,b,", ','), (list{"a", "b"}));
  EXPECT_EQ(split_on("a,,b", ','), (list{"a", "", "b"}));
  EXPECT_EQ(split_on(",a", ','), (list{"", "a"}));
  EXPECT_EQ(split_on(",", ','), (list{""}));
}
