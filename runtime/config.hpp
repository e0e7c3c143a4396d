#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <caf/fwd.hpp>

namespace engram {

/// Every option of the daemon, with its default. `conf/engram.toml` lists each
/// one with the same default and a one-line comment; tests keep both in step.
struct config {
  struct database_section {
    /// Connection URI of an existing server; empty = embedded PostgreSQL.
    std::string url;
    /// Number of storage actors, each owning one connection (1..64).
    int pool_size = 4;
    /// How long one connection attempt may take.
    std::chrono::milliseconds connect_timeout{5000};
    /// Server-side statement_timeout for every storage connection (0 = off).
    std::chrono::milliseconds statement_timeout{30000};
    /// First and largest delay between reconnect attempts.
    std::chrono::milliseconds reconnect_backoff_initial{100};
    std::chrono::milliseconds reconnect_backoff_max{10000};

    bool operator==(const database_section&) const = default;
  } database;

  struct daemon_section {
    /// Where the embedded cluster, the port file and other state live.
    std::string data_dir = "./var/engram";
    /// Upper bound for a graceful shutdown before the daemon exits anyway.
    std::chrono::milliseconds shutdown_timeout{20000};

    bool operator==(const daemon_section&) const = default;
  } daemon;

  struct postgres_section {
    /// Directory with initdb/postgres/pg_ctl; empty = newest under /usr/lib/postgresql.
    std::string bin_dir;
    /// System user that runs the embedded server when engram runs as root.
    std::string system_user = "postgres";
    /// Database created and used in the embedded cluster.
    std::string database = "engram";
    /// How long the embedded server may take to accept connections.
    std::chrono::milliseconds start_timeout{60000};
    /// How long a fast shutdown may take before the server is killed.
    std::chrono::milliseconds stop_timeout{30000};

    bool operator==(const postgres_section&) const = default;
  } postgres;

  struct http_section {
    /// Address to bind; anything but loopback requires a token.
    std::string bind = "127.0.0.1";
    /// TCP port; 0 picks a free one (logged and written to <data_dir>/engram.port).
    int port = 8080;
    /// Bearer token required on every route but /healthz and /readyz; empty = none.
    std::string token;
    /// Largest accepted request header block (bytes) (1024..1048576).
    int64_t max_header_bytes = 16384;
    /// Largest accepted request body (bytes) (0..1073741824).
    int64_t max_body_bytes = 16777216;
    /// Time to read one whole request once its first byte arrived.
    std::chrono::milliseconds read_timeout{15000};
    /// How long an idle keep-alive connection stays open.
    std::chrono::milliseconds idle_timeout{60000};
    /// How long a handler waits for the actors it asks.
    std::chrono::milliseconds request_timeout{10000};

    bool operator==(const http_section&) const = default;
  } http;

  struct log_section {
    /// trace, debug, info, warn, error, critical or off.
    std::string level = "info";
    /// text or json.
    std::string format = "text";

    bool operator==(const log_section&) const = default;
  } log;

  struct supervisor_section {
    /// A child restarted more than max_restarts times within restart_window escalates.
    int max_restarts = 5;
    std::chrono::milliseconds restart_window{60000};

    bool operator==(const supervisor_section&) const = default;
  } supervisor;

  struct node_section {
    /// Node name in the nodes table; empty = hostname.
    std::string name;
    /// How often the node row's heartbeat_at is refreshed.
    std::chrono::milliseconds heartbeat_interval{5000};

    bool operator==(const node_section&) const = default;
  } node;

  struct actor_system_section {
    /// CAF scheduler worker threads; 0 = one per core.
    int worker_threads = 0;
    /// CAF scheduling policy: sharing (one queue, idle workers wake at once)
    /// or stealing (idle workers poll with growing sleeps: slower to react
    /// when the daemon is mostly idle).
    std::string scheduling_policy = "sharing";
    /// Messages an actor may handle before yielding its thread.
    int max_throughput = 300;
    /// CAF middleman heartbeat between nodes; 0 = off.
    std::chrono::milliseconds middleman_heartbeat_interval{0};

    bool operator==(const actor_system_section&) const = default;
  } actor_system;

