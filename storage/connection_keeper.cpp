#include "storage/connection_keeper.hpp"

#include <algorithm>

#include "runtime/log.hpp"
#include "storage/connection.hpp"

namespace engram::storage {

namespace {

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("storage");
  return result;
}

} // namespace

connection_keeper::connection_keeper(storage_options options, std::string name)
  : options_{std::move(options)}, name_{std::move(name)} {
}

caf::error connection_keeper::ensure_connected() {
  if (conn_ && conn_->is_open())
    return {};
  conn_.reset();
  auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      next_attempt_ - now);
    return make_error(errc::database_unavailable,
                      "database unreachable (" + last_error_
                        + "); next connect attempt in "
                        + std::to_string(wait.count()) + " ms");
  }
  try {
    conn_ = open_connection(options_.conninfo, options_.connect_timeout,
                            options_.statement_timeout);
    ++generation_;
    if (backoff_.count() > 0)
      logger()->info("{}: reconnected to the database", name_);
    backoff_ = std::chrono::milliseconds{0};
    last_error_.clear();
    return {};
  } catch (const std::exception& e) {
    auto err = to_error(e);
    last_error_ = message_of(err);
    backoff_ = backoff_.count() == 0
                 ? options_.backoff_initial
                 : std::min(backoff_ * 2, options_.backoff_max);
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
    logger()->warn("{}: cannot connect to the database: {}; retrying in {} ms",
                   name_, last_error_, backoff_.count());
    return make_error(errc::database_unavailable,
                      "database unreachable: " + last_error_);
  }
}

caf::error connection_keeper::failed(const std::exception& e) {
  auto err = to_error(e);
  if (code_of(err) == errc::database_unavailable || !conn_
      || !conn_->is_open()) {
    logger()->warn("{}: lost the database connection: {}", name_,
                   message_of(err));
    conn_.reset();
    last_error_ = message_of(err);
    if (code_of(err) != errc::database_unavailable)
      err = make_error(errc::database_unavailable, message_of(err));
  }
  return err;
}

} // namespace engram::storage
