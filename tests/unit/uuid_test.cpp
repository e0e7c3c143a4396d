// runtime/uuid.hpp: the ids the daemon makes.

#include "runtime/uuid.hpp"

#include <string>
#include <thread>
#include <unordered_set>

#include <gtest/gtest.h>

using namespace engram;

namespace {

/// Runs `f` on a thread of its own: a fresh per-thread sequence.
template <class F>
void on_new_thread(F f) {
  std::thread t{f};
  t.join();
}

} // namespace

TEST(uuid, time_ordered_ids_are_version_7_with_the_time_in_front) {
  // 2024-03-10T12:00:00.123Z in Unix milliseconds.
  constexpr uint64_t ms = 1710072000123ULL;
  std::string id;
  on_new_thread([&] { id = time_ordered_uuid(ms); });
  ASSERT_TRUE(is_uuid(id)) << id;
  EXPECT_EQ(id[14], '7') << "version 7: " << id;
  EXPECT_NE(std::string{"89ab"}.find(id[19]), std::string::npos)
    << "RFC 9562 variant: " << id;
  // The first 48 bits are the milliseconds.
  auto hex = id.substr(0, 8) + id.substr(9, 4);
  EXPECT_EQ(std::stoull(hex, nullptr, 16), ms);
}

TEST(uuid, time_ordered_ids_of_one_thread_increase_strictly) {
  // Many ids within one millisecond (more than the 12-bit sequence holds,
  // so some borrow the next millisecond), then a clock that goes back.
  constexpr uint64_t ms = 1900000000000ULL;
  std::vector<std::string> ids;
  on_new_thread([&] {
    for (int i = 0; i < 20000; ++i)
      ids.push_back(time_ordered_uuid(i < 15000 ? ms : ms - 5));
  });
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0)
      ASSERT_GT(ids[i], ids[i - 1]) << "id " << i;
    ASSERT_TRUE(seen.insert(ids[i]).second);
  }
  EXPECT_EQ(ids.front().substr(0, 8), ids[100].substr(0, 8))
    << "ids of one millisecond share it";
}

TEST(uuid, random_ids_are_version_4) {
  auto a = random_uuid();
  auto b = random_uuid();
  EXPECT_TRUE(is_uuid(a));
  EXPECT_EQ(a[14], '4');
  EXPECT_NE(a, b);
}
