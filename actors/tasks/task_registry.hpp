#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/tasks/retry_policy.hpp"
#include "messages/errc.hpp"
#include "messages/storage.hpp"
#include "messages/tasks.hpp"
#include "runtime/clock.hpp"

namespace engram::tasks {

// -- errors a handler throws ----------------------------------------------------

/// The task's arguments are wrong: no retry can fix that, so the task is dead
/// at once with this message.
class invalid_args : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A failure no retry can fix, other than bad arguments.
class permanent_failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Thrown by task_context::check_stop() when the worker asked the handler to
/// stop (soft time limit, cancel, lost lease, shutdown).
class task_stopped : public std::runtime_error {
public:
  task_stopped() : std::runtime_error("the task was asked to stop") {}
};

// -- reading arguments ----------------------------------------------------------

/// Typed access to a task's JSON arguments; every accessor throws
/// invalid_args naming the field and what it expected.
class args_reader {
public:
  explicit args_reader(const boost::json::object& args) : args_(args) {}

  /// Whether the field is present (and not null).
  [[nodiscard]] bool has(std::string_view key) const;

  [[nodiscard]] std::string text(std::string_view key) const;
  [[nodiscard]] std::string text(std::string_view key,
                                 std::string fallback) const;
  /// An integer within [min, max].
  [[nodiscard]] int64_t integer(std::string_view key, int64_t min,
                                int64_t max) const;
  [[nodiscard]] int64_t integer(std::string_view key, int64_t fallback,
                                int64_t min, int64_t max) const;
  [[nodiscard]] bool boolean(std::string_view key, bool fallback) const;
  /// A UUID in its canonical text form (8-4-4-4-12 hex digits).
  [[nodiscard]] std::string uuid(std::string_view key) const;

  /// Refuses fields other than `known` (typos must not pass silently).
  void only(std::initializer_list<std::string_view> known) const;

  [[nodiscard]] const boost::json::object& object() const { return args_; }

private:
  const boost::json::object& args_;
};

/// Parses a task's argument text: a JSON object (or empty = {}); anything
/// else throws invalid_args.
[[nodiscard]] boost::json::object parse_args(std::string_view json_text);

// -- what a handler sees ------------------------------------------------------------

/// What handlers may use besides their arguments: the actor system (to ask
/// storage and other actors), the clock, and whatever services the daemon
/// wires in (providers, outbound HTTP) by type.
struct task_services {
  caf::actor_system* system = nullptr;
  const clock* time = &real_clock();
  /// Timeout for requests a handler makes to other actors.
  std::chrono::milliseconds request_timeout{30000};
  /// Services by name (e.g. "llm", "http"), owned elsewhere.
  std::map<std::string, std::shared_ptr<void>> extra;

  template <class T>
  [[nodiscard]] T* get(const std::string& name) const {
    auto i = extra.find(name);
    return i == extra.end() ? nullptr : static_cast<T*>(i->second.get());
  }
};

/// The handler's view of the attempt it runs.
class task_context {
public:
  task_context(const claimed_task& task, const boost::json::object& args,
               const task_services& services, std::stop_token stop)
    : task_(task), args_(args), services_(services), stop_(std::move(stop)) {}

  [[nodiscard]] const claimed_task& task() const { return task_; }
  [[nodiscard]] args_reader args() const { return args_reader{args_}; }
  [[nodiscard]] const task_services& services() const { return services_; }
  [[nodiscard]] wall_time now() const { return services_.time->now(); }

  /// Whether the worker asked the handler to stop; long handlers check it
  /// between steps (cooperative stop).
  [[nodiscard]] bool stop_requested() const { return stop_.stop_requested(); }
  /// Throws task_stopped if a stop was requested.
  void check_stop() const {
    if (stop_requested())
      throw task_stopped{};
  }
  [[nodiscard]] const std::stop_token& stop_token() const { return stop_; }

