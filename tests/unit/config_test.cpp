#include "runtime/config.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/settings.hpp>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using engram::config;
using engram::config_error;
using engram::config_sources;
using engram::load_config;

namespace {

namespace fs = std::filesystem;

const char* const shipped_file = ENGRAM_SOURCE_DIR "/conf/engram.toml";

/// A directory of its own for the running test, removed afterwards.
class temp_dir {
public:
  temp_dir() {
    auto info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path()
            / ("engram-config-test-" + std::string{info->name()} + "-"
               + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }

  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const {
    return path_;
  }

  /// Writes `content` to `name` inside the directory and returns its path.
  std::string write(const std::string& name, const std::string& content) {
    auto file = path_ / name;
    std::ofstream out{file};
    out << content;
    return file.string();
  }

private:
  fs::path path_;
};

/// Loads `sources`, failing the test (and returning defaults) on an error.
config load_ok(const config_sources& sources) {
  auto result = load_config(sources);
  if (auto err = std::get_if<config_error>(&result)) {
    ADD_FAILURE() << "unexpected config_error: " << err->to_string();
    return config{};
  }
  return std::get<config>(result);
}

/// Loads `sources`, failing the test when it succeeds.
config_error load_err(const config_sources& sources) {
  auto result = load_config(sources);
  if (auto err = std::get_if<config_error>(&result))
    return *err;
  ADD_FAILURE() << "expected a config_error, got a config";
  return config_error{};
}

/// Loads a file with `toml` as its whole content, expecting an error.
config_error toml_err(temp_dir& dir, const std::string& toml) {
  return load_err({.file = dir.write("engram.toml", toml)});
}

/// Loads a file with `toml` as its whole content, expecting success.
config toml_ok(temp_dir& dir, const std::string& toml) {
  return load_ok({.file = dir.write("engram.toml", toml)});
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string read_text(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

} // namespace

// -- where values come from ---------------------------------------------------

TEST(config, defaults_without_file) {
  auto cfg = load_ok({});
  EXPECT_EQ(cfg, config{});
  EXPECT_EQ(cfg.http.bind, "127.0.0.1");
  EXPECT_EQ(cfg.http.port, 8080);
  EXPECT_EQ(cfg.database.pool_size, 4);
  EXPECT_EQ(cfg.database.connect_timeout, 5s);
  EXPECT_EQ(cfg.log.level, "info");
}

TEST(config, shipped_file_equals_defaults) {
  // Keeps conf/engram.toml and the struct's defaults in step: any key whose
  // value differs from the built-in default makes the configs unequal.
  auto cfg = load_ok({.file = shipped_file});
  auto defaults = config{};
  EXPECT_TRUE(cfg == defaults) << "conf/engram.toml differs from the defaults";
  // Narrows a difference down to its section.
  EXPECT_TRUE(cfg.database == defaults.database) << "[database]";
  EXPECT_TRUE(cfg.daemon == defaults.daemon) << "[daemon]";
  EXPECT_TRUE(cfg.postgres == defaults.postgres) << "[postgres]";
  EXPECT_TRUE(cfg.http == defaults.http) << "[http]";
  EXPECT_TRUE(cfg.log == defaults.log) << "[log]";
  EXPECT_TRUE(cfg.supervisor == defaults.supervisor) << "[supervisor]";
  EXPECT_TRUE(cfg.node == defaults.node) << "[node]";
  EXPECT_TRUE(cfg.actor_system == defaults.actor_system) << "[actor_system]";
  EXPECT_TRUE(cfg.llm == defaults.llm) << "[llm]";
  EXPECT_TRUE(cfg.embedding == defaults.embedding) << "[embedding]";
  EXPECT_TRUE(cfg.consolidation == defaults.consolidation)
    << "[consolidation]";
  EXPECT_TRUE(cfg.statsd == defaults.statsd) << "[statsd]";
}

TEST(config, shipped_file_lists_every_key_with_a_comment_in_order) {
  auto text = read_text(shipped_file);
  ASSERT_FALSE(text.empty()) << shipped_file;
  // Collect "section.key" for every `key = value` line, and check that the
  // line above it is a comment.
  std::vector<std::string> keys;
  std::istringstream lines{text};
  std::string line;
  std::string previous;
  std::string section;
  while (std::getline(lines, line)) {
    if (line.starts_with("[")) {
      section = line.substr(1, line.find(']') - 1);
    } else if (auto eq = line.find(" = ");
               eq != std::string::npos && !line.starts_with("#")) {
      auto key = section + "." + line.substr(0, eq);
      EXPECT_TRUE(previous.starts_with("# "))
        << key << " has no one-line comment above it";
      keys.push_back(key);
    }
    previous = line;
  }
  EXPECT_EQ(keys, engram::config_keys());
  for (auto& key : engram::config_keys()) {
    auto dot = key.find('.');
    EXPECT_TRUE(contains(text, "[" + key.substr(0, dot) + "]")) << key;
    EXPECT_TRUE(contains(text, "\n" + key.substr(dot + 1) + " = ")) << key;
  }
}

TEST(config, file_overrides_defaults) {
  temp_dir dir;
  auto cfg = toml_ok(dir, R"(
[database]
url = "postgresql://db.example/engram"
pool_size = 8
statement_timeout = "0s"
reconnect_backoff_initial = "250ms"
reconnect_backoff_max = "2m"

[http]
port = 0
max_body_bytes = 0

[log]
level = "debug"
format = "json"

[actor_system]
worker_threads = 2
scheduling_policy = "sharing"
)");
  EXPECT_EQ(cfg.database.url, "postgresql://db.example/engram");
  EXPECT_EQ(cfg.database.pool_size, 8);
  EXPECT_EQ(cfg.database.statement_timeout, 0ms);
  EXPECT_EQ(cfg.database.reconnect_backoff_initial, 250ms);
  EXPECT_EQ(cfg.database.reconnect_backoff_max, 2min);
  EXPECT_EQ(cfg.http.port, 0);
  EXPECT_EQ(cfg.http.max_body_bytes, 0);
  EXPECT_EQ(cfg.log.level, "debug");
  EXPECT_EQ(cfg.log.format, "json");
  EXPECT_EQ(cfg.actor_system.worker_threads, 2);
  EXPECT_EQ(cfg.actor_system.scheduling_policy, "sharing");
  // Untouched options keep their defaults.
  EXPECT_EQ(cfg.http.bind, "127.0.0.1");
  EXPECT_EQ(cfg.daemon.shutdown_timeout, 20s);
}

TEST(config, file_durations_accept_integer_milliseconds) {
  temp_dir dir;
  auto cfg = toml_ok(dir, "[http]\nread_timeout = 1500\n"
                          "[node]\nheartbeat_interval = \"1h\"\n");
  EXPECT_EQ(cfg.http.read_timeout, 1500ms);
  EXPECT_EQ(cfg.node.heartbeat_interval, 1h);
}

TEST(config, environment_overrides_file) {
  temp_dir dir;
  auto file = dir.write("engram.toml", "[http]\nport = 9000\ntoken = \"t\"\n"
                                       "[database]\npool_size = 2\n");
  auto cfg = load_ok({.file = file,
                      .env = {{"ENGRAM_HTTP__PORT", "9100"},
                              {"ENGRAM_ACTOR_SYSTEM__WORKER_THREADS", "3"},
                              {"ENGRAM_DATABASE__CONNECT_TIMEOUT", "2s"}}});
  EXPECT_EQ(cfg.http.port, 9100);
  EXPECT_EQ(cfg.http.token, "t");
  EXPECT_EQ(cfg.database.pool_size, 2);
  EXPECT_EQ(cfg.actor_system.worker_threads, 3);
  EXPECT_EQ(cfg.database.connect_timeout, 2s);
}

TEST(config, flags_override_environment) {
  temp_dir dir;
  auto file = dir.write("engram.toml", "[http]\nport = 9000\n");
  auto cfg = load_ok(
    {.file = file,
     .env = {{"ENGRAM_HTTP__PORT", "9100"}, {"ENGRAM_LOG__LEVEL", "warn"}},
     .flags = {{"http.port", "9200"},
               {"database.pool_size", "16"},
               {"http.port", "9300"}}});
  // The last of repeated flags wins.
  EXPECT_EQ(cfg.http.port, 9300);
  EXPECT_EQ(cfg.log.level, "warn");
  EXPECT_EQ(cfg.database.pool_size, 16);
}

TEST(config, database_url_and_engram_home) {
  auto cfg = load_ok({.env = {{"DATABASE_URL", "postgresql:///x"},
                              {"ENGRAM_HOME", "/srv/engram"}}});
  EXPECT_EQ(cfg.database.url, "postgresql:///x");
  EXPECT_EQ(cfg.daemon.data_dir, "/srv/engram");
  // The ENGRAM_<SECTION>__<KEY> form is more specific and wins.
  cfg = load_ok({.env = {{"DATABASE_URL", "postgresql:///x"},
                         {"ENGRAM_DATABASE__URL", "postgresql:///y"}}});
  EXPECT_EQ(cfg.database.url, "postgresql:///y");
  // Flags still win over both.
  cfg = load_ok({.env = {{"ENGRAM_HOME", "/srv/engram"}},
                 .flags = {{"daemon.data_dir", "/tmp/e"}}});
  EXPECT_EQ(cfg.daemon.data_dir, "/tmp/e");
}

TEST(config, engram_config_names_the_file) {
  temp_dir dir;
  auto from_env = dir.write("env.toml", "[http]\nport = 1111\n");
  auto given = dir.write("given.toml", "[http]\nport = 2222\n");
  auto cfg = load_ok({.env = {{"ENGRAM_CONFIG", from_env}}});
  EXPECT_EQ(cfg.http.port, 1111);
  cfg = load_ok({.file = given, .env = {{"ENGRAM_CONFIG", from_env}}});
  EXPECT_EQ(cfg.http.port, 2222);
}

TEST(config, unrelated_environment_is_ignored) {
  auto cfg = load_ok({.env = {{"PATH", "/usr/bin"},
                              {"HTTP_PORT", "abc"},
                              {"ENGRAM_SOURCE_DIR", "/src"},
                              {"ENGRAM_LOG_LEVEL", "nonsense"}}});
  EXPECT_EQ(cfg, config{});
}

TEST(config, zero_is_allowed_where_it_means_off) {
  auto cfg
    = load_ok({.flags = {{"database.statement_timeout", "0"},
                         {"actor_system.middleman_heartbeat_interval", "0s"},
                         {"supervisor.max_restarts", "0"}}});
  EXPECT_EQ(cfg.database.statement_timeout, 0ms);
  EXPECT_EQ(cfg.actor_system.middleman_heartbeat_interval, 0ms);
  EXPECT_EQ(cfg.supervisor.max_restarts, 0);
}

TEST(config, non_loopback_bind_with_token_and_loopback_forms) {
  auto cfg
    = load_ok({.flags = {{"http.bind", "0.0.0.0"}, {"http.token", "secret"}}});
  EXPECT_EQ(cfg.http.bind, "0.0.0.0");
  for (auto bind :
       {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"})
    EXPECT_EQ(load_ok({.flags = {{"http.bind", bind}}}).http.bind, bind);
}

// -- refusals -----------------------------------------------------------------

TEST(config, rejects_unknown_key_in_file) {
  temp_dir dir;
  auto err = toml_err(dir, "[http]\nprot = 8081\n");
  EXPECT_EQ(err.key, "http.prot");
  EXPECT_EQ(err.value, "8081");
  EXPECT_TRUE(contains(err.reason, "unknown option")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "did you mean http.port?")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "line 2")) << err.reason;
}

TEST(config, rejects_unknown_section_in_file) {
  temp_dir dir;
  auto err = toml_err(dir, "[htp]\nport = 8081\n");
  EXPECT_EQ(err.key, "htp");
  EXPECT_EQ(err.value, "");
  EXPECT_TRUE(contains(err.reason, "unknown section [htp]")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "did you mean http?")) << err.reason;
  // An option outside of any section is refused as well.
  err = toml_err(dir, "port = 8081\n");
  EXPECT_EQ(err.key, "port");
  EXPECT_EQ(err.value, "8081");
  EXPECT_TRUE(contains(err.reason, "section")) << err.reason;
  // So is a sub-table of a known section.
  err = toml_err(dir, "[http.extra]\nx = 1\n");
  EXPECT_EQ(err.key, "http.extra");
  EXPECT_TRUE(contains(err.reason, "unknown option")) << err.reason;
}

TEST(config, rejects_wrong_type_in_file) {
  temp_dir dir;
  auto err = toml_err(dir, "[http]\nport = \"abc\"\n");
  EXPECT_EQ(err.key, "http.port");
  EXPECT_EQ(err.value, "abc");
  EXPECT_TRUE(contains(err.reason, "expected an integer, got a string"))
    << err.reason;
  err = toml_err(dir, "[http]\nport = 1.5\n");
  EXPECT_EQ(err.key, "http.port");
  EXPECT_EQ(err.value, "1.5");
  EXPECT_TRUE(contains(err.reason, "expected an integer")) << err.reason;
  err = toml_err(dir, "[log]\nlevel = 3\n");
  EXPECT_EQ(err.key, "log.level");
  EXPECT_TRUE(contains(err.reason, "expected a string, got an integer"))
    << err.reason;
  err = toml_err(dir, "[http]\nread_timeout = true\n");
  EXPECT_EQ(err.key, "http.read_timeout");
  EXPECT_EQ(err.value, "true");
  EXPECT_TRUE(contains(err.reason, "expected a duration")) << err.reason;
  err = toml_err(dir, "http = 5\n");
  EXPECT_EQ(err.key, "http");
  EXPECT_TRUE(contains(err.reason, "expected a table")) << err.reason;
}

TEST(config, rejects_out_of_range) {
  temp_dir dir;
  struct example {
    std::string toml;
    std::string key;
    std::string value;
    std::string reason;
  };
  // Each bound comes from the option's documented range.
  auto examples = std::vector<example>{
    {"[http]\nport = 70000", "http.port", "70000",
     "must be between 0 and 65535"},
    {"[http]\nport = -1", "http.port", "-1", "must be between 0 and 65535"},
    {"[database]\npool_size = 0", "database.pool_size", "0",
     "must be between 1 and 64"},
    {"[database]\npool_size = 65", "database.pool_size", "65",
     "must be between 1 and 64"},
    {"[http]\nmax_header_bytes = 1023", "http.max_header_bytes", "1023",
     "must be between 1024 and 1048576"},
    {"[http]\nmax_body_bytes = 1073741825", "http.max_body_bytes", "1073741825",
     "must be between 0 and 1073741824"},
    {"[supervisor]\nmax_restarts = 1001", "supervisor.max_restarts", "1001",
     "must be between 0 and 1000"},
    {"[actor_system]\nworker_threads = 257", "actor_system.worker_threads",
     "257", "must be between 0 and 256"},
    {"[actor_system]\nmax_throughput = 0", "actor_system.max_throughput", "0",
     "must be between 1 and 1000000"},
    {"[supervisor]\nrestart_window = \"0s\"", "supervisor.restart_window", "0s",
     "must be greater than 0"},
    {"[node]\nheartbeat_interval = 0", "node.heartbeat_interval", "0",
     "must be greater than 0"},
    {"[http]\nrequest_timeout = \"0ms\"", "http.request_timeout", "0ms",
     "must be greater than 0"},
    {"[database]\nstatement_timeout = -5", "database.statement_timeout", "-5",
     "must not be negative"},
    {"[daemon]\nshutdown_timeout = \"1000h\"", "daemon.shutdown_timeout",
     "1000h", "must be at most"},
    {"[embedding]\ndimension = 7", "embedding.dimension", "7",
     "must be between 8 and 8192"},
    {"[embedding]\ndimension = 8193", "embedding.dimension", "8193",
     "must be between 8 and 8192"},
    {"[embedding]\nmax_attempts = 0", "embedding.max_attempts", "0",
     "must be between 1 and 20"},
    {"[embedding]\nbatch_size = 2049", "embedding.batch_size", "2049",
     "must be between 1 and 2048"},
    {"[consolidation]\nmax_projects_in_flight = 0",
     "consolidation.max_projects_in_flight", "0", "must be between 1 and 256"},
    {"[embedding]\nencoding_format = \"hex\"", "embedding.encoding_format",
     "hex", "must be one of"},
    {"[consolidation]\nkernel_threads = 65",
     "consolidation.kernel_threads", "65", "must be between 0 and 64"},
    {"[consolidation]\nhot_memories_per_agent = 1001",
     "consolidation.hot_memories_per_agent", "1001",
     "must be between 1 and 1000"},
  };
  for (auto& x : examples) {
    auto err = toml_err(dir, x.toml + "\n");
    EXPECT_EQ(err.key, x.key) << x.toml;
    EXPECT_EQ(err.value, x.value) << x.toml;
    EXPECT_TRUE(contains(err.reason, x.reason)) << x.toml << ": " << err.reason;
  }
}

TEST(config, rejects_bad_enum) {
  temp_dir dir;
  auto err = toml_err(dir, "[log]\nlevel = \"verbose\"\n");
  EXPECT_EQ(err.key, "log.level");
  EXPECT_EQ(err.value, "verbose");
  EXPECT_TRUE(contains(err.reason,
                       "must be one of trace, debug, info, warn, error, "
                       "critical, off"))
    << err.reason;
  err = toml_err(dir, "[log]\nformat = \"xml\"\n");
  EXPECT_EQ(err.key, "log.format");
  EXPECT_TRUE(contains(err.reason, "text, json")) << err.reason;
  err = load_err({.flags = {{"actor_system.scheduling_policy", "testing"}}});
  EXPECT_EQ(err.key, "actor_system.scheduling_policy");
  EXPECT_EQ(err.value, "testing");
  EXPECT_TRUE(contains(err.reason, "stealing, sharing")) << err.reason;
  err = toml_err(dir, "[embedding]\nprovider = \"word2vec\"\n");
  EXPECT_EQ(err.key, "embedding.provider");
  EXPECT_TRUE(contains(err.reason, "hashing, openai")) << err.reason;
}

TEST(config, embedding_and_consolidation_sections) {
  temp_dir dir;
  auto cfg = toml_ok(dir, R"(
[embedding]
provider = "openai"
dimension = 1536
base_url = "http://127.0.0.1:11434/v1"
model = "nomic-embed-text"
api_key_env = "MY_EMBEDDING_KEY"
timeout = "5s"
max_attempts = 5
batch_size = 64
encoding_format = "base64"

[consolidation]
max_projects_in_flight = 8
hot_memories_per_agent = 50
kernel_threads = 2
)");
  EXPECT_EQ(cfg.embedding.provider, "openai");
  EXPECT_EQ(cfg.embedding.dimension, 1536);
  EXPECT_EQ(cfg.embedding.base_url, "http://127.0.0.1:11434/v1");
  EXPECT_EQ(cfg.embedding.model, "nomic-embed-text");
  EXPECT_EQ(cfg.embedding.api_key_env, "MY_EMBEDDING_KEY");
  EXPECT_EQ(cfg.embedding.timeout, 5s);
  EXPECT_EQ(cfg.embedding.max_attempts, 5);
  EXPECT_EQ(cfg.embedding.batch_size, 64);
  EXPECT_EQ(cfg.embedding.encoding_format, "base64");
  EXPECT_EQ(cfg.consolidation.max_projects_in_flight, 8);
  EXPECT_EQ(cfg.consolidation.hot_memories_per_agent, 50);
  EXPECT_EQ(cfg.consolidation.kernel_threads, 2);
  // The defaults are those of conf/engram.toml (checked above) and these.
  config defaults;
  EXPECT_EQ(defaults.embedding.provider, "hashing");
  EXPECT_EQ(defaults.embedding.dimension, 384);
  EXPECT_EQ(defaults.embedding.model, "text-embedding-3-small");
  EXPECT_EQ(defaults.embedding.timeout, 60s);
  EXPECT_EQ(defaults.embedding.batch_size, 256);
  EXPECT_EQ(defaults.embedding.encoding_format, "float");
  EXPECT_EQ(defaults.consolidation.max_projects_in_flight, 4);
  EXPECT_EQ(defaults.consolidation.hot_memories_per_agent, 20);
  EXPECT_EQ(defaults.consolidation.kernel_threads, 0);
  // Environment names follow the usual rule.
  cfg = load_ok({.env = {{"ENGRAM_EMBEDDING__DIMENSION", "64"},
                         {"ENGRAM_CONSOLIDATION__HOT_MEMORIES_PER_AGENT", "7"}}});
  EXPECT_EQ(cfg.embedding.dimension, 64);
  EXPECT_EQ(cfg.consolidation.hot_memories_per_agent, 7);
}

TEST(config, rejects_bad_duration) {
  temp_dir dir;
  for (auto text :
       {"5 s", "5sec", "-5s", "", "s", "1.5s", "99999999999999999999ms"}) {
    auto err
      = toml_err(dir, "[http]\nidle_timeout = \"" + std::string{text} + "\"\n");
    EXPECT_EQ(err.key, "http.idle_timeout") << text;
    EXPECT_EQ(err.value, text);
    EXPECT_TRUE(contains(err.reason, "expected a duration")) << err.reason;
  }
}

TEST(config, rejects_missing_file) {
  temp_dir dir;
  auto path = (dir.path() / "absent.toml").string();
  auto err = load_err({.file = path});
  EXPECT_EQ(err.key, path);
  EXPECT_EQ(err.value, "");
  EXPECT_TRUE(contains(err.reason, "No such file or directory")) << err.reason;
}

TEST(config, rejects_unreadable_file) {
  // Reading a directory fails even for root, unlike a chmod 000 file.
  temp_dir dir;
  auto path = dir.path().string();
  auto err = load_err({.file = path});
  EXPECT_EQ(err.key, path);
  EXPECT_TRUE(contains(err.reason, "cannot read")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "Is a directory")) << err.reason;
}

TEST(config, rejects_malformed_toml) {
  temp_dir dir;
  auto path = dir.write("broken.toml", "[http]\nport = 80\nbind = \n");
  auto err = load_err({.file = path});
  EXPECT_EQ(err.key, path);
  EXPECT_TRUE(contains(err.reason, "line 3, column")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "malformed TOML")) << err.reason;
  // A key given twice is malformed TOML as well.
  err = toml_err(dir, "[http]\nport = 80\nport = 81\n");
  EXPECT_TRUE(contains(err.reason, "line 3")) << err.reason;
}

