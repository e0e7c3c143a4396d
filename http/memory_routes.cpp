#include "http/memory_routes.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <boost/beast/http/field.hpp>
#include <boost/json.hpp>
#include <caf/event_based_actor.hpp>

#include "actors/scheduler/cron.hpp"
#include "http/actor_request.hpp"
#include "http/json_body.hpp"
#include "http/json_float_array.hpp"
#include "http/json_values.hpp"
#include "messages/cache.hpp"
#include "messages/import_stream.hpp"
#include "runtime/base64.hpp"
#include "runtime/float32le.hpp"
#include "runtime/uuid.hpp"

namespace engram::http {

namespace json = boost::json;

namespace {

using shared_deps = std::shared_ptr<const memory_route_deps>;
using simdjson::ondemand::json_type;

/// An import with more rows than max_imported_memories (413).
class too_many_memories : public body_error {
public:
  using body_error::body_error;
};

// -- rendering ---------------------------------------------------------------------




json::object audit_json(const memories::memory_audit_row& a) {
  json::object o;
  o["id"] = a.id;
  o["job_id"] = text_or_null(a.job_id);
  o["action"] = a.action;
  o["detail"] = json_or_empty_object(a.detail_json);
  o["at"] = time_or_null(a.at_us);
  return o;
}

json::object detail_json(const memories::memory_detail& d) {
  auto o = memory_json(d.memory);
  if (d.memory.embedding.empty()) {
    o["embedding"] = nullptr;
  } else {
    json::array v;
    v.reserve(d.memory.embedding.size());
    for (float f : d.memory.embedding)
      v.emplace_back(static_cast<double>(f));
    o["embedding"] = std::move(v);
  }
  json::array audit;
  audit.reserve(d.audit.size());
  for (const auto& a : d.audit)
    audit.emplace_back(audit_json(a));
  o["audit"] = std::move(audit);
  return o;
}

response json_ok(status code, const json::object& body) {
  return json_response(code, json::serialize(body));
}

// -- reading requests -------------------------------------------------------------

/// A UUID (lower-cased), or body_error naming `what`.
std::string uuid_of(const std::string& text, const std::string& what) {
  if (!is_uuid(text))
    throw body_error{what + " must be a UUID (8-4-4-4-12 hex digits), got '"
                     + text.substr(0, 64) + "'"};
  return ascii_lower(text);
}

bool one_of(const std::string& x, std::initializer_list<const char*> set) {
  return std::any_of(set.begin(), set.end(),
                     [&](const char* s) { return x == s; });
}

constexpr auto types_text = "episodic, semantic, procedural, identity or "
                            "principle";
constexpr auto tiers_text = "hot, warm or cold";
constexpr auto statuses_text = "active, superseded or archived";

bool is_type(const std::string& x) {
  return one_of(x, {"episodic", "semantic", "procedural", "identity",
                    "principle"});
}

bool is_tier(const std::string& x) {
  return one_of(x, {"hot", "warm", "cold"});
}

bool is_status(const std::string& x) {
  return one_of(x, {"active", "superseded", "archived"});
}

/// Whether `v` is JSON null (consumed then); throws for malformed tokens,
/// naming field `key`.
bool null_value(simdjson::ondemand::value& v, const json_fields& fields,
                std::string_view key) {
  bool result = false;
  if (v.is_null().get(result))
    throw body_error{"malformed JSON at " + fields.name(key)};
  return result;
}

/// An RFC 3339 date-time with up to microsecond precision (digits past the
/// sixth are dropped), as epoch microseconds.
int64_t time_value(json_fields& fields, simdjson::ondemand::value v,
                   const std::string& key) {
  auto text = fields.text(v, key);
  int64_t fraction_us = 0;
  auto whole = text;
  if (text.size() > 19 && text[19] == '.') {
    size_t end = 20;
    int64_t scale = 100000;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') {
      fraction_us += (text[end] - '0') * scale;
      scale /= 10;
      ++end;
    }
    if (end > 20)
      whole = text.substr(0, 19) + text.substr(end);
  }
  auto t = cron::parse_rfc3339(whole);
  if (!t)
    throw body_error{fields.name(key)
                     + " must be an RFC 3339 date-time, e.g. "
                       "2024-03-10T08:00:00Z, got '"
                     + text.substr(0, 64) + "'"};
  return to_epoch_us(wall_time{*t}) + fraction_us;
}

/// Reads an embedding sent as base64 of little-endian float32 values (as
/// OpenAI-compatible APIs answer with encoding_format "base64") into `out`.
void embedding_base64(json_fields& fields, simdjson::ondemand::value v,
                      const std::string& key, std::vector<float>& out) {
  std::string_view text;
  if (v.get_string().get(text))
    throw body_error{"malformed JSON at " + fields.name(key)};
  thread_local std::vector<std::byte> bytes;
  bytes.clear();
  if (!base64_decode(text, bytes))
    throw body_error{fields.name(key)
                     + " is a string but not base64 (of float32 values)"};
  if (bytes.size() % 4 != 0)
    throw body_error{fields.name(key) + " decodes to "
                     + std::to_string(bytes.size())
                     + " bytes, not whole float32 values"};
  auto n = bytes.size() / 4;
  if (n == 0)
    throw body_error{fields.name(key)
                     + " must not be empty (leave it out or send null for "
                       "none)"};
  if (n > max_embedding_dimension)
    throw body_error{fields.name(key) + " has more than "
                     + std::to_string(max_embedding_dimension)
                     + " dimensions"};
  append_float32le(bytes, out);
  for (size_t k = 0; k < n; ++k)
    if (!std::isfinite(out[k])) [[unlikely]]
      throw body_error{fields.name(key) + "[" + std::to_string(k)
                       + "] must be a finite number (float32)"};
}

/// Reads the embedding `v` into `out` (emptied first; its capacity is kept,
/// so a caller that reads many rows can hand in a vector of the expected
/// dimension). Numbers are read straight into floats: no value or name is
/// built per element, only when one is refused.
void embedding_value(json_fields& fields, simdjson::ondemand::value v,
                     const std::string& key, std::vector<float>& out) {
  out.clear();
  simdjson::ondemand::json_type type;
  if (v.type().get(type))
    throw body_error{"malformed JSON at " + fields.name(key)};
  if (type == simdjson::ondemand::json_type::string) {
    embedding_base64(fields, v, key, out);
    return;
  }
  simdjson::ondemand::array arr;
  if (v.get_array().get(arr))
    throw body_error{fields.name(key)
                     + " must be an array of numbers or a base64 string of "
                       "float32 values"};
  std::string_view text;
  if (arr.raw_json().get(text))
    throw body_error{"malformed JSON at " + fields.name(key)};
  if (parse_float_array(text, out, max_embedding_dimension)) {
    if (out.empty())
      throw body_error{fields.name(key)
                       + " must not be empty (leave it out or send null for "
                         "none)"};
    return;
  }
  // Refused by the fast path: read the array again, element by element,
  // to name what is wrong.
  out.clear();
  thread_local simdjson::ondemand::parser again;
  simdjson::padded_string copy{text};
  simdjson::ondemand::document doc;
  if (again.iterate(copy).get(doc) || doc.get_array().get(arr))
    throw body_error{"malformed JSON at " + fields.name(key)};
  auto at = [&] {
    return fields.name(key) + "[" + std::to_string(out.size()) + "]";
  };
  for (auto element : arr) {
    simdjson::ondemand::value x;
    double d = 0;
    if (element.get(x)) [[unlikely]]
      throw body_error{"malformed JSON at " + at()};
    // get_double refuses anything but a number (a string, null, ...).
    if (x.get_double().get(d)) [[unlikely]]
      throw body_error{at() + " must be a number"};
    auto f = static_cast<float>(d);
    if (!std::isfinite(f)) [[unlikely]]
      throw body_error{at() + " must be a finite number (float32)"};
    if (out.size() == max_embedding_dimension) [[unlikely]]
      throw body_error{fields.name(key) + " has more than "
                       + std::to_string(max_embedding_dimension)
                       + " dimensions"};
    out.push_back(f);
  }
  if (out.empty())
    throw body_error{fields.name(key)
                     + " must not be empty (leave it out or send null for "
                       "none)"};
}

constexpr auto memory_fields
  = "id, agent_id, type, tier, status, source_type, importance, pinned, "
    "access_count, created_at, last_accessed_at, expires_at, metadata, "
    "content, embedding, embedding_model";

/// The fields of a memory object, by bit.
enum class memory_field : uint32_t {
  id, agent_id, type, tier, status, source_type, importance, pinned,
  access_count, created_at, last_accessed_at, expires_at, metadata, content,
  embedding, embedding_model, unknown
};

memory_field memory_field_of(std::string_view key) {
  static constexpr std::pair<std::string_view, memory_field> names[] = {
    {"id", memory_field::id},
    {"agent_id", memory_field::agent_id},
    {"type", memory_field::type},
    {"tier", memory_field::tier},
    {"status", memory_field::status},
    {"source_type", memory_field::source_type},
    {"importance", memory_field::importance},
    {"pinned", memory_field::pinned},
    {"access_count", memory_field::access_count},
    {"created_at", memory_field::created_at},
    {"last_accessed_at", memory_field::last_accessed_at},
    {"expires_at", memory_field::expires_at},
    {"metadata", memory_field::metadata},
    {"content", memory_field::content},
    {"embedding", memory_field::embedding},
    {"embedding_model", memory_field::embedding_model},
  };
  for (const auto& [name, f] : names)
    if (name == key)
      return f;
  return memory_field::unknown;
}

/// Reads memory object number `index` of an import into `r` (a fresh
/// row, whose embedding may have capacity reserved). Field names are built
/// only for a refusal.
void read_memory(simdjson::ondemand::object obj, size_t index,
                 memories::memory_row& r) {
  json_fields fields{obj, "memories[" + std::to_string(index) + "]."};
  uint32_t seen = 0;
  fields.each([&](const std::string& key, simdjson::ondemand::value v) {
    auto which = memory_field_of(key);
    if (which == memory_field::unknown)
      throw body_error{"unknown field " + fields.name(key) + " (accepted: "
                       + std::string{memory_fields} + ")"};
    auto bit = uint32_t{1} << static_cast<uint32_t>(which);
    if ((seen & bit) != 0)
      throw body_error{"field " + fields.name(key) + " appears twice"};
    seen |= bit;
    switch (which) {
      case memory_field::content:
        r.content = fields.text(v, key);
        if (r.content.empty())
          throw body_error{fields.name(key) + " must not be empty"};
        if (r.content.size() > max_memory_content_bytes)
          throw body_error{fields.name(key) + " is longer than "
                           + std::to_string(max_memory_content_bytes)
                           + " bytes"};
        // PostgreSQL text cannot hold NUL.
        if (r.content.find('\0') != std::string::npos)
          throw body_error{fields.name(key) + " must not contain NUL (\\u0000)"};
        break;
      case memory_field::type:
        r.type = fields.text(v, key);
        if (!is_type(r.type))
          throw body_error{fields.name(key) + " must be " + types_text
                           + ", got '" + r.type.substr(0, 64) + "'"};
        break;
      case memory_field::id:
        if (!null_value(v, fields, key))
          r.id = uuid_of(fields.text(v, key), fields.name(key));
        break;
      case memory_field::agent_id:
        if (!null_value(v, fields, key))
          r.agent_id = uuid_of(fields.text(v, key), fields.name(key));
        break;
      case memory_field::tier:
        r.tier = fields.text(v, key);
        if (!is_tier(r.tier))
          throw body_error{fields.name(key) + " must be " + tiers_text
                           + ", got '" + r.tier.substr(0, 64) + "'"};
        break;
      case memory_field::status:
        r.status = fields.text(v, key);
        if (!is_status(r.status))
          throw body_error{fields.name(key) + " must be " + statuses_text
                           + ", got '" + r.status.substr(0, 64) + "'"};
        break;
      case memory_field::source_type:
        r.source_type = fields.text(v, key);
        if (r.source_type.empty() || r.source_type.size() > 255)
          throw body_error{fields.name(key) + " must be 1 to 255 bytes"};
        break;
      case memory_field::importance:
        r.importance = static_cast<int32_t>(fields.integer(v, key, 1, 10));
        break;
      case memory_field::pinned:
        r.pinned = fields.boolean(v, key);
        break;
      case memory_field::access_count:
        r.access_count = static_cast<int32_t>(
          fields.integer(v, key, 0, std::numeric_limits<int32_t>::max()));
        break;
      case memory_field::created_at:
        r.created_at_us = time_value(fields, v, key);
        break;
      case memory_field::last_accessed_at:
        if (!null_value(v, fields, key))
          r.last_accessed_at_us = time_value(fields, v, key);
        break;
      case memory_field::expires_at:
        if (!null_value(v, fields, key))
          r.expires_at_us = time_value(fields, v, key);
        break;
      case memory_field::metadata:
        r.metadata_json = null_value(v, fields, key)
                            ? std::string{"{}"}
                            : fields.raw(v, key, true);
        // jsonb refuses the escaped NUL.
        if (r.metadata_json.find("\\u0000") != std::string::npos)
          throw body_error{fields.name(key) + " must not contain \\u0000"};
        break;
      case memory_field::embedding:
        if (!null_value(v, fields, key))
          embedding_value(fields, v, key, r.embedding);
        break;
      case memory_field::embedding_model:
        if (!null_value(v, fields, key)) {
          r.embedding_model = fields.text(v, key);
          if (r.embedding_model.empty() || r.embedding_model.size() > 255)
            throw body_error{fields.name(key) + " must be 1 to 255 bytes"};
        }
        break;
      case memory_field::unknown:
        break;
    }
  });
  auto has = [&](memory_field f) {
    return (seen & (uint32_t{1} << static_cast<uint32_t>(f))) != 0;
  };
  if (!has(memory_field::content))
    throw body_error{fields.name("content") + " is required"};
  if (!has(memory_field::type))
    throw body_error{fields.name("type") + " is required"};
  if (!r.embedding.empty() && r.embedding_model.empty())
    throw body_error{fields.name("embedding_model")
                     + " is required with an embedding"};
  if (r.embedding.empty() && !r.embedding_model.empty())
    throw body_error{fields.name("embedding_model")
                     + " is given without an embedding"};
}

/// "memories[<index>]".
std::string row_name(size_t index) {
  return "memories[" + std::to_string(index) + "]";
}

// -- import -------------------------------------------------------------------------

/// Rows per chunk handed to the storage worker: a few milliseconds of the
/// server's work, so that it starts on a body's first rows while the rest
/// is parsed, and each hand-over is cheap.
constexpr size_t import_chunk_rows = 256;

/// Thrown to stop parsing a body whose import the storage worker has given
/// up (its answer says why).
struct import_abandoned {};

/// Fills `rows` (all without an embedding) from the embedder's answer; a
/// malformed answer is an error.
std::optional<std::string> fill_embeddings(memories::embed_texts_result& e,
                                           std::vector<memories::memory_row>& rows) {
  auto dim = static_cast<size_t>(std::max<int64_t>(e.dimension, 0));
  if (dim == 0 || e.model.empty() || e.values.size() != dim * rows.size())
    return "the embedder answered " + std::to_string(e.values.size())
           + " values of dimension " + std::to_string(e.dimension)
           + " (model '" + e.model + "') for " + std::to_string(rows.size())
           + " texts";
  for (size_t k = 0; k < rows.size(); ++k) {
    const float* first = e.values.data() + k * dim;
    rows[k].embedding.assign(first, first + dim);
    rows[k].embedding_model = e.model;
  }
  return std::nullopt;
}

/// How much longer than an import's deadline its caller waits for the
/// storage worker's answer: the worker gives up at the deadline unless it
/// is committing, and a commit takes milliseconds. Less than the second
/// the HTTP server adds to a handler's time (runtime/main.cpp), so the
/// worker's answer, not the server's timeout, is what the client gets.
constexpr std::chrono::milliseconds import_commit_slack{500};

/// One import in flight. The parser hands it each row (take); rows with an
/// embedding go to the storage worker in chunks (import_stream_request)
/// as soon as the first chunk is full, so the server copies them while the
/// rest is parsed; rows without one wait for the embedder, asked once the
/// body has been read (after the project was found), and follow last.
/// Checks across rows (ids that repeat, one model with two dimensions) are
/// made as the rows come, the storage worker checks the rest, and anything
/// refused rolls the whole import back. A refusal here is answered at once
/// (the worker, told by the stream, rolls back); otherwise the worker's
/// answer is. The import has `import_timeout` from the handler's start to
/// commit; the worker gives up past that deadline.
class import_job : public std::enable_shared_from_this<import_job> {
public:
  import_job(shared_deps deps, storage_actor storage, std::string project_id,
             responder respond)
    : deps_(std::move(deps)),
      storage_(std::move(storage)),
      project_id_(std::move(project_id)),
      respond_(std::move(respond)),
      deadline_(std::chrono::steady_clock::now() + deps_->import_timeout) {
    pending_.rows.reserve(import_chunk_rows);
    pending_.indices.reserve(import_chunk_rows);
  }

