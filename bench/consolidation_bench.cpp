// bench/consolidation: consolidation end to end, in one process, against a
// real embedded PostgreSQL (fsync and synchronous_commit as the server
// defaults them; printed), wired as the daemon wires it (runtime/main.cpp):
// the storage pool, the embedder, the HTTP server with the project and
// memory routes, the project sessions, the six phase actors (extractive LLM
// provider, hashing embedder of dimension 384) and the coordinator.
//
// For each set (bench/memory_generator.hpp; ENGRAM_BENCH_SETS selects, e.g.
// "1k,10k"; default "1k,10k,100k,stress,kernel"):
//  1. PUT /api/projects/{id}, then the memories through the real import API
//     (POST /api/projects/{id}/memories, NDJSON bodies of at most 15 MiB,
//     ENGRAM_BENCH_IMPORT_CONNECTIONS connections, default 3: while one
//     request's commit waits on the disk or its body is still in flight,
//     the other two keep both cores busy; vectors as
//     JSON numbers, or as base64 float32 with ENGRAM_BENCH_VECTORS=base64,
//     the form OpenAI-compatible APIs answer with): import
//     rows/s over the whole import (HTTP, JSON parsing, COPY, commit). The
//     bodies are built before the clock starts. Vectors carry the model
//     "bench-384", not the daemon's embedder's, so merged memories keep their
//     vectors and summaries get the normalised mean. Also printed: the CPU
//     seconds the import cost the bench process (daemon and HTTP client)
//     and the PostgreSQL server. ENGRAM_BENCH_IMPORT_ONLY=1 stops each set
//     after its import (and skips the kernel).
//  2. A job (create_job_request, enqueue = false) run with run_job on the
//     coordinator; then the job's metrics: per phase plan_ms, commit_ms
//     (inside the transaction), the commit's round trip (the transaction's
//     COMMIT included; measured by a timing proxy in front of each project
//     session, which also times the snapshot's load), kernel GFLOP and
//     GFLOP/s; memories/s = memories_processed / the phase's seconds; the
//     job's duration_ms (start → completed: load, every phase, commits).
// Then the kernel alone: vec::assign_leaders on the stress group (25,000 ×
// 384, mostly distinct) at 0.92, in GFLOP/s and as a share of one core's
// peak FP32 FMA throughput, measured here with a register-resident FMA loop
// (AVX2+FMA, and AVX-512 when the CPU has it; the better of the two).
//
// Probes and what-ifs (off by default): ENGRAM_BENCH_PG_EXPLAIN=<ms> logs
// slow statements with their plans (auto_explain) and copies PostgreSQL's log
// to ENGRAM_BENCH_PG_LOG; ENGRAM_BENCH_PG_SETTINGS, ENGRAM_BENCH_SQL and
// ENGRAM_BENCH_SQL_BEFORE_JOB change the server or the schema for an
// experiment (see main).
//
// Targets (issue): the 100k set end to end < 5 s, the stress set < 30 s,
// kernel >= 70% of one core's peak, import >= 50,000 memories/s. Prints the
// machine's load average before and after each part: the machine is
// shared, so wall-clock figures depend on it; the CPU-time figures say what
// the work costs when it has the core.

#include <immintrin.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/json.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <cblas.h>
#include <pqxx/pqxx>

#include "actors/consolidation/coordinator.hpp"
#include "actors/consolidation/embedder.hpp"
#include "actors/consolidation/phase_actor.hpp"
#include "bench/memory_generator.hpp"
#include "http/memory_routes.hpp"
#include "http/project_routes.hpp"
#include "http/server.hpp"
#include "messages/errc.hpp"
#include "messages/storage.hpp"
#include "runtime/config.hpp"
#include "runtime/embedding_provider.hpp"
#include "runtime/io_threads.hpp"
#include "runtime/split.hpp"
#include "runtime/llm_provider.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"
#include "runtime/uuid.hpp"
#include "runtime/vector_kernel.hpp"
#include "storage/migration.hpp"
#include "storage/project_session.hpp"
#include "storage/storage_actors.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/postgres_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;
namespace json = boost::json;
using steady = std::chrono::steady_clock;

namespace {

constexpr size_t dimension = 384;
constexpr auto bench_model = "bench-384";
/// Import bodies stay under the daemon's default 16 MiB limit.
constexpr size_t max_body = 15 * 1024 * 1024;
constexpr size_t max_rows_per_body = 5000;

// -- small helpers -------------------------------------------------------------------

std::string load_average() {
  std::ifstream in{"/proc/loadavg"};
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double seconds(steady::duration d) {
  return std::chrono::duration<double>(d).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

std::string thousands(double x) {
  auto n = static_cast<long long>(x + 0.5);
  auto s = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0)
      out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

const char* verdict(bool met) {
  return met ? "met" : "MISSED";
}

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string{v} : fallback;
}

template <class Reply, class Handle, class Request>
Reply ask(caf::actor_system& sys, const Handle& dest, Request req,
          caf::timespan timeout = 600s) {
  caf::scoped_actor self{sys};
  std::optional<Reply> result;
  std::string failure;
  self->request(dest, timeout, std::move(req))
    .receive([&](Reply& x) { result = std::move(x); },
             [&](caf::error& err) { failure = describe(err); });
  if (!result)
    throw std::runtime_error(failure);
  return std::move(*result);
}

// -- one core's peak FP32 FMA throughput -------------------------------------------

// 12 independent accumulators: more than the FMA latency (4 cycles) × the
// FMA pipes (2) in flight, all in registers.
__attribute__((target("avx2,fma"), noinline)) double fma_loop_avx2(long iters) {
  __m256 a = _mm256_set1_ps(0.999999f);
  __m256 b = _mm256_set1_ps(1e-7f);
  __m256 acc[12];
  for (int k = 0; k < 12; ++k)
    acc[k] = _mm256_set1_ps(static_cast<float>(k));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k)
      acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  }
  __m256 sum = acc[0];
  for (int k = 1; k < 12; ++k)
    sum = _mm256_add_ps(sum, acc[k]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0];
}