TEST(config, rejects_unknown_engram_env_option) {
  auto err = load_err({.env = {{"ENGRAM_HTTP__PROT", "8081"}}});
  EXPECT_EQ(err.key, "ENGRAM_HTTP__PROT");
  EXPECT_EQ(err.value, "8081");
  EXPECT_TRUE(contains(err.reason, "names no option")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "ENGRAM_HTTP__PORT")) << err.reason;
  // Names are upper case only.
  err = load_err({.env = {{"ENGRAM_http__port", "8081"}}});
  EXPECT_EQ(err.key, "ENGRAM_http__port");
  err = load_err({.env = {{"ENGRAM_NOPE__PORT", "1"}}});
  EXPECT_EQ(err.key, "ENGRAM_NOPE__PORT");
}

TEST(config, rejects_bad_env_value) {
  auto err = load_err({.env = {{"ENGRAM_HTTP__PORT", "abc"}}});
  EXPECT_EQ(err.key, "http.port");
  EXPECT_EQ(err.value, "abc");
  EXPECT_TRUE(contains(err.reason, "expected an integer")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "ENGRAM_HTTP__PORT")) << err.reason;
  for (auto text : {"", " 80", "80 ", "+80", "0x50", "99999999999999999999"}) {
    err = load_err({.env = {{"ENGRAM_HTTP__PORT", text}}});
    EXPECT_EQ(err.key, "http.port") << text;
    EXPECT_EQ(err.value, text);
  }
  err = load_err({.env = {{"ENGRAM_HTTP__PORT", "70000"}}});
  EXPECT_TRUE(contains(err.reason, "must be between 0 and 65535"))
    << err.reason;
  err = load_err({.env = {{"ENGRAM_DATABASE__CONNECT_TIMEOUT", "soon"}}});
  EXPECT_EQ(err.key, "database.connect_timeout");
  EXPECT_EQ(err.value, "soon");
  EXPECT_TRUE(contains(err.reason, "expected a duration")) << err.reason;
  err = load_err({.env = {{"ENGRAM_LOG__LEVEL", "loud"}}});
  EXPECT_EQ(err.key, "log.level");
  EXPECT_TRUE(contains(err.reason, "must be one of")) << err.reason;
}

