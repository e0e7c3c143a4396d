// The composition root: parses the command line and the configuration,
// starts the embedded PostgreSQL (unless a URL is configured), applies
// migrations, starts the actor system with the supervisor and its children,
// serves HTTP, and on SIGINT/SIGTERM stops everything in reverse order.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <unistd.h>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/cache/hot_cache.hpp"
#include "actors/consolidation/coordinator.hpp"
#include "actors/consolidation/embedder.hpp"
#include "actors/consolidation/phase_actor.hpp"
#include "actors/node/node.hpp"
#include "actors/scheduler/scheduler.hpp"
#include "actors/tasks/builtin_tasks.hpp"
#include "actors/tasks/consolidation_tasks.hpp"
#include "actors/tasks/workflow_tasks.hpp"
#include "actors/workflows/definition.hpp"
#include "actors/workflows/workflow_actor.hpp"
#include "actors/tasks/platform_tasks.hpp"
#include "actors/tasks/task_system.hpp"
#include "actors/scheduler/cron_command.hpp"
#include "actors/supervisor/supervisor.hpp"
#include "engram/build_info.hpp"
#include "http/admin_routes.hpp"
#include "http/consolidation_routes.hpp"
#include "http/workflow_routes.hpp"
#include "http/conversation_routes.hpp"
#include "http/memory_routes.hpp"
#include "http/project_routes.hpp"
#include "http/readiness_probe.hpp"
#include "http/router.hpp"
#include "http/schedule_routes.hpp"
#include "http/task_routes.hpp"
#include "http/server.hpp"
#include "messages/errc.hpp"
#include "messages/storage.hpp"
#include "runtime/cli.hpp"
#include "runtime/config.hpp"
#include "runtime/embedded_postgres.hpp"
#include "runtime/embedding_provider.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/outbound_http.hpp"
#include "runtime/statsd.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"
#include "runtime/vector_kernel.hpp"
#include "storage/migration.hpp"
#include "storage/notification_listener.hpp"
#include "storage/project_session.hpp"
#include "storage/schedule_store.hpp"
#include "storage/storage_actors.hpp"
#include "storage/task_repository.hpp"
#include "storage/task_store.hpp"

namespace {

using namespace engram;
using namespace std::chrono_literals;

/// Exit statuses.
constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

std::shared_ptr<spdlog::logger> logger() {
  static auto result = log::get("engram");
  return result;
}

/// The beat schedule from [scheduler]: DESIGN §5's six entries, re-timed or
/// turned "off". The reason (naming the key) when an expression or the zone
/// is invalid.
std::variant<std::vector<sched::static_entry>, std::string>
static_schedule(const config& cfg) {
  // DESIGN §5's six, and the task queue's own retention.
  auto entries = sched::default_static_entries();
  sched::static_entry purge;
  purge.name = purge.task_name = "cleanup.purge_finished_tasks";
  purge.cron = "30 3 * * *";
  entries.push_back(purge);
  const std::pair<const char*, const std::string*> crons[] = {
    {"expire_tokens", &cfg.scheduler.expire_tokens},
    {"close_stale_sessions", &cfg.scheduler.close_stale_sessions},
    {"archive_old_conversations", &cfg.scheduler.archive_old_conversations},
    {"archive_expired_memories", &cfg.scheduler.archive_expired_memories},
    {"consolidate", &cfg.scheduler.consolidate},
    {"decay_and_expire", &cfg.scheduler.decay_and_expire},
    {"purge_finished_tasks", &cfg.scheduler.purge_finished_tasks}};
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].timezone = cfg.scheduler.timezone;
    if (*crons[i].second == "off")
      entries[i].enabled = false;
    else
      entries[i].cron = *crons[i].second;
    if (auto err = sched::validate_static_entries({entries[i]}))
      return "scheduler." + std::string{crons[i].first} + " = "
             + *crons[i].second + ": " + *err;
  }
  return entries;
}

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts later,
/// so the main thread alone takes them with sigtimedwait.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

/// Returns the signal that arrived within `timeout`, or 0.
int wait_for_signal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0)
    return "unknown";
  return buf;
}

