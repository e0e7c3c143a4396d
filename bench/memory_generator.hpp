#pragma once

// A seeded generator of realistic projects for bench/consolidation: pure
// computation (std::mt19937_64 with a fixed seed; the same options give the
// same project on every run and machine), no database, no HTTP.
//
// A regular project of `count` memories over `agents` agents is made of
// TOPICS: each topic belongs to one agent (a few are project-wide) and has a
// centre vector; its memories have cosine 0.905–0.930 with the centre, so
// two members of a topic have cosine ≈ 0.82–0.86 (> 0.80: they form a
// pattern, and old episodic ones a summary) but stay below 0.92 (they do not
// merge). Around the topics:
//  - NEAR-DUPLICATES (8%): copies of an earlier memory (same agent and type)
//    with cosine 0.95–0.99 to it, content a light paraphrase; clusters of
//    2–5;
//  - BORDERLINE PAIRS (1%): a partner of an earlier memory (same agent and
//    type) with cosine exactly 0.92 ± 0.002…0.010, half above, half below;
//  - EXISTING PRINCIPLES: one per tenth of the topics, cosine 0.975 with the
//    centre (the hierarchy phase updates them);
//  - IDENTITY memories (3%) and SINGLETONS (1%, random directions);
// and for every memory: type (episodic 40%, semantic 35%, procedural 25% of
// topic members), age 0–120 days, access count (half never read; some read
// often), last access (mostly recent, some stale), tier (hot 15%, warm
// 60%, cold 25%), pinned (3%), importance 1–10 (centred on 5), expiry (2%
// expired, 3% in the future). Contents are English-ish sentences built from
// the topic's words, so merged texts and summaries read sensibly.
//
// The STRESS project: `count` memories of one agent and one type (semantic):
// one merge group; 90% random directions (mostly distinct), 10%
// near-duplicates of earlier ones.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace engram::bench {

struct generator_options {
  size_t count = 1000;
  size_t agents = 50;
  size_t dim = 384;
  uint64_t seed = 0x656e6772616d;
  /// The instant ages are relative to (epoch microseconds).
  int64_t now_us = 0;
  /// One group of `count` mostly distinct memories (see the top).
  bool stress = false;
};

/// What a memory was generated as (for the composition summary).
enum class role : uint8_t {
  topic,
  duplicate,
  borderline,
  principle,
  identity,
  singleton,
};

struct generated_memory {
  /// Empty: project-wide.
  std::string agent_id;
  std::string type;
  std::string tier;
  int32_t importance = 5;
  bool pinned = false;
  int32_t access_count = 0;
  int64_t created_at_us = 0;
  /// 0: none.
  int64_t last_accessed_at_us = 0;
  /// 0: none.
  int64_t expires_at_us = 0;
  std::string content;
  role kind = role::topic;
};

struct generated_project {
  size_t dim = 0;
  std::vector<generated_memory> memories;
  /// Row i is memory i's unit vector (`dim` floats).
  std::vector<float> vectors;
  size_t topics = 0;
  size_t agents = 0;

  [[nodiscard]] const float* vector(size_t i) const {
    return vectors.data() + i * dim;
  }
  /// E.g. "topic 83%, duplicate 8%, …; episodic 38%, …".
  [[nodiscard]] std::string composition() const;
};

[[nodiscard]] generated_project generate_project(const generator_options& opts);

/// How an NDJSON line carries its embedding: a JSON array of numbers, or
/// base64 of little-endian float32 (as OpenAI's encoding_format "base64").
enum class vector_form { numbers, base64 };

/// Appends memory `i` of `p` as one NDJSON line (with '\n') of the import
/// API: its fields, RFC 3339 times, the embedding with 6 significant digits
/// (in either form the same values) and `model` as its embedding_model.
void append_ndjson(const generated_project& p, size_t i,
                   const std::string& model, std::string& out,
                   vector_form form = vector_form::numbers);

} // namespace engram::bench