TEST(config, rejects_bad_flag_key) {
  auto err = load_err({.flags = {{"http.prot", "1"}}});
  EXPECT_EQ(err.key, "http.prot");
  EXPECT_EQ(err.value, "1");
  EXPECT_TRUE(contains(err.reason, "unknown option")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "did you mean http.port?")) << err.reason;
  for (auto key : {"port", "http", "http.", ".port", "http.port.x", ""}) {
    err = load_err({.flags = {{key, "1"}}});
    EXPECT_EQ(err.key, key);
    EXPECT_TRUE(contains(err.reason, "unknown option")) << err.reason;
  }
}

TEST(config, rejects_bad_flag_value) {
  auto err = load_err({.flags = {{"database.pool_size", "many"}}});
  EXPECT_EQ(err.key, "database.pool_size");
  EXPECT_EQ(err.value, "many");
  EXPECT_TRUE(contains(err.reason, "expected an integer")) << err.reason;
  EXPECT_TRUE(contains(err.reason, "command line")) << err.reason;
}

TEST(config, rejects_non_loopback_bind_without_token) {
  for (auto bind : {"0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1"}) {
    auto err = load_err({.flags = {{"http.bind", bind}}});
    EXPECT_EQ(err.key, "http.token") << bind;
    EXPECT_EQ(err.value, "");
    EXPECT_TRUE(contains(err.reason, "token is required")) << err.reason;
    EXPECT_TRUE(contains(err.reason, "non-loopback")) << err.reason;
    EXPECT_TRUE(contains(err.reason, bind)) << err.reason;
  }
}