std::optional<config> load(const command_line& cl) {
  auto sources = cl.sources;
  sources.env = environment();
  auto loaded = load_config(sources);
  if (auto* err = std::get_if<config_error>(&loaded)) {
    std::cerr << "engram: invalid configuration: " << err->to_string() << '\n';
    return std::nullopt;
  }
  auto cfg = std::get<config>(std::move(loaded));
  log::setup(cfg.log.level,
             cfg.log.format == "json" ? log::format::json : log::format::text);
  return cfg;
}

embedded_postgres_options postgres_options(const config& cfg) {
  embedded_postgres_options result;
  result.data_dir = cfg.daemon.data_dir;
  result.bin_dir = cfg.postgres.bin_dir;
  result.system_user = cfg.postgres.system_user;
  result.database = cfg.postgres.database;
  result.start_timeout = cfg.postgres.start_timeout;
  result.stop_timeout = cfg.postgres.stop_timeout;
  return result;
}

/// The database the daemon uses: the configured server, or its own
/// embedded one (started here, stopped when the returned object dies).
struct database {
  std::unique_ptr<embedded_postgres> embedded;
  std::string conninfo;
};

std::optional<database> open_database(const config& cfg) {
  database result;
  if (!cfg.database.url.empty()) {
    logger()->info("using the database at database.url; no embedded server");
    // The data directory still holds the port file.
    std::error_code ec;
    std::filesystem::create_directories(cfg.daemon.data_dir, ec);
    if (ec) {
      logger()->critical("cannot create the data directory {}: {}",
                         cfg.daemon.data_dir, ec.message());
      return std::nullopt;
    }
    result.conninfo = cfg.database.url;
    return result;
  }
  // start() creates the data directory (0755, so the server's system user
  // can traverse it).
  auto pg = embedded_postgres::start(postgres_options(cfg));
  if (!pg) {
    logger()->critical("cannot start the embedded PostgreSQL: {}",
                       describe(pg.error()));
    return std::nullopt;
  }
  result.embedded = std::move(*pg);
  result.conninfo = result.embedded->connection_string();
  return result;
}

/// Applies migrations; while the server is unreachable, retries until
/// `deadline` or a shutdown signal.
bool migrate(const std::string& conninfo, const sigset_t& signals,
             std::chrono::steady_clock::time_point deadline) {
  auto backoff = 200ms;
  for (;;) {
    auto report
      = storage::apply_migrations(conninfo, storage::embedded_migrations());
    if (report) {
      if (report->applied.empty())
        logger()->info("schema is current (version {})", report->to_version);
      else
        logger()->info("schema migrated from version {} to {}",
                       report->from_version, report->to_version);
      return true;
    }
    if (code_of(report.error()) != errc::database_unavailable
        || std::chrono::steady_clock::now() >= deadline) {
      logger()->critical("cannot migrate the database: {}",
                         describe(report.error()));
      return false;
    }
    logger()->warn("database unavailable ({}); retrying in {} ms",
                   message_of(report.error()), backoff.count());
    if (wait_for_signal(signals, backoff) != 0)
      return false;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
  }
}

/// Bounds the whole shutdown: if the process still runs `timeout` plus a
/// grace period after shutdown began (an actor or a query that does not
/// stop, a server that does not shut down), the embedded server gets an
/// immediate shutdown and the daemon exits with status 1.
void arm_shutdown_watchdog(std::chrono::milliseconds timeout,
                           pid_t postmaster) {
  std::thread{[timeout, postmaster] {
    std::this_thread::sleep_for(timeout + std::chrono::seconds{10});
    logger()->critical("shutdown did not finish within daemon.shutdown_timeout"
                       " + 10 s; exiting now");
    if (postmaster > 0)
      ::kill(postmaster, SIGQUIT);
    std::fflush(nullptr);
    std::_Exit(exit_failure);
  }}.detach();
}

void write_port_file(const config& cfg, uint16_t port) {
  auto path = std::filesystem::path{cfg.daemon.data_dir} / "engram.port";
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << port << '\n';
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    logger()->warn("cannot write {}: {}", path.string(), ec.message());
}

