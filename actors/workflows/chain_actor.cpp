#include "actors/workflows/chain_actor.hpp"

#include <csignal>
#include <deque>
#include <fstream>
#include <optional>
#include <system_error>

#include <caf/actor_registry.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/workflows/step_outcome.hpp"
#include "actors/workflows/step_process.hpp"
#include "messages/errc.hpp"
#include "runtime/exit_watch.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"

namespace engram::workflows {

namespace fs = std::filesystem;

namespace {

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("workflows");
  return result;
}

// -- internal messages (this actor to itself) ----------------------------------

/// The current attempt's leader exited (sent by watch_exit).
struct step_exited {
  uint64_t token = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_exited& x) {
  return f(caf::meta::type_name("step_exited"), x.token);
}

/// The current attempt's timeout passed.
struct step_deadline {
  uint64_t token = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_deadline& x) {
  return f(caf::meta::type_name("step_deadline"), x.token);
}

/// The kill grace after SIGTERM passed: SIGKILL.
struct step_kill {
  uint64_t token = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_kill& x) {
  return f(caf::meta::type_name("step_kill"), x.token);
}

/// Stop if still idle.
struct idle_check {
  uint64_t generation = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, idle_check& x) {
  return f(caf::meta::type_name("idle_check"), x.generation);
}

// -- state -------------------------------------------------------------------------

struct pending_step {
  run_step req;
  caf::typed_response_promise<step_report> promise;
};

/// The attempt in progress.
struct attempt_state {
  uint64_t token = 0;
  run_step req;
  caf::typed_response_promise<step_report> promise;
  const workflow_definition* def = nullptr;
  const step_definition* step = nullptr;
  step_record state;
  fs::path dir;
  std::shared_ptr<step_process> proc;
  wall_time started;
  std::chrono::steady_clock::time_point started_steady;
  bool timed_out = false;
  /// A stop was asked (cancel or the worker stopping).
  bool stop_requested = false;
};

struct chain_state {
  std::shared_ptr<const chain_config> cfg;
  std::string run_id;
  caf::actor parent;
  /// The run as last read or written.
  std::optional<run_record> run;
  std::deque<pending_step> queue;
  std::optional<attempt_state> current;
  uint64_t next_token = 1;
  uint64_t idle_generation = 0;

  chain_state() = default;
  chain_state(const chain_state&) = delete;
  chain_state& operator=(const chain_state&) = delete;
  /// Nothing outlives the chain: a step still running when the actor ends
  /// (the daemon stopping, the workflow actor restarting) is killed with
  /// its group; its task is redelivered and runs it again.
  ~chain_state() {
    if (current && current->proc)
      current->proc->signal_group(SIGKILL);
  }