  /// Rows taken so far: the next row's number.
  [[nodiscard]] size_t rows() const { return rows_; }

  /// The dimension of the last vector taken (to reserve the next's).
  [[nodiscard]] size_t last_dimension() const { return last_dimension_; }

  /// Takes row number rows(). Throws body_error for what it refuses and
  /// import_abandoned when the storage worker has given up.
  void take(memories::memory_row&& r) {
    auto i = rows_;
    auto at = [i] { return row_name(i) + "."; };
    if (!r.id.empty()) {
      auto [it, fresh] = ids_.try_emplace(r.id, i);
      if (!fresh)
        throw body_error{at() + "id repeats the id of memories["
                         + std::to_string(it->second) + "] (" + r.id + ")"};
    }
    if (!r.embedding.empty()) {
      auto [it, fresh] = dimensions_.try_emplace(r.embedding_model,
                                                 r.embedding.size(), i);
      if (!fresh && it->second.first != r.embedding.size())
        throw body_error{at() + "embedding has "
                         + std::to_string(r.embedding.size())
                         + " dimensions, but memories["
                         + std::to_string(it->second.second) + "] of model '"
                         + r.embedding_model + "' has "
                         + std::to_string(it->second.first)};
      last_dimension_ = r.embedding.size();
    }
    // The hot memories of these agents change with the import.
    if (r.tier == "hot" && r.status == "active")
      hot_agents_.push_back(r.agent_id);
    ++rows_;
    auto& to = r.embedding.empty() ? aside_ : pending_;
    to.indices.push_back(static_cast<uint32_t>(i));
    to.rows.push_back(std::move(r));
    if (pending_.rows.size() == import_chunk_rows)
      hand_over(pending_);
  }

