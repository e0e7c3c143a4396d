#include "actors/supervisor/supervisor.hpp"

#include <memory>
#include <string>
#include <vector>

#include <caf/actor_registry.hpp>
#include <caf/event_based_actor.hpp>

#include "messages/errc.hpp"
#include "runtime/metrics.hpp"
#include "tests/support/actor_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

/// A child that quits with an abnormal reason when told "crash" and records
/// its name in `stopped` when asked to shut down.
caf::behavior test_child(caf::event_based_actor* self, std::string name,
                         std::shared_ptr<std::vector<std::string>> stopped,
                         bool ignores_shutdown) {
  self->set_exit_handler([=](caf::exit_msg& msg) {
    stopped->push_back(name);
    if (!ignores_shutdown)
      self->quit(msg.reason);
  });
  return {
    [=](const std::string& cmd) {
      if (cmd == "crash")
        self->quit(make_error(errc::unspecified, "boom"));
    },
  };
}

class supervisor_test : public engram::test::actor_fixture {
protected:
  child_spec spec(std::string name, bool ignores_shutdown = false) {
    auto stopped_log = stopped;
    auto start_count = starts;
    auto start_order = started;
    return {name,
            [=](caf::actor_system& sys) {
              ++(*start_count)[name];
              start_order->push_back(name);
              return sys.spawn(test_child, name, stopped_log, ignores_shutdown);
            },
            5s};
  }

  caf::actor child(const std::string& name) {
    return sys.registry().get<caf::actor>(caf::atom_from_string(name));
  }

  void crash(const std::string& name) {
    caf::anon_send(child(name), std::string{"crash"});
    run();
  }

  /// Spawns an observer that records the supervisor's exit reason. (The
  /// fixture keeps its handle: an actor nobody references is destroyed.)
  void watch(const supervisor_actor& sup) {
    observer = sys.spawn([sup, this](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(sup);
      self->set_down_handler([this](caf::down_msg& msg) {
        supervisor_down = true;
        supervisor_reason = msg.reason;
      });
      return {[](int) {}};
    });
    run();
  }

  std::shared_ptr<std::vector<std::string>> stopped
    = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::vector<std::string>> started
    = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::map<std::string, int>> starts
    = std::make_shared<std::map<std::string, int>>();
  caf::actor observer;
  bool supervisor_down = false;
  caf::error supervisor_reason;
  metrics::registry registry;
};

} // namespace

TEST_F(supervisor_test, starts_children_in_order_and_publishes_them) {
  auto sup = sys.spawn(supervisor, std::vector{spec("a"), spec("b")},
                       supervisor_options{});
  run();
  EXPECT_EQ(*started, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(child("a"));
  EXPECT_TRUE(child("b"));
  caf::anon_send(sup, atom::shutdown_v);
  run();
}

TEST_F(supervisor_test, restarts_a_crashing_child_and_counts_it) {
  auto sup = sys.spawn(supervisor, std::vector{spec("a"), spec("b")},
                       supervisor_options{5, 60s, &registry});
  run();
  auto first = child("a");
  crash("a");
  // Only the crashed child is restarted (one-for-one).
  EXPECT_EQ((*starts)["a"], 2);
  EXPECT_EQ((*starts)["b"], 1);
  auto second = child("a");
  ASSERT_TRUE(second);
  EXPECT_NE(first, second);
  EXPECT_NE(registry.render().find(
              "engram_actor_restarts_total{actor=\"a\"} 1"),
            std::string::npos)
    << registry.render();
  caf::anon_send(sup, atom::shutdown_v);
  run();
}

TEST_F(supervisor_test, a_restart_storm_escalates_and_stops_everything) {
  // max_restarts = 2 within 60 s: the third crash in the window escalates.
  auto sup = sys.spawn(supervisor,
                       std::vector{spec("a"), spec("b"), spec("c")},
                       supervisor_options{2, 60s, nullptr});
  watch(sup);
  crash("b");
  crash("b");
  EXPECT_FALSE(supervisor_down);
  crash("b");
  ASSERT_TRUE(supervisor_down);
  EXPECT_EQ(code_of(supervisor_reason), errc::child_failed);
  EXPECT_NE(message_of(supervisor_reason).find("b failed more than 2 times"),
            std::string::npos)
    << describe(supervisor_reason);
  // The survivors were stopped in reverse start order.
  EXPECT_EQ(*stopped, (std::vector<std::string>{"c", "a"}));
  EXPECT_FALSE(child("a"));
  EXPECT_FALSE(child("c"));
}

TEST_F(supervisor_test, crashes_spread_beyond_the_window_do_not_escalate) {
  auto sup = sys.spawn(supervisor, std::vector{spec("a")},
                       supervisor_options{2, 60s, nullptr});
  watch(sup);
  for (int i = 0; i < 5; ++i) {
    crash("a");
    // 31 s apart: at most two crashes fall within any 60 s window.
    advance_time(31s);
  }
  EXPECT_FALSE(supervisor_down);
  EXPECT_EQ((*starts)["a"], 6);
  caf::anon_send(sup, atom::shutdown_v);
  run();
  EXPECT_TRUE(supervisor_down);
  EXPECT_FALSE(supervisor_reason);
}

TEST_F(supervisor_test, shutdown_stops_children_in_reverse_start_order) {
  auto sup = sys.spawn(supervisor,
                       std::vector{spec("storage"), spec("node"), spec("sched")},
                       supervisor_options{});
  watch(sup);
  caf::anon_send(sup, atom::shutdown_v);
  run();
  EXPECT_EQ(*stopped, (std::vector<std::string>{"sched", "node", "storage"}));
  ASSERT_TRUE(supervisor_down);
  EXPECT_FALSE(supervisor_reason) << describe(supervisor_reason);
  EXPECT_EQ((*starts)["storage"], 1) << "no restarts during shutdown";
}

TEST_F(supervisor_test, a_child_that_ignores_shutdown_is_killed_after_its_timeout) {
  auto sup = sys.spawn(supervisor,
                       std::vector{spec("a"), spec("stubborn", true)},
                       supervisor_options{});
  watch(sup);
  caf::anon_send(sup, atom::shutdown_v);
  run();
  // "stubborn" got the request but keeps running; "a" waits its turn.
  EXPECT_EQ(*stopped, std::vector<std::string>{"stubborn"});
  EXPECT_FALSE(supervisor_down);
  advance_time(5s); // the child's stop_timeout
  EXPECT_EQ(*stopped, (std::vector<std::string>{"stubborn", "a"}));
  EXPECT_TRUE(supervisor_down);
}

TEST(admit_restart, counts_only_restarts_inside_the_window) {
  std::deque<caf::actor_clock::time_point> history;
  caf::actor_clock::time_point t0{};
  EXPECT_TRUE(admit_restart(history, t0, 2, 10s));
  EXPECT_TRUE(admit_restart(history, t0 + 1s, 2, 10s));
  EXPECT_FALSE(admit_restart(history, t0 + 2s, 2, 10s));
  // 11.5 s: the restarts at 0 s and 1 s left the window, 2 s is still in it.
  EXPECT_TRUE(admit_restart(history, t0 + 11500ms, 2, 10s));
  EXPECT_EQ(history.size(), 2u);
}