  static inline const char* name = "workflow_chain";
};

using chain_ptr = caf::stateful_actor<chain_state>*;

storage_actor storage_of(chain_ptr self) {
  return storage_for(self->system(), *self->state.cfg);
}

int64_t now_us(chain_ptr self) {
  return to_epoch_us(self->state.cfg->time->now());
}

metrics::labels step_labels(const std::string& workflow,
                            const std::string& step) {
  return {{"workflow", workflow}, {"step", step}};
}

void schedule_idle_check(chain_ptr self) {
  auto& st = self->state;
  self->delayed_send(self, st.cfg->idle_timeout,
                     idle_check{++st.idle_generation});
}

void process_next(chain_ptr self);

/// Ends the current attempt's request with `report` (or `err`) and moves on.
void answer(chain_ptr self, caf::expected<step_report> result) {
  auto& st = self->state;
  if (st.current) {
    if (result)
      st.current->promise.deliver(std::move(*result));
    else
      st.current->promise.deliver(std::move(result.error()));
    st.current.reset();
  }
  process_next(self);
}

void log_transition(const attempt_state& a, const std::string& workflow,
                    const std::string& status, int64_t duration_ms,
                    int exit_code, const std::string& error) {
  auto line = fmt::format("step {} run={} workflow={} step={} attempt={} "
                          "try={} duration_ms={} exit_code={}",
                          status, a.req.run_id, workflow, a.state.step,
                          a.state.attempt, a.req.try_number, duration_ms,
                          exit_code);
  if (status == "succeeded" || status == "started")
    logger()->info("{}", line);
  else
    logger()->warn("{} error=\"{}\"", line, error);
}

// -- finishing an attempt -------------------------------------------------------------

/// Records `decision` (with the attempt's artifacts and the next task) and
/// answers the task.
void record_outcome(chain_ptr self, step_decision decision,
                    const step_exit& exit) {
  auto& st = self->state;
  auto& a = *st.current;
  const auto& cfg = *st.cfg;
  auto duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - a.started_steady)
                       .count();
  finish_step req;
  req.run_id = a.req.run_id;
  req.state_id = a.state.id;
  req.status = decision.status;
  req.exit_code = exit.exit_code;
  req.term_signal = exit.term_signal;
  req.payload_json = decision.payload_json;
  req.error = decision.error;
  req.error_kind = decision.error_kind;
  if (!a.dir.empty()) {
    auto files = collect_artifacts(a.dir);
    if (files) {
      auto prefix = a.req.run_id + "/" + a.state.step + "/"
                    + std::to_string(a.state.attempt) + "/";
      for (auto& f : *files) {
        artifact_record r;
        r.run_id = a.req.run_id;
        r.step = a.state.step;
        r.step_state_id = a.state.id;
        r.name = f.name;
        r.relative_path = prefix + f.name;
        r.size_bytes = f.size_bytes;
        r.sha256 = std::move(f.sha256);
        r.content_type = std::move(f.content_type);
        req.artifacts.push_back(std::move(r));
      }
    } else {
      logger()->warn("run {} step {}: cannot list its artifacts: {}",
                     a.req.run_id, a.state.step, describe(files.error()));
    }
  }
  next_move move;
  if (a.step != nullptr && st.run)
    move = plan_next(*a.step, a.req.step_index,
                     static_cast<int32_t>(st.run->steps.size()),
                     a.req.try_number, decision.status);
  if (move.kind != next_move::none) {
    const auto* next_step = a.step;
    if (move.kind == next_move::next_step && a.def != nullptr
        && move.step_index < static_cast<int32_t>(st.run->steps.size()))
      next_step = a.def->find_step(st.run->steps[move.step_index]);
    auto timeout = next_step != nullptr ? next_step->timeout : a.step->timeout;
    req.next_task = step_task(cfg.queue, a.req.run_id, move.step_index,
                              a.req.run_attempt, move.try_number, timeout,
                              cfg.kill_grace, move.delay);
  }
  req.now_us = now_us(self);
  auto workflow = st.run ? st.run->workflow : std::string{};
  log_transition(a, workflow, decision.status, duration_ms, exit.exit_code,
                 decision.error);
  if (cfg.metrics != nullptr && a.state.id != 0) {
    auto labels = step_labels(workflow, a.state.step);
    cfg.metrics
      ->get_histogram("engram_workflow_step_seconds",
                      "Duration of workflow step attempts.", labels)
      .observe(static_cast<double>(duration_ms) / 1000.0);
    auto with_outcome = labels;
    with_outcome.emplace_back("outcome", decision.status);
    cfg.metrics
      ->get_counter("engram_workflow_steps_total",
                    "Workflow step attempts by outcome.", with_outcome)
      .inc();
    if (move.kind == next_move::retry)
      cfg.metrics
        ->get_counter("engram_workflow_step_retries_total",
                      "Workflow step tries scheduled after a failure.",
                      labels)
        .inc();
  }
  step_report report;
  report.step = a.state.step;
  report.attempt = a.state.attempt;
  report.duration_ms = duration_ms;
  report.exit_code = exit.exit_code;
  report.error = decision.error;
  report.outcome = move.kind == next_move::retry ? "retrying"
                                                  : decision.status;
  self->request(storage_of(self), cfg.request_timeout, std::move(req))
    .then(
      [self, report](run_record& run) mutable {
        auto& st = self->state;
        auto before = st.run ? st.run->status : std::string{};
        report.run_status = run.status;
        if (run.status == "cancelled")
          report.outcome = "cancelled";
        if (run.status != before
            && (run.status == "succeeded" || run.status == "failed"
                || run.status == "cancelled")) {
          count_run(*st.cfg, run.workflow, run.status);
          logger()->info("run {} workflow={} {}", run.id, run.workflow,
                         run.status);
        }
        st.run = std::move(run);
        answer(self, std::move(report));
      },
      [self, report](caf::error& err) mutable {
        auto& st = self->state;
        st.run.reset();
        if (code_of(err) == errc::conflict) {
          // Another worker took the step over (its lease was reclaimed):
          // its attempt is the one that counts.
          logger()->warn("run {} step {}: outcome not recorded, the attempt "
                         "was taken over: {}",
                         st.current->req.run_id, report.step, describe(err));
          report.outcome = "superseded";
          answer(self, std::move(report));
          return;
        }
        answer(self, std::move(err));
      });
}

