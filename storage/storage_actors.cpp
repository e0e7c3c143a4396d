#include "storage/storage_actors.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics.hpp"
#include "storage/cleanup_repository.hpp"
#include "storage/connection_keeper.hpp"
#include "storage/consolidation_repository.hpp"
#include "storage/conversation_repository.hpp"
#include "storage/memory_repository.hpp"
#include "storage/node_repository.hpp"
#include "storage/platform_repository.hpp"
#include "storage/platform_sql.hpp"
#include "storage/project_repository.hpp"
#include "storage/schedule_repository.hpp"
#include "storage/schema_repository.hpp"
#include "storage/task_repository.hpp"
#include "storage/workflow_repository.hpp"

namespace engram {

namespace {

// -- worker -------------------------------------------------------------------

struct worker_state {
  storage_options options;
  /// Set when the behavior starts (the state must be default-constructible).
  std::optional<storage::connection_keeper> keeper;

  static inline const char* name = "storage_worker";
};

using worker_ptr = storage_actor::stateful_pointer<worker_state>;

template <class T>
caf::result<T> to_result(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

/// Runs `f(connection&)` on the worker's connection (see connection_keeper)
/// as a handler's result.
template <class F>
auto guarded(worker_ptr self, F&& f)
  -> caf::result<decltype(f(std::declval<pqxx::connection&>()))> {
  using value_type = decltype(f(std::declval<pqxx::connection&>()));
  return to_result(self->state.keeper->run<value_type>(std::forward<F>(f)));
}

/// Runs `f` in a transaction that commits when `f` returns; see guarded.
template <class F>
auto in_transaction(worker_ptr self, F&& f) {
  return self->state.keeper->transaction(std::forward<F>(f));
}

// -- platform messages (messages/platform.hpp) -----------------------------------

/// Runs `f(tx)`, which returns caf::expected<T>, in a transaction that
/// commits only when `f` returns a value: a refusal (not_found, conflict,
/// ...) writes nothing. std::invalid_argument from a repository (a value it
/// refuses before writing) becomes invalid_argument.
template <class F>
auto checked_transaction(worker_ptr self, F&& f) {
  return to_result(self->state.keeper->checked_transaction(std::forward<F>(f)));
}

std::optional<std::string> optional_id(const std::string& id) {
  if (id.empty())
    return std::nullopt;
  return id;
}

int64_t us_or_zero(const std::optional<wall_time>& t) {
  return t ? to_epoch_us(*t) : 0;
}

platform::conversation_info to_info(const storage::conversation_row& c) {
  platform::conversation_info result;
  result.id = c.id;
  result.project_id = c.project_id.value_or("");
  result.agent_id = c.agent_id.value_or("");
  result.user_id = c.user_id.value_or("");
  result.title = c.title;
  result.status = c.status;
  result.created_at_us = to_epoch_us(c.created_at);
  result.updated_at_us = to_epoch_us(c.updated_at);
  result.last_message_at_us = us_or_zero(c.last_message_at);
  return result;
}

platform::message_info to_info(const storage::message_row& m) {
  platform::message_info result;
  result.id = m.id;
  result.conversation_id = m.conversation_id;
  result.role = m.role;
  result.content = m.content;
  result.token_count = m.token_count.value_or(-1);
  result.created_at_us = to_epoch_us(m.created_at);
  return result;
}

std::vector<platform::message_info>
to_info(const std::vector<storage::message_row>& rows) {
  std::vector<platform::message_info> result;
  result.reserve(rows.size());
  for (const auto& m : rows)
    result.push_back(to_info(m));
  return result;
}

platform::agent_info to_info(const storage::agent_row& a) {
  platform::agent_info result;
  result.id = a.id;
  result.project_id = a.project_id.value_or("");
  result.name = a.name;
  result.system_prompt = a.system_prompt;
  result.model = a.model;
  result.created_at_us = to_epoch_us(a.created_at);
  result.updated_at_us = to_epoch_us(a.updated_at);
  return result;
}

platform::scheduled_job_info to_info(const storage::scheduled_job_row& j) {
  platform::scheduled_job_info result;
  result.id = j.id;
  result.team_id = j.team_id.value_or("");
  result.agent_id = j.agent_id;
  result.user_id = j.user_id.value_or("");
  result.name = j.name;
  result.message = j.message;
  result.cron_expression = j.cron_expression;
  result.timezone = j.timezone;
  result.is_active = j.is_active;
  result.last_run_at_us = us_or_zero(j.last_run_at);
  result.next_run_at_us = us_or_zero(j.next_run_at);
  result.run_count = j.run_count;
  result.consecutive_failures = j.consecutive_failures;
  result.last_error = j.last_error.value_or("");
  result.delivery_config_json = j.delivery_config_json;
  result.created_at_us = to_epoch_us(j.created_at);
  result.updated_at_us = to_epoch_us(j.updated_at);
  return result;
}

std::vector<storage::new_message>
to_rows(const std::vector<platform::new_message>& messages) {
  std::vector<storage::new_message> result;
  result.reserve(messages.size());
  for (const auto& m : messages) {
    storage::new_message row;
    row.role = m.role;
    row.content = m.content;
    if (m.token_count >= 0)
      row.token_count = m.token_count;
    else if (m.token_count != -1)
      throw std::invalid_argument("message token_count must not be negative");
    result.push_back(std::move(row));
  }
  return result;
}

caf::error no_such(std::string_view field, std::string_view what,
                   const std::string& id) {
  return make_error(errc::not_found, std::string{field} + ": no " + std::string{what}
                                       + " with id " + id);
}

/// A platform handler of the storage worker: the whole request in one
/// checked transaction.
caf::expected<platform::conversation_detail>
create_conversation_with_messages(pqxx::work& tx,
                                  const platform::create_conversation& req) {
  auto messages = to_rows(req.messages);
  storage::new_conversation c;
  c.project_id = optional_id(req.project_id);
  c.agent_id = optional_id(req.agent_id);
  c.user_id = optional_id(req.user_id);
  c.title = req.title;
  if (c.project_id && !storage::get_project(tx, *c.project_id))
    return no_such("project_id", "project", *c.project_id);
  if (c.agent_id) {
    auto agent = storage::get_agent(tx, *c.agent_id);
    if (!agent)
      return no_such("agent_id", "agent", *c.agent_id);
    if (!c.project_id)
      c.project_id = agent->project_id;
    else if (agent->project_id && *agent->project_id != *c.project_id)
      return make_error(errc::invalid_argument,
                        "agent_id: agent " + agent->id + " belongs to project "
                          + *agent->project_id + ", not " + *c.project_id);
  }
  auto now = from_epoch_us(req.now_us);
  platform::conversation_detail result;
  auto row = storage::create_conversation(tx, c, now);
  if (!messages.empty()) {
    auto added = storage::add_messages(tx, row.id, messages, now);
    result.messages = to_info(added.messages);
    // Adding moved last_message_at and updated_at.
    row = *storage::get_conversation(tx, row.id);
  }
  result.conversation = to_info(row);
  return result;
}

storage_actor::behavior_type storage_worker(worker_ptr self,
                                            storage_options options) {
  self->state.options = options;
  self->state.keeper.emplace(std::move(options), "storage worker");
  return {
    [self](storage::schema_status_request&) {
      return guarded(self, [&](pqxx::connection& conn) {
        return storage::schema_status{storage::applied_schema_version(conn),
                                      self->state.options.known_schema_version};
      });
    },
    [self](storage::node_heartbeat& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        storage::record_heartbeat(conn, req.node);
        return true;
      });
    },
    [self](storage::node_stopped& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        return storage::record_stopped(conn, req.id);
      });
    },
    // -- tasks --
    [self](tasks::enqueue_tasks& req) {
      if (req.tasks.size() == 1)
        // One task is one INSERT that commits on its own (its NOTIFY is
        // delivered at that commit): no BEGIN and COMMIT round trips on
        // the path from an enqueue to the task's start.
        return guarded(self, [&](pqxx::connection& conn) {
          pqxx::nontransaction tx{conn};
          return storage::enqueue_tasks(tx, req.tasks,
                                        from_epoch_us(req.now_us));
        });
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::enqueue_tasks(tx, req.tasks, from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::claim_tasks& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::claim_tasks(tx, req.queue, req.worker, req.limit,
                                    std::chrono::milliseconds{req.lease_ms},
                                    from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::complete_tasks& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::complete_and_claim(tx, req.outcomes, req.claim,
                                           from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::renew_leases& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::renew_leases(tx, req.leases,
                                     std::chrono::milliseconds{req.lease_ms},
                                     from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::release_tasks& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::release_tasks(tx, req.leases, from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::reclaim_expired& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::reclaim_expired(tx, req.limit, from_epoch_us(req.now_us));
      }));
    },
    [self](tasks::cancel_task& req) -> caf::result<std::string> {
      auto status = in_transaction(self, [&](pqxx::work& tx) {
        return storage::cancel_task(tx, req.id, from_epoch_us(req.now_us));
      });
      if (status && status->empty())
        return make_error(errc::not_found,
                          "no task with id " + std::to_string(req.id));
      return to_result(std::move(status));
    },
    [self](tasks::retry_task& req) -> caf::result<std::string> {
      auto status = in_transaction(self, [&](pqxx::work& tx) {
        return storage::retry_task(tx, req.id, from_epoch_us(req.now_us));
      });
      if (!status)
        return std::move(status.error());
      if (status->empty())
        return make_error(errc::not_found,
                          "no task with id " + std::to_string(req.id));
      if (*status == "blocked")
        return make_error(errc::conflict,
                          "another queued or running task holds the unique key "
                          "of task " + std::to_string(req.id));
      if (*status != "queued")
        return make_error(errc::conflict,
                          "task " + std::to_string(req.id) + " is " + *status
                            + "; only dead or cancelled tasks can be retried");
      return *status;
    },
    [self](tasks::get_task& req) -> caf::result<tasks::task_info> {
      auto info = in_transaction(self, [&](pqxx::work& tx) {
        return storage::get_task(tx, req.id);
      });
      if (!info)
        return std::move(info.error());
      if (!*info)
        return make_error(errc::not_found,
                          "no task with id " + std::to_string(req.id));
      return std::move(**info);
    },
    [self](tasks::list_tasks& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::list_tasks(tx, req);
      }));
    },
    [self](tasks::purge_finished_tasks& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::purge_finished_tasks(tx, from_epoch_us(req.now_us),
                                             req.succeeded_days, req.dead_days,
                                             req.limit);
      }));
    },
    [self](tasks::queue_depths_request& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::queue_depths(tx, from_epoch_us(req.now_us));
      }));
    },
    // -- platform: cleanups --
    [self](platform::expire_tokens& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::expire_tokens(tx, from_epoch_us(req.now_us), req.limit);
      }));
    },
    [self](platform::close_stale_sessions& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::close_stale_sessions(tx, from_epoch_us(req.now_us),
                                             req.idle_minutes, req.limit);
      }));
    },
    [self](platform::archive_old_conversations& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::archive_old_conversations(tx, from_epoch_us(req.now_us),
                                                  req.days, req.limit);
      }));
    },
    [self](platform::archive_expired_memories& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::archive_expired_memories(tx, from_epoch_us(req.now_us),
                                                 req.limit);
      }));
    },
    // -- platform: conversations --
    [self](platform::create_conversation& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return create_conversation_with_messages(tx, req);
      });
    },
    [self](platform::get_conversation& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<platform::conversation_detail> {
          auto found = storage::get_conversation_with_messages(tx, req.id);
          if (!found)
            return no_such("conversation_id", "conversation", req.id);
          return platform::conversation_detail{to_info(found->conversation),
                                               to_info(found->messages)};
        });
    },
    [self](platform::add_messages& req) {
      return checked_transaction(
        self,
        [&](pqxx::work& tx) -> caf::expected<std::vector<platform::message_info>> {
          auto added = storage::add_messages(tx, req.conversation_id,
                                             to_rows(req.messages),
                                             from_epoch_us(req.now_us));
          using outcome = storage::add_messages_result::outcome;
          if (added.result == outcome::not_found)
            return no_such("conversation_id", "conversation",
                           req.conversation_id);
          if (added.result == outcome::closed)
            return make_error(errc::conflict,
                              "conversation " + req.conversation_id
                                + " is closed and takes no more messages");
          return to_info(added.messages);
        });
    },
    // -- platform: memories --
    [self](platform::insert_extracted_memories& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<platform::extraction_info> {
          if (!storage::get_project(tx, req.project_id))
            return no_such("project_id", "project", req.project_id);
          std::vector<storage::extracted_fact> facts;
          facts.reserve(req.facts.size());
          for (auto& f : req.facts)
            facts.push_back(storage::extracted_fact{f.type, f.content,
                                                    f.importance, f.embedding,
                                                    f.embedding_model});
          auto result = storage::insert_extracted_memories(
            tx, req.project_id, optional_id(req.agent_id), req.conversation_id,
            facts, from_epoch_us(req.now_us));
          return platform::extraction_info{result.created,
                                           result.skipped_duplicates,
                                           std::move(result.ids)};
        });
    },
    [self](platform::request_extraction& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<tasks::task_info> {
          if (!storage::get_conversation(tx, req.conversation_id))
            return no_such("conversation_id", "conversation",
                           req.conversation_id);
          auto enqueued = storage::enqueue_task(tx, req.task,
                                                from_epoch_us(req.now_us));
          return std::move(*storage::get_task(tx, enqueued.id));
        });
    },
    // -- platform: agents --
    [self](platform::create_agent& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<platform::agent_info> {
          if (!req.id.empty() && !storage::platform_detail::is_uuid(req.id))
            return make_error(errc::invalid_argument,
                              "id: must be a UUID, got '" + req.id + "'");
          if (!req.id.empty() && storage::get_agent(tx, req.id))
            return make_error(errc::conflict,
                              "id: an agent with id " + req.id
                                + " exists already");
          if (!req.project_id.empty()
              && !storage::get_project(tx, req.project_id))
            return no_such("project_id", "project", req.project_id);
          storage::new_agent a{req.id, optional_id(req.project_id), req.name,
                               req.system_prompt, req.model};
          return to_info(
            storage::create_agent(tx, a, from_epoch_us(req.now_us)));
        });
    },
    [self](platform::get_agent& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<platform::agent_info> {
          auto found = storage::get_agent(tx, req.id);
          if (!found)
            return no_such("agent_id", "agent", req.id);
          return to_info(*found);
        });
    },
    // -- platform: scheduled runs --
    [self](platform::get_scheduled_job& req) {
      return checked_transaction(
        self, [&](pqxx::work& tx) -> caf::expected<platform::scheduled_job_info> {
          auto found = storage::get_scheduled_job(tx, req.id);
          if (!found)
            return no_such("job_id", "scheduled job", req.id);
          return to_info(*found);
        });
    },
    [self](platform::record_run_start& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::record_run_start(tx, req.job_id, req.run_id,
                                         from_epoch_us(req.now_us));
      }));
    },
    [self](platform::record_run_result& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        auto tracking = storage::record_run_result(
          tx, req.job_id, req.run_id, req.succeeded, req.error,
          from_epoch_us(req.now_us), optional_id(req.conversation_id));
        platform::run_tracking_info result;
        if (tracking)
          result = platform::run_tracking_info{
            true, tracking->run_count, tracking->consecutive_failures,
            tracking->is_active, tracking->deactivated};
        return result;
      }));
    },
    [self](platform::record_run_skipped& req) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::record_run_skipped(tx, req.job_id, req.run_id,
                                           req.reason,
                                           from_epoch_us(req.now_us));
      }));
    },
    // -- projects and memories (storage/memory_repository.hpp) --
    [self](memories::put_project_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::put_project(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](memories::get_project_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::read_project(tx, req.id);
      });
    },
    [self](memories::import_memories_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        auto now = from_epoch_us(req.now_us);
        return storage::import_memories(tx, std::move(req), now);
      });
    },
    [self](memories::import_stream_request& req) {
      // Within the statement timeout too, as every other request: the pool
      // gives up on a worker's answer after it (and some slack), and an
      // import must not commit after its caller was told it failed.
      auto deadline = req.deadline;
      if (auto limit = self->state.options.statement_timeout; limit.count() > 0)
        deadline = std::min(deadline, std::chrono::steady_clock::now() + limit);
      // Cancelled, or out of time, while it waited for this worker.
      if (req.stream->stopped()
          || std::chrono::steady_clock::now() >= deadline) {
        req.stream->cancel(errc::timeout, "the import did not start in time");
        return caf::result<memories::import_result>{make_error(
          errc::timeout, "the import did not start within its time; nothing "
                         "was imported")};
      }
      auto result = checked_transaction(self, [&](pqxx::work& tx) {
        return storage::import_memory_stream(tx, *req.stream, req.project_id,
                                             from_epoch_us(req.now_us),
                                             deadline);
      });
      // Also when the import never ran (no connection): the producer stops.
      req.stream->cancel(errc::unspecified, "the import was not run");
      return result;
    },
    [self](memories::list_memories_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::list_memories(tx, req);
      });
    },
    [self](memories::get_memory_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::get_memory(tx, req.id);
      });
    },
    [self](memories::restore_memory_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::restore_memory(tx, req.memory_id,
                                       from_epoch_us(req.now_us));
      });
    },
    [self](cache::load_hot_memories& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::hot_memories(tx, req.agent_id, req.limit);
      });
    },
    // -- consolidation jobs (storage/consolidation_repository.hpp) --
    [self](consolidation::create_job_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::create_job(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](consolidation::get_job_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::get_job(tx, req.id);
      });
    },
    [self](consolidation::list_jobs_request& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::list_jobs(tx, req);
      });
    },
    [self](consolidation::enabled_projects_request&) {
      return to_result(in_transaction(self, [&](pqxx::work& tx) {
        return storage::enabled_projects(tx);
      }));
    },
    // -- workflow chains (storage/workflow_repository.hpp) --
    [self](workflows::create_run& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::create_run(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](workflows::begin_step& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::begin_step(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](workflows::finish_step& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::finish_step(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](workflows::cancel_run& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::cancel_run(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](workflows::retry_run& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::retry_run(tx, req, from_epoch_us(req.now_us));
      });
    },
    [self](workflows::record_audits& req) {
      // The message carries no time: audits without one are stamped with
      // the daemon's clock.
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::record_audits(tx, req, real_clock().now());
      });
    },
    [self](workflows::get_run& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::get_run(tx, req.run_id);
      });
    },
    [self](workflows::list_runs& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::list_runs(tx, req);
      });
    },
    [self](workflows::list_artifacts& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::list_artifacts(tx, req.run_id);
      });
    },
    [self](workflows::get_artifact& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::get_artifact(tx, req.run_id, req.artifact_id);
      });
    },
    [self](workflows::list_audits& req) {
      return checked_transaction(self, [&](pqxx::work& tx) {
        return storage::list_audits(tx, req.run_id);
      });
    },
  };
}