  struct background_section {
    /// Run requested work (extraction) through the durable queue; when off,
    /// or when the queue cannot be reached, it runs inline in the daemon.
    bool enabled = true;

    bool operator==(const background_section&) const = default;
  } background;

  struct tasks_section {
    /// Queues this node works on, as name=concurrency pairs.
    std::string queues = "default=4, memory=2, agents=4, workflows=4";
    /// Tasks claimed ahead of free workers, per queue (0..100000).
    int prefetch = 512;
    /// How long a claimed task stays leased without a heartbeat.
    std::chrono::milliseconds lease{30000};
    /// How often a worker renews the leases it holds (less than lease).
    std::chrono::milliseconds heartbeat_interval{10000};
    /// Safety-net poll for due tasks when no notification arrives.
    std::chrono::milliseconds poll_interval{1000};
    /// How often expired leases are reclaimed.
    std::chrono::milliseconds reclaim_interval{5000};

    bool operator==(const tasks_section&) const = default;
  } tasks;

  struct scheduler_section {
    /// This node competes for the scheduler lock and fires schedules (the
    /// schedule API is served either way).
    bool enabled = true;
    /// Longest wait between two looks at the clock.
    std::chrono::milliseconds tick_interval{1000};
    /// How often a standby tries the lock and the leader confirms it.
    std::chrono::milliseconds lock_retry{5000};
    /// How often the leader reloads dynamic schedules besides NOTIFY.
    std::chrono::milliseconds reload_interval{60000};
    /// Time zone of the static entries below.
    std::string timezone = "UTC";
    /// The static entries (DESIGN §5): a cron expression, or "off".
    std::string expire_tokens = "0 * * * *";
    std::string close_stale_sessions = "*/15 * * * *";
    std::string archive_old_conversations = "0 3 * * *";
    std::string archive_expired_memories = "0 4 * * *";
    std::string consolidate = "0 2 * * *";
    std::string decay_and_expire = "0 5 * * *";
    /// The task queue's retention (cleanup.purge_finished_tasks): finished
    /// tasks older than 7 days (dead ones: 30) are deleted.
    std::string purge_finished_tasks = "30 3 * * *";

    bool operator==(const scheduler_section&) const = default;
  } scheduler;

  struct llm_section {
    /// "extractive" (built in, offline, deterministic) or "openai" (any
    /// OpenAI-compatible /v1/chat/completions).
    std::string provider = "extractive";
    /// Base URL of the OpenAI-compatible API.
    std::string base_url = "https://api.openai.com";
    std::string model = "gpt-4o-mini";
    /// Name of the environment variable that holds the API key.
    std::string api_key_env = "OPENAI_API_KEY";
    /// Bound on one HTTP attempt.
    std::chrono::milliseconds timeout{60000};
    /// Attempts per completion on timeouts, 429 and 5xx (1..20).
    int max_attempts = 3;

    bool operator==(const llm_section&) const = default;
  } llm;

  struct embedding_section {
    /// "hashing" (built in, offline, deterministic) or "openai" (any
    /// OpenAI-compatible /v1/embeddings).
    std::string provider = "hashing";
    /// Vector length of the hashing embedder (8..8192); openai: the model's.
    int dimension = 384;
    /// Base URL of the OpenAI-compatible API.
    std::string base_url = "https://api.openai.com";
    std::string model = "text-embedding-3-small";
    /// Name of the environment variable that holds the API key.
    std::string api_key_env = "OPENAI_API_KEY";
    /// Bound on one HTTP attempt.
    std::chrono::milliseconds timeout{60000};
    /// Attempts per request on timeouts, 429 and 5xx (1..20).
    int max_attempts = 3;
    /// Texts per request to the openai provider (1..2048).
    int batch_size = 256;
    /// How the openai provider asks for vectors: "float" (JSON numbers) or
    /// "base64" (little-endian float32, a quarter of the bytes; OpenAI's
    /// API supports it, some compatible servers do not). Both are read.
    std::string encoding_format = "float";

    bool operator==(const embedding_section&) const = default;
  } embedding;

  struct consolidation_section {
    /// Projects this node consolidates at the same time (1..256).
    int max_projects_in_flight = 4;
    /// Memories per agent kept in the hot tier (1..1000).
    int hot_memories_per_agent = 20;
    /// Threads one phase's similarity kernel and per-group planning run on
    /// at once (0: one per CPU, at most four; 1..64).
    int kernel_threads = 0;

