#pragma once

// The rows of one bulk import on their way from the HTTP handler that
// parses the body to the storage worker that copies them into PostgreSQL,
// chunk by chunk, so that the database ingests the first rows while the
// handler still parses the rest (POST /api/projects/{id}/memories).
//
// One producer, one consumer, both on threads of their own (an io thread;
// a storage worker, a private thread that blocks on its connection
// anyway). The import stays atomic: the consumer writes in one
// transaction and commits only when the producer says every row has been
// handed over; a body refused half-way (fail) rolls everything back.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include "messages/errc.hpp"
#include "messages/memories.hpp"

namespace engram::memories {

class import_stream {
public:
  /// Rows with their places in the request (what the ids answer follows).
  struct chunk {
    std::vector<memory_row> rows;
    std::vector<uint32_t> indices;
  };

  enum class next { chunk, finished, failed, timed_out };

  // -- the producer --

  /// Hands over a chunk; false once the consumer has given up (stop
  /// parsing: its answer says why).
  bool push(chunk c);

  /// Every row has been handed over; the consumer may commit.
  void finish();

  /// The body is refused: the consumer rolls back and answers `code` and
  /// `message` (import_stream_producer fails a stream its producer left
  /// unfinished). False, and nothing changes, once the stream is finished
  /// or failed: the consumer's answer stands.
  bool fail(errc code, std::string message);

  // -- the consumer --

  /// Waits until a chunk, the end or a failure is there, or `deadline`.
  next pop(chunk& out, std::chrono::steady_clock::time_point deadline);

  /// The producer's failure (after pop answered failed).
  [[nodiscard]] errc failure_code() const;
  [[nodiscard]] std::string failure_message() const;

  /// The consumer stops reading (the project is unknown, a row is refused
  /// by the database, ...): push answers false from now on. Only the
  /// consumer calls it (the chunks still queued are dropped).
  void abandon();

  /// The consumer is about to commit: true unless the stream failed or
  /// was cancelled; from then on cancel cannot stop the import.
  bool begin_commit();

  /// The import is given up from outside (its caller stopped waiting, or
  /// its request failed before the consumer ran): a waiting consumer wakes
  /// to a failure, a producer stops at its next push, a consumer about to
  /// commit rolls back. False when the consumer had begun to commit: the
  /// import's outcome is then the commit's.
  bool cancel(errc code, std::string message);

  [[nodiscard]] bool abandoned() const;

  /// Failed or cancelled: a consumer that has not started need not.
  [[nodiscard]] bool stopped() const;

private:
  mutable std::mutex mtx_;
  std::condition_variable ready_;
  std::deque<chunk> chunks_;
  bool finished_ = false;
  bool failed_ = false;
  bool abandoned_ = false;
  bool committing_ = false;
  errc code_ = errc::unspecified;
  std::string message_;
};

/// Fails the stream with `code`/`message` unless the producer finished or
/// failed it first: a producer that throws or returns early never leaves
/// its consumer waiting for rows that will not come.
class import_stream_producer {
public:
  explicit import_stream_producer(std::shared_ptr<import_stream> stream)
    : stream_(std::move(stream)) {}
  import_stream_producer(const import_stream_producer&) = delete;
  import_stream_producer& operator=(const import_stream_producer&) = delete;
  ~import_stream_producer();

  [[nodiscard]] import_stream& stream() { return *stream_; }
  bool push(import_stream::chunk c) { return stream_->push(std::move(c)); }
  void finish();
  /// See import_stream::fail.
  bool fail(errc code, std::string message);

private:
  std::shared_ptr<import_stream> stream_;
  bool done_ = false;
};

/// Imports the rows of `stream` into project `project_id` in one
/// transaction, as import_memories_request does (the same checks and
/// answers), writing each chunk as it comes. The import commits only
/// before `deadline` (steady clock; also at most the statement timeout
/// after the worker takes the request): the caller waits for the answer a
/// little longer, so that an import never commits after its caller was
/// told it timed out. Local only (the stream is shared memory, the
/// deadline this process's steady clock).
struct import_stream_request {
  std::string project_id;
  std::shared_ptr<import_stream> stream;
  int64_t now_us = 0;
  std::chrono::steady_clock::time_point deadline;
};

} // namespace engram::memories

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(engram::memories::import_stream_request)