/// The attempt's leader exited: reap, read what it wrote, record.
void on_exited(chain_ptr self) {
  auto& st = self->state;
  auto& a = *st.current;
  auto exit = a.proc->reap();
  a.proc.reset();
  auto finish = [self, exit](step_decision d) {
    record_outcome(self, std::move(d), exit);
  };
  if (a.stop_requested && !a.timed_out) {
    // Cancelled by an operator, or the worker is stopping: only a cancelled
    // run records the attempt (as cancelled); otherwise it stays running so
    // the redelivered task re-runs it.
    self->request(storage_of(self), st.cfg->request_timeout,
                  get_run{a.req.run_id})
      .then(
        [self, finish](run_detail& d) {
          auto& st = self->state;
          st.run = d.run;
          if (d.run.status == "cancelled") {
            step_observation seen;
            seen.cancelled = true;
            finish(decide_step(seen));
            return;
          }
          logger()->info("run {} step {}: stopped before it finished; it "
                         "runs again when its task is redelivered",
                         st.current->req.run_id, st.current->state.step);
          answer(self, make_error(errc::shutting_down,
                                  "the step was stopped before it finished"));
        },
        [self](caf::error& err) { answer(self, std::move(err)); });
    return;
  }
  step_observation seen;
  seen.timed_out = a.timed_out;
  seen.timeout = a.step->timeout;
  seen.exit = exit;
  seen.max_output_bytes = st.cfg->max_output_bytes;
  {
    // Read at most one byte past the limit (enough to refuse it); never
    // reserve the limit itself, which is large.
    std::error_code ec;
    auto size = fs::file_size(a.dir / "stdout.json", ec);
    if (!ec && size > 0) {
      std::ifstream out(a.dir / "stdout.json", std::ios::binary);
      seen.stdout_text.resize(
        std::min<size_t>(static_cast<size_t>(size), seen.max_output_bytes + 1));
      out.read(seen.stdout_text.data(),
               static_cast<std::streamsize>(seen.stdout_text.size()));
      seen.stdout_text.resize(static_cast<size_t>(out.gcount()));
    }
  }
  {
    std::error_code ec;
    auto size = fs::file_size(a.dir / "stderr.log", ec);
    if (!ec && size > 0) {
      std::ifstream err(a.dir / "stderr.log", std::ios::binary);
      constexpr size_t keep = 2000;
      if (size > keep)
        err.seekg(static_cast<std::streamoff>(size - keep));
      std::string text(std::min<size_t>(size, keep), '\0');
      err.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<size_t>(err.gcount()));
      seen.stderr_tail = tail_of(text, 500);
    }
  }
  finish(decide_step(seen));
}

/// Fails the running attempt without a process (it could not start).
void fail_without_process(chain_ptr self, std::string error,
                          std::string kind) {
  step_decision d;
  d.status = "failed";
  d.error = std::move(error);
  d.error_kind = std::move(kind);
  record_outcome(self, std::move(d), step_exit{});
}

void stop_group(chain_ptr self, int sig) {
  auto& a = *self->state.current;
  if (a.proc)
    a.proc->signal_group(sig);
}

