// bench/tasks: the durable task queue end to end, in one process, against a
// real embedded PostgreSQL with fsync and synchronous_commit on.
//
//  1. 20,000 no-op tasks enqueued in bulk (batches of 10,000, one transaction
//     each) with no worker running: enqueue/s; then workers start and drain
//     them: drain/s; then 20,000 more enqueued in bulk while the workers run:
//     end-to-end tasks/s (first enqueue to last completion committed).
//  2. enqueue→start latency over 200 single tasks on an idle queue (after
//     10 unmeasured ones that open connections and prepare statements): from
//     the enqueue request to the handler starting (the enqueue's commit and
//     NOTIFY, the wake-up, the claim's commit and the hand-off to a slot).
//  3. A 5-step chain of no-op tasks, each step enqueuing the next in the
//     transaction that records its own success: first enqueue to the last
//     step's start, over 200 chains.
//
// Prints its figures and the machine's load average; run by `make bench`.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <pqxx/pqxx>

#include "actors/tasks/task_system.hpp"
#include "runtime/config.hpp"
#include "runtime/log.hpp"
#include "storage/migration.hpp"
#include "storage/notification_listener.hpp"
#include "storage/storage_actors.hpp"
#include "storage/task_store.hpp"
#include "tests/support/postgres_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using steady = std::chrono::steady_clock;

