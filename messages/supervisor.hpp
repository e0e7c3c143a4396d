#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "messages/atoms.hpp"

namespace engram {

/// What the supervisor knows about one child.
struct child_status {
  std::string name;
  /// Restarts since the daemon started.
  uint64_t restarts = 0;
  bool running = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_status& x) {
  return f(caf::meta::type_name("child_status"), x.name, x.restarts,
           x.running);
}

/// The SUPERVISOR actor interface.
using supervisor_actor = caf::typed_actor<
  // Returns every child's status, in start order.
  caf::replies_to<atom::stats>::with<std::vector<child_status>>,
  // Stops every child in reverse start order, then the supervisor itself.
  caf::reacts_to<atom::shutdown>,
  // Internal: the stop deadline of the child at the given index passed.
  caf::reacts_to<atom::shutdown, uint64_t>>;

} // namespace engram
