#include "actors/workflows/workflow_actor.hpp"

#include <map>

#include <boost/json.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/workflows/step_outcome.hpp"
#include "actors/workflows/step_process.hpp"
#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/uuid.hpp"

namespace engram {

namespace {

namespace json = boost::json;
using namespace workflows;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("workflows");
  return result;
}

struct workflow_state {
  std::shared_ptr<const chain_config> cfg;
  /// The chain of each run that has one on this node.
  std::map<std::string, caf::actor> chains;

  workflow_state() = default;
  workflow_state(const workflow_state&) = delete;
  workflow_state& operator=(const workflow_state&) = delete;
  /// Chains stop with this actor (a normal exit does not reach linked
  /// actors), killing any step still running.
  ~workflow_state() {
    for (const auto& [run, chain] : chains)
      caf::anon_send_exit(chain, caf::exit_reason::user_shutdown);
  }

  static inline const char* name = "workflows";
};

using workflow_ptr = caf::stateful_actor<workflow_state>*;

storage_actor storage_of(workflow_ptr self) {
  return storage_for(self->system(), *self->state.cfg);
}

int64_t now_us(workflow_ptr self) {
  return to_epoch_us(self->state.cfg->time->now());
}

caf::actor chain_of(workflow_ptr self, const std::string& run_id) {
  auto& st = self->state;
  auto i = st.chains.find(run_id);
  if (i != st.chains.end())
    return i->second;
  auto chain = spawn_chain(self->system(), st.cfg, run_id,
                           caf::actor_cast<caf::actor>(self));
  st.chains.emplace(run_id, chain);
  return chain;
}

std::string known_workflows(const chain_config& cfg) {
  std::string out;
  for (const auto& [name, def] : cfg.definitions)
    out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

/// "set the environment variable X" / "provide the file /p" for each
/// unusable credential.
std::string guidance(const std::vector<credential_audit>& audits) {
  std::string out;
  for (const auto& a : audits) {
    if (a.valid)
      continue;
    if (!out.empty())
      out += "; ";
    if (a.kind == "file")
      out += "provide the file " + a.credential.substr(5) + " (" + a.detail
             + ")";
    else
      out += "set the environment variable " + a.credential + " ("
             + a.detail + ")";
  }
  return out;
}

std::string definitions_json(const chain_config& cfg) {
  json::array list;
  for (const auto& [name, def] : cfg.definitions) {
    json::object o;
    o["name"] = def.name;
    o["description"] = def.description;
    o["branch"] = def.branch_template.empty()
                    ? json::value(nullptr)
                    : json::value(def.branch_template);
    json::array steps;
    for (const auto& s : def.steps) {
      json::object so;
      so["name"] = s.name;
      json::array cmd;
      for (const auto& c : s.command)
        cmd.emplace_back(c);
      so["command"] = std::move(cmd);
      so["timeout_ms"] = s.timeout.count();
      so["retries"] = s.retries;
      so["backoff_ms"] = s.backoff.count();
      json::array creds;
      for (const auto& c : s.credentials)
        creds.emplace_back(c.name);
      so["requires_credentials"] = std::move(creds);
      steps.emplace_back(std::move(so));
    }
    o["steps"] = std::move(steps);
    list.emplace_back(std::move(o));
  }
  json::object body;
  body["workflows"] = std::move(list);
  return json::serialize(body);
}

caf::result<create_run_result> on_start(workflow_ptr self, start_run& req) {
  auto& st = self->state;
  const auto* def = st.cfg->find(req.workflow);
  if (def == nullptr)
    return make_error(errc::not_found,
                      "no workflow named \"" + req.workflow
                        + "\" (defined: " + known_workflows(*st.cfg) + ")");
  boost::system::error_code ec;
  auto input = json::parse(req.input_json.empty() ? "{}" : req.input_json,
                           ec);
  if (ec || !input.is_object())
    return make_error(errc::invalid_argument,
                      "the run's input must be a JSON object");
  auto branch = derive_branch(*def, input.as_object());
  if (!branch)
    return std::move(branch.error());
  create_run c;
  c.id = random_uuid();
  c.workflow = def->name;
  c.idempotency_key = req.idempotency_key;
  c.branch_name = std::move(*branch);
  c.input_json = json::serialize(input);
  c.steps = def->step_names();
  c.first_task = step_task(st.cfg->queue, c.id, 0, 1, 1,
                           def->steps.front().timeout, st.cfg->kill_grace);
  c.now_us = now_us(self);
  auto promise = self->make_response_promise<create_run_result>();
  self->request(storage_of(self), st.cfg->request_timeout, std::move(c))
    .then(
      [self, promise](create_run_result& r) mutable {
        if (r.created) {
          count_run(*self->state.cfg, r.run.workflow, "pending");
          logger()->info("run {} workflow={} created{}", r.run.id,
                         r.run.workflow,
                         r.run.branch_name.empty()
                           ? std::string{}
                           : " branch=" + r.run.branch_name);
        }
        promise.deliver(std::move(r));
      },
      [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
  return promise;
}

caf::result<run_record> on_cancel(workflow_ptr self, cancel_request& req) {
  auto& st = self->state;
  auto promise = self->make_response_promise<run_record>();
  auto run_id = req.run_id;
  self
    ->request(storage_of(self), st.cfg->request_timeout,
              cancel_run{run_id, now_us(self)})
    .then(
      [self, promise, run_id](run_record& run) mutable {
        auto& st = self->state;
        count_run(*st.cfg, run.workflow, "cancelled");
        logger()->info("run {} workflow={} cancelled by an operator", run.id,
                       run.workflow);
        if (auto i = st.chains.find(run_id); i != st.chains.end())
          self->send(i->second, stop_step{run_id});
        // A step running on another node: cancel its task, so that node's
        // worker stops it.
        self->request(storage_of(self), st.cfg->request_timeout,
                      get_run{run_id})
          .then(
            [self](run_detail& d) {
              for (const auto& s : d.steps)
                if (s.status == "running" && s.task_id != 0)
                  self->request(storage_of(self),
                                self->state.cfg->request_timeout,
                                tasks::cancel_task{s.task_id, now_us(self)})
                    .then([](std::string&) {},
                          [](caf::error& err) {
                            logger()->warn("cannot cancel a cancelled run's "
                                           "task: {}",
                                           describe(err));
                          });
            },
            [](caf::error&) {});
        promise.deliver(std::move(run));
      },
      [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
  return promise;
}

caf::result<run_record> on_retry(workflow_ptr self, retry_request& req) {
  auto& st = self->state;
  auto promise = self->make_response_promise<run_record>();
  auto note = req.note;
  self->request(storage_of(self), st.cfg->request_timeout, get_run{req.run_id})
    .then(
      [self, promise, note](run_detail& d) mutable {
        auto& st = self->state;
        const auto& run = d.run;
        if (run.status != "failed") {
          promise.deliver(make_error(errc::conflict,
                                     "only a failed run can be retried; "
                                     "this one is "
                                       + run.status));
          return;
        }
        const auto* def = st.cfg->find(run.workflow);
        const step_definition* step = nullptr;
        if (def != nullptr && run.current_step_index >= 0
            && run.current_step_index
                 < static_cast<int32_t>(run.steps.size()))
          step = def->find_step(run.steps[run.current_step_index]);
        retry_run r;
        r.run_id = run.id;
        r.note = note;
        r.now_us = now_us(self);
        if (step != nullptr)
          for (const auto& c : step->credentials) {
            auto audit = check_credential(c);
            audit.run_id = run.id;
            audit.step = step->name;
            audit.checked_at_us = r.now_us;
            r.audits.push_back(std::move(audit));
          }
        auto missing = guidance(r.audits);
        if (!missing.empty()) {
          // Still missing: fail fast, record the check, change nothing.
          auto message = "the step \"" + step->name
                         + "\" still lacks a credential: " + missing;
          self
            ->request(storage_of(self), st.cfg->request_timeout,
                      record_audits{std::move(r.audits)})
            .then(
              [promise, message](int64_t) mutable {
                promise.deliver(make_error(errc::unprocessable, message));
              },
              [promise](caf::error& err) mutable {
                promise.deliver(std::move(err));
              });
          return;
        }
        auto timeout = step != nullptr ? step->timeout
                                       : std::chrono::milliseconds{600000};
        r.task = step_task(st.cfg->queue, run.id, run.current_step_index,
                           run.attempt + 1, 1, timeout, st.cfg->kill_grace);
        self->request(storage_of(self), st.cfg->request_timeout, std::move(r))
          .then(
            [self, promise](run_record& run) mutable {
              count_run(*self->state.cfg, run.workflow, "retrying");
              logger()->info("run {} workflow={} retried from step {} "
                             "(attempt {})",
                             run.id, run.workflow,
                             run.steps.at(run.current_step_index),
                             run.attempt);
              promise.deliver(std::move(run));
            },
            [promise](caf::error& err) mutable {
              promise.deliver(std::move(err));
            });
      },
      [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
  return promise;
}

caf::behavior workflow_behavior(workflow_ptr self,
                                std::shared_ptr<const chain_config> cfg) {
  self->state.cfg = std::move(cfg);
  // A chain that fails is dropped, not followed.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    for (auto i = st.chains.begin(); i != st.chains.end(); ++i)
      if (i->second.address() == msg.source) {
        if (msg.reason && msg.reason != caf::exit_reason::normal)
          logger()->warn("the chain of run {} failed: {}", i->first,
                         to_string(msg.reason));
        st.chains.erase(i);
        return;
      }
    if (msg.reason && msg.reason != caf::exit_reason::normal)
      self->quit(std::move(msg.reason));
  });
  return {
    [self](start_run& req) { return on_start(self, req); },
    [self](cancel_request& req) { return on_cancel(self, req); },
    [self](retry_request& req) { return on_retry(self, req); },
    [self](run_step& req) {
      return self->delegate(chain_of(self, req.run_id), std::move(req));
    },
    [self](stop_step& req) {
      auto& st = self->state;
      if (auto i = st.chains.find(req.run_id); i != st.chains.end())
        self->send(i->second, std::move(req));
    },
    [self](list_definitions&) -> std::string {
      return definitions_json(*self->state.cfg);
    },
    [self](chain_idle& m) {
      auto& st = self->state;
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      if (auto i = st.chains.find(m.run_id);
          i != st.chains.end() && i->second == sender)
        st.chains.erase(i);
      if (sender)
        self->send(sender, chain_quit{});
    },
  };
}

} // namespace

workflow_actor
spawn_workflow_actor(caf::actor_system& sys,
                     std::shared_ptr<const workflows::chain_config> cfg) {
  return caf::actor_cast<workflow_actor>(
    sys.spawn(workflow_behavior, std::move(cfg)));
}

} // namespace engram
