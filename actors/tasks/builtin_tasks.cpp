#include "actors/tasks/builtin_tasks.hpp"

#include <condition_variable>
#include <mutex>

#include <boost/json.hpp>

namespace engram::tasks {

namespace json = boost::json;

namespace {

task_options diagnostic_options() {
  task_options result;
  result.retry.base = std::chrono::seconds{1};
  result.retry.cap = std::chrono::minutes{1};
  return result;
}

constexpr int64_t max_sleep_ms = 3'600'000;

} // namespace

void register_builtin_tasks(task_registry& registry) {
  registry.add(
    "engram.noop", [](const args_reader& args) { args.only({}); },
    [](task_context&) -> json::value { return json::object{{"ok", true}}; },
    diagnostic_options());

  registry.add(
    "engram.sleep",
    [](const args_reader& args) {
      args.only({"ms"});
      (void) args.integer("ms", 0, max_sleep_ms);
    },
    [](task_context& ctx) -> json::value {
      auto ms = ctx.args().integer("ms", 0, max_sleep_ms);
      std::mutex mtx;
      std::condition_variable_any cv;
      std::unique_lock lock{mtx};
      auto token = ctx.stop_token();
      // Returns early (true) only when a stop is requested.
      cv.wait_for(lock, token, std::chrono::milliseconds{ms},
                  [] { return false; });
      ctx.check_stop();
      return json::object{{"slept_ms", ms}};
    },
    diagnostic_options());

  registry.add(
    "engram.fail",
    [](const args_reader& args) {
      args.only({"failures", "message"});
      (void) args.integer("failures", 1, 0, 1000);
      (void) args.text("message", "");
    },
    [](task_context& ctx) -> json::value {
      auto failures = ctx.args().integer("failures", 1, 0, 1000);
      auto message = ctx.args().text("message", "planned failure");
      auto attempt = ctx.task().attempts;
      if (attempt <= failures)
        throw std::runtime_error(message + " (attempt " + std::to_string(attempt)
                                 + " of " + std::to_string(failures)
                                 + " planned failures)");
      return json::object{{"attempts", attempt}};
    },
    diagnostic_options());
}

} // namespace engram::tasks
