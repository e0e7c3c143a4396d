#pragma once

#include <chrono>
#include <string>

#include "storage/migration.hpp"
#include "storage/storage_actors.hpp"

namespace engram::test {

/// Storage options for tests: short timeouts and backoff, so a test that
/// stops the server sees reconnects within a fraction of a second.
inline storage_options fast_storage_options(const std::string& conninfo) {
  using namespace std::chrono_literals;
  storage_options result;
  result.conninfo = conninfo;
  result.connect_timeout = 2s;
  result.backoff_initial = 50ms;
  result.backoff_max = 200ms;
  result.known_schema_version
    = storage::latest_version(storage::embedded_migrations());
  return result;
}

} // namespace engram::test