// -- pool ---------------------------------------------------------------------

struct pool_state {
  storage_options options;
  std::vector<storage_actor> workers;
  /// Requests handed to each worker and not yet answered.
  std::vector<int64_t> outstanding;
  int64_t errors = 0;
  metrics::registry* metrics = nullptr;
  metrics::gauge* in_use_gauge = nullptr;
  metrics::gauge* idle_gauge = nullptr;

  static inline const char* name = "storage_pool";
};

using pool_ptr = storage_pool_actor::stateful_pointer<pool_state>;

storage::pool_stats stats_of(const pool_state& st) {
  storage::pool_stats result;
  result.size = static_cast<int64_t>(st.workers.size());
  for (auto n : st.outstanding) {
    result.in_use += n > 0 ? 1 : 0;
    result.queued += n > 1 ? n - 1 : 0;
  }
  result.errors = st.errors;
  return result;
}

void publish_gauges(pool_state& st) {
  if (st.in_use_gauge == nullptr)
    return;
  auto s = stats_of(st);
  st.in_use_gauge->set(static_cast<double>(s.in_use));
  st.idle_gauge->set(static_cast<double>(s.size - s.in_use));
}

void on_done(pool_ptr self, size_t worker, const caf::error* err) {
  auto& st = self->state;
  --st.outstanding[worker];
  if (err != nullptr) {
    ++st.errors;
    if (st.metrics)
      st.metrics
        ->get_counter("engram_storage_errors_total",
                      "Storage requests answered with an error, by code.",
                      {{"code", std::string{to_string(code_of(*err))}}})
        .inc();
  }
  publish_gauges(st);
}