    bool operator==(const consolidation_section&) const = default;
  } consolidation;

  struct workflows_section {
    /// Directory of the workflow definitions (`<name>.toml`), read at start.
    std::string definitions_dir = "conf/workflows";
    /// Where step artifacts are kept; empty = `<data_dir>/artifacts`.
    std::string artifact_root;
    /// Queue of the `workflow.step` tasks (list it in tasks.queues).
    std::string queue = "workflows";
    /// Between SIGTERM and SIGKILL when a step's process group is stopped.
    std::chrono::milliseconds kill_grace{5000};
    /// Largest accepted stdout of a step in bytes (1024..1073741824).
    int max_output_bytes = 16777216;

    bool operator==(const workflows_section&) const = default;
  } workflows;

  struct statsd_section {
    /// Also send the metrics to a StatsD server over UDP.
    bool enabled = false;
    std::string host = "127.0.0.1";
    int port = 8125;
    /// Prepended to every metric name.
    std::string prefix = "engram";
    /// How often counters (as increases) and gauges are sent.
    std::chrono::milliseconds interval{10000};

    bool operator==(const statsd_section&) const = default;
  } statsd;

  /// Field-wise comparison (tests compare a loaded file with the defaults).
  bool operator==(const config&) const = default;
};

/// Why a configuration was refused: the key, the offending value and why.
struct config_error {
  /// Dotted key, e.g. "http.port" (or the file path for unreadable files).
  std::string key;
  /// The value as given.
  std::string value;
  /// Why it was refused.
  std::string reason;

  /// "http.port = 70000: must be between 0 and 65535".
  [[nodiscard]] std::string to_string() const;
};

/// Where the options come from, lowest precedence first: defaults, the TOML
/// file, the environment, then command-line flags.
struct config_sources {
  /// Path of the TOML file; empty = no file (defaults only).
  std::string file{};
  /// The process environment (name -> value). Honoured: DATABASE_URL
  /// (database.url), ENGRAM_HOME (daemon.data_dir), ENGRAM_CONFIG (file, when
  /// none is given), ENGRAM_<SECTION>__<KEY> (e.g. ENGRAM_HTTP__PORT=0).
  std::map<std::string, std::string> env{};
  /// Overrides from flags: dotted key -> value text, e.g. {"http.port","0"}.
  std::vector<std::pair<std::string, std::string>> flags{};
};

/// Builds the configuration. Unknown keys (in the file, in ENGRAM_*__* names,
/// or in flags), wrong types, out-of-range values and unreadable or malformed
/// files are refused.
[[nodiscard]] std::variant<config, config_error>
load_config(const config_sources& sources);

/// One queue a node works on.
struct queue_spec {
  std::string name;
  int concurrency = 1;

  bool operator==(const queue_spec&) const = default;
};

/// Parses tasks.queues ("default=4, memory=2"): names of [a-z0-9_.-], each
/// once, concurrency 1..1024. Returns the reason on failure.
[[nodiscard]] std::variant<std::vector<queue_spec>, std::string>
parse_queue_list(std::string_view text);

/// Parses "250ms", "5s", "2m", "1h" (a bare integer means milliseconds).
[[nodiscard]] std::optional<std::chrono::milliseconds>
parse_duration(std::string_view text);

/// Renders a duration with the largest unit that divides it: "2m", "90s",
/// "250ms" (0 is "0ms"); parse_duration reads it back. For messages about
/// durations, here and in the workflow definitions.
[[nodiscard]] std::string format_duration(std::chrono::milliseconds d);

/// The dotted keys of every option, in file order (for docs and tests).
[[nodiscard]] std::vector<std::string> config_keys();

/// Writes CAF's own settings (scheduler threads, policy, throughput, middleman
/// heartbeat) derived from `cfg` into `sys_cfg`, using CAF 0.17's keys
/// ("scheduler.max-threads", ...). Our options never live under those keys.
void apply_caf_settings(const config& cfg, caf::actor_system_config& sys_cfg);

/// Reads the process environment into a map.
[[nodiscard]] std::map<std::string, std::string> environment();

} // namespace engram