  /// The body has been read whole (at least one row): embeds the rows
  /// without a vector, then ends the import's stream.
  void body_read() {
    if (aside_.rows.empty()) {
      finish();
      return;
    }
    if (!deps_->embedder) {
      refuse(errc::unavailable,
             "no embedding provider is running; send every memory with its "
             "embedding and embedding_model");
      return;
    }
    embed_then_finish();
  }

  /// The import is refused: answered at once; a storage worker already
  /// asked rolls back (a failed stream never commits).
  void refuse(errc code, std::string message) {
    // A finished stream is the worker's to answer (never the case here:
    // nothing is refused after finish, but a refusal must not race a
    // commit).
    if (producer_ && !producer_->fail(code, message))
      return;
    answer(error_response(code, message));
  }

private:
  /// Answers the request, once: a refusal found here and the storage
  /// worker's answer may both come.
  void answer(response r) {
    if (!answered_.exchange(true))
      respond_(std::move(r));
  }

  /// The time left before the deadline (zero past it).
  [[nodiscard]] std::chrono::milliseconds time_left() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline_ - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds{0});
  }

  /// Refuses the import when no time is left (before asking anyone to
  /// work for it); false otherwise.
  bool out_of_time() {
    if (time_left().count() > 0)
      return false;
    refuse(errc::timeout, "the import ran out of time before its rows were "
                          "embedded; nothing was imported");
    return true;
  }

  /// Asks the storage worker to import the stream's rows; its answer
  /// answers the request.
  void start() {
    stream_ = std::make_shared<memories::import_stream>();
    producer_.emplace(stream_);
    memories::import_stream_request req;
    req.project_id = project_id_;
    req.stream = stream_;
    req.now_us = to_epoch_us(deps_->time->now());
    req.deadline = deadline_;
    auto self = shared_from_this();
    deps_->sys->spawn([self, req = std::move(req)](
                        caf::event_based_actor* a) mutable {
      a->request(self->storage_, self->time_left() + import_commit_slack,
                 std::move(req))
        .then(
          [self](memories::import_result& result) {
            invalidate_hot_memories(*self->deps_->sys, self->project_id_,
                                    std::move(self->hot_agents_));
            json::array ids;
            ids.reserve(result.ids.size());
            for (auto& id : result.ids)
              ids.emplace_back(id);
            self->answer(json_ok(status::created,
                                 json::object{{"imported", result.count},
                                              {"ids", std::move(ids)}}));
          },
          [self](caf::error& err) {
            // The worker may not have run at all: stop the producer (and a
            // worker still waiting for rows, or about to commit).
            auto code = code_of(err);
            if (!self->stream_->cancel(code, message_of(err))
                && code == errc::timeout) {
              // No answer in time, and the worker had begun to commit.
              invalidate_hot_memories(*self->deps_->sys, self->project_id_,
                                      std::move(self->hot_agents_));
              self->answer(error_response(
                errc::timeout,
                "the import was committing when its time ran out; whether "
                "it was stored is unknown: list the project's memories to "
                "see"));
              return;
            }
            self->answer(error_response(code, message_of(err)));
          });
    });
  }

  /// Hands chunk `c` over (emptied; starts the import at the first).
  void hand_over(memories::import_stream::chunk& c) {
    if (!producer_)
      start();
    bool taken = producer_->push(std::move(c));
    c.rows.clear();
    c.indices.clear();
    if (!taken)
      throw import_abandoned{};
  }

  void finish() {
    try {
      if (!pending_.rows.empty() || !producer_)
        hand_over(pending_);
    } catch (const import_abandoned&) {
      return;
    }
    std::sort(hot_agents_.begin(), hot_agents_.end());
    hot_agents_.erase(std::unique(hot_agents_.begin(), hot_agents_.end()),
                      hot_agents_.end());
    producer_->finish();
  }

  /// Embeds the rows set aside, hands them over, finishes. Before the
  /// import has started, the project is looked up first (an unknown one
  /// costs no embedding); after, the storage worker has it locked, or has
  /// answered that it is unknown and abandoned the stream, and asking the
  /// pool again could wait behind workers that wait for these very rows.
  void embed_then_finish() {
    auto self = shared_from_this();
    deps_->sys->spawn([self](caf::event_based_actor* a) {
      if (self->producer_) {
        if (!self->stream_->abandoned())
          self->embed(a);
        return;
      }
      if (self->out_of_time())
        return;
      a->request(self->storage_, self->time_left(),
                 memories::get_project_request{self->project_id_})
        .then([a, self](memories::project_record&) { self->embed(a); },
              [self](caf::error& err) {
                self->refuse(code_of(err), message_of(err));
              });
    });
  }

  void embed(caf::event_based_actor* a) {
    if (out_of_time())
      return;
    memories::embed_texts_request req;
    req.texts.reserve(aside_.rows.size());
    for (const auto& r : aside_.rows)
      req.texts.push_back(r.content);
    auto self = shared_from_this();
    a->request(deps_->embedder, time_left(), std::move(req))
      .then(
        [self](memories::embed_texts_result& e) {
          if (auto problem = fill_embeddings(e, self->aside_.rows)) {
            self->refuse(errc::unspecified, *problem);
            return;
          }
          try {
            self->hand_over(self->aside_);
          } catch (const import_abandoned&) {
            return;
          }
          self->finish();
        },
        [self](caf::error& err) {
          self->refuse(code_of(err),
                       "embedding the memories failed: " + message_of(err));
        });
  }

  shared_deps deps_;
  storage_actor storage_;
  std::string project_id_;
  responder respond_;
  std::atomic<bool> answered_{false};
  std::chrono::steady_clock::time_point deadline_;
  size_t rows_ = 0;
  size_t last_dimension_ = 0;
  std::unordered_map<std::string, size_t> ids_;
  /// Per model: (dimension, first row with it).
  std::map<std::string, std::pair<size_t, size_t>> dimensions_;
  std::vector<std::string> hot_agents_;
  /// Rows with an embedding, not handed over yet; rows without one.
  memories::import_stream::chunk pending_;
  memories::import_stream::chunk aside_;
  std::shared_ptr<memories::import_stream> stream_;
  std::optional<memories::import_stream_producer> producer_;
};

