#pragma once

// Embedding providers behind one interface (DESIGN §6, Providers):
// - `hashing` (built in, offline, deterministic): word and character
//   n-grams hashed into `dimension` signed buckets, L2-normalised. Its model
//   name says what made the vector, e.g. "engram-hashing-v1-384", so vectors
//   of another dimension or version are never compared with it.
// - `openai`: any OpenAI-compatible `/v1/embeddings` endpoint over
//   `outbound_http` (base URL and model from config, key from an
//   environment variable, timeouts, retries on 429/5xx honouring
//   Retry-After); the model name is the configured one.
//
// Embeddings are only comparable within one model: every stored embedding
// carries `model()` of the provider that made it.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/llm_provider.hpp"

namespace engram {

/// `count` vectors of `dimension` floats, row-major (row i is text i).
struct embedding_batch {
  size_t dimension = 0;
  std::vector<float> values;

  [[nodiscard]] const float* row(size_t i) const {
    return values.data() + i * dimension;
  }
  [[nodiscard]] size_t size() const {
    return dimension == 0 ? 0 : values.size() / dimension;
  }
};

/// A source of embeddings. Implementations are safe to call from several
/// threads at once; `embed` may block (network I/O for remote providers), so
/// call it from a detached actor or a worker thread.
class embedding_provider {
public:
  virtual ~embedding_provider() = default;

  /// Embeds `texts`, one row per text in order. Never throws. An empty
  /// input gives an empty batch.
  [[nodiscard]] virtual caf::expected<embedding_batch>
  embed(const std::vector<std::string>& texts) = 0;

  /// The model name recorded with every vector this provider makes.
  [[nodiscard]] virtual std::string model() const = 0;

  /// The provider's name as configured ("hashing", "openai").
  [[nodiscard]] virtual std::string name() const = 0;
};

/// Configuration of the embedding provider (the `[embedding]` section).
struct embedding_options {
  /// "hashing" (built in, offline) or "openai" (OpenAI-compatible API).
  std::string provider = "hashing";
  /// Vector length of the hashing embedder (openai: the server decides).
  size_t dimension = 384;
  /// Base URL of the OpenAI-compatible API; "/v1/embeddings" is appended
  /// ("/embeddings" if it already ends in "/v1").
  std::string base_url = "https://api.openai.com";
  /// Model of the openai provider.
  std::string model = "text-embedding-3-small";
  /// Name of the environment variable that holds the API key.
  std::string api_key_env = "OPENAI_API_KEY";
  /// Bound on one HTTP attempt.
  std::chrono::milliseconds timeout{60000};
  /// Attempts per request (first included) on timeouts, connection
  /// failures, 429 and 5xx.
  int max_attempts = 3;
  /// Backoff after the first failed attempt (doubling), unless the server
  /// sends Retry-After.
  std::chrono::milliseconds retry_base_delay{1000};
  /// Cap on the backoff and on a server's Retry-After.
  std::chrono::milliseconds retry_max_delay{30000};
  /// Texts per request to the openai provider.
  size_t batch_size = 256;
  /// "float" or "base64": the `encoding_format` the openai provider asks
  /// for ("float" is the API's default and is not sent). Answers in either
  /// form are read.
  std::string encoding_format = "float";
};

/// Creates the provider named in `opts.provider` (same rules as
/// `make_llm_provider`: invalid_config for an unknown name, a dimension of 0
/// (hashing), an invalid base URL, a batch size of 0 or an unset or empty
/// key variable (openai) unless the base URL points to the local host
/// (127.0.0.0/8, ::1, localhost), which may go without a key). Only `env`'s
/// fields the provider uses matter (hashing: none).
[[nodiscard]] caf::expected<std::unique_ptr<embedding_provider>>
make_embedding_provider(const embedding_options& opts,
                        llm_environment env = {});

/// The embeddings URL for `base_url` (see `embedding_options::base_url`).
[[nodiscard]] std::string embeddings_url(std::string_view base_url);

/// The hashing embedder's vector of `text` (`dimension` floats, unit length,
/// or all zeros for a text without a word character). The features and the
/// hash are documented in embedding_provider.cpp; they are fixed arithmetic
/// on bytes, so a text has the same vector on every platform and build.
[[nodiscard]] std::vector<float> hash_embedding(std::string_view text,
                                                size_t dimension);

/// The hashing embedder's model name for `dimension`.
[[nodiscard]] std::string hashing_model_name(size_t dimension);

} // namespace engram
