#include "storage/task_store.hpp"

#include <chrono>
#include <memory>
#include <optional>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/nontransaction>
#include <pqxx/notification>

#include "storage/connection_keeper.hpp"
#include "storage/task_repository.hpp"

namespace engram {

namespace {

using steady = std::chrono::steady_clock;

/// Notes whether a notification on the task channel named `queue` (or came
/// without a payload) since the flag was last cleared.
class wake_receiver final : public pqxx::notification_receiver {
public:
  explicit wake_receiver(pqxx::connection_base& conn)
    : pqxx::notification_receiver(conn, storage::tasks_channel) {
  }

  void operator()(const std::string& payload, int) override {
    if (payload.empty() || payload == queue)
      woken = true;
  }

  std::string queue;
  bool woken = false;
};

struct task_store_state {
  /// Set when the behavior starts (the state must be default-constructible).
  std::optional<storage::connection_keeper> keeper;
  const clock* time = nullptr;
  /// LISTENs on the keeper's connection once a claim_on_notify came; it must
  /// go before that connection does (see run).
  std::unique_ptr<wake_receiver> receiver;

  static inline const char* name = "task_store";
};

using store_ptr = task_claimer_actor::stateful_pointer<task_store_state>;

template <class T>
caf::result<T> to_result(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

/// Runs `f(connection&)` on the keeper's connection. The receiver is
/// unregistered before the keeper may drop a connection: after any
/// exception (the keeper drops a lost connection when it sees one) and when
/// the connection is no longer open (the keeper drops it at the next use).
template <class T, class F>
caf::expected<T> run(store_ptr self, F&& f) {
  auto& st = self->state;
  if (st.receiver && !st.keeper->connected())
    st.receiver.reset();
  return st.keeper->run<T>([&](pqxx::connection& conn) -> T {
    try {
      return f(conn);
    } catch (...) {
      st.receiver.reset();
      throw;
    }
  });
}

/// Runs `f(tx)` outside a transaction block: each statement commits on its
/// own (for statements that stand alone).
template <class F>
auto autocommit(store_ptr self, F&& f) {
  using value_type = decltype(f(std::declval<pqxx::nontransaction&>()));
  return to_result(run<value_type>(self, [&](pqxx::connection& conn) {
    pqxx::nontransaction tx{conn};
    return f(tx);
  }));
}

/// Waits (at most until `deadline`) for a notification naming the queue of
/// `req`, then claims; a claim that finds nothing (the task went to another
/// worker) waits on. Starting to listen counts as a notification: what was
/// enqueued before was not heard.
std::vector<tasks::claimed_task> claim_when_woken(store_ptr self,
                                                  pqxx::connection& conn,
                                                  const tasks::claim_tasks& req,
                                                  steady::time_point deadline) {
  auto& st = self->state;
  bool missed = false;
  if (!st.receiver) {
    st.receiver = std::make_unique<wake_receiver>(conn);
    missed = true;
  }
  st.receiver->queue = req.queue;
  // A notification heard during an earlier statement stays heard (one
  // claim more at worst).
  st.receiver->woken = st.receiver->woken || missed;
  // Notifications that came in while the connection did other work.
  conn.get_notifs();
  for (;;) {
    if (st.receiver->woken) {
      st.receiver->woken = false;
      std::vector<tasks::claimed_task> claimed;
      {
        pqxx::nontransaction tx{conn};
        claimed = storage::claim_tasks(tx, req.queue, req.worker, req.limit,
                                       std::chrono::milliseconds{req.lease_ms},
                                       st.time->now());
      }
      if (!claimed.empty())
        return claimed;
    }
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline - steady::now());
    if (left.count() <= 0)
      return {};
    conn.await_notification(static_cast<long>(left.count() / 1'000'000),
                            static_cast<long>(left.count() % 1'000'000));
  }
}

task_claimer_actor::behavior_type
task_store(store_ptr self, storage_options options, const clock* time) {
  self->state.keeper.emplace(std::move(options), "task store");
  self->state.time = time;
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
      return to_result(run<tasks::completion_result>(
        self, [&](pqxx::connection& conn) {
          pqxx::work tx{conn};
          auto result = storage::complete_and_claim(tx, req.outcomes,
                                                    req.claim, now);
          tx.commit();
          return result;
        }));
    },
    [self](tasks::claim_on_notify& req)
      -> caf::result<std::vector<tasks::claimed_task>> {
      auto deadline = steady::now() + std::chrono::milliseconds{req.wait_ms};
      return to_result(run<std::vector<tasks::claimed_task>>(
        self, [&](pqxx::connection& conn) {
          return claim_when_woken(self, conn, req.claim, deadline);
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

task_claimer_actor spawn_task_store(caf::actor_system& sys,
                                    storage_options options,
                                    const clock& time) {
  return sys.spawn<caf::detached>(task_store, std::move(options), &time);
}

} // namespace engram