TEST(config, rejects_backoff_initial_above_max) {
  auto err = load_err({.flags = {{"database.reconnect_backoff_initial", "20s"},
                                 {"database.reconnect_backoff_max", "10s"}}});
  EXPECT_EQ(err.key, "database.reconnect_backoff_initial");
  EXPECT_EQ(err.value, "20s");
  EXPECT_TRUE(contains(err.reason, "database.reconnect_backoff_max (10s)"))
    << err.reason;
  // Equal is fine.
  auto cfg
    = load_ok({.flags = {{"database.reconnect_backoff_initial", "10s"}}});
  EXPECT_EQ(cfg.database.reconnect_backoff_initial, 10s);
}

TEST(config, error_to_string) {
  auto err = config_error{"http.port", "70000", "must be between 0 and 65535"};
  EXPECT_EQ(err.to_string(), "http.port = 70000: must be between 0 and 65535");
  err = config_error{"/etc/engram.toml", "",
                     "cannot read the configuration "
                     "file: No such file or directory"};
  EXPECT_EQ(err.to_string(), "/etc/engram.toml: cannot read the configuration "
                             "file: No such file or directory");
}

// -- helpers ------------------------------------------------------------------

TEST(config, parse_duration_units) {
  using engram::parse_duration;
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("1500"), 1500ms);
  EXPECT_EQ(parse_duration("0"), 0ms);
  EXPECT_EQ(parse_duration("0s"), 0ms);
}