__attribute__((target("avx512f"), noinline)) double fma_loop_avx512(long iters) {
  __m512 a = _mm512_set1_ps(0.999999f);
  __m512 b = _mm512_set1_ps(1e-7f);
  __m512 acc[12];
  for (int k = 0; k < 12; ++k)
    acc[k] = _mm512_set1_ps(static_cast<float>(k));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k)
      acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  }
  __m512 sum = acc[0];
  for (int k = 1; k < 12; ++k)
    sum = _mm512_add_ps(sum, acc[k]);
  float out[16];
  _mm512_storeu_ps(out, sum);
  return out[0];
}

struct peak_result {
  double avx2 = 0;
  double avx512 = 0;
  double best = 0;
  double avx2_cpu = 0; // per CPU second, for reference
};

/// GFLOP/s of the best of many short runs (short, so that one of them
/// likely has the core to itself on a shared machine).
peak_result measure_peak() {
  peak_result out;
  volatile double sink = 0;
  auto run = [&](auto loop, double flops_per_iter, double& best,
                 double* best_cpu) {
    const long iters = 2'000'000; // ~10 ms
    loop(iters / 10);             // warm up (clock ramps, AVX licence)
    for (int trial = 0; trial < 40; ++trial) {
      auto c0 = thread_cpu_seconds();
      auto t0 = steady::now();
      sink = sink + loop(iters);
      auto wall = seconds(steady::now() - t0);
      auto cpu = thread_cpu_seconds() - c0;
      best = std::max(best, flops_per_iter * static_cast<double>(iters) / wall * 1e-9);
      if (best_cpu != nullptr && cpu > 0)
        *best_cpu = std::max(*best_cpu, flops_per_iter
                                          * static_cast<double>(iters) / cpu
                                          * 1e-9);
    }
  };
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    run(fma_loop_avx2, 12.0 * 8 * 2, out.avx2, &out.avx2_cpu);
  if (__builtin_cpu_supports("avx512f"))
    run(fma_loop_avx512, 12.0 * 16 * 2, out.avx512, nullptr);
  out.best = std::max(out.avx2, out.avx512);
  return out;
}

// -- a timing proxy in front of a project session -------------------------------------

/// What the proxies measured, per job.
struct session_timings {
  std::mutex mtx;
  std::map<std::string, double> load_ms;     // by project
  std::map<std::string, std::map<std::string, double>> commit_rt_ms; // job → phase
  std::map<std::string, double> begin_ms;    // by job
  std::map<std::string, double> finish_ms;   // by job
};

struct proxy_state {
  project_session_actor real;
  std::shared_ptr<session_timings> timings;
  static inline const char* name = "bench_session_proxy";
};

using proxy_ptr = project_session_actor::stateful_pointer<proxy_state>;

double ms_since(steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(steady::now() - t0).count();
}

