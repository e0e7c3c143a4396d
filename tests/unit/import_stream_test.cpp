// memories::import_stream: the hand-over of an import's rows from the HTTP
// handler that parses them to the storage worker that copies them.

#include "messages/import_stream.hpp"

#include <thread>

#include <gtest/gtest.h>

using namespace engram;
using memories::import_stream;
using memories::import_stream_producer;
using next = import_stream::next;
using namespace std::chrono_literals;

namespace {

import_stream::chunk chunk_of(std::initializer_list<uint32_t> indices) {
  import_stream::chunk c;
  for (auto i : indices) {
    memories::memory_row r;
    r.content = "row " + std::to_string(i);
    c.rows.push_back(std::move(r));
    c.indices.push_back(i);
  }
  return c;
}

auto soon() { return std::chrono::steady_clock::now() + 5s; }

} // namespace

TEST(import_stream, chunks_arrive_in_order_then_the_end) {
  import_stream s;
  ASSERT_TRUE(s.push(chunk_of({0, 1})));
  ASSERT_TRUE(s.push(chunk_of({2})));
  s.finish();
  import_stream::chunk c;
  ASSERT_EQ(s.pop(c, soon()), next::chunk);
  EXPECT_EQ(c.indices, (std::vector<uint32_t>{0, 1}));
  ASSERT_EQ(s.pop(c, soon()), next::chunk);
  EXPECT_EQ(c.indices, (std::vector<uint32_t>{2}));
  EXPECT_EQ(c.rows.at(0).content, "row 2");
  EXPECT_EQ(s.pop(c, soon()), next::finished) << "the end after every chunk";
  EXPECT_EQ(s.pop(c, soon()), next::finished);
}

TEST(import_stream, a_failure_wins_over_chunks_not_yet_read) {
  import_stream s;
  ASSERT_TRUE(s.push(chunk_of({0})));
  s.fail(errc::invalid_argument, "memories[1].type must be ...");
  import_stream::chunk c;
  EXPECT_EQ(s.pop(c, soon()), next::failed);
  EXPECT_EQ(s.failure_code(), errc::invalid_argument);
  EXPECT_EQ(s.failure_message(), "memories[1].type must be ...");
}

TEST(import_stream, an_abandoned_stream_refuses_more_rows) {
  import_stream s;
  ASSERT_TRUE(s.push(chunk_of({0})));
  EXPECT_FALSE(s.abandoned());
  s.abandon();
  EXPECT_TRUE(s.abandoned());
  EXPECT_FALSE(s.push(chunk_of({1}))) << "the producer learns to stop";
}

TEST(import_stream, pop_gives_up_at_its_deadline) {
  import_stream s;
  import_stream::chunk c;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.pop(c, start + 20ms), next::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST(import_stream, a_producer_that_ends_unfinished_fails_the_stream) {
  auto s = std::make_shared<import_stream>();
  {
    import_stream_producer p{s};
    ASSERT_TRUE(p.push(chunk_of({0})));
  }
  import_stream::chunk c;
  EXPECT_EQ(s->pop(c, soon()), next::failed);
  EXPECT_NE(s->failure_message().find("stopped before their end"),
            std::string::npos);

  auto finished = std::make_shared<import_stream>();
  {
    import_stream_producer p{finished};
    p.finish();
  }
  EXPECT_EQ(finished->pop(c, soon()), next::finished)
    << "a finished producer's end is not a failure";
}

TEST(import_stream, a_consumer_on_another_thread_gets_every_row_once_in_order) {
  auto s = std::make_shared<import_stream>();
  constexpr uint32_t chunks = 2000;
  std::vector<uint32_t> seen;
  std::thread consumer{[&] {
    import_stream::chunk c;
    while (s->pop(c, soon()) == next::chunk)
      seen.insert(seen.end(), c.indices.begin(), c.indices.end());
  }};
  {
    import_stream_producer p{s};
    for (uint32_t i = 0; i < chunks; ++i)
      ASSERT_TRUE(p.push(chunk_of({2 * i, 2 * i + 1})));
    p.finish();
  }
  consumer.join();
  ASSERT_EQ(seen.size(), 2 * chunks);
  for (uint32_t i = 0; i < seen.size(); ++i)
    ASSERT_EQ(seen[i], i);
}

TEST(import_stream, a_cancel_wakes_a_waiting_consumer_and_stops_the_producer) {
  auto s = std::make_shared<import_stream>();
  next seen = next::chunk;
  std::thread consumer{[&] {
    import_stream::chunk c;
    seen = s->pop(c, soon());
  }};
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(s->cancel(errc::timeout, "the caller stopped waiting"));
  consumer.join();
  EXPECT_EQ(seen, next::failed);
  EXPECT_EQ(s->failure_code(), errc::timeout);
  EXPECT_TRUE(s->stopped());
  EXPECT_FALSE(s->push(chunk_of({0}))) << "the producer stops too";
  EXPECT_FALSE(s->begin_commit());
}

TEST(import_stream, a_cancel_stops_a_finished_import_until_its_commit_begins) {
  import_stream finished;
  ASSERT_TRUE(finished.push(chunk_of({0, 1})));
  finished.finish();
  EXPECT_FALSE(finished.fail(errc::invalid_argument, "late"))
    << "a finished stream is not failed by its producer";
  EXPECT_TRUE(finished.cancel(errc::timeout, "too late"));
  import_stream::chunk c;
  EXPECT_EQ(finished.pop(c, soon()), next::failed);
  EXPECT_FALSE(finished.begin_commit());

  import_stream committing;
  ASSERT_TRUE(committing.push(chunk_of({0})));
  committing.finish();
  ASSERT_EQ(committing.pop(c, soon()), next::chunk);
  ASSERT_EQ(committing.pop(c, soon()), next::finished);
  ASSERT_TRUE(committing.begin_commit());
  EXPECT_FALSE(committing.cancel(errc::timeout, "too late"))
    << "the outcome is the commit's";
  EXPECT_FALSE(committing.stopped());
}
