#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"

namespace engram::storage {

// -- schema -------------------------------------------------------------------

/// Asks whether the database is reachable and its schema current.
struct schema_status_request {};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, schema_status_request&) {
  return f(caf::meta::type_name("schema_status_request"));
}

/// The schema version found in the database next to the one this binary
/// knows.
struct schema_status {
  /// Highest applied migration (0 = none).
  int64_t applied_version = 0;
  /// Highest migration compiled into this binary.
  int64_t known_version = 0;

  [[nodiscard]] bool current() const noexcept {
    return applied_version == known_version;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, schema_status& x) {
  return f(caf::meta::type_name("schema_status"), x.applied_version,
           x.known_version);
}

// -- nodes --------------------------------------------------------------------

/// One daemon process of the cluster, as recorded in `engram.nodes`.
struct node_info {
  /// UUID chosen by the node at start.
  std::string id;
  std::string host;
  int64_t pid = 0;
  std::string version;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("node_info"), x.id, x.host, x.pid, x.version);
}

/// Records the node as alive now (inserting its row on first use).
struct node_heartbeat {
  node_info node;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_heartbeat& x) {
  return f(caf::meta::type_name("node_heartbeat"), x.node);
}

/// Records that the node stopped cleanly.
struct node_stopped {
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_stopped& x) {
  return f(caf::meta::type_name("node_stopped"), x.id);
}

/// Counts of the storage pool, for /metrics.
struct pool_stats {
  int64_t size = 0;
  int64_t in_use = 0;
  int64_t queued = 0;
  int64_t errors = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_stats& x) {
  return f(caf::meta::type_name("pool_stats"), x.size, x.in_use, x.queued,
           x.errors);
}

} // namespace engram::storage

namespace engram {

/// The STORAGE actor interface: one storage worker (owning one connection) and
/// the pool in front of the workers speak it alike. Every request is answered
/// with its result or an `errc` error (`database_unavailable` is retryable).
using storage_actor = caf::typed_actor<
  // Returns the applied and known schema versions (readiness).
  caf::replies_to<storage::schema_status_request>::with<storage::schema_status>,
  // Upserts the node row and sets heartbeat_at = now().
  caf::replies_to<storage::node_heartbeat>::with<bool>,
  // Marks the node row as stopped.
  caf::replies_to<storage::node_stopped>::with<bool>>;

/// The name of the storage pool among the supervised actors, and its key in
/// the actor registry.
inline constexpr char storage_pool_name[] = "storage";

/// The STORAGE POOL interface: the storage interface plus pool statistics.
using storage_pool_actor = storage_actor::extend<
  // Returns the pool's counters.
  caf::replies_to<atom::stats>::with<storage::pool_stats>>;

} // namespace engram