/// Reads the next memory of an import and hands it to `job`; its
/// embedding gets the capacity of the previous vector, so most rows
/// allocate theirs once.
void read_next(simdjson::ondemand::object obj, import_job& job) {
  if (job.rows() == max_imported_memories)
    throw too_many_memories{"an import takes at most "
                            + std::to_string(max_imported_memories)
                            + " memories; split it into several requests"};
  memories::memory_row r;
  r.embedding.reserve(job.last_dimension());
  read_memory(obj, job.rows(), r);
  job.take(std::move(r));
}

/// The object `v`, or body_error naming row `index`.
simdjson::ondemand::object object_of(simdjson::ondemand::value v,
                                     size_t index) {
  json_type type;
  if (v.type().get(type))
    throw body_error{row_name(index) + " is not valid JSON"};
  if (type != json_type::object)
    throw body_error{row_name(index) + " must be a memory object"};
  simdjson::ondemand::object obj;
  if (v.get_object().get(obj))
    throw body_error{row_name(index) + " is not valid JSON"};
  return obj;
}

/// The memories of a JSON array body, to `job`.
void read_array(const simdjson::padded_string& body, import_job& job) {
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(body).get(doc))
    throw body_error{"the request body is not valid JSON"};
  try {
    json_type type;
    if (doc.type().get(type))
      throw body_error{"the request body is not valid JSON"};
    if (type != json_type::array)
      throw body_error{"the request body must be an array of memory objects"};
    simdjson::ondemand::array arr;
    if (doc.get_array().get(arr))
      throw body_error{"the request body is not valid JSON"};
    for (auto element : arr) {
      simdjson::ondemand::value v;
      if (element.get(v))
        throw body_error{row_name(job.rows()) + " is not valid JSON"};
      read_next(object_of(v, job.rows()), job);
    }
  } catch (const simdjson::simdjson_error& e) {
    throw body_error{std::string{"the request body is not valid JSON: "}
                     + e.what()};
  }
  const char* rest = nullptr;
  if (!doc.current_location().get(rest))
    throw body_error{"unexpected content after the JSON array"};
}

