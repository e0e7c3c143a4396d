#include "storage/connection.hpp"

#include <pqxx/pqxx>

#include "messages/errc.hpp"

namespace engram::storage {

std::string with_param(const std::string& conninfo, const std::string& key,
                       const std::string& value) {
  auto is_uri = conninfo.rfind("postgresql://", 0) == 0
                || conninfo.rfind("postgres://", 0) == 0;
  if (is_uri) {
    auto sep = conninfo.find('?') == std::string::npos ? '?' : '&';
    return conninfo + sep + key + '=' + value;
  }
  return conninfo.empty() ? key + '=' + value
                          : conninfo + ' ' + key + '=' + value;
}

std::unique_ptr<pqxx::connection>
open_connection(const std::string& conninfo,
                std::chrono::milliseconds connect_timeout,
                std::chrono::milliseconds statement_timeout) {
  // libpq takes whole seconds and treats values below 2 as 2.
  auto timeout_s = std::max<int64_t>(
    2, std::chrono::ceil<std::chrono::seconds>(connect_timeout).count());
  auto info = with_param(conninfo, "connect_timeout", std::to_string(timeout_s));
  info = with_param(info, "application_name", "engram");
  auto conn = std::make_unique<pqxx::connection>(info);
  // Never let libpqxx reconnect behind our back: the storage worker decides.
  // (Deprecated in libpqxx 6 without a replacement; libpqxx 7 never does.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  pqxx::nontransaction tx{*conn};
  tx.exec("SET statement_timeout = "
          + std::to_string(statement_timeout.count()));
  tx.exec("SET TIME ZONE 'UTC'");
  return conn;
}

bool is_connection_failure(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr)
    return true;
  if (auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const auto& state = sql->sqlstate();
    // 08: connection exception; 57P01-57P03: admin/crash shutdown, cannot
    // connect now.
    return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
  }
  return false;
}

caf::error to_error(const std::exception& e) {
  std::string what = e.what();
  while (!what.empty() && (what.back() == '\n' || what.back() == ' '))
    what.pop_back();
  if (is_connection_failure(e))
    return make_error(errc::database_unavailable, std::move(what));
  if (dynamic_cast<const pqxx::sql_error*>(&e) != nullptr)
    return make_error(errc::database_error, std::move(what));
  return make_error(errc::unspecified, std::move(what));
}

} // namespace engram::storage
