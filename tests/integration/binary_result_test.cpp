// storage::binary_result: rows in PostgreSQL's binary format through
// libpq, inside a libpqxx transaction (the consolidation snapshot's read).

#include "storage/binary_result.hpp"

#include <cstring>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "tests/support/postgres_fixture.hpp"

using namespace engram;

namespace {

class binary_result_test : public ::testing::Test {
protected:
  std::string db = test::shared_postgres().create_database("binary_result");
  pqxx::connection conn{db};
};

} // namespace

TEST_F(binary_result_test, reads_each_type_as_the_text_format_would) {
  pqxx::work tx{conn};
  auto rows = storage::binary_result::exec(
    tx,
    "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, NULL::uuid, "
    "  'héllo'::text, ''::text, NULL::text, (-7)::int4, "
    "  (-1234567890123)::int8, true, false, "
    "  '\\x0000803f000000c0'::bytea, NULL::bytea, $1::int8 "
    "FROM generate_series(1, 2)",
    {std::string{"42"}});
  ASSERT_EQ(rows.rows(), 2u);
  EXPECT_EQ(rows.uuid(1, 0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(rows.uuid(0, 1), "");
  EXPECT_TRUE(rows.is_null(0, 1));
  EXPECT_EQ(rows.text(0, 2), "héllo");
  EXPECT_EQ(rows.text(0, 3), "");
  EXPECT_FALSE(rows.is_null(0, 3));
  EXPECT_TRUE(rows.is_null(0, 4));
  EXPECT_EQ(rows.int4(0, 5), -7);
  EXPECT_EQ(rows.int8(0, 6), -1234567890123);
  EXPECT_TRUE(rows.boolean(0, 7));
  EXPECT_FALSE(rows.boolean(0, 8));
  std::vector<float> floats{9.0f};
  EXPECT_EQ(storage::append_floats(rows.bytes(0, 9), floats), 2u);
  EXPECT_EQ(floats, (std::vector<float>{9.0f, 1.0f, -2.0f}));
  EXPECT_EQ(storage::append_floats(rows.bytes(0, 10), floats), 0u);
  EXPECT_EQ(rows.int8(0, 11), 42);
  // Asking for a value of another size or a NULL is an error, not a guess.
  EXPECT_THROW((void) rows.int4(0, 6), std::runtime_error);
  EXPECT_THROW((void) rows.int8(0, 4), std::runtime_error);
  // The statement ran inside the transaction: the transaction goes on.
  EXPECT_EQ(tx.exec1("SELECT 1")[0].as<int>(), 1);
}

TEST_F(binary_result_test, sees_the_transactions_own_writes_and_reports_errors) {
  pqxx::work tx{conn};
  tx.exec("CREATE TABLE t (v bytea)");
  tx.exec("INSERT INTO t VALUES ('\\x000000'::bytea)");
  auto rows = storage::binary_result::exec(tx, "SELECT v FROM t", {});
  ASSERT_EQ(rows.rows(), 1u);
  std::vector<float> floats;
  EXPECT_THROW(storage::append_floats(rows.bytes(0, 0), floats),
               std::runtime_error)
    << "3 bytes are not whole float32 values";
  EXPECT_THROW((void) storage::binary_result::exec(
                 tx, "SELECT * FROM no_such_table", {}),
               pqxx::sql_error);
}

TEST_F(binary_result_test, a_cursor_reads_every_row_once_in_chunks_and_frees_the_connection) {
  for (int total : {0, 5, 6, 7, 18}) {
    pqxx::work tx{conn};
    tx.exec0("DECLARE c BINARY NO SCROLL CURSOR FOR "
             "SELECT g::int8 FROM generate_series(1, "
             + std::to_string(total) + ") g ORDER BY g");
    std::vector<int64_t> seen;
    size_t chunks = 0;
    {
      storage::binary_cursor cursor{tx, "c", 6};
      for (;;) {
        auto rows = cursor.next();
        if (rows.rows() == 0)
          break;
        ++chunks;
        EXPECT_LE(rows.rows(), 6u);
        for (size_t r = 0; r < rows.rows(); ++r)
          seen.push_back(rows.int8(r, 0));
      }
      // The end stays the end.
      EXPECT_EQ(cursor.next().rows(), 0u);
    }
    std::vector<int64_t> expected(static_cast<size_t>(total));
    for (int i = 0; i < total; ++i)
      expected[static_cast<size_t>(i)] = i + 1;
    EXPECT_EQ(seen, expected) << total << " rows";
    EXPECT_EQ(chunks, static_cast<size_t>((total + 5) / 6)) << total << " rows";
    // No FETCH is left on the connection: the transaction goes on.
    tx.exec0("CLOSE c");
    EXPECT_EQ(tx.exec1("SELECT 1")[0].as<int>(), 1);
  }
}

TEST_F(binary_result_test, a_cursor_left_mid_way_waits_for_its_fetch_in_flight) {
  pqxx::work tx{conn};
  tx.exec0("DECLARE c BINARY NO SCROLL CURSOR FOR "
           "SELECT g::int8 FROM generate_series(1, 100) g");
  {
    storage::binary_cursor cursor{tx, "c", 10};
    EXPECT_EQ(cursor.next().rows(), 10u); // the next FETCH is on its way
  }
  // The connection is free for the transaction (the second chunk was read
  // and dropped): the cursor goes on from row 21.
  auto next = storage::binary_result::exec(tx, "FETCH 1 FROM c", {});
  ASSERT_EQ(next.rows(), 1u);
  EXPECT_EQ(next.int8(0, 0), 21);
  tx.exec0("CLOSE c");
}

TEST_F(binary_result_test, a_cursor_reports_the_servers_refusal) {
  pqxx::work tx{conn};
  storage::binary_cursor cursor{tx, "no_such_cursor", 10};
  EXPECT_THROW((void) cursor.next(), pqxx::sql_error);
}
