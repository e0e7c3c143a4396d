#pragma once

// One database connection kept open for a detached storage actor: connects
// lazily, reconnects with a doubling backoff after a failure (requests fail
// fast with the retryable `database_unavailable` meanwhile), and turns every
// libpqxx exception into an `errc` error. A lost connection is dropped so
// the next request reconnects; `generation()` tells a caller that holds
// session state (an advisory lock) that it was lost with the connection.

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "messages/errc.hpp"
#include "storage/storage_actors.hpp"

namespace engram::storage {

class connection_keeper {
public:
  /// `name` appears in log lines ("storage", "project session", ...).
  connection_keeper(storage_options options, std::string name);

  /// Makes sure a connection is open, respecting the backoff.
  caf::error ensure_connected();

  /// Runs `f(connection&)`; exceptions become errors (see the top).
  template <class T, class F>
  caf::expected<T> run(F&& f) {
    if (auto err = ensure_connected())
      return err;
    try {
      return f(*conn_);
    } catch (const std::exception& e) {
      return failed(e);
    }
  }

  /// Runs `f(tx)` in a transaction that commits when `f` returns.
  template <class F>
  auto transaction(F&& f)
    -> caf::expected<decltype(f(std::declval<pqxx::work&>()))> {
    using value_type = decltype(f(std::declval<pqxx::work&>()));
    return run<value_type>([&](pqxx::connection& conn) {
      pqxx::work tx{conn};
      auto result = f(tx);
      tx.commit();
      return result;
    });
  }

  /// Runs `f(tx)`, which returns caf::expected<T>, in a transaction that
  /// commits only when `f` returns a value: a refusal writes nothing.
  /// std::invalid_argument thrown by `f` becomes invalid_argument.
  template <class F>
  auto checked_transaction(F&& f) ->
    typename std::remove_cvref_t<decltype(f(std::declval<pqxx::work&>()))> {
    using result_type =
      std::remove_cvref_t<decltype(f(std::declval<pqxx::work&>()))>;
    struct boxed {
      result_type value;
    };
    auto outcome = run<boxed>([&](pqxx::connection& conn) -> boxed {
      pqxx::work tx{conn};
      try {
        auto result = f(tx);
        if (result)
          tx.commit();
        return {std::move(result)};
      } catch (const std::invalid_argument& e) {
        return {result_type{make_error(errc::invalid_argument, e.what())}};
      }
    });
    if (!outcome)
      return result_type{std::move(outcome.error())};
    return std::move(outcome->value);
  }

  /// Counts the connections opened so far: changes when a connection was
  /// lost and replaced (and every session-level state with it).
  [[nodiscard]] uint64_t generation() const {
    return generation_;
  }

  [[nodiscard]] bool connected() const {
    return conn_ && conn_->is_open();
  }

  /// The open connection (nullptr when none).
  [[nodiscard]] pqxx::connection* connection() {
    return conn_.get();
  }

  /// Drops the connection (and every session-level state with it).
  void reset() {
    conn_.reset();
  }

private:
  caf::error failed(const std::exception& e);

  storage_options options_;
  std::string name_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::string last_error_;
  uint64_t generation_ = 0;
};

} // namespace engram::storage