/// Forwards `x` to the real session and answers its reply; `record` gets
/// the round trip in ms.
template <class Reply, class Request, class Record>
caf::result<Reply> forward(proxy_ptr self, Request x, Record record) {
  auto rp = self->make_response_promise<Reply>();
  auto t0 = steady::now();
  self->request(self->state.real, caf::infinite, std::move(x))
    .then(
      [rp, t0, record](Reply& reply) mutable {
        record(ms_since(t0));
        rp.deliver(std::move(reply));
      },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

project_session_actor::behavior_type
timing_proxy(proxy_ptr self, project_session_actor real,
             std::shared_ptr<session_timings> timings) {
  self->state.real = real;
  self->state.timings = timings;
  self->link_to(real);
  return {
    [self](consolidation::begin_job& x)
      -> caf::result<consolidation::job_start> {
      auto t = self->state.timings;
      auto job = x.job_id;
      return forward<consolidation::job_start>(self, std::move(x),
                                               [t, job](double ms) {
                                                 std::lock_guard lk{t->mtx};
                                                 t->begin_ms[job] = ms;
                                               });
    },
    [self](consolidation::load_snapshot& x)
      -> caf::result<consolidation::snapshot_data> {
      auto t = self->state.timings;
      auto project = x.project_id;
      return forward<consolidation::snapshot_data>(
        self, std::move(x), [t, project](double ms) {
          std::lock_guard lk{t->mtx};
          t->load_ms[project] = ms;
        });
    },
    [self](consolidation::phase_commit& x)
      -> caf::result<consolidation::job_record> {
      auto t = self->state.timings;
      auto job = x.job_id;
      auto phase = x.phase;
      return forward<consolidation::job_record>(
        self, std::move(x), [t, job, phase](double ms) {
          std::lock_guard lk{t->mtx};
          t->commit_rt_ms[job][phase] = ms;
        });
    },
    [self](consolidation::finish_job& x)
      -> caf::result<consolidation::job_record> {
      auto t = self->state.timings;
      auto job = x.job_id;
      return forward<consolidation::job_record>(self, std::move(x),
                                                [t, job](double ms) {
                                                  std::lock_guard lk{t->mtx};
                                                  t->finish_ms[job] = ms;
                                                });
    },
  };
}

// -- the sets -------------------------------------------------------------------------

struct set_spec {
  std::string name;
  size_t count = 0;
  bool stress = false;
  /// End-to-end target in seconds.
  double target_s = 0;
};

/// NDJSON bodies of at most max_body bytes and max_rows_per_body rows.
std::vector<std::string> build_bodies(const bench::generated_project& p,
                                      bench::vector_form form) {
  std::vector<std::string> bodies;
  std::string body, line;
  size_t rows = 0;
  for (size_t i = 0; i < p.memories.size(); ++i) {
    line.clear();
    bench::append_ndjson(p, i, bench_model, line, form);
    if (rows > 0 && (body.size() + line.size() > max_body || rows == max_rows_per_body)) {
      bodies.push_back(std::move(body));
      body.clear();
      rows = 0;
    }
    body += line;
    ++rows;
  }
  if (rows > 0)
    bodies.push_back(std::move(body));
  return bodies;
}

double num(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  if (v == nullptr)
    return 0;
  if (v->is_double())
    return v->as_double();
  if (v->is_int64())
    return static_cast<double>(v->as_int64());
  if (v->is_uint64())
    return static_cast<double>(v->as_uint64());
  return 0;
}

struct bench_env {
  caf::actor_system* sys = nullptr;
  /// ENGRAM_BENCH_IMPORT_ONLY: each set stops after its import.
  bool import_only = false;
  /// ENGRAM_BENCH_VECTORS=base64: the import sends vectors as base64
  /// float32 instead of JSON numbers (the same values).
  bench::vector_form vectors = bench::vector_form::numbers;
  /// The embedded server's postmaster (its CPU and its children's).
  int postmaster_pid = 0;
  uint16_t port = 0;
  storage_actor storage;
  consolidation_actor coordinator;
  std::shared_ptr<session_timings> timings;
  double peak = 0;
  size_t connections = 3;
  std::string db;
  std::string sql_before_job;
};

/// CPU seconds of process `pid` and of its live children (the server's
/// backends and helpers); 0 when unknown.
double tree_cpu_seconds(int pid) {
  if (pid <= 0)
    return 0;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    std::ifstream in{entry.path() / "stat"};
    std::string stat;
    if (!in || !std::getline(in, stat))
      continue;
    // Fields after the command (which may hold spaces): state ppid ...;
    // utime and stime are fields 14 and 15.
    auto close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest{stat.substr(close + 2)};
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    int self = std::atoi(entry.path().filename().c_str());
    if (self != pid && ppid != pid)
      continue;
    std::string skip;
    for (int k = 0; k < 9; ++k)
      rest >> skip;
    double utime = 0, stime = 0;
    rest >> utime >> stime;
    total += (utime + stime) / ticks;
  }
  return total;
}

/// Imports `bodies` into `project` over HTTP; returns the wall seconds.
double import_bodies(const bench_env& env, const std::string& project,
                     const std::vector<std::string>& bodies) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex err_mtx;
  std::string error;
  auto worker = [&] {
    for (;;) {
      auto i = next.fetch_add(1);
      if (i >= bodies.size() || failed)
        return;
      try {
        auto r = test::http_request(
          env.port, "POST", "/api/projects/" + project + "/memories",
          bodies[i], {{"Content-Type", "application/x-ndjson"}}, 300s);
        if (r.status != 201) {
          std::lock_guard lk{err_mtx};
          error = "import body " + std::to_string(i) + ": HTTP "
                  + std::to_string(r.status) + " " + r.body.substr(0, 400);
          failed = true;
        }
      } catch (const std::exception& e) {
        std::lock_guard lk{err_mtx};
        error = e.what();
        failed = true;
      }
    }
  };
  auto t0 = steady::now();
  std::vector<std::thread> threads;
  for (size_t k = 0; k < std::max<size_t>(env.connections, 1); ++k)
    threads.emplace_back(worker);
  for (auto& t : threads)
    t.join();
  auto wall = seconds(steady::now() - t0);
  if (failed)
    throw std::runtime_error(error);
  return wall;
}

/// A new enabled project, made over HTTP; returns its id.
std::string new_project(const bench_env& env, const std::string& name) {
  auto project = random_uuid();
  auto put = test::http_request(
    env.port, "PUT", "/api/projects/" + project,
    R"({"name": "bench )" + name + R"(", "consolidation_enabled": true})",
    {{"Content-Type", "application/json"}});
  if (put.status != 201)
    throw std::runtime_error("PUT project: HTTP " + std::to_string(put.status)
                             + " " + put.body);
  return project;
}

