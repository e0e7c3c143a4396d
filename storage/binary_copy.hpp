#pragma once

// COPY ... FROM STDIN in PostgreSQL's binary format, for the writes that
// move the most rows: the memory import and the audit rows of consolidation
// phases. Half the bytes of the text format's hex-encoded bytea, and
// nothing for the server to parse but JSON (no uuid, timestamp or escape
// parsing). Internal to the repositories.
//
// libpqxx 6 has no binary COPY; its tablewriter sends raw data, but every
// piece it sends ends with a newline (one it adds unless the piece ends
// with one). So every piece is made to end with a newline of its own: the
// last column of every row is a jsonb, sent with a trailing newline
// (jsonb_ending_row), which the server's JSON parser takes as whitespace,
// or, in a table without one, a "char" column whose value is the newline
// (row_end); and pieces end with a row. The stream ends without the
// optional trailer (-1), which the server reads as the end of the data.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/tablewriter>
#include <pqxx/transaction_base>

namespace engram::storage {

/// Bytes of pieces handed to the server at once.
inline constexpr size_t copy_piece_bytes = 1 << 20;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
inline constexpr int64_t postgres_epoch_us = 946684800LL * 1000000;

class binary_copy_buffer {
public:
  binary_copy_buffer() {
    // Signature, flags, header extension length.
    static constexpr char signature[] = "PGCOPY\n\377\r\n";
    bytes_.append(signature, 11);
    put_int32(0);
    put_int32(0);
  }

  [[nodiscard]] std::string& bytes() { return bytes_; }

  void begin_row(int16_t fields) { put_int16(fields); }

  void null() { put_int32(-1); }

  void text(std::string_view s) {
    put_int32(static_cast<int32_t>(s.size()));
    bytes_.append(s);
  }

  void optional_text(std::string_view s) {
    if (s.empty())
      null();
    else
      text(s);
  }

  /// A UUID in canonical text form (checked by the caller) as 16 bytes.
  void uuid(std::string_view s) {
    put_int32(16);
    auto hex = [](char c) {
      return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    };
    char out[16];
    size_t n = 0;
    for (size_t i = 0; i < s.size() && n < 16;) {
      if (s[i] == '-') {
        ++i;
        continue;
      }
      out[n++] = static_cast<char>(hex(s[i]) * 16 + hex(s[i + 1]));
      i += 2;
    }
    bytes_.append(out, n);
  }

  void optional_uuid(std::string_view s) {
    if (s.empty())
      null();
    else
      uuid(s);
  }

  /// float32 little-endian, whatever the host's byte order; NULL for none.
  void embedding(const std::vector<float>& v) {
    if (v.empty()) {
      null();
      return;
    }
    put_int32(static_cast<int32_t>(v.size() * 4));
    if constexpr (std::endian::native == std::endian::little) {
      bytes_.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    } else {
      auto at = bytes_.size();
      bytes_.resize(at + v.size() * 4);
      auto* out = bytes_.data() + at;
      for (float f : v) {
        auto u = std::bit_cast<uint32_t>(f);
        for (int i = 0; i < 4; ++i)
          *out++ = static_cast<char>((u >> (8 * i)) & 0xff);
      }
    }
  }

  void int4(int32_t x) {
    put_int32(4);
    put_int32(x);
  }

  void boolean(bool x) {
    put_int32(1);
    bytes_.push_back(x ? 1 : 0);
  }

  /// Epoch microseconds; 0 is NULL.
  void timestamptz(int64_t us) {
    if (us == 0) {
      null();
      return;
    }
    put_int32(8);
    put_int64(us - postgres_epoch_us);
  }

  /// uuid[] of canonical text UUIDs (checked by the caller), one dimension.
  void uuid_array(const std::vector<std::string>& ids) {
    put_int32(static_cast<int32_t>(20 + ids.size() * 20));
    put_int32(1);    // dimensions
    put_int32(0);    // no NULLs
    put_int32(2950); // element type: uuid
    put_int32(static_cast<int32_t>(ids.size()));
    put_int32(1); // lower bound
    for (const auto& id : ids)
      uuid(id);
  }

