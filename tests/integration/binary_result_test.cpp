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