/// Imports `bodies` into `project` and prints the rate (with the target's
/// verdict when `judged`) and the CPU it took.
void measure_import(const bench_env& env, const std::string& project,
                    const std::vector<std::string>& bodies,
                    bench::vector_form form, size_t count, bool judged) {
  size_t bytes = 0;
  for (const auto& b : bodies)
    bytes += b.size();
  auto import_cpu0 = process_cpu_seconds();
  auto import_pg0 = tree_cpu_seconds(env.postmaster_pid);
  auto import_s = import_bodies(env, project, bodies);
  auto import_cpu = process_cpu_seconds() - import_cpu0;
  auto import_pg = tree_cpu_seconds(env.postmaster_pid) - import_pg0;
  auto rows_per_s = static_cast<double>(count) / import_s;
  std::printf("import: %zu NDJSON requests (%.0f MB, vectors as %s, <= %zu "
              "rows and 15 MiB each, %zu connections) in %.2f s: %s rows/s%s\n",
              bodies.size(), static_cast<double>(bytes) / 1e6,
              form == bench::vector_form::base64 ? "base64 float32"
                                                 : "JSON numbers",
              max_rows_per_body, env.connections, import_s,
              thousands(rows_per_s).c_str(),
              judged ? (std::string{"  [target >= 50,000 rows/s: "}
                        + verdict(rows_per_s >= 50000) + "]")
                         .c_str()
                     : "");
  std::printf("  import CPU: bench process %.2f s (daemon and HTTP client), "
              "PostgreSQL %.2f s; load after import: %s\n",
              import_cpu, import_pg, load_average().c_str());
}