TEST(config, parse_duration_rejects_garbage) {
  using engram::parse_duration;
  for (auto text : {"", "-1", "-5s", "s", "ms", "5x", "5 s", " 5s", "5s ",
                    "1.5s", "+5s", "5S", "5ms5", "0x10"})
    EXPECT_EQ(parse_duration(text), std::nullopt) << '"' << text << '"';
  // Overflow: too many digits, and a number that overflows once scaled.
  EXPECT_EQ(parse_duration("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775807h"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775807ms"),
            std::chrono::milliseconds{9223372036854775807});
}

TEST(config, config_keys_in_file_order) {
  auto keys = engram::config_keys();
  ASSERT_EQ(keys.size(), 78u); // One per member of the config struct.
  EXPECT_EQ(keys.front(), "database.url");
  EXPECT_EQ(keys[1], "database.pool_size");
  EXPECT_EQ(keys.back(), "statsd.interval");
}

TEST(config, every_key_is_settable_by_env_and_flag_name) {
  // Every key maps to an ENGRAM_<SECTION>__<KEY> variable and a flag; an
  // unknown name would be refused, a known one at worst has a bad value.
  for (auto& key : engram::config_keys()) {
    auto dot = key.find('.');
    std::string name = "ENGRAM_";
    for (auto c : key.substr(0, dot) + "__" + key.substr(dot + 1))
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto result = load_config({.env = {{name, "x"}}});
    if (auto err = std::get_if<config_error>(&result)) {
      EXPECT_FALSE(contains(err->reason, "names no option")) << name;
    }
    result = load_config({.flags = {{key, "x"}}});
    if (auto err = std::get_if<config_error>(&result)) {
      EXPECT_FALSE(contains(err->reason, "unknown option")) << key;
    }
  }
}

TEST(config, apply_caf_settings_takes_effect) {
  auto cfg = config{};
  cfg.actor_system.worker_threads = 2;
  cfg.actor_system.scheduling_policy = "sharing";
  cfg.actor_system.max_throughput = 42;
  cfg.actor_system.middleman_heartbeat_interval = 250ms;
  caf::actor_system_config sys_cfg;
  engram::apply_caf_settings(cfg, sys_cfg);
  EXPECT_EQ(caf::get_or(sys_cfg, "scheduler.max-threads", size_t{0}), 2u);
  EXPECT_EQ(caf::get_or(sys_cfg, "scheduler.policy", caf::atom("")),
            caf::atom("sharing"));
  EXPECT_EQ(caf::get_or(sys_cfg, "scheduler.max-throughput", size_t{0}), 42u);
  EXPECT_EQ(caf::get_or(sys_cfg, "middleman.heartbeat-interval",
                        caf::timespan{0}),
            caf::timespan{250ms});
  // The running system picks them up.
  caf::actor_system sys{sys_cfg};
  EXPECT_EQ(sys.scheduler().num_workers(), 2u);
  EXPECT_EQ(sys.scheduler().max_throughput(), 42u);
}

TEST(config, apply_caf_settings_zero_threads_means_one_per_core) {
  caf::actor_system_config sys_cfg;
  engram::apply_caf_settings(config{}, sys_cfg);
  auto expected = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(caf::get_or(sys_cfg, "scheduler.max-threads", size_t{0}), expected);
  EXPECT_EQ(caf::get_or(sys_cfg, "scheduler.policy", caf::atom("")),
            caf::atom("sharing"));
}

TEST(config, environment_reads_the_process_environment) {
  ::setenv("ENGRAM_CONFIG_TEST_PROBE", "a=b", 1);
  auto env = engram::environment();
  ::unsetenv("ENGRAM_CONFIG_TEST_PROBE");
  ASSERT_TRUE(env.contains("ENGRAM_CONFIG_TEST_PROBE"));
  EXPECT_EQ(env["ENGRAM_CONFIG_TEST_PROBE"], "a=b");
}

TEST(config, queue_lists_are_checked) {
  auto queues = engram::parse_queue_list(" default=4, memory=2 ");
  ASSERT_TRUE(std::holds_alternative<std::vector<engram::queue_spec>>(queues));
  auto& list = std::get<std::vector<engram::queue_spec>>(queues);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].name, "memory");
  EXPECT_EQ(list[1].concurrency, 2);
  for (auto bad : {"", "default", "default=0", "default=x", "Default=1",
                   "a=1,a=2", "a=1025"}) {
    auto result = load_config({.flags = {{"tasks.queues", bad}}});
    auto* err = std::get_if<config_error>(&result);
    ASSERT_NE(err, nullptr) << bad;
    EXPECT_EQ(err->key, "tasks.queues") << bad;
  }
  auto result = load_config({.flags = {{"tasks.heartbeat_interval", "30s"}}});
  ASSERT_NE(std::get_if<config_error>(&result), nullptr)
    << "a heartbeat must come before the lease expires";
}
