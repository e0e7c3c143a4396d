#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>

#include "messages/storage.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram {

/// How storage workers reach the database.
struct storage_options {
  /// libpq connection string (URI or key=value).
  std::string conninfo;
  std::chrono::milliseconds connect_timeout{5000};
  /// Server-side statement_timeout (0 = none).
  std::chrono::milliseconds statement_timeout{30000};
  /// After a failed connect, requests fail fast (retryable) until the backoff
  /// passed; it doubles per failure up to the maximum.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10000};
  /// The schema version this binary needs (for readiness).
  int64_t known_schema_version = 0;
};

/// Spawns one detached storage worker that owns one connection. Connects
/// lazily; a lost connection is re-established with backoff, and the request
/// that found it lost is answered with `errc::database_unavailable`.
[[nodiscard]] storage_actor spawn_storage_worker(caf::actor_system& sys,
                                                 storage_options options);

/// Spawns the storage pool: `size` linked workers behind one actor that hands
/// each request to the least busy worker and keeps the pool's metrics
/// (engram_storage_pool_connections{state}, engram_storage_errors_total{code}).
[[nodiscard]] storage_pool_actor
spawn_storage_pool(caf::actor_system& sys, storage_options options, size_t size,
                   metrics::registry* metrics);

} // namespace engram