  /// Enqueues `req` in the transaction that records this attempt's success:
  /// it exists if and only if the success is recorded (a chain's next step).
  void enqueue_on_success(enqueue_request req) {
    followups_.push_back(std::move(req));
  }
  [[nodiscard]] std::vector<enqueue_request>& followups() { return followups_; }

  /// Asks the storage pool and waits for the reply (handlers run on their
  /// own thread, so waiting is fine). A retryable error (database away,
  /// timeout) throws std::runtime_error, so the attempt is retried; any other
  /// error throws permanent_failure.
  template <class Reply, class Request>
  Reply ask_storage(Request req) const {
    return ask<Reply>(services_.system->registry().template get<storage_actor>(
                        caf::atom(storage_pool_name)),
                      std::move(req));
  }

  /// Asks any actor and waits for the reply; errors as in ask_storage.
  template <class Reply, class Handle, class Request>
  Reply ask(const Handle& dest, Request req) const {
    return ask<Reply>(dest, std::move(req), services_.request_timeout);
  }

  /// ask with its own bound on the wait (long work on another actor).
  template <class Reply, class Handle, class Request>
  Reply ask(const Handle& dest, Request req,
            std::chrono::milliseconds timeout) const {
    auto result = try_ask<Reply>(dest, std::move(req), timeout);
    if (!result) {
      if (is_retryable(result.error()))
        throw std::runtime_error(describe(result.error()));
      throw permanent_failure(describe(result.error()));
    }
    return std::move(*result);
  }

  /// Asks `dest` and waits; the reply or the error as it came (for a
  /// handler that decides itself which errors a retry may fix).
  template <class Reply, class Handle, class Request>
  caf::expected<Reply> try_ask(const Handle& dest, Request req,
                               std::chrono::milliseconds timeout) const {
    if (!dest)
      return make_error(errc::unavailable,
                        "the actor this task needs is not running");
    caf::scoped_actor self{*services_.system};
    std::optional<Reply> result;
    caf::error err;
    self->request(dest, timeout, std::move(req))
      .receive([&](Reply& reply) { result = std::move(reply); },
               [&](caf::error& e) { err = std::move(e); });
    if (!result)
      return err;
    return std::move(*result);
  }

private:
  const claimed_task& task_;
  const boost::json::object& args_;
  const task_services& services_;
  std::stop_token stop_;
  std::vector<enqueue_request> followups_;
};

// -- definitions ---------------------------------------------------------------------

/// Defaults of one task name; an enqueue may override queue, priority,
/// max_retries and the limits.
struct task_options {
  std::string queue = "default";
  int32_t priority = 0;
  /// Retries and the backoff between attempts (DESIGN §4: base 30 s).
  retry_policy retry{};
  /// 0 = none.
  std::chrono::milliseconds soft_time_limit{0};
  std::chrono::milliseconds time_limit{0};
};

/// Checks arguments without running anything (throws invalid_args).
using args_validator = std::function<void(const args_reader&)>;
/// Runs one attempt; returns the JSON result (throws on failure).
using task_handler = std::function<boost::json::value(task_context&)>;

struct task_definition {
  std::string name;
  args_validator validate;
  task_handler run;
  task_options options;
};

/// The task names this daemon can run. Filled at start, read-only after:
/// shared by every worker.
class task_registry {
public:
  /// Registers a handler: `registry.add("engram.noop", validate, run);`.
  /// A second registration of a name replaces the first.
  void add(std::string name, args_validator validate, task_handler run,
           task_options options = {});

  [[nodiscard]] const task_definition* find(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> names() const;

  /// A request for `name` with the definition's defaults (queue, priority,
  /// retries, limits); an unknown name gets the general defaults.
  [[nodiscard]] enqueue_request request_for(std::string_view name,
                                            std::string args_json = "{}") const;

  /// Checks a request's name and arguments: the reason on failure (unknown
  /// name, malformed or invalid arguments), nothing when it may be enqueued.
  [[nodiscard]] std::optional<std::string>
  check(const enqueue_request& req) const;

private:
  std::map<std::string, task_definition, std::less<>> defs_;
};

} // namespace engram::tasks
