#include "actors/consolidation/embedder.hpp"

#include <caf/typed_event_based_actor.hpp>

#include "messages/errc.hpp"

namespace engram {

namespace {

embedder_actor::behavior_type
embedder(embedder_actor::pointer self,
         std::shared_ptr<embedding_provider> provider) {
  return {
    [provider](memories::embed_texts_request& req)
      -> caf::result<memories::embed_texts_result> {
      auto batch = provider->embed(req.texts);
      if (!batch)
        return std::move(batch.error());
      memories::embed_texts_result out;
      out.model = provider->model();
      out.dimension = static_cast<int64_t>(batch->dimension);
      out.values = std::move(batch->values);
      return out;
    },
  };
}

} // namespace

embedder_actor spawn_embedder(caf::actor_system& sys,
                              std::shared_ptr<embedding_provider> provider) {
  return sys.spawn<caf::detached>(embedder, std::move(provider));
}

} // namespace engram
