#include "http/readiness_probe.hpp"

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "messages/errc.hpp"
#include "messages/storage.hpp"

namespace engram::http {

void probe_readiness(caf::actor_system& sys, std::chrono::milliseconds timeout,
                     std::function<void(readiness)> done) {
  auto storage = sys.registry().get<storage_actor>(caf::atom(storage_pool_name));
  if (!storage) {
    done({false, "the storage pool is not running"});
    return;
  }
  // A short-lived actor makes the request, so no thread waits for it.
  sys.spawn([storage, timeout, done](caf::event_based_actor* self) {
    self->request(storage, timeout, storage::schema_status_request{})
      .then(
        [done](storage::schema_status& s) {
          if (s.current())
            done({true, {}});
          else
            done({false, "database schema is at version "
                           + std::to_string(s.applied_version)
                           + ", this binary needs version "
                           + std::to_string(s.known_version)});
        },
        [done](caf::error& err) {
          done({false, "database not reachable: " + describe(err)});
        });
  });
}

} // namespace engram::http