void run_set(const bench_env& env, const set_spec& spec) {
  std::printf("\n== set %s: %s memories%s ==\n", spec.name.c_str(),
              thousands(static_cast<double>(spec.count)).c_str(),
              spec.stress ? ", one (type, agent) group, mostly distinct" : "");
  bench::generator_options gopts;
  gopts.count = spec.count;
  gopts.dim = dimension;
  gopts.stress = spec.stress;
  gopts.now_us = to_epoch_us(real_clock().now());
  auto g0 = steady::now();
  auto project_data = bench::generate_project(gopts);
  auto bodies = build_bodies(project_data, env.vectors);
  size_t bytes = 0;
  for (const auto& b : bodies)
    bytes += b.size();
  std::printf("generated in %.1f s (not timed): %zu agents, %zu topics; %s\n",
              seconds(steady::now() - g0), project_data.agents,
              project_data.topics, project_data.composition().c_str());

  auto empty_memories = [&] {
    pqxx::connection c{env.db};
    pqxx::nontransaction tx{c};
    tx.exec0("TRUNCATE engram.memories, engram.memory_audit CASCADE");
  };
  // A daemon that has been running has imported before: the server's
  // shared buffers are mapped and its files exist. The first bulk import
  // after a server start pays for that (page faults on fresh shared
  // memory: PostgreSQL ~0.2 CPU seconds more per 100,000 rows), so the
  // 100k set is imported once untimed first, into a project that is then
  // emptied away, and that first import's rate is printed apart.
  if (spec.count >= 100000) {
    std::printf("load before the first import: %s\n", load_average().c_str());
    std::printf("first import on this server (untimed warm-up, not judged):\n");
    measure_import(env, new_project(env, spec.name + " warm-up"), bodies,
                   env.vectors, spec.count, false);
    empty_memories();
  }

  // The project, over HTTP.
  auto project = new_project(env, spec.name);

  // The import.
  std::printf("load before import: %s\n", load_average().c_str());
  // The import target is a bulk rate: judged on the 100k set.
  measure_import(env, project, bodies, env.vectors, spec.count,
                 spec.count >= 100000);
  bodies.clear();
  bodies.shrink_to_fit();
  // The 100k set is imported a second time, into a project of its own,
  // with its vectors in the other form (after the job, so that the job
  // runs right after its own import as before).
  auto other_form_import = [&] {
    if (spec.count < 100000)
      return;
    auto other = env.vectors == bench::vector_form::base64
                   ? bench::vector_form::numbers
                   : bench::vector_form::base64;
    auto again = build_bodies(project_data, other);
    // On the same footing as the first: into a table without the first
    // import's rows and its job's changes (a populated table takes imports
    // more slowly: larger indexes, and autovacuum due after the job).
    auto v0 = steady::now();
    empty_memories();
    std::printf("the same memories again, vectors in the other form, into a "
                "new project and an emptied memories table (TRUNCATE, "
                "untimed, %.2f s):\n",
                seconds(steady::now() - v0));
    measure_import(env, new_project(env, spec.name + " again"), again, other,
                   spec.count, true);
  };
  if (env.import_only) {
    other_form_import();
    return;
  }

  if (!env.sql_before_job.empty()) {
    pqxx::connection c{env.db};
    pqxx::nontransaction tx{c};
    auto t = steady::now();
    tx.exec(env.sql_before_job);
    std::printf("what-if: ran before the job (untimed, %.2f s): %s\n",
                seconds(steady::now() - t), env.sql_before_job.c_str());
  }

  // The job.
  consolidation::create_job_request create;
  create.project_id = project;
  create.trigger_type = "manual";
  create.triggered_by = "bench";
  create.enqueue = false;
  create.now_us = to_epoch_us(real_clock().now());
  auto job = ask<consolidation::job_record>(*env.sys, env.storage, create);
  std::printf("load before job: %s\n", load_average().c_str());
  auto cpu0 = process_cpu_seconds();
  auto t0 = steady::now();
  auto done = ask<consolidation::job_record>(
    *env.sys, env.coordinator, consolidation::run_job{job.id, project}, 900s);
  auto wall = seconds(steady::now() - t0);
  auto cpu = process_cpu_seconds() - cpu0;
  std::printf("load after job: %s\n", load_average().c_str());
  if (done.status != "completed")
    throw std::runtime_error("job " + done.id + " " + done.status + ": "
                             + done.error_message);
  auto metrics = json::parse(done.metrics_json).as_object();
  double load_ms = 0, begin_ms = 0, finish_ms = 0;
  std::map<std::string, double> rt;
  {
    std::lock_guard lk{env.timings->mtx};
    load_ms = env.timings->load_ms[project];
    begin_ms = env.timings->begin_ms[job.id];
    finish_ms = env.timings->finish_ms[job.id];
    rt = env.timings->commit_rt_ms[job.id];
  }
  std::printf("job %s: %s memories processed (sum over phases), %s merged, "
              "%s archived\n",
              done.id.c_str(), thousands(static_cast<double>(done.memories_processed)).c_str(),
              thousands(static_cast<double>(done.memories_merged)).c_str(),
              thousands(static_cast<double>(done.memories_archived)).c_str());
  std::printf("  begin_job %.0f ms; load_snapshot (session round trip: query, "
              "rows, vectors) %.0f ms\n",
              begin_ms, load_ms);
  std::printf("  %-10s %8s %9s %9s %8s %9s %11s %8s %8s %6s  %s\n", "phase",
              "plan ms", "commit ms", "commit rt", "phase s", "processed",
              "memories/s", "GFLOP", "GFLOP/s", "%peak", "counts");
  double sum_s = 0, sum_gflop = 0, sum_kernel_s = 0;
  for (const auto& phase : consolidation::phase_names()) {
    auto* m = metrics.if_contains(phase);
    if (m == nullptr || !m->is_object())
      continue;
    const auto& o = m->as_object();
    auto build_ms = num(o, "snapshot_build_ms");
    auto plan_ms = num(o, "plan_ms");
    auto commit_ms = num(o, "commit_ms");
    auto commit_rt = rt.count(phase) != 0 ? rt[phase] : commit_ms;
    auto phase_s = (build_ms + plan_ms + commit_rt) / 1000;
    auto processed = num(o, "memories_processed");
    auto gflop = num(o, "kernel_gflop");
    auto kernel_s = num(o, "kernel_seconds");
    sum_s += phase_s;
    sum_gflop += gflop;
    sum_kernel_s += kernel_s;
    std::string counts;
    for (const auto& [k, v] : o) {
      if (k == "plan_ms" || k == "commit_ms" || k == "kernel_gflop"
          || k == "kernel_seconds" || k == "snapshot_build_ms"
          || k == "memories_processed")
        continue;
      counts += (counts.empty() ? "" : ", ") + std::string{k} + "="
                + (v.is_array() ? std::to_string(v.as_array().size()) + " agents"
                                : json::serialize(v));
    }
    if (build_ms > 0)
      counts += (counts.empty() ? "" : ", ") + std::string{"incl. snapshot build "}
                + thousands(build_ms) + " ms";
    auto gflops = kernel_s > 0 ? gflop / kernel_s : 0;
    std::printf("  %-10s %8.0f %9.0f %9.0f %8.2f %9s %11s %8.2f %8.1f %5.0f%%  %s\n",
                phase.c_str(), plan_ms, commit_ms, commit_rt, phase_s,
                thousands(processed).c_str(),
                phase_s > 0 ? thousands(processed / phase_s).c_str() : "-",
                gflop, gflops, env.peak > 0 ? 100 * gflops / env.peak : 0,
                counts.c_str());
  }
  auto total_gflops = sum_kernel_s > 0 ? sum_gflop / sum_kernel_s : 0;
  std::printf("  %-10s %8s %9s %9s %8.2f %9s %11s %8.2f %8.1f %5.0f%%  "
              "(kernel: %.3f thread s in sgemm)\n",
              "phases", "", "", "", sum_s, "",
              thousands(static_cast<double>(spec.count) / sum_s).c_str(),
              sum_gflop, total_gflops,
              env.peak > 0 ? 100 * total_gflops / env.peak : 0, sum_kernel_s);
  auto duration_s = static_cast<double>(done.duration_ms) / 1000;
  auto other_s = duration_s - sum_s - load_ms / 1000;
  std::printf("  job duration_ms %s (start → completed: load %.2f s + phases "
              "%.2f s + the rest %.2f s: finish_job %.0f ms, hand-offs, "
              "applying plans to the snapshot)\n",
              thousands(static_cast<double>(done.duration_ms)).c_str(),
              load_ms / 1000, sum_s, other_s, finish_ms);
  std::printf("  end to end %.2f s for %s memories: %s memories/s  [target < "
              "%.0f s: %s]; run_job round trip %.2f s; bench process CPU "
              "during the job %.2f s (PostgreSQL not included)\n",
              duration_s, thousands(static_cast<double>(spec.count)).c_str(),
              thousands(static_cast<double>(spec.count) / duration_s).c_str(),
              spec.target_s, verdict(duration_s < spec.target_s), wall, cpu);
  other_form_import();
}