void register_process_metrics(metrics::registry& registry) {
  registry.get_gauge("engram_build_info",
                     "Build information; the value is always 1.",
                     {{"version", build_info::version},
                      {"git_commit", build_info::git_commit},
                      {"build_type", build_info::build_type}})
    .set(1);
  auto started = std::chrono::steady_clock::now();
  registry.add_callback_gauge(
    "engram_uptime_seconds", "Seconds since the daemon started.", {},
    [started] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now()
                                           - started)
        .count();
    });
}

int serve(const config& cfg) {
  // Workflow definitions are configuration: a refused file stops the start.
  auto definitions = workflows::load_workflows(cfg.workflows.definitions_dir);
  if (!definitions) {
    logger()->critical("workflow definitions refused: {}",
                       message_of(definitions.error()));
    return exit_usage;
  }
  auto chain_cfg = std::make_shared<workflows::chain_config>();
  for (auto& def : *definitions)
    chain_cfg->definitions.emplace(def.name, std::move(def));
  chain_cfg->artifact_root
    = cfg.workflows.artifact_root.empty()
        ? std::filesystem::path{cfg.daemon.data_dir} / "artifacts"
        : std::filesystem::path{cfg.workflows.artifact_root};
  chain_cfg->artifact_root = std::filesystem::absolute(chain_cfg->artifact_root);
  chain_cfg->queue = cfg.workflows.queue;
  chain_cfg->kill_grace = cfg.workflows.kill_grace;
  chain_cfg->max_output_bytes
    = static_cast<size_t>(cfg.workflows.max_output_bytes);
  chain_cfg->request_timeout
    = cfg.database.connect_timeout + cfg.database.statement_timeout;
  {
    std::error_code ec;
    std::filesystem::create_directories(chain_cfg->artifact_root, ec);
    if (ec) {
      logger()->critical("cannot create the artifact root {}: {}",
                         chain_cfg->artifact_root.string(), ec.message());
      return exit_failure;
    }
  }
  logger()->info("{} workflow definition(s) from {}; artifacts in {}",
                 chain_cfg->definitions.size(), cfg.workflows.definitions_dir,
                 chain_cfg->artifact_root.string());

  auto signals = block_shutdown_signals();
  auto db = open_database(cfg);
  if (!db)
    return exit_failure;
  // From here on, leaving this function stops the embedded server (fast
  // shutdown) through `db`'s destructor, on every path.
  if (!migrate(db->conninfo, signals,
               std::chrono::steady_clock::now() + cfg.postgres.start_timeout))
    return exit_failure;

  metrics::registry registry;
  register_process_metrics(registry);
  chain_cfg->metrics = &registry;
  std::unique_ptr<statsd_emitter> statsd;
  if (cfg.statsd.enabled) {
    auto made = statsd_emitter::make(
      registry, {cfg.statsd.host, static_cast<uint16_t>(cfg.statsd.port),
                 cfg.statsd.prefix, cfg.statsd.interval});
    if (!made) {
      logger()->critical("cannot set up StatsD: {}", describe(made.error()));
      return exit_failure;
    }
    statsd = std::move(*made);
    statsd->start();
    logger()->info("sending metrics to StatsD at {}:{} every {} ms",
                   cfg.statsd.host, cfg.statsd.port,
                   cfg.statsd.interval.count());
  }

  // Everything the actors refer to is declared before the actor system, so
  // it outlives every actor (the system's destructor waits for them).
  std::atomic<bool> supervisor_down{false};
  auto supervisor_failure = std::make_shared<std::string>();
  storage_options storage_opts;
  storage_opts.conninfo = db->conninfo;
  storage_opts.connect_timeout = cfg.database.connect_timeout;
  storage_opts.statement_timeout = cfg.database.statement_timeout;
  storage_opts.backoff_initial = cfg.database.reconnect_backoff_initial;
  storage_opts.backoff_max = cfg.database.reconnect_backoff_max;
  storage_opts.known_schema_version
    = storage::latest_version(storage::embedded_migrations());

  storage::node_info self_node;
  self_node.id = boost::uuids::to_string(boost::uuids::random_generator{}());
  self_node.host = cfg.node.name.empty() ? host_name() : cfg.node.name;
  self_node.pid = getpid();
  self_node.version = build_info::version;

  // Outbound HTTP and the LLM provider, shared by every task handler.
  auto outbound = outbound_http::make();
  if (!outbound) {
    logger()->critical("cannot set up outbound HTTP: {}",
                       describe(outbound.error()));
    return exit_failure;
  }
  llm_options llm_opts;
  llm_opts.provider = cfg.llm.provider;
  llm_opts.base_url = cfg.llm.base_url;
  llm_opts.model = cfg.llm.model;
  llm_opts.api_key_env = cfg.llm.api_key_env;
  llm_opts.timeout = cfg.llm.timeout;
  llm_opts.max_attempts = cfg.llm.max_attempts;
  llm_environment llm_env;
  llm_env.http = *outbound;
  auto llm = make_llm_provider(llm_opts, llm_env);
  if (!llm) {
    logger()->critical("cannot set up the LLM provider: {}",
                       describe(llm.error()));
    return exit_failure;
  }

  std::shared_ptr<llm_provider> llm_shared = std::move(*llm);
  embedding_options embedding_opts;
  embedding_opts.provider = cfg.embedding.provider;
  embedding_opts.dimension = static_cast<size_t>(cfg.embedding.dimension);
  embedding_opts.base_url = cfg.embedding.base_url;
  embedding_opts.model = cfg.embedding.model;
  embedding_opts.api_key_env = cfg.embedding.api_key_env;
  embedding_opts.timeout = cfg.embedding.timeout;
  embedding_opts.max_attempts = cfg.embedding.max_attempts;
  embedding_opts.batch_size = static_cast<size_t>(cfg.embedding.batch_size);
  embedding_opts.encoding_format = cfg.embedding.encoding_format;
  auto embedder_provider = make_embedding_provider(embedding_opts, llm_env);
  if (!embedder_provider) {
    logger()->critical("cannot set up the embedding provider: {}",
                       describe(embedder_provider.error()));
    return exit_failure;
  }
  std::shared_ptr<embedding_provider> embeddings
    = std::move(*embedder_provider);

  // The task names this node runs; filled once, read by every worker.
  tasks::task_registry task_names;
  tasks::register_builtin_tasks(task_names);
  tasks::register_platform_tasks(task_names);
  tasks::register_consolidation_tasks(task_names);
  tasks::register_workflow_tasks(task_names, cfg.workflows.queue);
  tasks::task_services task_services;
  task_services.request_timeout = cfg.database.statement_timeout
                                  + cfg.database.connect_timeout;
  // Stored as their interfaces: handlers get<http_client>("http") and
  // get<llm_provider>("llm").
  task_services.extra["http"]
    = std::static_pointer_cast<void>(std::shared_ptr<http_client>(*outbound));
  task_services.extra["llm"] = std::static_pointer_cast<void>(llm_shared);

  task_system_options task_opts;
  task_opts.queues
    = std::get<std::vector<queue_spec>>(parse_queue_list(cfg.tasks.queues));
  task_opts.queue_defaults.prefetch = cfg.tasks.prefetch;
  task_opts.queue_defaults.lease = cfg.tasks.lease;
  task_opts.queue_defaults.heartbeat_interval = cfg.tasks.heartbeat_interval;
  task_opts.queue_defaults.poll_interval = cfg.tasks.poll_interval;
  // Running attempts get most of the shutdown budget to finish.
  task_opts.queue_defaults.drain_timeout = cfg.daemon.shutdown_timeout / 2;
  task_opts.queue_defaults.worker_id = self_node.host + "/" + self_node.id.substr(0, 8);
  task_opts.reclaim_interval = cfg.tasks.reclaim_interval;
  task_opts.spawn_storage = [&storage_opts](caf::actor_system& sys) {
    return spawn_storage_worker(sys, storage_opts);
  };
  // Each queue's claimer and acker: claims and single completions outside
  // a transaction block, and an idle queue's claimer claims on a
  // notification itself (storage/task_store.hpp).
  task_opts.spawn_task_store = [&storage_opts](caf::actor_system& sys) {
    return spawn_task_store(sys, storage_opts, real_clock());
  };
  task_opts.spawn_listener = [&storage_opts](caf::actor_system& sys,
                                             notification_callback cb) {
    listener_options lopts;
    lopts.storage = storage_opts;
    lopts.channels = {storage::tasks_channel};
    return spawn_notification_listener(sys, lopts, std::move(cb));
  };

  scheduler_options sched_opts;
  sched_opts.entries
    = std::get<std::vector<sched::static_entry>>(static_schedule(cfg));
  sched_opts.lead = cfg.scheduler.enabled;
  sched_opts.tick_interval = cfg.scheduler.tick_interval;
  sched_opts.lock_retry = cfg.scheduler.lock_retry;
  sched_opts.reload_interval = cfg.scheduler.reload_interval;
  sched_opts.store_timeout
    = cfg.database.connect_timeout + cfg.database.statement_timeout + 5s;
  sched_opts.task_defaults = [&task_names](const std::string& name) {
    return task_names.request_for(name);
  };
  sched_opts.metrics = &registry;
  sched_opts.spawn_store = [&storage_opts](caf::actor_system& sys) {
    return spawn_schedule_store(sys, schedule_store_options{storage_opts});
  };
  sched_opts.spawn_listener = [&storage_opts](caf::actor_system& sys,
                                              notification_callback cb) {
    listener_options lopts;
    lopts.storage = storage_opts;
    lopts.channels = {schedules_channel};
    return spawn_notification_listener(sys, lopts, std::move(cb));
  };

  caf::actor_system_config sys_cfg;
  apply_caf_settings(cfg, sys_cfg);
  caf::actor_system sys{sys_cfg};
  task_services.system = &sys;

  std::vector<child_spec> children{
    {storage_pool_name,
     [&](caf::actor_system& sys) {
       return caf::actor_cast<caf::actor>(spawn_storage_pool(
         sys, storage_opts, static_cast<size_t>(cfg.database.pool_size),
         &registry));
     }},
    {"node",
     [&](caf::actor_system& sys) {
       return caf::actor_cast<caf::actor>(
         sys.spawn(node, self_node, cfg.node.heartbeat_interval));
     }},
    {hot_cache_name,
     [&](caf::actor_system& sys) {
       hot_cache_options opts;
       opts.per_agent = cfg.consolidation.hot_memories_per_agent;
       return caf::actor_cast<caf::actor>(spawn_hot_cache(sys, opts));
     }},
    // Before the task system (its tasks ask the coordinator), so it stops
    // after the task system's drain.
    {consolidation_name,
     [&](caf::actor_system& sys) {
       consolidation::phase_services services;
       services.llm = llm_shared;
       services.embedder = embeddings;
       if (cfg.consolidation.kernel_threads > 0)
         vec::set_kernel_threads(
           static_cast<size_t>(cfg.consolidation.kernel_threads));
       coordinator_options opts;
       for (int i = 0; i < cfg.consolidation.max_projects_in_flight; ++i)
         opts.sessions.push_back(spawn_project_session(sys, storage_opts));
       for (const auto& phase : consolidation::phase_names())
         if (phase != "invalidate")
           opts.phases.emplace(phase,
                               spawn_phase_actor(sys, phase, services));
       // Storage and the hot cache are looked up at each use: either may
       // be restarted by the supervisor.
       opts.metrics = &registry;
       return caf::actor_cast<caf::actor>(
         spawn_consolidation_coordinator(sys, std::move(opts)));
     }},
    // Before the task system too: its step tasks wait on the chains.
    {workflows_name,
     [&](caf::actor_system& sys) {
       return caf::actor_cast<caf::actor>(spawn_workflow_actor(
         sys, std::shared_ptr<const workflows::chain_config>(chain_cfg)));
     }},
    {task_system_name,
     [&](caf::actor_system& sys) {
       return caf::actor_cast<caf::actor>(spawn_task_system(
         sys, task_opts, task_names, task_services, &registry));
     },
     cfg.daemon.shutdown_timeout},
    // After the task system, so it stops first: no fire during the drain.
    {scheduler_name,
     [&](caf::actor_system& sys) {
       return caf::actor_cast<caf::actor>(spawn_scheduler(sys, sched_opts));
     }},
  };
  supervisor_options sup_opts;
  sup_opts.max_restarts = static_cast<uint64_t>(cfg.supervisor.max_restarts);
  sup_opts.restart_window = cfg.supervisor.restart_window;
  sup_opts.metrics = &registry;
  auto sup = sys.spawn(supervisor, std::move(children), sup_opts);

  // Learn when the supervisor goes down (escalation or shutdown).
  auto watcher = sys.spawn(
    [sup, &supervisor_down, supervisor_failure](caf::event_based_actor* self)
      -> caf::behavior {
      self->monitor(sup);
      self->set_down_handler([=, &supervisor_down](caf::down_msg& msg) {
        if (msg.reason && msg.reason != caf::exit_reason::normal)
          *supervisor_failure = describe(msg.reason);
        supervisor_down = true;
        self->quit();
      });
      return {[](atom::tick) {}};
    });

  // The supervisor starts its children in its init; once it answers, every
  // child runs and is in the registry, so /readyz can find the storage pool.
  {
    caf::scoped_actor self{sys};
    bool started = false;
    self->request(sup, std::chrono::seconds{30}, atom::stats_v)
      .receive([&](std::vector<child_status>&) { started = true; },
               [&](caf::error& err) {
                 logger()->critical("the supervisor did not start: {}",
                                    describe(err));
               });
    if (!started)
      return exit_failure;
  }

  // HTTP last: it serves what the actors provide.
  io_threads io{2};
  http::router router;
  http::admin_deps deps;
  deps.check_ready = [&sys, timeout = cfg.http.request_timeout](
                       std::function<void(http::readiness)> done) {
    http::probe_readiness(sys, timeout, std::move(done));
  };
  deps.metrics = &registry;
  deps.version = build_info::version;
  deps.git_commit = build_info::git_commit;
  deps.build_type = build_info::build_type;
  deps.node_name = self_node.host;
  http::add_admin_routes(router, deps);
  http::task_route_deps task_deps;
  task_deps.sys = &sys;
  task_deps.registry = &task_names;
  task_deps.timeout = cfg.http.request_timeout;
  http::add_task_routes(router, task_deps);
  http::conversation_route_deps conversation_deps;
  conversation_deps.sys = &sys;
  conversation_deps.registry = &task_names;
  conversation_deps.services = &task_services;
  conversation_deps.background_enabled = cfg.background.enabled;
  conversation_deps.timeout = cfg.http.request_timeout;
  http::add_conversation_routes(router, conversation_deps);
  http::schedule_route_deps schedule_deps;
  schedule_deps.sys = &sys;
  schedule_deps.timeout = cfg.http.request_timeout;
  http::add_schedule_routes(router, schedule_deps);
  http::project_route_deps project_deps;
  project_deps.sys = &sys;
  project_deps.timeout = cfg.http.request_timeout;
  http::add_project_routes(router, project_deps);
  http::memory_route_deps memory_deps;
  memory_deps.sys = &sys;
  memory_deps.embedder = spawn_embedder(sys, embeddings);
  memory_deps.timeout = cfg.http.request_timeout;
  // An import may not outlast the server's handler timeout (a 504 whose
  // import commits later would be a lie).
  memory_deps.import_timeout = cfg.http.request_timeout;
  http::add_memory_routes(router, memory_deps);
  http::consolidation_route_deps consolidation_deps;
  consolidation_deps.sys = &sys;
  consolidation_deps.timeout = cfg.http.request_timeout;
  // A dry run may not outlast the server's handler timeout either: the
  // client would get a 504 while the plan kept a project session busy.
  consolidation_deps.dry_run_timeout = cfg.http.request_timeout;
  http::add_consolidation_routes(router, consolidation_deps);
  http::workflow_route_deps workflow_deps;
  workflow_deps.sys = &sys;
  workflow_deps.timeout = cfg.http.request_timeout;
  workflow_deps.artifact_root = chain_cfg->artifact_root;
  http::add_workflow_routes(router, workflow_deps);
  http::server_options http_opts;
  http_opts.bind = cfg.http.bind;
  http_opts.port = static_cast<uint16_t>(cfg.http.port);
  http_opts.token = cfg.http.token;
  http_opts.max_header_bytes = static_cast<uint32_t>(cfg.http.max_header_bytes);
  http_opts.max_body_bytes = static_cast<uint64_t>(cfg.http.max_body_bytes);
  http_opts.read_timeout = cfg.http.read_timeout;
  http_opts.idle_timeout = cfg.http.idle_timeout;
  http_opts.write_timeout = cfg.http.read_timeout;
  // Handlers give up on the actors after request_timeout; the server's own
  // backstop only catches a handler that never answers.
  http_opts.handler_timeout = cfg.http.request_timeout + std::chrono::seconds{1};
  http_opts.version = build_info::version;
  http::server server{io.context(), http_opts, std::move(router), registry};
  if (auto err = server.start()) {
    logger()->critical("cannot serve HTTP on {}:{}: {}", cfg.http.bind,
                       cfg.http.port, describe(err));
    caf::anon_send(sup, atom::shutdown_v);
    auto deadline
      = std::chrono::steady_clock::now() + cfg.daemon.shutdown_timeout;
    while (!supervisor_down && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    return exit_failure;
  }
  write_port_file(cfg, server.port());
  logger()->info("engram {} serving on http://{}:{} (node {})",
                 build_info::version, cfg.http.bind, server.port(),
                 self_node.id);

  int sig = 0;
  bool database_lost = false;
  while (!supervisor_down && sig == 0 && !database_lost) {
    sig = wait_for_signal(signals, 200ms);
    database_lost = db->embedded && !db->embedded->running();
  }
  if (sig != 0)
    logger()->info("received {}; shutting down", strsignal(sig));
  if (database_lost)
    logger()->critical("the embedded PostgreSQL exited unexpectedly (see {}); "
                       "shutting down",
                       db->embedded->log_file().string());
  arm_shutdown_watchdog(cfg.daemon.shutdown_timeout,
                        db->embedded ? db->embedded->pid() : 0);

  // Reverse order: stop taking requests, stop the actors (the supervisor
  // stops its children in reverse start order), then the database.
  auto deadline = std::chrono::steady_clock::now() + cfg.daemon.shutdown_timeout;
  server.stop();
  io.stop();
  caf::anon_send(sup, atom::shutdown_v);
  while (!supervisor_down && std::chrono::steady_clock::now() < deadline)
    if (wait_for_signal(signals, 50ms) != 0)
      logger()->info("shutdown already in progress");
  if (!supervisor_down) {
    logger()->error("actors did not stop within daemon.shutdown_timeout; "
                    "stopping the database and exiting");
    db.reset();
    std::fflush(nullptr);
    std::_Exit(exit_failure);
  }
  std::error_code ec;
  std::filesystem::remove(
    std::filesystem::path{cfg.daemon.data_dir} / "engram.port", ec);
  if (database_lost)
    return exit_failure;
  if (!supervisor_failure->empty()) {
    logger()->critical("stopped after a supervised actor failed: {}",
                       *supervisor_failure);
    return exit_failure;
  }
  logger()->info("stopped");
  return exit_ok;
}

int migrate_command(const config& cfg) {
  auto signals = block_shutdown_signals();
  auto db = open_database(cfg);
  if (!db)
    return exit_failure;
  return migrate(db->conninfo, signals, std::chrono::steady_clock::now())
           ? exit_ok
           : exit_failure;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_command_line(args);
  if (auto* err = std::get_if<usage_error>(&parsed)) {
    std::cerr << "engram: " << err->message << "\n\n" << usage_text();
    return exit_usage;
  }
  auto& cl = std::get<command_line>(parsed);
  if (cl.command == "help") {
    std::cout << usage_text();
    return exit_ok;
  }
  if (cl.command == "version") {
    std::cout << "engram " << build_info::version << " ("
              << build_info::git_commit << ", " << build_info::build_type
              << ")\n";
    return exit_ok;
  }
  if (cl.command == "cron") {
    // Pure computation: no configuration, no database.
    auto now = std::chrono::floor<std::chrono::seconds>(
      std::chrono::system_clock::now());
    return cron::run_next_command(cl.cron, now, std::cout, std::cerr);
  }
  auto cfg = load(cl);
  if (!cfg)
    return exit_usage;
  if (auto schedule = static_schedule(*cfg);
      auto* reason = std::get_if<std::string>(&schedule)) {
    std::cerr << "engram: " << *reason << "\n";
    return exit_usage;
  }
  try {
    return cl.command == "migrate" ? migrate_command(*cfg) : serve(*cfg);
  } catch (const std::exception& e) {
    logger()->critical("fatal: {}", e.what());
    return exit_failure;
  }
}