  /// The newline that ends a row, as the value of a last column of type
  /// "char" (for tables without a jsonb to end rows with; see the top).
  void row_end() {
    put_int32(1);
    bytes_.push_back('\n');
  }

  /// A JSON text as jsonb (version 1), with the newline that ends the row.
  void jsonb_ending_row(std::string_view json) {
    put_int32(static_cast<int32_t>(json.size() + 2));
    bytes_.push_back(1);
    bytes_.append(json);
    bytes_.push_back('\n');
  }

private:
  /// `x` in network byte order (big-endian), as one append.
  template <class Unsigned>
  void put_big_endian(Unsigned u) {
    char out[sizeof(Unsigned)];
    for (size_t i = 0; i < sizeof(Unsigned); ++i)
      out[i] = static_cast<char>((u >> (8 * (sizeof(Unsigned) - 1 - i))) & 0xff);
    bytes_.append(out, sizeof(Unsigned));
  }

  void put_int16(int16_t x) { put_big_endian(static_cast<uint16_t>(x)); }
  void put_int32(int32_t x) { put_big_endian(static_cast<uint32_t>(x)); }
  void put_int64(int64_t x) { put_big_endian(static_cast<uint64_t>(x)); }

  std::string bytes_;
};

/// A binary COPY into `table` (`columns`, the last a jsonb or a "char"
/// row end), written row by row: next_row() gives the buffer for a row
/// (begin_row first, jsonb_ending_row or row_end last), row_done() sends a
/// piece once copy_piece_bytes are buffered, flush() sends what is. The
/// COPY opens at the first row, so a writer given no rows sends nothing,
/// and complete() ends it; the transaction may then run other statements
/// and the writer may open a new COPY at its next row. Throws what libpqxx
/// throws for a refused row.
class binary_copy_writer {
public:
  binary_copy_writer(pqxx::transaction_base& tx, std::string table,
                     const std::vector<std::string>& columns)
    : tx_(tx), table_("BINARY " + std::move(table)), columns_(columns) {}

  binary_copy_writer(const binary_copy_writer&) = delete;
  binary_copy_writer& operator=(const binary_copy_writer&) = delete;

  binary_copy_buffer& next_row() {
    if (!copy_) {
      // "COPY BINARY table (...) FROM STDIN": the form of the binary
      // option that fits tablewriter's "COPY <table> (<columns>) FROM
      // STDIN".
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      copy_.emplace(tx_, table_, columns_.begin(), columns_.end());
#pragma GCC diagnostic pop
      buffer_ = binary_copy_buffer{};
      buffer_.bytes().reserve(copy_piece_bytes + 64 * 1024);
    }
    return buffer_;
  }

  void row_done() {
    if (buffer_.bytes().size() >= copy_piece_bytes)
      flush();
  }

  /// Sends the rows buffered so far (whole rows only: see the top).
  void flush() {
    if (copy_ && !buffer_.bytes().empty()) {
      copy_->write_raw_line(buffer_.bytes());
      buffer_.bytes().clear();
    }
  }

  /// Ends the COPY, if one is open.
  void complete() {
    if (!copy_)
      return;
    flush();
    copy_->complete();
    copy_.reset();
  }

private:
  pqxx::transaction_base& tx_;
  std::string table_;
  const std::vector<std::string>& columns_;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  std::optional<pqxx::tablewriter> copy_;
#pragma GCC diagnostic pop
  binary_copy_buffer buffer_;
};

/// Streams `rows` rows into `table` by binary COPY (binary_copy_writer):
/// `write_row(buffer, i)` writes row i. No rows: nothing is sent.
template <class WriteRow>
void copy_binary(pqxx::transaction_base& tx, const std::string& table,
                 const std::vector<std::string>& columns, size_t rows,
                 WriteRow&& write_row) {
  binary_copy_writer copy{tx, table, columns};
  for (size_t i = 0; i < rows; ++i) {
    write_row(copy.next_row(), i);
    copy.row_done();
  }
  copy.complete();
}

} // namespace engram::storage
