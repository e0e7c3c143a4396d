#pragma once

// A query whose rows come back in PostgreSQL's binary format, for the read
// that moves the most bytes: a consolidation snapshot (100,000 memories
// carry 150 MB of float32 vectors). In the text format the server writes
// each vector as hex (twice its size) and the client decodes it again; in
// binary it is copied as it is stored. libpqxx 6 reads text only, so this
// runs the statement through libpq on the transaction's own connection,
// inside the transaction. Internal to the repositories.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/transaction_base>

extern "C" {
struct pg_result;
}

namespace engram::storage {

class binary_result {
public:
  /// Runs `sql` with text parameters (nullopt = NULL) in `tx`; the rows
  /// come back in binary. Throws pqxx::sql_error (the server's message)
  /// when the statement fails; the transaction is then aborted.
  static binary_result exec(pqxx::dbtransaction& tx, const std::string& sql,
                            const std::vector<std::optional<std::string>>&
                              params);

  [[nodiscard]] size_t rows() const;
  [[nodiscard]] bool is_null(size_t row, int col) const;
  /// text, varchar: the bytes as stored ("" for NULL).
  [[nodiscard]] std::string_view text(size_t row, int col) const;
  /// uuid: canonical lower-case text ("" for NULL).
  [[nodiscard]] std::string uuid(size_t row, int col) const;
  /// int4, int8, bool. Throw std::runtime_error on NULL or a value of
  /// another size.
  [[nodiscard]] int32_t int4(size_t row, int col) const;
  [[nodiscard]] int64_t int8(size_t row, int col) const;
  [[nodiscard]] bool boolean(size_t row, int col) const;
  /// bytea: the raw bytes (empty for NULL).
  [[nodiscard]] std::span<const std::byte> bytes(size_t row, int col) const;

private:
  friend class binary_cursor;
  struct clear {
    void operator()(pg_result* r) const;
  };
  explicit binary_result(pg_result* r) : res_{r} {
  }
  [[nodiscard]] std::span<const std::byte> value(size_t row, int col,
                                                 int size) const;

  std::unique_ptr<pg_result, clear> res_;
};

/// Reads a cursor declared in `tx` (DECLARE ... BINARY CURSOR) `chunk`
/// rows at a time, asking for the next chunk as soon as one arrives: the
/// server reads and sends it while the caller decodes the one before.
/// Destroying the cursor waits for a chunk still on its way (the
/// connection is then free for the transaction again).
class binary_cursor {
public:
  binary_cursor(pqxx::dbtransaction& tx, const std::string& name,
                size_t chunk);
  binary_cursor(const binary_cursor&) = delete;
  binary_cursor& operator=(const binary_cursor&) = delete;
  ~binary_cursor();

  /// The next chunk; one of no rows at the end. Throws pqxx::sql_error
  /// when the server refuses a FETCH.
  binary_result next();

private:
  void send();

  pqxx::dbtransaction& tx_;
  std::string fetch_;
  size_t chunk_;
  bool in_flight_ = false;
  bool done_ = false;
};

/// Appends a bytea of float32 little-endian values to `out`; returns how
/// many (0 for NULL). Throws std::runtime_error when the size is not a
/// multiple of 4.
size_t append_floats(std::span<const std::byte> bytes,
                     std::vector<float>& out);

} // namespace engram::storage
