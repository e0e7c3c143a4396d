#include "storage/binary_result.hpp"

#include <cstring>
#include <stdexcept>

#include <libpq-fe.h>
#include <pqxx/except>
#include <pqxx/largeobject>

#include "runtime/float32le.hpp"

namespace engram::storage {

namespace {

/// libpqxx 6 hands out a transaction's libpq connection only to its large
/// object classes (a protected static of pqxx::largeobject).
struct connection_of : pqxx::largeobject {
  static PGconn* get(const pqxx::dbtransaction& tx) {
    return raw_connection(tx);
  }
};

uint32_t be32(const std::byte* p) {
  uint32_t x;
  std::memcpy(&x, p, 4);
  return std::endian::native == std::endian::little ? __builtin_bswap32(x)
                                                    : x;
}

uint64_t be64(const std::byte* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return std::endian::native == std::endian::little ? __builtin_bswap64(x)
                                                    : x;
}

} // namespace

void binary_result::clear::operator()(pg_result* r) const {
  PQclear(r);
}

binary_result binary_result::exec(
  pqxx::dbtransaction& tx, const std::string& sql,
  const std::vector<std::optional<std::string>>& params) {
  auto* conn = connection_of::get(tx);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params)
    values.push_back(p ? p->c_str() : nullptr);
  auto* r = PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()),
                         nullptr, values.data(), nullptr, nullptr,
                         /*resultFormat=*/1);
  binary_result out{r};
  if (r == nullptr)
    throw pqxx::broken_connection{PQerrorMessage(conn)};
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    throw pqxx::sql_error{PQresultErrorMessage(r), sql, state};
  }
  return out;
}

binary_cursor::binary_cursor(pqxx::dbtransaction& tx,
                             const std::string& name, size_t chunk)
  : tx_{tx},
    fetch_{"FETCH " + std::to_string(chunk) + " FROM " + name},
    chunk_{chunk} {
}

binary_cursor::~binary_cursor() {
  if (!in_flight_)
    return;
  auto* conn = connection_of::get(tx_);
  while (auto* r = PQgetResult(conn))
    PQclear(r);
}

void binary_cursor::send() {
  auto* conn = connection_of::get(tx_);
  if (PQsendQueryParams(conn, fetch_.c_str(), 0, nullptr, nullptr, nullptr,
                        nullptr, /*resultFormat=*/1)
      == 0)
    throw pqxx::broken_connection{PQerrorMessage(conn)};
  in_flight_ = true;
}

binary_result binary_cursor::next() {
  if (done_)
    return binary_result{nullptr};
  if (!in_flight_)
    send();
  auto* conn = connection_of::get(tx_);
  binary_result out{PQgetResult(conn)};
  // The end of this query's results: the connection takes the next one.
  while (auto* extra = PQgetResult(conn))
    PQclear(extra);
  in_flight_ = false;
  auto* r = out.res_.get();
  if (r == nullptr)
    throw pqxx::broken_connection{PQerrorMessage(conn)};
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    throw pqxx::sql_error{PQresultErrorMessage(r), fetch_, state};
  }
  if (out.rows() < chunk_)
    done_ = true;
  else
    send();
  return out;
}

size_t binary_result::rows() const {
  return res_ ? static_cast<size_t>(PQntuples(res_.get())) : 0;
}

bool binary_result::is_null(size_t row, int col) const {
  return PQgetisnull(res_.get(), static_cast<int>(row), col) != 0;
}

std::span<const std::byte> binary_result::value(size_t row, int col,
                                                int size) const {
  auto r = static_cast<int>(row);
  if (PQgetisnull(res_.get(), r, col) != 0)
    throw std::runtime_error("column " + std::to_string(col)
                             + " is NULL where a value is expected");
  if (size >= 0 && PQgetlength(res_.get(), r, col) != size)
    throw std::runtime_error("column " + std::to_string(col) + " has "
                             + std::to_string(PQgetlength(res_.get(), r, col))
                             + " bytes, not " + std::to_string(size));
  return {reinterpret_cast<const std::byte*>(PQgetvalue(res_.get(), r, col)),
          static_cast<size_t>(PQgetlength(res_.get(), r, col))};
}

std::string_view binary_result::text(size_t row, int col) const {
  if (is_null(row, col))
    return {};
  auto v = value(row, col, -1);
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

std::string binary_result::uuid(size_t row, int col) const {
  if (is_null(row, col))
    return {};
  auto v = value(row, col, 16);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out += '-';
    auto b = std::to_integer<unsigned>(v[i]);
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

int32_t binary_result::int4(size_t row, int col) const {
  return static_cast<int32_t>(be32(value(row, col, 4).data()));
}

int64_t binary_result::int8(size_t row, int col) const {
  return static_cast<int64_t>(be64(value(row, col, 8).data()));
}

bool binary_result::boolean(size_t row, int col) const {
  return value(row, col, 1)[0] != std::byte{0};
}

std::span<const std::byte> binary_result::bytes(size_t row, int col) const {
  if (is_null(row, col))
    return {};
  return value(row, col, -1);
}

size_t append_floats(std::span<const std::byte> bytes,
                     std::vector<float>& out) {
  if (bytes.size() % 4 != 0)
    throw std::runtime_error("a vector column is not whole float32 values");
  return append_float32le(bytes, out);
}

} // namespace engram::storage
