#include "storage/task_store.hpp"

#include <optional>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/nontransaction>

#include "storage/connection_keeper.hpp"
#include "storage/task_repository.hpp"

namespace engram {

namespace {

struct task_store_state {
  /// Set when the behavior starts (the state must be default-constructible).
  std::optional<storage::connection_keeper> keeper;

  static inline const char* name = "task_store";
};

using store_ptr = task_store_actor::stateful_pointer<task_store_state>;

template <class T>
caf::result<T> to_result(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

/// Runs `f(tx)` outside a transaction block: each statement commits on its
/// own (for statements that stand alone).
template <class F>
auto autocommit(store_ptr self, F&& f) {
  using value_type = decltype(f(std::declval<pqxx::nontransaction&>()));
  return to_result(self->state.keeper->run<value_type>(
    [&](pqxx::connection& conn) {
      pqxx::nontransaction tx{conn};
      return f(tx);
    }));
}

task_store_actor::behavior_type task_store(store_ptr self,
                                           storage_options options) {
  self->state.keeper.emplace(std::move(options), "task store");
  return {
    [self](tasks::claim_tasks& req) {
      // One statement, committed without waiting for the WAL flush.
      return autocommit(self, [&](pqxx::transaction_base& tx) {
        return storage::claim_tasks(tx, req.queue, req.worker, req.limit,
                                    std::chrono::milliseconds{req.lease_ms},
                                    from_epoch_us(req.now_us));
      });
    },
    [self](tasks::complete_tasks& req) -> caf::result<tasks::completion_result> {
      auto now = from_epoch_us(req.now_us);
      if (storage::single_statement_completion(req.outcomes, req.claim, now))
        return autocommit(self, [&](pqxx::transaction_base& tx) {
          return storage::complete_and_claim(tx, req.outcomes, req.claim, now);
        });
      return to_result(self->state.keeper->transaction([&](pqxx::work& tx) {
        return storage::complete_and_claim(tx, req.outcomes, req.claim, now);
      }));
    },
    [self](tasks::renew_leases& req) {
      return autocommit(self, [&](pqxx::transaction_base& tx) {
        return storage::renew_leases(tx, req.leases,
                                     std::chrono::milliseconds{req.lease_ms},
                                     from_epoch_us(req.now_us));
      });
    },
    [self](tasks::release_tasks& req) {
      return autocommit(self, [&](pqxx::transaction_base& tx) {
        return storage::release_tasks(tx, req.leases, from_epoch_us(req.now_us));
      });
    },
  };
}

} // namespace

task_store_actor spawn_task_store(caf::actor_system& sys,
                                  storage_options options) {
  return sys.spawn<caf::detached>(task_store, std::move(options));
}

} // namespace engram
