#include "storage/schedule_store.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/pqxx>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "storage/connection_keeper.hpp"
#include "storage/platform_sql.hpp"
#include "storage/schedule_repository.hpp"
#include "storage/task_repository.hpp"

namespace engram {

namespace {

using namespace schedules;
using storage::platform_detail::is_uuid;

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("scheduler");
  return result;
}

/// Thrown inside a request to answer it with `err` (the transaction, if
/// any, rolls back).
class refusal : public std::exception {
public:
  explicit refusal(caf::error err) : err_(std::move(err)) {}
  const char* what() const noexcept override { return "refused"; }
  caf::error& error() noexcept { return err_; }

private:
  caf::error err_;
};

[[noreturn]] void refuse(errc code, std::string message) {
  throw refusal{make_error(code, std::move(message))};
}

struct store_state {
  schedule_store_options options;
  /// Set when the behavior starts (the state must be default-constructible).
  std::optional<storage::connection_keeper> keeper;
  /// The session holds the scheduler lock (taken on connection number
  /// `lock_generation`).
  bool holds_lock = false;
  uint64_t lock_generation = 0;

  /// Forgets the lock when the connection that held it is gone.
  void check_lock() {
    if (holds_lock
        && (!keeper->connected() || keeper->generation() != lock_generation)) {
      logger()->warn("the scheduler's database session ended: leadership "
                     "is lost");
      holds_lock = false;
    }
  }

