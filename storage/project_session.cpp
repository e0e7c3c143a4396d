#include "storage/project_session.hpp"

#include <optional>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/nontransaction>

#include "messages/errc.hpp"
#include "runtime/clock.hpp"
#include "storage/connection_keeper.hpp"
#include "storage/consolidation_repository.hpp"

namespace engram {

namespace {

struct session_state {
  /// Set when the behavior starts (the state must be default-constructible).
  std::optional<storage::connection_keeper> keeper_slot;
  /// The project whose lock this session holds ("" = none) and the
  /// connection generation it was taken on.
  std::string locked_project;
  uint64_t locked_generation = 0;

  [[nodiscard]] bool holds(const std::string& project) const {
    return !locked_project.empty() && locked_project == project
           && keeper_slot->connected()
           && keeper_slot->generation() == locked_generation;
  }

  storage::connection_keeper& keeper() {
    return *keeper_slot;
  }

  static inline const char* name = "project_session";
};

using session_ptr = project_session_actor::stateful_pointer<session_state>;

template <class T>
caf::result<T> to_result(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

project_session_actor::behavior_type session(session_ptr self,
                                             storage_options options) {
  self->state.keeper_slot.emplace(std::move(options), "project session");
  return {
    [self](consolidation::begin_job& req)
      -> caf::result<consolidation::job_start> {
      auto& st = self->state;
      if (!st.locked_project.empty() && st.holds(st.locked_project))
        return make_error(errc::conflict,
                          "this session already runs a job of project "
                            + st.locked_project);
      st.locked_project.clear();
      auto start = st.keeper().checked_transaction([&](pqxx::work& tx) {
        // Session-level advisory locks outlive transactions: one a begin
        // took before it failed, or one a failed finish could not give
        // back, would be taken again here (the count grows) and survive
        // the next release, locking the project for every other session.
        // A session holds no lock between jobs, so it drops them all.
        tx.exec("SELECT pg_advisory_unlock_all()");
        return storage::begin_job(tx, req.job_id, from_epoch_us(req.now_us));
      });
      if (start && start->job.status == "running") {
        st.locked_project = start->job.project_id;
        st.locked_generation = st.keeper().generation();
      } else if (!start && st.keeper().connected()) {
        // A begin that failed after taking the lock (the lock outlives the
        // rolled-back transaction) must not leave the project locked while
        // this session waits idle in the pool.
        (void) st.keeper().run<bool>([](pqxx::connection& conn) {
          pqxx::nontransaction tx{conn};
          tx.exec("SELECT pg_advisory_unlock_all()");
          return true;
        });
      }
      return to_result(std::move(start));
    },
    [self](consolidation::load_snapshot& req)
      -> caf::result<consolidation::snapshot_data> {
      return to_result(self->state.keeper().transaction([&](pqxx::work& tx) {
        return storage::load_snapshot(tx, req.project_id);
      }));
    },
    [self](consolidation::phase_commit& req)
      -> caf::result<consolidation::job_record> {
      auto& st = self->state;
      if (!st.holds(req.project_id))
        return make_error(errc::conflict,
                          "lost the lock of project " + req.project_id
                            + " (the database connection dropped); the "
                              "phase was not committed");
      return to_result(st.keeper().checked_transaction(
        [&](pqxx::work& tx) { return storage::commit_phase(tx, req); }));
    },
    [self](consolidation::finish_job& req)
      -> caf::result<consolidation::job_record> {
      auto& st = self->state;
      auto held = st.holds(req.project_id);
      auto done = st.keeper().checked_transaction([&](pqxx::work& tx) {
        auto job = storage::finish_job(tx, req);
        if (job && held)
          storage::release_project(tx, req.project_id);
        return job;
      });
      if (!done && held && st.keeper().connected()) {
        // The job row could not be ended (it stays running and a re-run
        // resumes it), but the project must not stay locked by a session
        // that goes back to the pool: give the lock back on its own.
        (void) st.keeper().run<bool>([&](pqxx::connection& conn) {
          pqxx::nontransaction tx{conn};
          storage::release_project(tx, req.project_id);
          return true;
        });
      }
      st.locked_project.clear();
      return to_result(std::move(done));
    },
  };
}

} // namespace

project_session_actor spawn_project_session(caf::actor_system& sys,
                                            storage_options options) {
  return sys.spawn<caf::detached>(session, std::move(options));
}

} // namespace engram
