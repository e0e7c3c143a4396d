#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>

#include "messages/supervisor.hpp"

namespace engram::metrics {
class registry;
} // namespace engram::metrics

namespace engram {

/// How the supervisor starts and stops one long-lived actor.
struct child_spec {
  /// Unique name; also the key of the child in the actor registry (at most
  /// 10 characters, it becomes an atom).
  std::string name;
  /// Spawns the child; called at start and at every restart.
  std::function<caf::actor(caf::actor_system&)> start;
  /// How long the child may take to stop before it is killed.
  caf::timespan stop_timeout = std::chrono::seconds{10};
};

/// Restart intensity and instrumentation of a supervisor.
struct supervisor_options {
  /// A child restarted more than this many times within `restart_window`
  /// escalates: every child is stopped and the supervisor fails.
  uint64_t max_restarts = 5;
  caf::timespan restart_window = std::chrono::seconds{60};
  /// Receives engram_actor_restarts_total{actor}; may be null.
  metrics::registry* metrics = nullptr;
};

/// Decides whether one more restart at `now` stays within the intensity
/// limit, given the earlier restarts of that child (oldest first). Drops
/// entries that fell out of the window from `history` and records `now`.
[[nodiscard]] bool admit_restart(std::deque<caf::actor_clock::time_point>& history,
                                 caf::actor_clock::time_point now, uint64_t max_restarts,
                                 caf::timespan window);

struct supervisor_state {
  struct child {
    child_spec spec;
    caf::actor handle;
    bool running = false;
    uint64_t restarts = 0;
    std::deque<caf::actor_clock::time_point> restart_history;
  };

  std::vector<child> children;
  supervisor_options options;
  /// Set once shutdown began; no restarts from then on.
  bool stopping = false;
  /// Index of the child being stopped (counts down to 0).
  size_t stop_index = 0;
  /// The reason the supervisor quits with (none = normal).
  caf::error exit_reason;

  static inline const char* name = "supervisor";
};

/// Starts every child in spec order, monitors them, restarts one that exits
/// abnormally (one-for-one) and escalates when a child restarts more than
/// `max_restarts` times within `restart_window`: then it stops every child in
/// reverse start order and quits with `errc::child_failed`. On
/// `atom::shutdown` it stops the children in reverse start order (each gets
/// `exit_reason::user_shutdown`, then a kill after its stop_timeout) and quits
/// normally. Each running child is published in the actor registry under its
/// name.
supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
           std::vector<child_spec> specs, supervisor_options options);

} // namespace engram