  static inline const char* name = "schedule_store";
};

using self_ptr = schedule_store_actor::stateful_pointer<store_state>;

template <class T>
caf::result<T> to_result(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

/// Runs `f` on the connection (see connection_keeper); refusals become
/// their error. A lost connection is dropped, and with it the lock.
template <class F>
auto guarded(self_ptr self, F&& f)
  -> caf::result<decltype(f(std::declval<pqxx::connection&>()))> {
  using value_type = decltype(f(std::declval<pqxx::connection&>()));
  auto& st = self->state;
  st.check_lock();
  auto out = st.keeper->run<caf::expected<value_type>>(
    [&](pqxx::connection& conn) -> caf::expected<value_type> {
      try {
        return f(conn);
      } catch (refusal& r) {
        return std::move(r.error());
      }
    });
  st.check_lock();
  if (!out)
    return std::move(out.error());
  return to_result(std::move(*out));
}

void require_lock(const store_state& st) {
  if (!st.holds_lock)
    refuse(errc::conflict, "this node does not hold the scheduler lock");
}

std::optional<int64_t> us_or_null(int64_t us) {
  if (us == 0)
    return std::nullopt;
  return us;
}

std::optional<wall_time> time_or_none(int64_t us) {
  if (us == 0)
    return std::nullopt;
  return from_epoch_us(us);
}

int64_t us_of(const std::optional<wall_time>& t) {
  return t ? to_epoch_us(*t) : 0;
}

std::optional<std::string> text_or_none(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  return s;
}

job_info to_info(const storage::scheduled_job_row& row) {
  job_info j;
  j.id = row.id;
  j.team_id = row.team_id.value_or("");
  j.agent_id = row.agent_id;
  j.user_id = row.user_id.value_or("");
  j.name = row.name;
  j.message = row.message;
  j.cron_expression = row.cron_expression;
  j.timezone = row.timezone;
  j.is_active = row.is_active;
  j.last_run_at_us = us_of(row.last_run_at);
  j.next_run_at_us = us_of(row.next_run_at);
  j.run_count = row.run_count;
  j.consecutive_failures = row.consecutive_failures;
  j.last_error = row.last_error.value_or("");
  j.delivery_config_json = row.delivery_config_json;
  j.created_at_us = to_epoch_us(row.created_at);
  j.updated_at_us = to_epoch_us(row.updated_at);
  return j;
}

run_info to_info(const storage::job_run_row& row) {
  run_info r;
  r.id = row.id;
  r.job_id = row.job_id;
  r.task_id = row.task_id.value_or(0);
  r.fire_time_us = us_of(row.fire_time);
  r.status = row.status;
  r.conversation_id = row.conversation_id.value_or("");
  r.error = row.error.value_or("");
  r.started_at_us = us_of(row.started_at);
  r.finished_at_us = us_of(row.finished_at);
  r.created_at_us = to_epoch_us(row.created_at);
  return r;
}

caf::error no_job(const std::string& id) {
  return make_error(errc::not_found, "no schedule with id \"" + id + "\"");
}

/// The args of agent.scheduled_run: job id, run id and the slot (null for a
/// manual run). Ids and times contain nothing that needs escaping.
std::string run_args(const std::string& job_id, int64_t run_id,
                     int64_t fire_us) {
  std::string fire = "null";
  if (fire_us != 0) {
    auto t = std::chrono::floor<std::chrono::seconds>(from_epoch_us(fire_us));
    auto secs = t.time_since_epoch().count();
    std::time_t tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    fire = buf;
  }
  return R"({"job_id":")" + job_id + R"(","run_id":)" + std::to_string(run_id)
         + R"(,"fire_time":)" + fire + "}";
}

schedule_store_actor::behavior_type store(self_ptr self,
                                          schedule_store_options options) {
  self->state.options = options;
  self->state.keeper.emplace(std::move(options.storage), "schedule store");
  return {
    // -- leadership --
    [self](lead_request&) {
      return guarded(self, [&](pqxx::connection& conn) {
        auto& st = self->state;
        pqxx::nontransaction tx{conn};
        if (st.holds_lock) {
          // Confirm on the live session (a bigint key shows as classid =
          // high half, objid = low half, objsubid = 1).
          auto held = tx.exec_params1(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = "
            "'advisory' AND pid = pg_backend_pid() AND granted "
            "AND objsubid = 1 AND classid = (($1::bigint >> 32) & "
            "4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid)",
            st.options.lock_key);
          st.holds_lock = held[0].as<bool>();
          if (!st.holds_lock)
            logger()->warn("the scheduler lock is no longer held by this "
                           "session");
        }
        if (!st.holds_lock) {
          auto got = tx.exec_params1("SELECT pg_try_advisory_lock($1)",
                                     st.options.lock_key);
          st.holds_lock = got[0].as<bool>();
          st.lock_generation = st.keeper->generation();
        }
        return leadership{st.holds_lock};
      });
    },
    // -- static entries --
    [self](load_static_states& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::read_transaction tx{conn};
        auto rows = tx.exec(
          "SELECT entry, cron_expression, timezone, "
          "engram.to_us(last_fire_at), engram.to_us(next_fire_at) "
          "FROM engram.schedule_state ORDER BY entry");
        std::vector<static_state> result;
        for (const auto& row : rows) {
          auto entry = row[0].as<std::string>();
          if (std::find(req.entries.begin(), req.entries.end(), entry)
              == req.entries.end())
            continue;
          static_state s;
          s.entry = std::move(entry);
          s.cron_expression = row[1].as<std::string>();
          s.timezone = row[2].as<std::string>();
          s.last_fire_us = row[3].is_null() ? 0 : row[3].as<int64_t>();
          s.next_fire_us = row[4].is_null() ? 0 : row[4].as<int64_t>();
          result.push_back(std::move(s));
        }
        return result;
      });
    },
    [self](save_static_states& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        require_lock(self->state);
        pqxx::work tx{conn};
        for (const auto& s : req.states)
          tx.exec_params(
            "INSERT INTO engram.schedule_state AS s (entry, cron_expression, "
            "  timezone, next_fire_at, updated_at) "
            "VALUES ($1, $2, $3, engram.from_us($4), engram.from_us($5)) "
            "ON CONFLICT (entry) DO UPDATE SET "
            "  cron_expression = EXCLUDED.cron_expression, "
            "  timezone = EXCLUDED.timezone, "
            "  next_fire_at = EXCLUDED.next_fire_at, "
            "  updated_at = EXCLUDED.updated_at",
            s.entry, s.cron_expression, s.timezone, us_or_null(s.next_fire_us),
            req.now_us);
        tx.commit();
        return true;
      });
    },
    [self](fire_static& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        require_lock(self->state);
        pqxx::work tx{conn};
        auto moved = tx.exec_params(
          "UPDATE engram.schedule_state SET "
          "  last_fire_at = engram.from_us($5), "
          "  next_fire_at = engram.from_us($6), "
          "  fire_count = fire_count + 1, "
          "  misfire_count = misfire_count "
          "    + CASE WHEN $7::boolean THEN 1 ELSE 0 END, "
          "  updated_at = engram.from_us($8) "
          "WHERE entry = $1 AND cron_expression = $2 AND timezone = $3 "
          "AND next_fire_at = engram.from_us($4)",
          req.entry, req.cron_expression, req.timezone, req.expected_next_us,
          req.fire_us, us_or_null(req.next_us), req.misfire, req.now_us);
        if (moved.affected_rows() != 1)
          return fire_result{fire_outcome::stale, 0, false, 0};
        auto now = from_epoch_us(req.now_us);
        auto task = storage::enqueue_task(tx, req.task, now);
        tx.exec_params("UPDATE engram.schedule_state SET last_task_id = $2 "
                       "WHERE entry = $1",
                       req.entry, task.id);
        tx.commit();
        return fire_result{fire_outcome::fired, task.id, task.created, 0};
      });
    },
    // -- dynamic jobs --
    [self](load_active_jobs& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        if (req.now_us != 0) {
          pqxx::work closing{conn};
          auto closed
            = storage::close_abandoned_runs(closing, from_epoch_us(req.now_us));
          closing.commit();
          if (closed > 0)
            logger()->warn("recorded {} scheduled run(s) as failed: their "
                           "task ended without a result",
                           closed);
        }
        pqxx::read_transaction tx{conn};
        std::vector<job_info> result;
        for (const auto& row : storage::list_active_jobs(tx))
          result.push_back(to_info(row));
        return result;
      });
    },
    [self](set_job_next& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        require_lock(self->state);
        if (!is_uuid(req.job_id))
          return false;
        pqxx::work tx{conn};
        auto result = tx.exec_params(
          "UPDATE engram.scheduled_jobs SET next_run_at = engram.from_us($4), "
          "  updated_at = engram.from_us($5) "
          "WHERE id = $1::uuid AND is_active AND cron_expression = $2 "
          "AND timezone = $3 "
          "AND next_run_at IS NOT DISTINCT FROM engram.from_us($6)",
          req.job_id, req.cron_expression, req.timezone,
          us_or_null(req.next_us), req.now_us,
          us_or_null(req.expected_next_us));
        tx.commit();
        return result.affected_rows() == 1;
      });
    },
    [self](fire_job& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        require_lock(self->state);
        fire_result stale{fire_outcome::stale, 0, false, 0};
        if (!is_uuid(req.job_id))
          return stale;
        pqxx::work tx{conn};
        auto job = tx.exec_params(
          "SELECT cron_expression, timezone, is_active, "
          "  engram.to_us(next_run_at) "
          "FROM engram.scheduled_jobs WHERE id = $1::uuid FOR UPDATE",
          req.job_id);
        if (job.empty() || job[0][0].as<std::string>() != req.cron_expression
            || job[0][1].as<std::string>() != req.timezone
            || !job[0][2].as<bool>() || job[0][3].is_null()
            || job[0][3].as<int64_t>() != req.expected_next_us)
          return stale;
        auto now = from_epoch_us(req.now_us);
        auto run = storage::record_run_queued(tx, req.job_id,
                                              from_epoch_us(req.fire_us),
                                              std::nullopt, now);
        if (!run)
          return stale;
        fire_result result{fire_outcome::duplicate, 0, false, run->run_id};
        if (run->created) {
          auto task = req.task;
          task.args_json = run_args(req.job_id, run->run_id, req.fire_us);
          auto enqueued = storage::enqueue_task(tx, task, now);
          (void) storage::attach_run_task(tx, run->run_id, enqueued.id);
          result.outcome = fire_outcome::fired;
          result.task_id = enqueued.id;
          result.task_created = enqueued.created;
        } else if (auto existing = storage::get_job_run(tx, run->run_id)) {
          result.task_id = existing->task_id.value_or(0);
        }
        (void) storage::set_next_run(tx, req.job_id, time_or_none(req.next_us),
                                     now);
        tx.commit();
        return result;
      });
    },
    // -- CRUD --
    [self](store_create_job& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::work tx{conn};
        storage::new_scheduled_job job;
        job.team_id = text_or_none(req.spec.team_id);
        job.agent_id = req.spec.agent_id;
        job.user_id = text_or_none(req.spec.user_id);
        job.name = req.spec.name;
        job.message = req.spec.message;
        job.cron_expression = req.spec.cron_expression;
        job.timezone = req.spec.timezone;
        job.is_active = req.spec.is_active;
        job.delivery_config_json = req.spec.delivery_config_json;
        job.next_run_at = time_or_none(req.next_run_at_us);
        auto row = storage::create_scheduled_job(tx, job,
                                                 from_epoch_us(req.now_us));
        if (!row)
          refuse(errc::invalid_argument,
                 "agent_id: no agent with id \"" + req.spec.agent_id + "\"");
        tx.commit();
        return to_info(*row);
      });
    },
    [self](get_job& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::read_transaction tx{conn};
        auto row = storage::get_scheduled_job(tx, req.id);
        if (!row)
          throw refusal{no_job(req.id)};
        return to_info(*row);
      });
    },
    [self](list_jobs& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::read_transaction tx{conn};
        storage::scheduled_job_filter filter;
        filter.agent_id = text_or_none(req.agent_id);
        filter.team_id = text_or_none(req.team_id);
        filter.user_id = text_or_none(req.user_id);
        if (req.active >= 0)
          filter.is_active = req.active > 0;
        storage::scheduled_job_page page;
        try {
          page = storage::list_scheduled_jobs(tx, filter, req.cursor,
                                              req.limit);
        } catch (const std::invalid_argument& e) {
          refuse(errc::invalid_argument, std::string{"cursor: "} + e.what());
        }
        job_page result;
        for (const auto& row : page.jobs)
          result.jobs.push_back(to_info(row));
        result.next_cursor = page.next_cursor;
        return result;
      });
    },
    [self](store_patch_job& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        if (!is_uuid(req.id))
          throw refusal{no_job(req.id)};
        pqxx::work tx{conn};
        auto current = tx.exec_params(
          "SELECT cron_expression, timezone, is_active "
          "FROM engram.scheduled_jobs WHERE id = $1::uuid FOR UPDATE",
          req.id);
        if (current.empty())
          throw refusal{no_job(req.id)};
        if (current[0][0].as<std::string>() != req.expected_cron_expression
            || current[0][1].as<std::string>() != req.expected_timezone
            || current[0][2].as<bool>() != req.expected_is_active)
          refuse(errc::conflict, "schedule \"" + req.id
                                   + "\" changed while it was being updated");
        storage::scheduled_job_patch patch;
        const auto& p = req.patch;
        if (p.has_name)
          patch.name = p.name;
        if (p.has_message)
          patch.message = p.message;
        if (p.has_cron_expression)
          patch.cron_expression = p.cron_expression;
        if (p.has_timezone)
          patch.timezone = p.timezone;
        if (p.has_is_active)
          patch.is_active = p.is_active;
        if (p.has_delivery_config)
          patch.delivery_config_json = p.delivery_config_json;
        if (req.set_next) {
          if (req.next_run_at_us == 0)
            patch.clear_next_run_at = true;
          else
            patch.next_run_at = from_epoch_us(req.next_run_at_us);
        }
        auto row = storage::patch_scheduled_job(tx, req.id, patch,
                                                from_epoch_us(req.now_us));
        if (!row)
          throw refusal{no_job(req.id)};
        tx.commit();
        return to_info(*row);
      });
    },
    [self](delete_job& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::work tx{conn};
        if (!storage::delete_scheduled_job(tx, req.id))
          throw refusal{no_job(req.id)};
        tx.commit();
        return true;
      });
    },
    [self](store_run_now& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        auto now = from_epoch_us(req.now_us);
        manual_run result;
        int64_t task_id = 0;
        {
          pqxx::work tx{conn};
          if (!storage::get_scheduled_job(tx, req.id))
            throw refusal{no_job(req.id)};
          auto run = storage::record_run_queued(tx, req.id, std::nullopt,
                                                std::nullopt, now);
          if (!run)
            throw refusal{no_job(req.id)};
          auto task = req.task;
          task.args_json = run_args(req.id, run->run_id, 0);
          auto enqueued = storage::enqueue_task(tx, task, now);
          task_id = enqueued.id;
          if (enqueued.created) {
            (void) storage::attach_run_task(tx, run->run_id, enqueued.id);
            result.task = storage::get_task(tx, enqueued.id).value();
            result.run = to_info(storage::get_job_run(tx, run->run_id).value());
            result.created = true;
            tx.commit();
            return result;
          }
          // A manual run is queued or running already: keep nothing of
          // this one (the transaction rolls back) and answer with that one.
        }
        pqxx::read_transaction tx{conn};
        if (auto task = storage::get_task(tx, task_id))
          result.task = std::move(*task);
        auto runs = tx.exec_params(
          "SELECT id FROM engram.scheduled_job_runs WHERE task_id = $1 "
          "ORDER BY id DESC LIMIT 1",
          task_id);
        if (!runs.empty())
          if (auto run = storage::get_job_run(tx, runs[0][0].as<int64_t>()))
            result.run = to_info(*run);
        result.created = false;
        return result;
      });
    },
    [self](list_job_runs& req) {
      return guarded(self, [&](pqxx::connection& conn) {
        pqxx::read_transaction tx{conn};
        if (!storage::get_scheduled_job(tx, req.id))
          throw refusal{no_job(req.id)};
        auto limit = std::clamp<int64_t>(req.limit, 1, 1000);
        auto rows = storage::list_job_runs(tx, req.id, req.before_run_id,
                                           limit + 1);
        run_page page;
        for (const auto& row : rows) {
          if (static_cast<int64_t>(page.runs.size()) == limit) {
            page.next_before_run_id = page.runs.back().id;
            break;
          }
          page.runs.push_back(to_info(row));
        }
        return page;
      });
    },
  };
}

} // namespace

schedule_store_actor spawn_schedule_store(caf::actor_system& sys,
                                          schedule_store_options options) {
  return sys.spawn<caf::detached>(store, std::move(options));
}

} // namespace engram