/// Hands `req` to the least busy worker and relays its answer.
template <class Reply, class Request>
caf::typed_response_promise<Reply> dispatch(pool_ptr self, Request& req) {
  auto& st = self->state;
  auto i = static_cast<size_t>(
    std::min_element(st.outstanding.begin(), st.outstanding.end())
    - st.outstanding.begin());
  ++st.outstanding[i];
  publish_gauges(st);
  auto rp = self->template make_response_promise<Reply>();
  // A worker answers within one connect attempt plus one statement; the
  // slack covers queueing behind requests handed to it earlier.
  auto timeout = st.options.connect_timeout + st.options.statement_timeout
                 + std::chrono::seconds{30};
  self->request(st.workers[i], timeout, std::move(req))
    .then(
      [self, i, rp](Reply& reply) mutable {
        on_done(self, i, nullptr);
        rp.deliver(std::move(reply));
      },
      [self, i, rp](caf::error& err) mutable {
        on_done(self, i, &err);
        rp.deliver(std::move(err));
      });
  return rp;
}

/// The handler that dispatches one message type of the storage interface.
template <class Request, class Reply>
auto dispatcher(pool_ptr self,
                caf::typed_mpi<caf::detail::type_list<Request>,
                               caf::output_tuple<Reply>>*) {
  return [self](Request& req) { return dispatch<Reply>(self, req); };
}