namespace {

std::string load_average() {
  std::ifstream in{"/proc/loadavg"};
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double ms(steady::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double percentile(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

/// Signals from handlers to the benchmark driver.
struct probe {
  std::mutex mtx;
  std::condition_variable cv;
  std::atomic<int64_t> noops{0};
  bool started = false;
  steady::time_point started_at;

  void mark() {
    std::lock_guard guard{mtx};
    started = true;
    started_at = steady::now();
    cv.notify_all();
  }

  steady::time_point wait() {
    std::unique_lock lock{mtx};
    if (!cv.wait_for(lock, 10s, [this] { return started; }))
      throw std::runtime_error("a task did not start within 10 s");
    started = false;
    return started_at;
  }
};

int64_t count_succeeded(pqxx::connection& conn) {
  pqxx::nontransaction tx{conn};
  return tx.exec1("SELECT count(*) FROM engram.tasks WHERE status = "
                  "'succeeded' AND name = 'bench.noop'")[0]
    .as<int64_t>();
}

void wait_for_succeeded(pqxx::connection& conn, int64_t n) {
  auto deadline = steady::now() + 300s;
  while (count_succeeded(conn) < n) {
    if (steady::now() > deadline)
      throw std::runtime_error("tasks did not finish within 300 s");
    std::this_thread::sleep_for(2ms);
  }
}

} // namespace

int main() {
  log::setup("warn", log::format::text);
  std::printf("bench/tasks — machine load before: %s\n", load_average().c_str());
  test::throwaway_postgres pg{"engram"};
  auto db = pg.connection_string();
  if (!storage::apply_migrations(db, storage::embedded_migrations()))
    return 1;
  {
    pqxx::connection c{db};
    pqxx::nontransaction tx{c};
    std::printf("postgres: fsync=%s synchronous_commit=%s\n",
                tx.exec1("SHOW fsync")[0].c_str(),
                tx.exec1("SHOW synchronous_commit")[0].c_str());
  }

  probe signals;
  tasks::task_registry registry;
  registry.add("bench.noop", nullptr, [&signals](tasks::task_context&) {
    signals.noops.fetch_add(1, std::memory_order_relaxed);
    return json::value{nullptr};
  });
  registry.add("bench.mark", nullptr, [&signals](tasks::task_context&) {
    signals.mark();
    return json::value{nullptr};
  });
  registry.add("bench.chain", nullptr, [&signals](tasks::task_context& ctx) {
    auto left = ctx.args().integer("left", 0, 100);
    if (left == 0) {
      signals.mark();
    } else {
      tasks::enqueue_request next;
      next.name = "bench.chain";
      next.queue = "bench";
      next.args_json = "{\"left\":" + std::to_string(left - 1) + "}";
      ctx.enqueue_on_success(std::move(next));
    }
    return json::value{nullptr};
  });
  tasks::task_services services;
  storage_options storage;
  storage.conninfo = db;
  storage.known_schema_version
    = storage::latest_version(storage::embedded_migrations());

  // The daemon's defaults for the actor system (conf/engram.toml).
  caf::actor_system_config cfg;
  config defaults;
  if (const char* policy = std::getenv("ENGRAM_BENCH_POLICY"))
    defaults.actor_system.scheduling_policy = policy;
  apply_caf_settings(defaults, cfg);
  std::printf("actor system: %s scheduler\n",
              defaults.actor_system.scheduling_policy.c_str());
  caf::actor_system sys{cfg};
  services.system = &sys;
  auto enqueuer = spawn_storage_worker(sys, storage);
  caf::scoped_actor self{sys};
  auto enqueue = [&](std::vector<tasks::enqueue_request> reqs) {
    bool ok = false;
    self
      ->request(enqueuer, 60s,
                tasks::enqueue_tasks{std::move(reqs),
                                     to_epoch_us(real_clock().now())})
      .receive([&](std::vector<tasks::enqueue_result>&) { ok = true; },
               [&](caf::error& err) {
                 std::fprintf(stderr, "enqueue failed: %s\n",
                              describe(err).c_str());
               });
    if (!ok)
      throw std::runtime_error("enqueue failed");
  };
  auto noops = [](size_t n) {
    tasks::enqueue_request req;
    req.name = "bench.noop";
    req.queue = "bench";
    return std::vector<tasks::enqueue_request>(n, req);
  };

  task_system_options opts;
  opts.queues = {{"bench", 4}};
  opts.queue_defaults.worker_id = "bench";
  opts.queue_defaults.prefetch = 2048;
  opts.queue_defaults.max_claim_batch = 1024;
  opts.spawn_storage = [storage](caf::actor_system& sys) {
    return spawn_storage_worker(sys, storage);
  };
  opts.spawn_task_store = [storage](caf::actor_system& sys) {
    return spawn_task_store(sys, storage, real_clock());
  };
  opts.spawn_listener = [storage](caf::actor_system& sys,
                                  notification_callback cb) {
    listener_options lopts;
    lopts.storage = storage;
    lopts.channels = {"engram_tasks"};
    return spawn_notification_listener(sys, lopts, std::move(cb));
  };

  auto start_workers = [&] {
    auto handle = spawn_task_system(sys, opts, registry, services, nullptr);
    std::this_thread::sleep_for(300ms); // connected and listening
    return handle;
  };
  auto stop_workers = [&](task_system_actor& handle) {
    self->monitor(handle);
    self->send_exit(handle, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {});
  };

  // -- enqueue → start and chains ---------------------------------------------
  auto latency = [&](const char* when) {
    std::vector<double> latencies;
    std::vector<double> enqueues;
    // Warm-up, not measured: the first enqueue opens the enqueuer's
    // connection and prepares its statement (~5 ms), which an idle daemon
    // has done long before.
    for (int i = 0; i < 10; ++i) {
      tasks::enqueue_request req;
      req.name = "bench.mark";
      req.queue = "bench";
      enqueue({req});
      signals.wait();
      std::this_thread::sleep_for(2ms);
    }
    for (int i = 0; i < 200; ++i) {
      tasks::enqueue_request req;
      req.name = "bench.mark";
      req.queue = "bench";
      auto start = steady::now();
      enqueue({req});
      enqueues.push_back(ms(steady::now() - start));
      latencies.push_back(ms(signals.wait() - start));
      std::this_thread::sleep_for(2ms);
    }
    std::printf("enqueue→start latency, 200 single tasks, %s: p50 %.2f ms, "
                "p99 %.2f ms\n",
                when, percentile(latencies, 0.50), percentile(latencies, 0.99));
    std::printf("  of which the enqueue (request to its committed reply): "
                "p50 %.2f ms, p99 %.2f ms\n",
                percentile(enqueues, 0.50), percentile(enqueues, 0.99));
  };
  auto chains = [&](const char* when) {
    std::vector<double> xs;
    for (int i = 0; i < 200; ++i) {
      tasks::enqueue_request req;
      req.name = "bench.chain";
      req.queue = "bench";
      req.args_json = R"({"left":4})";
      auto start = steady::now();
      enqueue({req});
      xs.push_back(ms(signals.wait() - start));
      std::this_thread::sleep_for(2ms);
    }
    std::printf("5-step chain (each step enqueues the next durably), 200 "
                "chains, %s: p50 %.2f ms, p99 %.2f ms\n",
                when, percentile(xs, 0.50), percentile(xs, 0.99));
  };

  // -- 1. an idle daemon ------------------------------------------------------
  auto workers = start_workers();
  latency("idle queue");
  chains("idle queue");
  stop_workers(workers);

  // -- 2. bulk ----------------------------------------------------------------
  constexpr int64_t bulk = 20000;
  pqxx::connection watcher{db};
  auto t0 = steady::now();
  enqueue(noops(10000));
  enqueue(noops(10000));
  auto enqueue_time = steady::now() - t0;
  auto t1 = steady::now();
  workers = spawn_task_system(sys, opts, registry, services, nullptr);
  wait_for_succeeded(watcher, bulk);
  auto drain_time = steady::now() - t1;
  auto t2 = steady::now();
  for (int i = 0; i < 20; ++i)
    enqueue(noops(1000));
  wait_for_succeeded(watcher, 2 * bulk);
  auto e2e_time = steady::now() - t2;
  std::printf("bulk: %lld no-op tasks\n", static_cast<long long>(bulk));
  std::printf("  enqueue (2 transactions of 10,000, no workers):  %8.0f tasks/s "
              "(%.0f ms)\n",
              bulk / (ms(enqueue_time) / 1000), ms(enqueue_time));
  std::printf("  drain (4 worker slots, start included):          %8.0f tasks/s "
              "(%.0f ms)\n",
              bulk / (ms(drain_time) / 1000), ms(drain_time));
  std::printf("  end to end (20 batches of 1,000 while draining): %8.0f tasks/s "
              "(%.0f ms)\n",
              bulk / (ms(e2e_time) / 1000), ms(e2e_time));

  // -- 3. the same after the burst (40,000 finished rows, autovacuum as it
  // comes) ---------------------------------------------------------------------
  std::this_thread::sleep_for(1s);
  latency("after the 40,000-task burst");
  chains("after the 40,000-task burst");

  std::printf("machine load after: %s\n", load_average().c_str());
  caf::anon_send_exit(workers, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(enqueuer, caf::exit_reason::user_shutdown);
  return 0;
}