/// The memories of an NDJSON body, to `job`: one object per line; blank
/// lines are skipped and do not count as rows. The lines are parsed where
/// they lie in the body (the bytes after a line are the padding simdjson
/// reads past its end); only a line too close to the body's end is copied.
void read_ndjson(std::string_view body, import_job& job) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string last_line;
  const char* data = body.data();
  size_t size = body.size();
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < size) {
    ++line_number;
    auto newline = std::string_view{data + pos, size - pos}.find('\n');
    size_t end = newline == std::string_view::npos ? size : pos + newline;
    size_t first = pos;
    while (first < end && (data[first] == ' ' || data[first] == '\t'
                           || data[first] == '\r'))
      ++first;
    size_t start = pos;
    pos = end + 1;
    if (first == end)
      continue;
    auto index = job.rows();
    auto what = [&] {
      return row_name(index) + " (line " + std::to_string(line_number) + ")";
    };
    simdjson::padded_string_view line;
    if (end + simdjson::SIMDJSON_PADDING <= size) {
      line = simdjson::padded_string_view{data + start, end - start,
                                          size - start};
    } else {
      last_line = simdjson::padded_string{data + start, end - start};
      line = last_line;
    }
    simdjson::ondemand::document doc;
    if (parser.iterate(line).get(doc))
      throw body_error{what() + " is not valid JSON"};
    try {
      json_type type;
      if (doc.type().get(type))
        throw body_error{what() + " is not valid JSON"};
      if (type != json_type::object)
        throw body_error{what() + " must be a memory object"};
      simdjson::ondemand::object obj;
      if (doc.get_object().get(obj))
        throw body_error{what() + " is not valid JSON"};
      read_next(obj, job);
    } catch (const simdjson::simdjson_error& e) {
      throw body_error{what() + " is not valid JSON: " + e.what()};
    }
    const char* rest = nullptr;
    if (!doc.current_location().get(rest))
      throw body_error{"unexpected content after " + what()
                       + " (one memory object per line)"};
  }
}

