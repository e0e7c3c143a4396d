#include "tests/support/postgres_fixture.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "messages/errc.hpp"
#include "runtime/child_process.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace engram::test {

namespace {

bool is_under(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_normal().lexically_relative(dir.lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

void check_name(const std::string& name) {
  if (name.empty() || name.size() > 63
      || !std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         })
      || std::isdigit(static_cast<unsigned char>(name.front())))
    throw std::invalid_argument("invalid test database name '" + name + "'");
}

} // namespace

void remove_postgres_dirs(const fs::path& data_dir, const fs::path& cluster_dir,
                          const fs::path& socket_dir) {
  std::error_code ec;
  const fs::path clusters{"/var/lib/engram/clusters"};
  if (!cluster_dir.empty() && !is_under(cluster_dir, data_dir)
      && is_under(cluster_dir, clusters)) {
    fs::remove_all(cluster_dir.parent_path(), ec);
    // Only if now empty (other clusters may live there).
    fs::remove(clusters, ec);
    fs::remove(clusters.parent_path(), ec);
  }
  if (!socket_dir.empty() && !is_under(socket_dir, data_dir)
      && socket_dir.parent_path() == "/tmp"
      && socket_dir.filename().string().starts_with("engram-"))
    fs::remove_all(socket_dir, ec);
  if (!data_dir.empty())
    fs::remove_all(data_dir, ec);
}

throwaway_postgres::throwaway_postgres(std::string database, bool start_now)
  : database_(std::move(database)) {
  char tmpl[] = "/tmp/engram-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  ::chmod(dir_.c_str(), 0755); // the server's user must traverse it
  if (start_now) {
    try {
      start();
    } catch (...) {
      remove_leftovers();
      throw;
    }
  }
}

throwaway_postgres::~throwaway_postgres() {
  remove_leftovers();
}

void throwaway_postgres::remove_leftovers() {
  if (server_) {
    (void) server_->stop();
    server_.reset();
  }
  remove_postgres_dirs(dir_, cluster_dir_, socket_dir_);
}

void throwaway_postgres::start() {
  std::lock_guard guard{mtx_};
  if (server_ && server_->running())
    return;
  server_.reset(); // releases the data dir lock
  embedded_postgres_options opts;
  opts.data_dir = dir_;
  opts.database = database_;
  auto res = embedded_postgres::start(opts);
  if (!res)
    throw std::runtime_error("cannot start a test PostgreSQL in "
                             + dir_.string() + ": " + describe(res.error()));
  server_ = std::move(*res);
  cluster_dir_ = server_->cluster_dir();
  socket_dir_ = server_->socket_dir();
}

void throwaway_postgres::stop() {
  std::lock_guard guard{mtx_};
  if (!server_)
    return;
  if (auto err = server_->stop())
    throw std::runtime_error("cannot stop the test PostgreSQL: "
                             + describe(err));
  server_.reset();
}

bool throwaway_postgres::running() const {
  std::lock_guard guard{mtx_};
  return server_ && server_->running();
}

embedded_postgres& throwaway_postgres::server() const {
  std::lock_guard guard{mtx_};
  if (!server_)
    throw std::logic_error("the test PostgreSQL is stopped");
  return *server_;
}

std::string throwaway_postgres::connection_string() const {
  return server().connection_string();
}

std::string throwaway_postgres::connection_string(const std::string& database) const {
  return server().connection_string(database);
}

std::string throwaway_postgres::psql(const std::string& sql,
                                     const std::string& database) const {
  auto& srv = server();
  process_options p;
  p.argv = {(srv.bin_dir() / "psql").string(),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database.empty() ? srv.connection_string()
                             : srv.connection_string(database),
            "-c",
            sql};
  p.inherit_environment = false;
  p.env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C"}};
  auto res = run_and_wait(p, 60s);
  if (!res)
    throw std::runtime_error("cannot run psql: " + describe(res.error()));
  if (!res->success())
    throw std::runtime_error("psql failed for '" + sql + "': " + res->describe());
  auto out = std::move(res->output);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

std::string throwaway_postgres::create_database(const std::string& name) {
  check_name(name);
  drop_database(name);
  psql("CREATE DATABASE " + name + " OWNER " + embedded_postgres::role,
       "postgres");
  return connection_string(name);
}

void throwaway_postgres::drop_database(const std::string& name) {
  check_name(name);
  psql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "postgres");
}

throwaway_postgres& shared_postgres() {
  static throwaway_postgres instance{"engram"};
  return instance;
}

std::string database_name_for_current_test() {
  std::string raw = "t_";
  if (auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    raw += info->test_suite_name();
    raw += '_';
    raw += info->name();
  } else {
    raw += "adhoc_" + std::to_string(::getpid());
  }
  std::string name;
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    name += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  if (name.size() > 63) {
    // Keep it unique: a short hash of the full name at the end.
    uint32_t h = 2166136261u;
    for (unsigned char c : raw)
      h = (h ^ c) * 16777619u;
    char suffix[10];
    std::snprintf(suffix, sizeof(suffix), "_%08x", h);
    name = name.substr(0, 63 - 9) + suffix;
  }
  return name;
}

std::string test_database() {
  return shared_postgres().create_database(database_name_for_current_test());
}

} // namespace engram::test