/// vec::assign_leaders alone on the stress group's vectors.
void run_kernel(double peak) {
  bench::generator_options gopts;
  gopts.count = 25000;
  gopts.dim = dimension;
  gopts.stress = true;
  gopts.now_us = to_epoch_us(real_clock().now());
  auto p = bench::generate_project(gopts);
  vec::matrix_view rows{p.vectors.data(), p.memories.size(), dimension};
  std::printf("\n== kernel: vec::assign_leaders on the stress group (%s × %zu, "
              "threshold 0.92, blocks of 1,024: the phases' default) ==\n",
              thousands(static_cast<double>(rows.rows)).c_str(), dimension);
  std::printf("load before: %s\n", load_average().c_str());
  // One thread first: the target is about one core's throughput. Then the
  // kernel's threads (the phases' setting): wall time and the CPU time of
  // every thread.
  struct outcome {
    double wall = 1e30, cpu = 1e30, sgemm = 1e30, flops = 0;
    size_t leaders = 0;
  };
  auto measure = [&](size_t threads, size_t block, int runs, bool print) {
    auto before = vec::kernel_threads();
    vec::set_kernel_threads(threads);
    outcome best;
    for (int run = 0; run < runs; ++run) {
      // CPU: the calling thread's alone on one thread; else the process's
      // (its other threads, the in-process daemon's, are idle here).
      auto cpu_now = threads == 1 ? thread_cpu_seconds : process_cpu_seconds;
      vec::reset_counters();
      auto c0 = cpu_now();
      auto t0 = steady::now();
      auto a = vec::assign_leaders(rows, 0.92f, {}, block);
      auto wall = seconds(steady::now() - t0);
      auto cpu = cpu_now() - c0;
      auto k = vec::counters();
      best.flops = k.flops;
      best.leaders = a.new_leader_rows.size();
      best.wall = std::min(best.wall, wall);
      best.cpu = std::min(best.cpu, cpu);
      best.sgemm = std::min(best.sgemm, k.seconds);
      if (print)
        std::printf("  %zu thread%s, run %d: %.2f s wall, %.2f s CPU (in "
                    "sgemm: %.2f thread s), %.1f GFLOP\n",
                    threads, threads == 1 ? "" : "s", run + 1, wall, cpu,
                    k.seconds, k.flops * 1e-9);
    }
    vec::set_kernel_threads(before);
    return best;
  };
  auto one = measure(1, 1024, 3, true);
  auto g = one.flops * 1e-9;
  std::printf("  %s leaders; %.1f GFLOP per run; best run on one thread:\n",
              thousands(static_cast<double>(one.leaders)).c_str(), g);
  std::printf("    whole call, wall:     %6.1f GFLOP/s = %4.1f%% of one "
              "core's peak  [target >= 70%%: %s]\n",
              g / one.wall, 100 * g / one.wall / peak,
              verdict(g / one.wall >= 0.7 * peak));
  std::printf("    whole call, CPU time: %6.1f GFLOP/s = %4.1f%% of peak\n",
              g / one.cpu, 100 * g / one.cpu / peak);
  std::printf("    sgemm only:           %6.1f GFLOP/s = %4.1f%% of peak\n",
              g / one.sgemm, 100 * g / one.sgemm / peak);
  auto threads = vec::kernel_threads();
  if (threads > 1) {
    auto many = measure(threads, 1024, 3, true);
    auto gm = many.flops * 1e-9;
    std::printf("  best run on %zu threads (the phases' setting): %.2f s wall "
                "(%.2fx one thread's), %.1f GFLOP/s; %.1f GFLOP/s per CPU "
                "second = %.1f%% of one core's peak; %s leaders%s\n",
                threads, many.wall, one.wall / many.wall, gm / many.wall,
                gm / many.cpu, 100 * gm / many.cpu / peak,
                thousands(static_cast<double>(many.leaders)).c_str(),
                many.leaders == one.leaders ? " (as on one thread)"
                                            : " (DIFFERS from one thread)");
  }
  // What the block size does (the phases use the default, 1,024): larger
  // blocks re-pack the leaders less often per FLOP.
  for (size_t block : {256, 512}) {
    auto b = measure(1, block, 1, false);
    std::printf("  for comparison, one thread, blocks of %zu: %.1f GFLOP, "
                "%.2f s wall (%.1f GFLOP/s = %.0f%% of peak), %s leaders\n",
                block, b.flops * 1e-9, b.wall, b.flops * 1e-9 / b.wall,
                100 * b.flops * 1e-9 / b.wall / peak,
                thousands(static_cast<double>(b.leaders)).c_str());
  }
  std::printf("load after: %s\n", load_average().c_str());
}

} // namespace