bool is_ndjson(const request& req, std::string_view text) {
  auto type = std::string{req[boost::beast::http::field::content_type]};
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (type.find("ndjson") != std::string::npos
      || type.find("jsonl") != std::string::npos)
    return true;
  auto first = text.find_first_not_of(" \t\r\n");
  return first == std::string_view::npos || text[first] != '[';
}

/// Reads the import's body into `job`. Throws body_error (too_many_memories)
/// for what it refuses, import_abandoned when the storage worker gave up.
void read_import(const request& req, import_job& job) {
  if (is_ndjson(req, req.body()))
    read_ndjson(req.body(), job);
  else
    read_array(padded_body(req), job);
  if (job.rows() == 0)
    throw body_error{"the import holds no memories"};
}

/// The `{id}` of the path as a project or memory id.
std::string path_id(const request_context& ctx, const char* what) {
  return uuid_of(ctx.params.at("id"), what);
}

memories::list_memories_request read_list(const request_context& ctx) {
  memories::list_memories_request req;
  req.project_id = path_id(ctx, "project id");
  if (auto agent = query_param(ctx.query, "agent_id"); agent && !agent->empty())
    req.agent_id = uuid_of(*agent, "query parameter agent_id");
  auto choice = [&](const char* name, bool (*valid)(const std::string&),
                    const char* accepted) {
    auto value = query_param(ctx.query, name).value_or("");
    if (!value.empty() && !valid(value))
      throw body_error{std::string{"query parameter "} + name + " must be "
                       + accepted + ", got '" + value.substr(0, 64) + "'"};
    return value;
  };
  req.type = choice("type", is_type, types_text);
  req.status = choice("status", is_status, statuses_text);
  req.tier = choice("tier", is_tier, tiers_text);
  req.cursor = query_param(ctx.query, "cursor").value_or("");
  req.limit = query_integer(ctx.query, "limit", 1, 1000).value_or(50);
  return req;
}