/// begin_step said: run it.
void launch(chain_ptr self, step_start& start) {
  auto& st = self->state;
  auto& a = *st.current;
  const auto& cfg = *st.cfg;
  a.state = start.state;
  st.run = start.run;
  a.started = cfg.time->now();
  a.started_steady = std::chrono::steady_clock::now();
  if (a.step == nullptr) {
    fail_without_process(self,
                         "the workflow's definition has no step \""
                           + a.state.step + "\" any more",
                         failure::definition);
    return;
  }
  auto run_dir = cfg.artifact_root / a.req.run_id;
  a.dir = run_dir / a.state.step / std::to_string(a.state.attempt);
  auto workspace = run_dir / ".workspace";
  std::error_code ec;
  fs::remove_all(a.dir, ec);
  fs::create_directories(a.dir, ec);
  if (!ec)
    fs::create_directories(workspace, ec);
  if (ec) {
    a.dir.clear();
    fail_without_process(self,
                         "cannot create the step's folders: " + ec.message(),
                         failure::start);
    return;
  }
  {
    std::ofstream in(a.dir / "stdin.json", std::ios::binary);
    in << start.stdin_json;
    if (!in) {
      fail_without_process(self, "cannot write the step's stdin.json",
                           failure::start);
      return;
    }
  }
  step_launch l;
  l.argv = a.step->command;
  l.env = a.step->env;
  l.env.emplace_back("ENGRAM_RUN_ID", a.req.run_id);
  l.env.emplace_back("ENGRAM_WORKFLOW", st.run->workflow);
  l.env.emplace_back("ENGRAM_STEP", a.state.step);
  l.env.emplace_back("ENGRAM_ATTEMPT", std::to_string(a.state.attempt));
  l.env.emplace_back("ENGRAM_ARTIFACT_DIR", fs::absolute(a.dir).string());
  l.env.emplace_back("ENGRAM_WORKSPACE", fs::absolute(workspace).string());
  l.working_dir = workspace;
  l.stdin_file = a.dir / "stdin.json";
  l.stdout_file = a.dir / "stdout.json";
  l.stderr_file = a.dir / "stderr.log";
  auto proc = step_process::start(l);
  if (!proc) {
    fail_without_process(self, message_of(proc.error()), failure::start);
    return;
  }
  a.proc = std::make_shared<step_process>(std::move(*proc));
  log_transition(a, st.run->workflow, "started", 0, -1, {});
  auto token = a.token;
  caf::actor me = caf::actor_cast<caf::actor>(self);
  watch_exit(a.proc->pid(),
             [me, token] { caf::anon_send(me, step_exited{token}); });
  self->delayed_send(self, a.step->timeout, step_deadline{token});
  if (a.stop_requested) {
    stop_group(self, SIGTERM);
    self->delayed_send(self, cfg.kill_grace, step_kill{token});
  }
}

/// Starts the front request: credentials, begin_step, launch.
void start_attempt(chain_ptr self) {
  auto& st = self->state;
  auto& a = *st.current;
  const auto& cfg = *st.cfg;
  a.def = cfg.find(st.run->workflow);
  auto index = a.req.step_index;
  if (a.def != nullptr && index >= 0
      && index < static_cast<int32_t>(st.run->steps.size()))
    a.step = a.def->find_step(st.run->steps[index]);
  begin_step req;
  req.run_id = a.req.run_id;
  req.step_index = a.req.step_index;
  req.run_attempt = a.req.run_attempt;
  req.try_number = a.req.try_number;
  req.task_id = a.req.task_id;
  req.now_us = now_us(self);
  if (a.step != nullptr)
    for (const auto& c : a.step->credentials) {
      auto audit = check_credential(c);
      audit.run_id = a.req.run_id;
      audit.step = a.step->name;
      audit.checked_at_us = req.now_us;
      req.audits.push_back(std::move(audit));
    }
  self->request(storage_of(self), cfg.request_timeout, std::move(req))
    .then(
      [self](step_start& start) {
        auto& st = self->state;
        auto& a = *st.current;
        step_report report;
        report.run_status = start.run.status;
        report.step = start.state.step;
        report.attempt = start.state.attempt;
        switch (start.outcome) {
          case start_outcome::run:
            launch(self, start);
            return;
          case start_outcome::stale:
            st.run = std::move(start.run);
            report.outcome = "skipped";
            answer(self, std::move(report));
            return;
          case start_outcome::cancelled:
            st.run = std::move(start.run);
            report.outcome = "cancelled";
            answer(self, std::move(report));
            return;
          case start_outcome::missing_credentials: {
            a.state = start.state;
            st.run = std::move(start.run);
            log_transition(a, st.run->workflow, "failed", 0, -1,
                           start.state.error);
            count_run(*st.cfg, st.run->workflow, "failed");
            report.outcome = "failed";
            report.error = start.state.error;
            answer(self, std::move(report));
            return;
          }
        }
      },
      [self](caf::error& err) { answer(self, std::move(err)); });
}

