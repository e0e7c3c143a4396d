#pragma once

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <gtest/gtest.h>

namespace engram::test {

/// An actor system on CAF's deterministic scheduler: nothing runs until the
/// test calls `run()`, and time moves only with `advance_time`. (CAF's own
/// test_coordinator_fixture helpers need CAF's test runner; this works under
/// GoogleTest.)
class actor_fixture : public ::testing::Test {
protected:
  struct config : caf::actor_system_config {
    config() {
      set("scheduler.policy", caf::atom("testing"));
    }
  };

  actor_fixture()
    : sys{cfg},
      sched{dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())} {
  }

  /// Runs every pending job until nothing is left.
  void run() {
    sched.run();
  }

  /// Moves the clock forward, fires due timeouts and runs what they caused.
  void advance_time(caf::timespan d) {
    sched.clock().advance_time(d);
    sched.run();
  }

  config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
};

} // namespace engram::test