/// The pool's behavior: a dispatcher for every message of the storage
/// interface (so a new storage message needs no line here) plus statistics.
template <class... Signatures>
storage_pool_actor::behavior_type
pool_behavior(pool_ptr self, caf::detail::type_list<Signatures...>) {
  return {
    dispatcher(self, static_cast<Signatures*>(nullptr))...,
    [self](atom::stats) { return stats_of(self->state); },
  };
}

storage_pool_actor::behavior_type storage_pool(pool_ptr self,
                                               storage_options options,
                                               size_t size,
                                               metrics::registry* registry) {
  auto& st = self->state;
  st.options = options;
  st.metrics = registry;
  if (registry != nullptr) {
    constexpr auto help = "Storage connections (one per storage worker) by "
                          "state.";
    st.in_use_gauge = &registry->get_gauge("engram_storage_pool_connections",
                                           help, {{"state", "in_use"}});
    st.idle_gauge = &registry->get_gauge("engram_storage_pool_connections",
                                         help, {{"state", "idle"}});
    registry->get_counter("engram_storage_errors_total",
                          "Storage requests answered with an error, by code.",
                          {{"code", "database_unavailable"}});
  }
  for (size_t i = 0; i < std::max<size_t>(size, 1); ++i) {
    auto worker = self->system().spawn<caf::detached>(storage_worker, options);
    // A worker that dies takes the pool with it; the supervisor restarts the
    // pool, which starts fresh workers.
    self->link_to(worker);
    st.workers.push_back(worker);
    st.outstanding.push_back(0);
  }
  publish_gauges(st);
  return pool_behavior(self, storage_actor::signatures{});
}

} // namespace

storage_actor spawn_storage_worker(caf::actor_system& sys,
                                   storage_options options) {
  return sys.spawn<caf::detached>(storage_worker, std::move(options));
}

storage_pool_actor spawn_storage_pool(caf::actor_system& sys,
                                      storage_options options, size_t size,
                                      metrics::registry* metrics) {
  return sys.spawn(storage_pool, std::move(options), size, metrics);
}

} // namespace engram