void process_next(chain_ptr self) {
  auto& st = self->state;
  if (st.current)
    return;
  if (st.queue.empty()) {
    schedule_idle_check(self);
    return;
  }
  auto p = std::move(st.queue.front());
  st.queue.pop_front();
  st.current.emplace();
  st.current->token = st.next_token++;
  st.current->req = std::move(p.req);
  st.current->promise = std::move(p.promise);
  if (st.run) {
    start_attempt(self);
    return;
  }
  self->request(storage_of(self), st.cfg->request_timeout,
                get_run{st.run_id})
    .then(
      [self](run_detail& d) {
        self->state.run = std::move(d.run);
        start_attempt(self);
      },
      [self](caf::error& err) { answer(self, std::move(err)); });
}

caf::behavior chain(chain_ptr self, std::shared_ptr<const chain_config> cfg,
                    std::string run_id, caf::actor parent) {
  self->state.cfg = std::move(cfg);
  self->state.run_id = std::move(run_id);
  self->state.parent = parent;
  self->link_to(parent);
  return {
    [self](run_step& req) -> caf::result<step_report> {
      auto& st = self->state;
      auto promise = self->make_response_promise<step_report>();
      st.queue.push_back(pending_step{std::move(req), promise});
      process_next(self);
      return promise;
    },
    [self](stop_step&) {
      auto& st = self->state;
      if (!st.current || st.current->stop_requested)
        return;
      st.current->stop_requested = true;
      if (st.current->proc) {
        stop_group(self, SIGTERM);
        self->delayed_send(self, st.cfg->kill_grace,
                           step_kill{st.current->token});
      }
    },
    [self](step_exited& m) {
      auto& st = self->state;
      if (st.current && st.current->token == m.token && st.current->proc)
        on_exited(self);
    },
    [self](step_deadline& m) {
      auto& st = self->state;
      if (!st.current || st.current->token != m.token || !st.current->proc)
        return;
      st.current->timed_out = true;
      stop_group(self, SIGTERM);
      self->delayed_send(self, st.cfg->kill_grace, step_kill{m.token});
    },
    [self](step_kill& m) {
      auto& st = self->state;
      if (st.current && st.current->token == m.token)
        stop_group(self, SIGKILL);
    },
    [self](idle_check& m) {
      auto& st = self->state;
      if (m.generation == st.idle_generation && !st.current
          && st.queue.empty())
        self->send(st.parent, chain_idle{st.run_id});
    },
    [self](chain_quit&) {
      auto& st = self->state;
      if (!st.current && st.queue.empty())
        self->quit();
    },
  };
}

} // namespace

const workflow_definition* chain_config::find(std::string_view name) const {
  auto i = definitions.find(name);
  return i == definitions.end() ? nullptr : &i->second;
}

void count_run(const chain_config& cfg, const std::string& workflow,
               const std::string& status) {
  if (cfg.metrics == nullptr)
    return;
  cfg.metrics
    ->get_counter("engram_workflow_runs_total",
                  "Workflow runs by the state they reached.",
                  {{"workflow", workflow}, {"status", status}})
    .inc();
}

storage_actor storage_for(caf::actor_system& sys, const chain_config& cfg) {
  if (cfg.storage)
    return cfg.storage;
  return sys.registry().get<storage_actor>(caf::atom(storage_pool_name));
}

caf::actor spawn_chain(caf::actor_system& sys,
                       std::shared_ptr<const chain_config> cfg,
                       std::string run_id, caf::actor parent) {
  return sys.spawn<caf::detached>(chain, std::move(cfg), std::move(run_id),
                                  std::move(parent));
}

} // namespace engram::workflows
