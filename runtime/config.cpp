#include "runtime/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <span>
#include <sstream>
#include <system_error>
#include <thread>
#include <type_traits>

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>

#include <toml++/toml.h>

#include "runtime/toml_type_name.hpp"
#include "runtime/ascii.hpp"

namespace engram {

namespace {

using std::chrono::milliseconds;

// -- the schema ---------------------------------------------------------------

/// How an option's text or TOML value is read and checked.
enum class kind { string, integer, boolean, duration, enumeration };

/// A parsed option value, before it is stored into the struct.
using value = std::variant<std::string, int64_t, bool, milliseconds>;

/// Type and limits of one option.
struct spec {
  kind type = kind::string;
  /// Inclusive bounds; integers as is, durations in milliseconds.
  int64_t min = 0;
  int64_t max = 0;
  /// Accepted values of an enumeration.
  std::span<const std::string_view> allowed = {};
};

/// One option: where it lives, what it accepts and how it is stored.
struct option {
  std::string_view section;
  std::string_view key;
  spec type;
  /// Stores an already checked value into its field.
  void (*assign)(config&, const value&);

  [[nodiscard]] std::string dotted() const {
    std::string result{section};
    result += '.';
    result += key;
    return result;
  }
};

/// Stores `v` into `cfg.*Section.*Member`; the schema guarantees that the
/// alternative held by `v` matches the field (a mismatch throws, and the test
/// that loads every key from conf/engram.toml would catch it).
template <auto Section, auto Member>
void assign_field(config& cfg, const value& v) {
  auto& field = (cfg.*Section).*Member;
  using field_type = std::remove_cvref_t<decltype(field)>;
  if constexpr (std::is_same_v<field_type, std::string>)
    field = std::get<std::string>(v);
  else if constexpr (std::is_same_v<field_type, bool>)
    field = std::get<bool>(v);
  else if constexpr (std::is_same_v<field_type, milliseconds>)
    field = std::get<milliseconds>(v);
  else
    // Integers are range-checked against the schema before they get here.
    field = static_cast<field_type>(std::get<int64_t>(v));
}

constexpr spec text() {
  return {kind::string};
}

constexpr spec flag() {
  return {kind::boolean};
}

constexpr spec integer(int64_t min, int64_t max) {
  return {kind::integer, min, max};
}

constexpr spec duration(int64_t min_ms, int64_t max_ms) {
  return {kind::duration, min_ms, max_ms};
}

constexpr spec one_of(std::span<const std::string_view> allowed) {
  return {kind::enumeration, 0, 0, allowed};
}

/// Largest accepted duration: 2^31-1 ms (~24.8 days), PostgreSQL's limit for
/// statement_timeout and far beyond any sensible timeout or interval.
constexpr int64_t max_duration_ms = std::numeric_limits<int32_t>::max();

constexpr auto log_levels = std::to_array<std::string_view>(
  {"trace", "debug", "info", "warn", "error", "critical", "off"});

constexpr auto log_formats = std::to_array<std::string_view>({"text", "json"});

constexpr auto llm_providers
  = std::to_array<std::string_view>({"extractive", "openai"});

constexpr auto embedding_providers
  = std::to_array<std::string_view>({"hashing", "openai"});

constexpr auto embedding_encodings
  = std::to_array<std::string_view>({"float", "base64"});

constexpr auto scheduling_policies
  = std::to_array<std::string_view>({"stealing", "sharing"});

// Spells the names once: the section and key strings are the member names.
// clang-format off
#define ENGRAM_OPTION(section, key, type)                                      \
  option {                                                                     \
    #section, #key, type,                                                      \
      &assign_field<&config::section, &decltype(config::section)::key>         \
  }
// clang-format on

/// Every option in file order. File, environment and flags all go through it.
constexpr auto options = std::to_array<option>({
  ENGRAM_OPTION(database, url, text()),
  ENGRAM_OPTION(database, pool_size, integer(1, 64)),
  ENGRAM_OPTION(database, connect_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(database, statement_timeout, duration(0, max_duration_ms)),
  ENGRAM_OPTION(database, reconnect_backoff_initial,
                duration(1, max_duration_ms)),
  ENGRAM_OPTION(database, reconnect_backoff_max, duration(1, max_duration_ms)),
  ENGRAM_OPTION(daemon, data_dir, text()),
  ENGRAM_OPTION(daemon, shutdown_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(postgres, bin_dir, text()),
  ENGRAM_OPTION(postgres, system_user, text()),
  ENGRAM_OPTION(postgres, database, text()),
  ENGRAM_OPTION(postgres, start_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(postgres, stop_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(http, bind, text()),
  ENGRAM_OPTION(http, port, integer(0, 65535)),
  ENGRAM_OPTION(http, token, text()),
  ENGRAM_OPTION(http, max_header_bytes, integer(1024, 1048576)),
  ENGRAM_OPTION(http, max_body_bytes, integer(0, 1073741824)),
  ENGRAM_OPTION(http, read_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(http, idle_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(http, request_timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(log, level, one_of(log_levels)),
  ENGRAM_OPTION(log, format, one_of(log_formats)),
  ENGRAM_OPTION(supervisor, max_restarts, integer(0, 1000)),
  ENGRAM_OPTION(supervisor, restart_window, duration(1, max_duration_ms)),
  ENGRAM_OPTION(node, name, text()),
  ENGRAM_OPTION(node, heartbeat_interval, duration(1, max_duration_ms)),
  ENGRAM_OPTION(actor_system, worker_threads, integer(0, 256)),
  ENGRAM_OPTION(actor_system, scheduling_policy, one_of(scheduling_policies)),
  ENGRAM_OPTION(actor_system, max_throughput, integer(1, 1000000)),
  ENGRAM_OPTION(actor_system, middleman_heartbeat_interval,
                duration(0, max_duration_ms)),
  ENGRAM_OPTION(background, enabled, flag()),
  ENGRAM_OPTION(tasks, queues, text()),
  ENGRAM_OPTION(tasks, prefetch, integer(0, 100000)),
  ENGRAM_OPTION(tasks, lease, duration(1000, max_duration_ms)),
  ENGRAM_OPTION(tasks, heartbeat_interval, duration(100, max_duration_ms)),
  ENGRAM_OPTION(tasks, poll_interval, duration(10, max_duration_ms)),
  ENGRAM_OPTION(tasks, reclaim_interval, duration(100, max_duration_ms)),
  ENGRAM_OPTION(scheduler, enabled, flag()),
  ENGRAM_OPTION(scheduler, tick_interval, duration(10, max_duration_ms)),
  ENGRAM_OPTION(scheduler, lock_retry, duration(100, max_duration_ms)),
  ENGRAM_OPTION(scheduler, reload_interval, duration(100, max_duration_ms)),
  ENGRAM_OPTION(scheduler, timezone, text()),
  ENGRAM_OPTION(scheduler, expire_tokens, text()),
  ENGRAM_OPTION(scheduler, close_stale_sessions, text()),
  ENGRAM_OPTION(scheduler, archive_old_conversations, text()),
  ENGRAM_OPTION(scheduler, archive_expired_memories, text()),
  ENGRAM_OPTION(scheduler, consolidate, text()),
  ENGRAM_OPTION(scheduler, decay_and_expire, text()),
  ENGRAM_OPTION(scheduler, purge_finished_tasks, text()),
  ENGRAM_OPTION(llm, provider, one_of(llm_providers)),
  ENGRAM_OPTION(llm, base_url, text()),
  ENGRAM_OPTION(llm, model, text()),
  ENGRAM_OPTION(llm, api_key_env, text()),
  ENGRAM_OPTION(llm, timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(llm, max_attempts, integer(1, 20)),
  ENGRAM_OPTION(embedding, provider, one_of(embedding_providers)),
  ENGRAM_OPTION(embedding, dimension, integer(8, 8192)),
  ENGRAM_OPTION(embedding, base_url, text()),
  ENGRAM_OPTION(embedding, model, text()),
  ENGRAM_OPTION(embedding, api_key_env, text()),
  ENGRAM_OPTION(embedding, timeout, duration(1, max_duration_ms)),
  ENGRAM_OPTION(embedding, max_attempts, integer(1, 20)),
  ENGRAM_OPTION(embedding, batch_size, integer(1, 2048)),
  ENGRAM_OPTION(embedding, encoding_format, one_of(embedding_encodings)),
  ENGRAM_OPTION(consolidation, max_projects_in_flight, integer(1, 256)),
  ENGRAM_OPTION(consolidation, hot_memories_per_agent, integer(1, 1000)),
  ENGRAM_OPTION(consolidation, kernel_threads, integer(0, 64)),
  ENGRAM_OPTION(workflows, definitions_dir, text()),
  ENGRAM_OPTION(workflows, artifact_root, text()),
  ENGRAM_OPTION(workflows, queue, text()),
  ENGRAM_OPTION(workflows, kill_grace, duration(0, max_duration_ms)),
  ENGRAM_OPTION(workflows, max_output_bytes, integer(1024, 1073741824)),
  ENGRAM_OPTION(statsd, enabled, flag()),
  ENGRAM_OPTION(statsd, host, text()),
  ENGRAM_OPTION(statsd, port, integer(1, 65535)),
  ENGRAM_OPTION(statsd, prefix, text()),
  ENGRAM_OPTION(statsd, interval, duration(100, max_duration_ms)),
});

#undef ENGRAM_OPTION

// -- lookups and small helpers ------------------------------------------------

const option* find_option(std::string_view section, std::string_view key) {
  auto i = std::find_if(options.begin(), options.end(), [&](const option& x) {
    return x.section == section && x.key == key;
  });
  return i != options.end() ? &*i : nullptr;
}

const option* find_dotted(std::string_view dotted) {
  auto dot = dotted.find('.');
  if (dot == std::string_view::npos)
    return nullptr;
  return find_option(dotted.substr(0, dot), dotted.substr(dot + 1));
}

bool is_section(std::string_view name) {
  return std::any_of(options.begin(), options.end(),
                     [&](const option& x) { return x.section == name; });
}

/// The section names in file order, without duplicates.
std::vector<std::string_view> sections() {
  std::vector<std::string_view> result;
  for (auto& x : options)
    if (std::find(result.begin(), result.end(), x.section) == result.end())
      result.push_back(x.section);
  return result;
}

std::string upper(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  return result;
}

/// The environment variable that sets `x`, e.g. ENGRAM_HTTP__PORT.
std::string env_name(const option& x) {
  return "ENGRAM_" + upper(x.section) + "__" + upper(x.key);
}

std::string join(std::span<const std::string_view> items,
                 std::string_view separator) {
  std::string result;
  for (auto& item : items) {
    if (!result.empty())
      result += separator;
    result += item;
  }
  return result;
}

/// Levenshtein distance, for "did you mean" hints on typos.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    auto diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      auto above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// " (did you mean X?)" for the closest candidate within a few edits, or "".
std::string suggestion(std::string_view given,
                       const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 3; // More than two edits away is no longer a typo.
  for (auto& candidate : candidates) {
    auto d = edit_distance(ascii_lower(given), ascii_lower(candidate));
    if (d < best_distance) {
      best = &candidate;
      best_distance = d;
    }
  }
  return best ? " (did you mean " + *best + "?)" : std::string{};
}

std::vector<std::string> dotted_keys() {
  std::vector<std::string> result;
  for (auto& x : options)
    result.push_back(x.dotted());
  return result;
}

std::string_view expected_text(const spec& type) {
  switch (type.type) {
    case kind::string:
    case kind::enumeration:
      return "a string";
    case kind::integer:
      return "an integer";
    case kind::boolean:
      return "a boolean (true/false, 1/0, yes/no)";
    case kind::duration:
      return "a duration such as \"250ms\", \"5s\", \"2m\" or \"1h\" (a bare "
             "integer means milliseconds)";
  }
  return "a value";
}

// -- checking and storing -----------------------------------------------------

/// Checks `v` against the limits of `x` and stores it, or says why not.
/// `given` is the value as the user wrote it; `origin` says where.
std::optional<config_error> check_and_assign(config& cfg, const option& x,
                                             value v, std::string given,
                                             std::string_view origin) {
  auto refuse = [&](std::string reason) {
    reason += origin;
    return config_error{x.dotted(), std::move(given), std::move(reason)};
  };
  switch (x.type.type) {
    case kind::integer: {
      auto n = std::get<int64_t>(v);
      if (n < x.type.min || n > x.type.max)
        return refuse("must be between " + std::to_string(x.type.min) + " and "
                      + std::to_string(x.type.max));
      break;
    }
    case kind::duration: {
      auto ms = std::get<milliseconds>(v).count();
      if (ms < x.type.min)
        return refuse(x.type.min == 0 ? "must not be negative"
                      : x.type.min == 1
                        ? "must be greater than 0"
                        : "must be at least "
                            + format_duration(milliseconds{x.type.min}));
      if (ms > x.type.max)
        return refuse("must be at most "
                      + format_duration(milliseconds{x.type.max}));
      break;
    }
    case kind::enumeration: {
      auto& s = std::get<std::string>(v);
      auto& allowed = x.type.allowed;
      if (std::find(allowed.begin(), allowed.end(), s) == allowed.end())
        return refuse("must be one of " + join(allowed, ", "));
      break;
    }
    case kind::string:
    case kind::boolean:
      break;
  }
  x.assign(cfg, v);
  return std::nullopt;
}

std::optional<int64_t> parse_integer(std::string_view text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
    return std::nullopt;
  return n;
}

std::optional<bool> parse_bool(std::string_view text) {
  auto s = ascii_lower(text);
  if (s == "true" || s == "1" || s == "yes")
    return true;
  if (s == "false" || s == "0" || s == "no")
    return false;
  return std::nullopt;
}

/// Parses the text of an environment variable or flag as the type of `x`.
std::optional<config_error> assign_text(config& cfg, const option& x,
                                        std::string_view text,
                                        std::string_view origin) {
  auto refuse_type = [&] {
    return config_error{x.dotted(), std::string{text},
                        "expected " + std::string{expected_text(x.type)}
                          + std::string{origin}};
  };
  switch (x.type.type) {
    case kind::string:
    case kind::enumeration:
      return check_and_assign(cfg, x, std::string{text}, std::string{text},
                              origin);
    case kind::integer:
      if (auto n = parse_integer(text))
        return check_and_assign(cfg, x, *n, std::string{text}, origin);
      return refuse_type();
    case kind::boolean:
      if (auto b = parse_bool(text))
        return check_and_assign(cfg, x, *b, std::string{text}, origin);
      return refuse_type();
    case kind::duration:
      if (auto d = parse_duration(text))
        return check_and_assign(cfg, x, *d, std::string{text}, origin);
      return refuse_type();
  }
  return refuse_type();
}

// -- the TOML file ------------------------------------------------------------

/// The value as written in the file (strings without quotes).
std::string render(const toml::node& node) {
  if (auto s = node.as_string())
    return s->get();
  if (node.is_table())
    return "{...}";
  std::ostringstream out;
  node.visit([&](auto& x) { out << x; });
  return out.str();
}

/// Converts one TOML value to the type of `x`, checks and stores it.
std::optional<config_error> assign_node(config& cfg, const option& x,
                                        const toml::node& node,
                                        std::string_view origin) {
  auto given = render(node);
  auto refuse_type = [&] {
    return config_error{x.dotted(), given,
                        "expected " + std::string{expected_text(x.type)}
                          + ", got " + std::string{toml_type_name(node.type())}
                          + std::string{origin}};
  };
  switch (x.type.type) {
    case kind::string:
    case kind::enumeration:
      if (auto s = node.as_string())
        return check_and_assign(cfg, x, s->get(), given, origin);
      return refuse_type();
    case kind::integer:
      if (auto n = node.as_integer())
        return check_and_assign(cfg, x, n->get(), given, origin);
      return refuse_type();
    case kind::boolean:
      if (auto b = node.as_boolean())
        return check_and_assign(cfg, x, b->get(), given, origin);
      return refuse_type();
    case kind::duration:
      if (auto n = node.as_integer())
        return check_and_assign(cfg, x, milliseconds{n->get()}, given, origin);
      if (auto s = node.as_string()) {
        if (auto d = parse_duration(s->get()))
          return check_and_assign(cfg, x, *d, given, origin);
        return config_error{x.dotted(), given,
                            "expected " + std::string{expected_text(x.type)}
                              + std::string{origin}};
      }
      return refuse_type();
  }
  return refuse_type();
}

/// " (in <path>, line N)" for errors about a value in the file.
std::string file_origin(const std::string& path, const toml::node& node) {
  auto line = node.source().begin.line;
  if (line == 0)
    return " (in " + path + ")";
  return " (in " + path + ", line " + std::to_string(line) + ")";
}

/// Reads a whole file, or returns the reason it cannot be read.
std::variant<std::string, std::string> read_file(const std::string& path) {
  auto fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::variant<std::string, std::string>{std::in_place_index<1>,
                                                  std::strerror(errno)};
  std::string content;
  char buf[8192];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      auto err = errno;
      ::close(fd);
      return std::variant<std::string, std::string>{std::in_place_index<1>,
                                                    std::strerror(err)};
    }
    if (n == 0)
      break;
    content.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return std::variant<std::string, std::string>{std::in_place_index<0>,
                                                std::move(content)};
}

std::optional<config_error> apply_file(config& cfg, const std::string& path) {
  auto content = read_file(path);
  if (content.index() == 1)
    return config_error{
      path, {}, "cannot read the configuration file: " + std::get<1>(content)};
  toml::table root;
  try {
    root = toml::parse(std::get<0>(content), path);
  } catch (const toml::parse_error& e) {
    auto& where = e.source().begin;
    return config_error{path,
                        {},
                        "malformed TOML at line " + std::to_string(where.line)
                          + ", column " + std::to_string(where.column) + ": "
                          + std::string{e.description()}};
  }
  std::vector<std::string> known_sections;
  for (auto s : sections())
    known_sections.emplace_back(s);
  auto all_keys = dotted_keys();
  for (auto&& [section_key, section_node] : root) {
    auto section = section_key.str();
    if (!is_section(section)) {
      auto reason = section_node.is_table()
                      ? "unknown section [" + std::string{section} + "]"
                          + suggestion(section, known_sections)
                      : std::string{"unknown option: every option belongs to "
                                    "a section"};
      reason += "; sections are "
                + join(std::span<const std::string_view>{sections()}, ", ")
                + file_origin(path, section_node);
      return config_error{std::string{section},
                          section_node.is_table() ? std::string{}
                                                  : render(section_node),
                          std::move(reason)};
    }
    auto table = section_node.as_table();
    if (!table)
      return config_error{std::string{section}, render(section_node),
                          "expected a table ([" + std::string{section}
                            + "]), got "
                            + std::string{toml_type_name(section_node.type())}
                            + file_origin(path, section_node)};
    for (auto&& [key, node] : *table) {
      auto dotted = std::string{section} + "." + std::string{key.str()};
      auto x = find_option(section, key.str());
      if (!x)
        return config_error{dotted, render(node),
                            "unknown option" + suggestion(dotted, all_keys)
                              + file_origin(path, node)};
      if (auto err = assign_node(cfg, *x, node, file_origin(path, node)))
        return err;
    }
  }
  return std::nullopt;
}

// -- environment and flags ----------------------------------------------------

std::optional<config_error>
apply_env(config& cfg, const std::map<std::string, std::string>& env) {
  // The conventional names first, so that ENGRAM_<SECTION>__<KEY> wins when
  // both name the same option.
  if (auto i = env.find("DATABASE_URL"); i != env.end())
    cfg.database.url = i->second;
  if (auto i = env.find("ENGRAM_HOME"); i != env.end())
    cfg.daemon.data_dir = i->second;
  constexpr std::string_view prefix = "ENGRAM_";
  std::vector<std::string> known;
  for (auto& x : options)
    known.push_back(env_name(x));
  for (auto& [name, text] : env) {
    if (!name.starts_with(prefix) || name.find("__") == std::string::npos)
      continue;
    auto x = std::find_if(options.begin(), options.end(),
                          [&](const option& y) { return env_name(y) == name; });
    if (x == options.end())
      return config_error{name, text,
                          "environment variable names no option"
                            + suggestion(name, known)
                            + "; expected ENGRAM_<SECTION>__<KEY> in upper "
                              "case, e.g. ENGRAM_HTTP__PORT"};
    if (auto err = assign_text(cfg, *x, text,
                               " (from environment variable " + name + ")"))
      return err;
  }
  return std::nullopt;
}

std::optional<config_error>
apply_flags(config& cfg,
            const std::vector<std::pair<std::string, std::string>>& flags) {
  auto all_keys = dotted_keys();
  for (auto& [key, text] : flags) {
    auto x = find_dotted(key);
    if (!x)
      return config_error{key, text,
                          "unknown option" + suggestion(key, all_keys)
                            + " (from the command line)"};
    if (auto err = assign_text(cfg, *x, text, " (from the command line)"))
      return err;
  }
  return std::nullopt;
}

// -- checks across options ----------------------------------------------------

bool is_loopback(const std::string& address) {
  if (ascii_lower(address) == "localhost")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  auto v6_text = address;
  if (v6_text.size() > 2 && v6_text.front() == '[' && v6_text.back() == ']')
    v6_text = v6_text.substr(1, v6_text.size() - 2);
  in6_addr v6{};
  if (::inet_pton(AF_INET6, v6_text.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::optional<config_error> check_combination(const config& cfg) {
  if (cfg.http.token.empty() && !is_loopback(cfg.http.bind))
    return config_error{"http.token", cfg.http.token,
                        "a token is required when binding to a non-loopback "
                        "address (http.bind = "
                          + cfg.http.bind
                          + "); set http.token or bind to 127.0.0.1, ::1 or "
                            "localhost"};
  auto& db = cfg.database;
  if (db.reconnect_backoff_initial > db.reconnect_backoff_max)
    return config_error{"database.reconnect_backoff_initial",
                        format_duration(db.reconnect_backoff_initial),
                        "must not exceed database.reconnect_backoff_max ("
                          + format_duration(db.reconnect_backoff_max) + ")"};
  if (auto queues = parse_queue_list(cfg.tasks.queues);
      auto* reason = std::get_if<std::string>(&queues))
    return config_error{"tasks.queues", cfg.tasks.queues, *reason};
  if (cfg.tasks.heartbeat_interval >= cfg.tasks.lease)
    return config_error{"tasks.heartbeat_interval",
                        format_duration(cfg.tasks.heartbeat_interval),
                        "must be shorter than tasks.lease ("
                          + format_duration(cfg.tasks.lease) + ")"};
  return std::nullopt;
}

} // namespace

// -- public interface ---------------------------------------------------------

std::string config_error::to_string() const {
  std::string result = key;
  if (!value.empty()) {
    result += " = ";
    result += value;
  }
  result += ": ";
  result += reason;
  return result;
}

std::variant<std::vector<queue_spec>, std::string>
parse_queue_list(std::string_view text) {
  std::vector<queue_spec> result;
  auto trim = [](std::string_view x) {
    while (!x.empty() && (x.front() == ' ' || x.front() == '\t'))
      x.remove_prefix(1);
    while (!x.empty() && (x.back() == ' ' || x.back() == '\t'))
      x.remove_suffix(1);
    return x;
  };
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{}
                                           : text.substr(comma + 1);
    auto eq = item.find('=');
    if (eq == std::string_view::npos)
      return "expected name=concurrency, got '" + std::string{item} + "'";
    auto name = trim(item.substr(0, eq));
    auto count = trim(item.substr(eq + 1));
    if (name.empty() || name.size() > 63
        || !std::all_of(name.begin(), name.end(), [](char c) {
             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '_' || c == '.' || c == '-';
           }))
      return "queue name '" + std::string{name}
             + "' must be 1 to 63 characters of a-z, 0-9, '_', '.', '-'";
    int concurrency = 0;
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(),
                                     concurrency);
    if (ec != std::errc{} || end != count.data() + count.size()
        || concurrency < 1 || concurrency > 1024)
      return "concurrency of queue '" + std::string{name}
             + "' must be an integer between 1 and 1024";
    for (const auto& q : result)
      if (q.name == name)
        return "queue '" + std::string{name} + "' is listed twice";
    result.push_back({std::string{name}, concurrency});
  }
  if (result.empty())
    return "at least one queue is needed";
  return result;
}

std::variant<config, config_error> load_config(const config_sources& sources) {
  config cfg;
  auto path = sources.file;
  if (path.empty())
    if (auto i = sources.env.find("ENGRAM_CONFIG"); i != sources.env.end())
      path = i->second;
  if (!path.empty())
    if (auto err = apply_file(cfg, path))
      return *std::move(err);
  if (auto err = apply_env(cfg, sources.env))
    return *std::move(err);
  if (auto err = apply_flags(cfg, sources.flags))
    return *std::move(err);
  if (auto err = check_combination(cfg))
    return *std::move(err);
  return cfg;
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  auto digits_end = std::find_if(text.begin(), text.end(),
                                 [](char c) { return c < '0' || c > '9'; });
  auto digits = text.substr(0, static_cast<size_t>(digits_end - text.begin()));
  auto unit = text.substr(digits.size());
  if (digits.empty())
    return std::nullopt;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(),
                                   n);
  if (ec != std::errc{})
    return std::nullopt; // Overflow: too many digits for int64_t.
  int64_t factor = 0;
  if (unit.empty() || unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60 * 1000;
  else if (unit == "h")
    factor = 60 * 60 * 1000;
  else
    return std::nullopt;
  if (n > std::numeric_limits<int64_t>::max() / factor)
    return std::nullopt;
  return milliseconds{n * factor};
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0)
    return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0)
    return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::vector<std::string> config_keys() {
  return dotted_keys();
}

void apply_caf_settings(const config& cfg, caf::actor_system_config& sys_cfg) {
  auto& actors = cfg.actor_system;
  // CAF 0.17 reads these keys from its `content` settings when the
  // actor_system starts; the config has no typed members for them.
  size_t threads = actors.worker_threads > 0
                     ? static_cast<size_t>(actors.worker_threads)
                     : std::max(1u, std::thread::hardware_concurrency());
  sys_cfg.set("scheduler.max-threads", threads);
  sys_cfg.set("scheduler.policy", actors.scheduling_policy == "sharing"
                                    ? caf::atom("sharing")
                                    : caf::atom("stealing"));
  sys_cfg.set("scheduler.max-throughput",
              static_cast<size_t>(actors.max_throughput));
  sys_cfg.set("middleman.heartbeat-interval",
              caf::timespan{actors.middleman_heartbeat_interval});
}

std::map<std::string, std::string> environment() {
  std::map<std::string, std::string> result;
  for (auto entry = ::environ; entry && *entry; ++entry) {
    std::string_view text{*entry};
    auto eq = text.find('=');
    if (eq == std::string_view::npos)
      continue;
    result.emplace(std::string{text.substr(0, eq)},
                   std::string{text.substr(eq + 1)});
  }
  return result;
}

} // namespace engram
