// bench/workflows: workflow chains end to end — the daemon as a process on
// its embedded PostgreSQL (fsync and synchronous_commit on), driven over
// HTTP, with a five-step workflow whose every step is `true`.
//
//  1. Process start alone: 200 × start `true` in its own process group,
//     wait, reap (the floor a step cannot go below).
//  2. 200 runs one at a time: run latency from the run's created_at to its
//     finished_at (the server's clock): p50, p99; and the per-step overhead
//     above process start: (p50 run latency / 5) − p50 process start.
//     Every step is a durable task, two commits (begin, finish with the
//     next task) and a child process.
//  3. 1,000 runs started at once (8 client threads): runs/s from the first
//     POST to the last run finished.
//
// Prints its figures and the machine's load average; run by `make bench`.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "actors/workflows/step_process.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/http_client.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;
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
  return xs[i];
}

/// "2026-11-22T10:00:00.123456Z" → epoch microseconds.
int64_t parse_us(const std::string& t) {
  int y, mo, d, h, mi, s;
  int64_t frac = 0;
  char buf[16] = {0};
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%15[0-9]", &y, &mo, &d, &h,
                  &mi, &s, buf)
      < 6)
    return 0;
  std::string f = buf;
  f.resize(6, '0');
  frac = std::stoll(f);
  auto days = std::chrono::sys_days{std::chrono::year{y} / mo / d};
  auto secs = days.time_since_epoch() + std::chrono::hours{h}
              + std::chrono::minutes{mi} + std::chrono::seconds{s};
  return std::chrono::duration_cast<std::chrono::microseconds>(secs).count()
         + frac;
}

json::object get_run(uint16_t port, const std::string& id) {
  return json::parse(http_get(port, "/api/workflows/runs/" + id).body)
    .as_object();
}

std::string start(uint16_t port) {
  auto r = http_request(port, "POST", "/api/workflows/bench5/runs", "{}");
  if (r.status != 202) {
    std::fprintf(stderr, "start refused: %d %s\n", r.status, r.body.c_str());
    std::exit(1);
  }
  return std::string{json::parse(r.body).at("id").as_string()};
}

/// Sum of a counter's samples whose labels contain `match` in /metrics.
double metric(uint16_t port, const std::string& name, const std::string& match) {
  auto body = http_get(port, "/metrics").body;
  double sum = 0;
  size_t pos = 0;
  while ((pos = body.find(name, pos)) != std::string::npos) {
    auto end = body.find('\n', pos);
    auto line = body.substr(pos, end - pos);
    pos = end;
    if (line.find(match) == std::string::npos || line.rfind('#', 0) == 0)
      continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

} // namespace

int main() {
  temp_dir dir{"engram-bench-wf"};
  auto defs = dir.path() / "workflows";
  fs::create_directories(defs);
  {
    std::ofstream out(defs / "bench5.toml");
    out << "description = \"five steps of true\"\n";
    for (auto name : {"one", "two", "three", "four", "five"})
      out << "[[steps]]\nname = \"" << name << "\"\ncommand = [\"true\"]\n";
  }

  // 1. Process start alone.
  std::vector<double> starts;
  {
    auto scratch = dir.path() / "scratch";
    fs::create_directories(scratch);
    std::ofstream(scratch / "in").put('\n');
    for (int i = 0; i < 200; ++i) {
      workflows::step_launch l;
      l.argv = {"true"};
      l.working_dir = scratch;
      l.stdin_file = scratch / "in";
      l.stdout_file = scratch / "out";
      l.stderr_file = scratch / "err";
      auto t0 = steady::now();
      auto p = workflows::step_process::start(l);
      if (!p) {
        std::fprintf(stderr, "cannot start true\n");
        return 1;
      }
      p->wait_exited();
      (void) p->reap();
      starts.push_back(ms(steady::now() - t0));
    }
  }
  auto start_p50 = percentile(starts, 0.5);

  daemon_process d{dir.path() / "data",
                   {"--workflows.definitions_dir", defs.string(),
                    "--log.level", "warn"}};
  auto port = d.wait_for_port();
  if (port == 0) {
    std::fprintf(stderr, "the daemon did not start:\n%s\n", d.log().c_str());
    return 1;
  }

  // 2. One at a time.
  std::vector<double> latencies;
  for (int i = 0; i < 200; ++i) {
    auto id = start(port);
    for (;;) {
      auto run = get_run(port, id);
      auto status = std::string{run.at("status").as_string()};
      if (status == "succeeded") {
        auto created = parse_us(std::string{run.at("created_at").as_string()});
        auto finished
          = parse_us(std::string{run.at("finished_at").as_string()});
        latencies.push_back(static_cast<double>(finished - created) / 1000.0);
        break;
      }
      if (status == "failed" || status == "cancelled") {
        std::fprintf(stderr, "run %s ended %s\n", id.c_str(), status.c_str());
        return 1;
      }
      std::this_thread::sleep_for(1ms);
    }
  }
  auto p50 = percentile(latencies, 0.5);
  auto p99 = percentile(latencies, 0.99);

  // 3. 1,000 at once.
  auto before
    = metric(port, "engram_workflow_runs_total", "status=\"succeeded\"");
  auto t0 = steady::now();
  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&] {
      while (next.fetch_add(1) < 1000)
        (void) start(port);
    });
  for (auto& c : clients)
    c.join();
  auto posted = steady::now();
  double done = 0;
  auto deadline = steady::now() + 30min;
  while (steady::now() < deadline) {
    done = metric(port, "engram_workflow_runs_total", "status=\"succeeded\"")
           - before;
    if (done >= 1000)
      break;
    std::this_thread::sleep_for(50ms);
  }
  auto total = steady::now() - t0;
  auto failed = metric(port, "engram_workflow_runs_total", "status=\"failed\"");

  std::printf("workflows bench (five steps of `true`; load average %s)\n",
              load_average().c_str());
  std::printf("  process start alone (200):        p50 %.2f ms, p99 %.2f ms\n",
              start_p50, percentile(starts, 0.99));
  std::printf("  run latency, one at a time (200): p50 %.1f ms, p99 %.1f ms\n",
              p50, p99);
  std::printf("  per-step overhead above process start: %.2f ms "
              "(p50 run / 5 - p50 start)\n",
              p50 / 5.0 - start_p50);
  std::printf("  1,000 runs at once: %.0f completed in %.1f s (posting took "
              "%.1f s): %.1f runs/s, %.0f failed\n",
              done, ms(total) / 1000.0, ms(posted - t0) / 1000.0,
              done / (ms(total) / 1000.0), failed);
  d.terminate();
  return done >= 1000 ? 0 : 1;
}