/// Runs `f`, answering 400 (413) for what it refuses.
template <class F>
void guard(responder& respond, F&& f) {
  try {
    f();
  } catch (const too_many_memories& e) {
    respond(error_response(errc::too_large, e.what()));
  } catch (const body_error& e) {
    respond(error_response(errc::invalid_argument, e.what()));
  }
}

} // namespace

json::object memory_json(const memories::memory_record& m) {
  json::object o;
  o["id"] = m.id;
  o["project_id"] = m.project_id;
  o["agent_id"] = text_or_null(m.agent_id);
  o["type"] = m.type;
  o["tier"] = m.tier;
  o["status"] = m.status;
  o["content"] = m.content;
  o["importance"] = m.importance;
  o["pinned"] = m.pinned;
  o["access_count"] = m.access_count;
  o["source_type"] = m.source_type;
  o["embedding_model"] = text_or_null(m.embedding_model);
  o["embedding_dimension"] = m.embedding_dimension == 0
                               ? json::value(nullptr)
                               : json::value(m.embedding_dimension);
  o["superseded_by"] = text_or_null(m.superseded_by);
  o["parent_id"] = text_or_null(m.parent_id);
  o["metadata"] = json_or_empty_object(m.metadata_json);
  o["created_at"] = time_or_null(m.created_at_us);
  o["updated_at"] = time_or_null(m.updated_at_us);
  o["last_accessed_at"] = time_or_null(m.last_accessed_at_us);
  o["expires_at"] = time_or_null(m.expires_at_us);
  return o;
}

