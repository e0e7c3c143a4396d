#pragma once

// The EMBEDDER (messages/memories.hpp): a detached actor that embeds texts
// with the configured embedding provider — imported memories that come
// without a vector. Detached because a provider blocks (network I/O for
// openai, CPU for the hashing embedder over a large import).

#include <memory>

#include <caf/actor_system.hpp>

#include "messages/memories.hpp"
#include "runtime/embedding_provider.hpp"

namespace engram {

[[nodiscard]] embedder_actor
spawn_embedder(caf::actor_system& sys,
               std::shared_ptr<embedding_provider> provider);

} // namespace engram