int main() {
  log::setup("warn", log::format::text);
  auto selected = split_on(env_or("ENGRAM_BENCH_SETS", "1k,10k,100k,stress,kernel"), ',');
  auto wants = [&](const std::string& name) {
    return std::find(selected.begin(), selected.end(), name) != selected.end();
  };
  std::printf("bench/consolidation — machine load before: %s (%u CPUs)\n",
              load_average().c_str(), std::thread::hardware_concurrency());
  std::printf("OpenBLAS %s, core %s\n", openblas_get_config(),
              openblas_get_corename());

  auto peak = measure_peak();
  std::printf("one core's peak FP32 FMA throughput (register-resident loop, "
              "best of 40 × ~10 ms): AVX2+FMA %.1f GFLOP/s%s; AVX-512 %s; "
              "peak = %.1f GFLOP/s\n",
              peak.avx2,
              peak.avx2_cpu > 0
                ? (" (" + std::to_string(static_cast<int>(peak.avx2_cpu + 0.5))
                   + " per CPU second)")
                    .c_str()
                : "",
              peak.avx512 > 0
                ? (std::to_string(static_cast<int>(peak.avx512 * 10 + 0.5) / 10.0)
                     .substr(0, 5)
                   + " GFLOP/s")
                    .c_str()
                : "not supported",
              peak.best);

  test::throwaway_postgres pg{"engram"};
  auto db = pg.connection_string();
  if (!storage::apply_migrations(db, storage::embedded_migrations()))
    return 1;
  // What-if experiments (off by default; printed when on):
  // ENGRAM_BENCH_PG_SETTINGS="shared_buffers=1GB;max_wal_size=4GB" (ALTER
  // SYSTEM, then a restart), ENGRAM_BENCH_SQL (run once after the
  // migrations, e.g. a storage change) and ENGRAM_BENCH_SQL_BEFORE_JOB (run
  // after each import, before the job, untimed, e.g. "ANALYZE
  // engram.memories").
  if (auto settings = env_or("ENGRAM_BENCH_PG_SETTINGS", ""); !settings.empty()) {
    {
      pqxx::connection c{db};
      pqxx::nontransaction tx{c};
      for (const auto& kv : split_on(settings, ';')) {
        auto eq = kv.find('=');
        if (eq == std::string::npos)
          continue;
        tx.exec("ALTER SYSTEM SET " + kv.substr(0, eq) + " = "
                + tx.quote(kv.substr(eq + 1)));
      }
    }
    pg.stop();
    pg.start();
    db = pg.connection_string();
    std::printf("what-if: server settings %s (ALTER SYSTEM + restart)\n",
                settings.c_str());
  }
  if (auto sql = env_or("ENGRAM_BENCH_SQL", ""); !sql.empty()) {
    pqxx::connection c{db};
    pqxx::nontransaction tx{c};
    tx.exec(sql);
    std::printf("what-if: ran after the migrations: %s\n", sql.c_str());
  }
  {
    pqxx::connection c{db};
    pqxx::nontransaction tx{c};
    std::printf("postgres: fsync=%s synchronous_commit=%s shared_buffers=%s "
                "work_mem=%s max_wal_size=%s (the embedded server's settings, "
                "as in bench/tasks)\n",
                tx.exec1("SHOW fsync")[0].c_str(),
                tx.exec1("SHOW synchronous_commit")[0].c_str(),
                tx.exec1("SHOW shared_buffers")[0].c_str(),
                tx.exec1("SHOW work_mem")[0].c_str(),
                tx.exec1("SHOW max_wal_size")[0].c_str());
  }

  // A probe for where PostgreSQL's time goes: ENGRAM_BENCH_PG_EXPLAIN=<ms>
  // logs every statement slower than that with its plan (auto_explain,
  // analyze, buffers) and the checkpoints; the log is copied to
  // ENGRAM_BENCH_PG_LOG (default /tmp/engram-bench-pg.log) at the end.
  auto explain_ms = env_or("ENGRAM_BENCH_PG_EXPLAIN", "");
  if (!explain_ms.empty()) {
    pqxx::connection c{db};
    pqxx::nontransaction tx{c};
    for (const std::string& sql : std::vector<std::string>{
           "LOAD 'auto_explain'",
           "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'",
          "ALTER SYSTEM SET auto_explain.log_min_duration = '" + explain_ms + "'",
          std::string{"ALTER SYSTEM SET auto_explain.log_analyze = on"},
          std::string{"ALTER SYSTEM SET auto_explain.log_buffers = on"},
          "ALTER SYSTEM SET log_min_duration_statement = '" + explain_ms + "'",
          std::string{"ALTER SYSTEM SET log_checkpoints = on"},
          std::string{"SELECT pg_reload_conf()"}})
      tx.exec(sql);
    std::printf("probe: statements slower than %s ms are logged with their "
                "plans\n",
                explain_ms.c_str());
  }

  config defaults;
  storage_options storage;
  storage.conninfo = db;
  storage.known_schema_version
    = storage::latest_version(storage::embedded_migrations());
  caf::actor_system_config cfg;
  apply_caf_settings(defaults, cfg);
  caf::actor_system sys{cfg};

  // The daemon's pieces, with its defaults (conf/engram.toml).
  metrics::registry registry;
  auto pool = spawn_storage_pool(sys, storage,
                                 static_cast<size_t>(defaults.database.pool_size),
                                 &registry);
  sys.registry().put(caf::atom(storage_pool_name), pool);
  auto llm = make_llm_provider(llm_options{});
  if (!llm) {
    std::fprintf(stderr, "llm: %s\n", describe(llm.error()).c_str());
    return 1;
  }
  embedding_options eopts;
  eopts.provider = "hashing";
  eopts.dimension = dimension;
  auto emb = make_embedding_provider(eopts);
  if (!emb) {
    std::fprintf(stderr, "embedder: %s\n", describe(emb.error()).c_str());
    return 1;
  }
  std::shared_ptr<embedding_provider> embeddings = std::move(*emb);
  consolidation::phase_services services;
  services.llm = std::shared_ptr<llm_provider>(std::move(*llm));
  services.embedder = embeddings;
  auto timings = std::make_shared<session_timings>();
  coordinator_options copts;
  std::vector<project_session_actor> sessions;
  for (int i = 0; i < defaults.consolidation.max_projects_in_flight; ++i) {
    auto real = spawn_project_session(sys, storage);
    sessions.push_back(real);
    copts.sessions.push_back(sys.spawn(timing_proxy, real, timings));
  }
  for (const auto& phase : consolidation::phase_names())
    if (phase != "invalidate")
      copts.phases.emplace(phase, spawn_phase_actor(sys, phase, services));
  copts.storage = pool;
  auto coordinator = spawn_consolidation_coordinator(sys, std::move(copts));
  std::printf("providers: LLM %s, embedder %s (model %s); imported vectors "
              "carry model %s\n",
              services.llm->name().c_str(), embeddings->name().c_str(),
              embeddings->model().c_str(), bench_model);

  io_threads io{2};
  http::router routes;
  http::project_route_deps project_deps;
  project_deps.sys = &sys;
  project_deps.timeout = defaults.http.request_timeout;
  http::add_project_routes(routes, project_deps);
  http::memory_route_deps memory_deps;
  memory_deps.sys = &sys;
  memory_deps.embedder = spawn_embedder(sys, embeddings);
  memory_deps.timeout = defaults.http.request_timeout;
  http::add_memory_routes(routes, memory_deps);
  http::server_options hopts;
  hopts.max_body_bytes = static_cast<uint64_t>(defaults.http.max_body_bytes);
  hopts.max_header_bytes = static_cast<uint32_t>(defaults.http.max_header_bytes);
  hopts.read_timeout = 120s;
  hopts.handler_timeout = 300s;
  hopts.write_timeout = 120s;
  http::server server{io.context(), hopts, std::move(routes), registry};
  if (auto err = server.start()) {
    std::fprintf(stderr, "http: %s\n", describe(err).c_str());
    return 1;
  }

  bench_env env;
  env.sys = &sys;
  env.port = server.port();
  env.storage = pool;
  env.coordinator = coordinator;
  env.timings = timings;
  env.peak = peak.best;
  env.db = db;
  env.sql_before_job = env_or("ENGRAM_BENCH_SQL_BEFORE_JOB", "");
  env.connections = static_cast<size_t>(
    std::stoul(env_or("ENGRAM_BENCH_IMPORT_CONNECTIONS", "3")));
  env.import_only = env_or("ENGRAM_BENCH_IMPORT_ONLY", "") == "1";
  if (env_or("ENGRAM_BENCH_VECTORS", "numbers") == "base64")
    env.vectors = bench::vector_form::base64;
  {
    pqxx::connection c{db};
    pqxx::nontransaction tx{c};
    auto backend = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    std::ifstream in{"/proc/" + std::to_string(backend) + "/stat"};
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest{stat.substr(close + 2)};
      std::string state;
      rest >> state >> env.postmaster_pid;
    }
  }

  int status = 0;
  try {
    const set_spec sets[] = {{"1k", 1000, false, 5},
                             {"10k", 10000, false, 5},
                             {"100k", 100000, false, 5},
                             {"stress", 25000, true, 30}};
    for (const auto& s : sets)
      if (wants(s.name))
        run_set(env, s);
    if (wants("kernel") && !env.import_only)
      run_kernel(peak.best);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench failed: %s\n", e.what());
    status = 1;
  }

  if (!explain_ms.empty()) {
    auto out = env_or("ENGRAM_BENCH_PG_LOG", "/tmp/engram-bench-pg.log");
    std::error_code ec;
    std::filesystem::copy_file(pg.server().log_file(), out,
                               std::filesystem::copy_options::overwrite_existing,
                               ec);
    std::printf("probe: PostgreSQL's log copied to %s%s\n", out.c_str(),
                ec ? (" (failed: " + ec.message() + ")").c_str() : "");
  }
  std::printf("\nmachine load after: %s\n", load_average().c_str());
  server.stop();
  io.stop();
  caf::anon_send_exit(coordinator, caf::exit_reason::user_shutdown);
  for (auto& s : sessions)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(memory_deps.embedder, caf::exit_reason::user_shutdown);
  sys.registry().erase(caf::atom(storage_pool_name));
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  return status;
}