void add_memory_routes(router& r, memory_route_deps deps) {
  if (deps.sys == nullptr)
    throw std::logic_error("memory routes need an actor system");
  if (deps.time == nullptr)
    throw std::logic_error("memory routes need a clock");
  auto shared = std::make_shared<const memory_route_deps>(std::move(deps));

  r.add(verb::post, "/api/projects/{id}/memories",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            auto project_id = path_id(ctx, "project id");
            if (ctx.req.body().empty())
              (void) padded_body(ctx.req); // refuses the empty body
            auto storage = storage_of(*shared->sys);
            if (!storage) {
              respond(error_response(errc::shutting_down,
                                     "the storage pool is not running"));
              return;
            }
            auto job = std::make_shared<import_job>(
              shared, std::move(storage), std::move(project_id), respond);
            try {
              read_import(ctx.req, *job);
              job->body_read();
            } catch (const too_many_memories& e) {
              job->refuse(errc::too_large, e.what());
              return;
            } catch (const body_error& e) {
              job->refuse(errc::invalid_argument, e.what());
              return;
            } catch (const import_abandoned&) {
              return; // the storage worker's answer says why
            } catch (const std::exception& e) {
              // Whatever else: the import must not wait for rows that
              // will not come.
              job->refuse(errc::unspecified,
                          std::string{"the import failed: "} + e.what());
            }
          });
        });

  r.add(verb::get, "/api/projects/{id}/memories",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            ask_storage<memories::memory_page>(
              *shared->sys, shared->timeout, read_list(ctx),
              [respond](memories::memory_page& page) mutable {
                json::array items;
                items.reserve(page.memories.size());
                for (const auto& m : page.memories)
                  items.emplace_back(memory_json(m));
                json::object body;
                body["memories"] = std::move(items);
                body["next_cursor"] = text_or_null(page.next_cursor);
                respond(json_ok(status::ok, body));
              },
              respond);
          });
        });

  r.add(verb::get, "/api/memories/{id}",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            ask_storage<memories::memory_detail>(
              *shared->sys, shared->timeout,
              memories::get_memory_request{path_id(ctx, "memory id")},
              [respond](memories::memory_detail& d) mutable {
                respond(json_ok(status::ok, detail_json(d)));
              },
              respond);
          });
        });

  r.add(verb::post, "/api/memories/{id}/restore",
        [shared](request_context& ctx, responder respond) {
          guard(respond, [&] {
            memories::restore_memory_request req;
            req.memory_id = path_id(ctx, "memory id");
            req.now_us = to_epoch_us(shared->time->now());
            ask_storage<memories::memory_record>(
              *shared->sys, shared->timeout, std::move(req),
              [respond, shared](memories::memory_record& m) mutable {
                invalidate_hot_memories(*shared->sys, m.project_id,
                                        {m.agent_id});
                respond(json_ok(status::ok, memory_json(m)));
              },
              respond);
          });
        });
}

} // namespace engram::http
