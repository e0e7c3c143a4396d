#include "actors/tasks/platform_tasks.hpp"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <boost/json.hpp>
#include <caf/scoped_actor.hpp>
#include <date/date.h>

#include "actors/scheduler/cron.hpp"
#include "messages/platform.hpp"
#include "messages/storage.hpp"
#include "runtime/llm_provider.hpp"

namespace engram::tasks {

namespace json = boost::json;

namespace {

// -- shared helpers --------------------------------------------------------------

constexpr int64_t max_batch_size = 100000;

/// RFC 3339 in UTC with milliseconds, e.g. "2024-03-10T12:00:00.000Z".
std::string format_time(wall_time t) {
  return date::format("%FT%TZ",
                      std::chrono::floor<std::chrono::milliseconds>(t));
}

/// Asks the storage pool like task_context::ask_storage, but hands the
/// error back instead of throwing, for callers that treat some errors
/// (not_found) as answers.
template <class Reply, class Request>
caf::expected<Reply> try_ask_storage(const task_context& ctx, Request req) {
  auto& sys = *ctx.services().system;
  auto dest
    = sys.registry().get<storage_actor>(caf::atom(storage_pool_name));
  if (!dest)
    return make_error(errc::database_unavailable,
                      "the storage pool is not running");
  caf::scoped_actor self{sys};
  std::optional<Reply> result;
  caf::error err;
  self->request(dest, ctx.services().request_timeout, std::move(req))
    .receive([&](Reply& reply) { result = std::move(reply); },
             [&](caf::error& e) { err = std::move(e); });
  if (!result)
    return err;
  return std::move(*result);
}

/// Throws what task_context::ask throws for `err`: std::runtime_error
/// (retried) when a retry may succeed, permanent_failure otherwise.
[[noreturn]] void throw_error(const caf::error& err,
                              const std::string& context = {}) {
  auto what = context.empty() ? describe(err) : context + ": " + describe(err);
  if (is_retryable(err))
    throw std::runtime_error(what);
  throw permanent_failure(what);
}

/// The LLM provider, or null when the daemon runs without one.
llm_provider* llm_of(const task_context& ctx) {
  return ctx.services().get<llm_provider>("llm");
}

/// Waits `d` unless the task is asked to stop first (then false: give up).
sleep_function stoppable_sleep(std::stop_token token) {
  return [token](std::chrono::milliseconds d) {
    std::mutex mtx;
    std::condition_variable_any cv;
    std::unique_lock lock{mtx};
    cv.wait_for(lock, token, d, [] { return false; });
    return !token.stop_requested();
  };
}

int32_t clamp_tokens(int64_t n) {
  return static_cast<int32_t>(
    std::clamp<int64_t>(n, 0, std::numeric_limits<int32_t>::max()));
}

// -- cleanups ------------------------------------------------------------------------

task_options cleanup_options() {
  task_options result;
  result.queue = "default";
  result.soft_time_limit = std::chrono::minutes{10};
  result.time_limit = std::chrono::minutes{15};
  return result;
}

int64_t batch_size(const args_reader& args,
                   const platform_task_settings& settings) {
  return args.integer("batch_size", settings.cleanup_batch, 1, max_batch_size);
}

/// Sends `req` (one batch, with now and limit set) until a batch changes
/// fewer rows than the limit; the total goes under `count_key`.
template <class Request>
json::object run_batches(task_context& ctx, Request req,
                         std::string_view count_key) {
  int64_t total = 0;
  int64_t batches = 0;
  for (;;) {
    ctx.check_stop();
    auto changed = ctx.ask_storage<int64_t>(req);
    total += changed;
    ++batches;
    if (changed < req.limit)
      break;
  }
  json::object result;
  result[count_key] = total;
  result["batches"] = batches;
  result["now"] = format_time(from_epoch_us(req.now_us));
  return result;
}

void register_cleanups(task_registry& registry,
                       const platform_task_settings& settings) {
  registry.add(
    "cleanup.expire_tokens",
    [settings](const args_reader& args) {
      args.only({"batch_size"});
      (void) batch_size(args, settings);
    },
    [settings](task_context& ctx) -> json::value {
      platform::expire_tokens req;
      req.now_us = to_epoch_us(ctx.now());
      req.limit = batch_size(ctx.args(), settings);
      return run_batches(ctx, req, "deleted");
    },
    cleanup_options());

  registry.add(
    "cleanup.close_stale_sessions",
    [settings](const args_reader& args) {
      args.only({"idle_minutes", "batch_size"});
      (void) args.integer("idle_minutes", 30, 1, 525600);
      (void) batch_size(args, settings);
    },
    [settings](task_context& ctx) -> json::value {
      platform::close_stale_sessions req;
      req.now_us = to_epoch_us(ctx.now());
      req.idle_minutes = ctx.args().integer("idle_minutes", 30, 1, 525600);
      req.limit = batch_size(ctx.args(), settings);
      auto result = run_batches(ctx, req, "marked_idle");
      result["idle_minutes"] = req.idle_minutes;
      return result;
    },
    cleanup_options());

  registry.add(
    "cleanup.archive_old_conversations",
    [settings](const args_reader& args) {
      args.only({"days", "batch_size"});
      (void) args.integer("days", 90, 1, 36500);
      (void) batch_size(args, settings);
    },
    [settings](task_context& ctx) -> json::value {
      platform::archive_old_conversations req;
      req.now_us = to_epoch_us(ctx.now());
      req.days = ctx.args().integer("days", 90, 1, 36500);
      req.limit = batch_size(ctx.args(), settings);
      auto result = run_batches(ctx, req, "closed");
      result["days"] = req.days;
      return result;
    },
    cleanup_options());

  registry.add(
    "cleanup.archive_expired_memories",
    [settings](const args_reader& args) {
      args.only({"batch_size"});
      (void) batch_size(args, settings);
    },
    [settings](task_context& ctx) -> json::value {
      platform::archive_expired_memories req;
      req.now_us = to_epoch_us(ctx.now());
      req.limit = batch_size(ctx.args(), settings);
      return run_batches(ctx, req, "archived");
    },
    cleanup_options());

  // The task queue's own retention: finished tasks would otherwise grow
  // without bound on a daemon that runs for months.
  registry.add(
    "cleanup.purge_finished_tasks",
    [settings](const args_reader& args) {
      args.only({"succeeded_days", "dead_days", "batch_size"});
      (void) args.integer("succeeded_days", 7, 0, 36500);
      (void) args.integer("dead_days", 30, 0, 36500);
      (void) batch_size(args, settings);
    },
    [settings](task_context& ctx) -> json::value {
      tasks::purge_finished_tasks req;
      req.now_us = to_epoch_us(ctx.now());
      req.succeeded_days = ctx.args().integer("succeeded_days", 7, 0, 36500);
      req.dead_days = ctx.args().integer("dead_days", 30, 0, 36500);
      req.limit = batch_size(ctx.args(), settings);
      return run_batches(ctx, req, "deleted");
    },
    cleanup_options());
}

// -- agent.scheduled_run ------------------------------------------------------------

task_options agent_options() {
  task_options result;
  result.queue = "agents";
  result.retry.max_retries = 3;
  result.retry.base = std::chrono::seconds{30};
  result.retry.cap = std::chrono::minutes{10};
  // The provider alone may take max_attempts x its timeout.
  result.soft_time_limit = std::chrono::minutes{10};
  result.time_limit = std::chrono::minutes{15};
  return result;
}

/// The arguments of agent.scheduled_run.
struct run_args {
  std::string job_id;
  int64_t run_id = 0;
  /// Normalised to UTC; empty: a manual run.
  std::string fire_time;
};

run_args read_run_args(const args_reader& args) {
  args.only({"job_id", "run_id", "fire_time"});
  run_args result;
  result.job_id = args.uuid("job_id");
  result.run_id = args.integer("run_id", 1, std::numeric_limits<int64_t>::max());
  if (args.has("fire_time")) {
    auto text = args.text("fire_time");
    auto t = cron::parse_rfc3339(text);
    if (!t)
      throw invalid_args{"args.fire_time must be an RFC 3339 date-time, got '"
                         + text + "'"};
    result.fire_time = format_time(wall_time{*t});
  }
  return result;
}

/// Why a started run failed, and whether a retry may fix it.
struct run_failure {
  std::string message;
  bool retryable = true;
};

/// Where a delivery goes, from the job's delivery_config.
struct webhook_target {
  std::string url;
  http_headers headers;
};

/// The webhook of `delivery_config_json`, if it names one (throws
/// permanent_failure for a malformed config: no retry fixes it).
std::optional<webhook_target> webhook_of(const std::string& delivery_config_json) {
  json::error_code ec;
  auto config = json::parse(delivery_config_json, ec);
  if (ec || !config.is_object())
    throw permanent_failure("delivery_config is not a JSON object");
  const auto& obj = config.as_object();
  auto* url = obj.if_contains("webhook_url");
  if (url == nullptr || url->is_null())
    return std::nullopt;
  if (!url->is_string())
    throw permanent_failure("delivery_config.webhook_url must be a string");
  if (url->as_string().empty())
    return std::nullopt;
  webhook_target result;
  result.url = std::string{url->as_string()};
  if (auto parsed = parse_url(result.url); !parsed) {
    // The reason only: webhook URLs often carry secrets.
    auto why = message_of(parsed.error());
    auto pos = why.rfind("': ");
    throw permanent_failure("delivery_config.webhook_url is not a valid "
                            "http(s) URL: "
                            + (pos == std::string::npos ? std::string{"malformed"}
                                                        : why.substr(pos + 3)));
  }
  if (auto* headers = obj.if_contains("webhook_headers");
      headers != nullptr && !headers->is_null()) {
    if (!headers->is_object())
      throw permanent_failure("delivery_config.webhook_headers must be an object of "
                              "strings");
    for (const auto& kv : headers->as_object()) {
      if (!kv.value().is_string())
        throw permanent_failure("delivery_config.webhook_headers."
                                + std::string{kv.key()} + " must be a string");
      result.headers.emplace_back(std::string{kv.key()},
                                  std::string{kv.value().as_string()});
    }
  }
  return result;
}

/// Posts `payload` to the webhook; returns the status of the 2xx answer
/// (throws run failures otherwise).
unsigned deliver(task_context& ctx, const platform_task_settings& settings,
                 const webhook_target& target, const std::string& idempotency_key,
                 const json::object& payload) {
  auto* http = ctx.services().get<http_client>("http");
  if (http == nullptr)
    throw permanent_failure("the job has a webhook_url but the daemon has no "
                            "outbound HTTP client (service \"http\")");
  http_request req;
  req.method = "POST";
  req.url = target.url;
  req.headers = {{"Content-Type", "application/json"},
                 {"X-Engram-Event", "agent.scheduled_run"},
                 {"Idempotency-Key", idempotency_key}};
  for (const auto& h : target.headers)
    req.headers.push_back(h);
  req.body = json::serialize(payload);
  req.timeout = settings.webhook_timeout;
  auto origin = parse_url(target.url)->origin();
  auto res = send_with_retries(*http, req, settings.webhook_retry,
                               stoppable_sleep(ctx.stop_token()),
                               *ctx.services().time);
  ctx.check_stop();
  if (!res)
    throw_error(res.error(), "webhook delivery to " + origin);
  if (res->status < 200 || res->status > 299) {
    auto what = "webhook delivery to " + origin + " answered HTTP "
                + std::to_string(res->status);
    // A 408/429/5xx that outlasted the retries is returned as an error
    // above; any other status is the receiver refusing the delivery.
    throw permanent_failure(what);
  }
  return res->status;
}

/// Records a started run's failure when no retry will follow, then fails
/// the attempt (retried when `f.retryable` and attempts remain).
[[noreturn]] void fail_run(task_context& ctx, const run_args& args,
                           run_failure f, const std::string& conversation_id) {
  if (!f.retryable || is_last_attempt(ctx.task())) {
    platform::record_run_result req;
    req.job_id = args.job_id;
    req.run_id = args.run_id;
    req.succeeded = false;
    req.error = f.message;
    req.conversation_id = conversation_id;
    req.now_us = to_epoch_us(ctx.now());
    auto tracking = try_ask_storage<platform::run_tracking_info>(ctx, req);
    if (!tracking)
      f.message += " (recording the failed run failed too: "
                   + describe(tracking.error()) + ")";
    else if (tracking->deactivated)
      f.message += " (the job was deactivated after "
                   + std::to_string(tracking->consecutive_failures)
                   + " consecutive failures)";
  }
  if (!f.retryable)
    throw permanent_failure(f.message);
  throw std::runtime_error(f.message);
}

json::object skipped(const run_args& args, const std::string& reason) {
  return json::object{{"job_id", args.job_id},
                      {"run_id", args.run_id},
                      {"status", "skipped"},
                      {"reason", reason}};
}

/// The part of a run after its start: ask, persist, deliver. Sets
/// `conversation_id` as soon as the conversation exists.
json::object execute_run(task_context& ctx, const platform_task_settings& settings,
                         const run_args& args,
                         const platform::scheduled_job_info& job,
                         std::string& conversation_id) {
  auto agent = try_ask_storage<platform::agent_info>(
    ctx, platform::get_agent{job.agent_id});
  if (!agent)
    throw_error(agent.error(), "loading agent " + job.agent_id);
  auto* llm = llm_of(ctx);
  if (llm == nullptr)
    throw permanent_failure("no LLM provider is configured (service \"llm\")");
  // Read before the model is asked: a bad config fails without cost.
  auto webhook = webhook_of(job.delivery_config_json);

  ctx.check_stop();
  std::vector<chat_message> prompt;
  if (!agent->system_prompt.empty())
    prompt.push_back({"system", agent->system_prompt});
  prompt.push_back({"user", job.message});
  completion_options opts;
  opts.model = agent->model;
  if (settings.max_answer_tokens > 0)
    opts.max_tokens = settings.max_answer_tokens;
  auto answer = llm->complete(prompt, opts);
  if (!answer)
    throw_error(answer.error());
  ctx.check_stop();

  platform::create_conversation conv;
  conv.project_id = agent->project_id;
  conv.agent_id = agent->id;
  conv.user_id = job.user_id;
  conv.title = job.name;
  conv.messages = {
    {"user", job.message, clamp_tokens(count_tokens(job.message))},
    {"assistant", answer->content, clamp_tokens(answer->completion_tokens)}};
  conv.now_us = to_epoch_us(ctx.now());
  auto stored = ctx.ask_storage<platform::conversation_detail>(conv);
  conversation_id = stored.conversation.id;

  json::object result{{"job_id", args.job_id},
                      {"run_id", args.run_id},
                      {"conversation_id", conversation_id},
                      {"model", answer->model},
                      {"prompt_tokens", answer->prompt_tokens},
                      {"completion_tokens", answer->completion_tokens},
                      {"delivered", false}};
  if (webhook) {
    json::object payload{
      {"event", "agent.scheduled_run"},
      {"job_id", args.job_id},
      {"job_name", job.name},
      {"run_id", args.run_id},
      {"fire_time", args.fire_time.empty() ? json::value(nullptr)
                                           : json::value(args.fire_time)},
      {"agent_id", agent->id},
      {"conversation_id", conversation_id},
      {"content", answer->content},
      {"model", answer->model},
      {"usage", json::object{{"prompt_tokens", answer->prompt_tokens},
                             {"completion_tokens", answer->completion_tokens}}},
      {"finished_at", format_time(ctx.now())}};
    auto status = deliver(ctx, settings, *webhook,
                          args.job_id + ":" + std::to_string(args.run_id),
                          payload);
    result["delivered"] = true;
    result["webhook_status"] = status;
  }
  return result;
}

json::value run_scheduled(task_context& ctx,
                          const platform_task_settings& settings) {
  auto args = read_run_args(ctx.args());
  auto job = try_ask_storage<platform::scheduled_job_info>(
    ctx, platform::get_scheduled_job{args.job_id});
  if (!job) {
    // Deleting a job deletes its runs: nothing is left to run or record.
    if (code_of(job.error()) == errc::not_found)
      return skipped(args, "the job no longer exists");
    throw_error(job.error(), "loading job " + args.job_id);
  }
  auto now_us = to_epoch_us(ctx.now());
  if (!job->is_active) {
    (void) ctx.ask_storage<bool>(platform::record_run_skipped{
      args.job_id, args.run_id, "the job is inactive", now_us});
    return skipped(args, "the job is inactive");
  }
  if (!ctx.ask_storage<bool>(
        platform::record_run_start{args.job_id, args.run_id, now_us}))
    return skipped(args, "the run does not exist or already finished");

  std::string conversation_id;
  std::optional<run_failure> failure;
  json::object result;
  try {
    result = execute_run(ctx, settings, args, *job, conversation_id);
  } catch (const task_stopped&) {
    // Stopped (soft limit, cancel, shutdown): the run stays running; a
    // retry starts it again.
    throw;
  } catch (const permanent_failure& e) {
    failure = run_failure{e.what(), false};
  } catch (const std::exception& e) {
    failure = run_failure{e.what(), true};
  }
  if (failure)
    fail_run(ctx, args, std::move(*failure), conversation_id);

  platform::record_run_result done;
  done.job_id = args.job_id;
  done.run_id = args.run_id;
  done.succeeded = true;
  done.conversation_id = conversation_id;
  done.now_us = to_epoch_us(ctx.now());
  auto tracking = ctx.ask_storage<platform::run_tracking_info>(done);
  result["status"] = "succeeded";
  // False: another attempt finished the run first (a reclaimed lease).
  result["recorded"] = tracking.recorded;
  result["run_count"] = tracking.run_count;
  result["consecutive_failures"] = tracking.consecutive_failures;
  return result;
}

// -- memory.extract ------------------------------------------------------------------

task_options memory_options() {
  task_options result;
  result.queue = "memory";
  result.retry.max_retries = 3;
  result.retry.base = std::chrono::seconds{30};
  result.retry.cap = std::chrono::minutes{30};
  result.soft_time_limit = std::chrono::minutes{5};
  result.time_limit = std::chrono::minutes{10};
  return result;
}

constexpr std::string_view fact_instructions
  = "You extract durable facts from a conversation between a user and an "
    "assistant: facts about the user, their preferences, plans, decisions "
    "and circumstances that are worth remembering in later conversations. "
    "Answer with one fact per line, each a short standalone sentence, with "
    "no numbering, no commentary and nothing else. If there are no such "
    "facts, answer NONE.";

std::vector<std::string> facts_by_model(llm_provider& llm,
                                        const std::vector<chat_message>& chat,
                                        size_t max_facts) {
  std::string transcript;
  for (const auto& m : chat) {
    transcript += m.role == "user" ? "User: " : "Assistant: ";
    transcript += m.content;
    transcript += '\n';
  }
  auto answer = llm.complete({{"system", std::string{fact_instructions}},
                              {"user", transcript}},
                             completion_options{});
  if (!answer)
    throw_error(answer.error(), "fact extraction");
  return parse_fact_lines(answer->content, max_facts);
}

json::value run_extract(task_context& ctx,
                        const platform_task_settings& settings) {
  auto conversation_id = ctx.args().uuid("conversation_id");
  auto found = try_ask_storage<platform::conversation_detail>(
    ctx, platform::get_conversation{conversation_id});
  if (!found) {
    if (code_of(found.error()) == errc::not_found)
      throw permanent_failure("no conversation with id " + conversation_id);
    throw_error(found.error(), "loading conversation " + conversation_id);
  }
  const auto& conv = found->conversation;
  auto project_id = conv.project_id;
  if (project_id.empty() && !conv.agent_id.empty())
    project_id
      = ctx.ask_storage<platform::agent_info>(platform::get_agent{conv.agent_id})
          .project_id;
  if (project_id.empty())
    throw permanent_failure("conversation " + conversation_id
                            + " belongs to no project (nor does its agent); "
                              "memories need one");
  std::vector<chat_message> chat;
  for (const auto& m : found->messages)
    if (m.role == "user" || m.role == "assistant")
      chat.push_back({m.role, m.content});

  ctx.check_stop();
  auto* llm = llm_of(ctx);
  bool offline = llm == nullptr || llm->name() == "extractive";
  std::vector<std::string> facts;
  if (!chat.empty())
    facts = offline ? extract_facts(chat)
                    : facts_by_model(*llm, chat, settings.max_facts);
  if (facts.size() > settings.max_facts)
    facts.resize(settings.max_facts);
  ctx.check_stop();

  platform::extraction_info stored;
  if (!facts.empty()) {
    platform::insert_extracted_memories req;
    req.project_id = project_id;
    req.agent_id = conv.agent_id;
    req.conversation_id = conversation_id;
    for (auto& f : facts) {
      platform::extracted_fact fact;
      fact.type = "semantic";
      fact.content = std::move(f);
      fact.importance = 5;
      req.facts.push_back(std::move(fact));
    }
    req.now_us = to_epoch_us(ctx.now());
    stored = ctx.ask_storage<platform::extraction_info>(std::move(req));
  }
  json::array ids;
  for (const auto& id : stored.memory_ids)
    ids.emplace_back(id);
  return json::object{{"conversation_id", conversation_id},
                      {"method", offline ? "extractive" : "llm"},
                      {"facts", static_cast<int64_t>(facts.size())},
                      {"created", stored.created},
                      {"skipped_duplicates", stored.skipped_duplicates},
                      {"memory_ids", std::move(ids)}};
}

} // namespace

std::vector<std::string> parse_fact_lines(std::string_view text,
                                          size_t max_facts) {
  std::vector<std::string> result;
  auto is_space = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
  };
  while (!text.empty() && result.size() < max_facts) {
    auto eol = text.find('\n');
    auto line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{}
                                         : text.substr(eol + 1);
    while (!line.empty() && is_space(line.front()))
      line.remove_prefix(1);
    while (!line.empty() && is_space(line.back()))
      line.remove_suffix(1);
    // List markers: "- ", "* ", "• ", "1. ", "1) ".
    if (line.starts_with("- ") || line.starts_with("* "))
      line.remove_prefix(2);
    else if (line.starts_with("\u2022 "))
      line.remove_prefix(std::string_view{"\u2022 "}.size());
    else {
      size_t digits = 0;
      while (digits < line.size()
             && std::isdigit(static_cast<unsigned char>(line[digits])) != 0)
        ++digits;
      if (digits > 0 && digits + 1 < line.size()
          && (line[digits] == '.' || line[digits] == ')')
          && line[digits + 1] == ' ')
        line.remove_prefix(digits + 2);
    }
    while (!line.empty() && is_space(line.front()))
      line.remove_prefix(1);
    if (line.empty())
      continue;
    std::string lowered;
    for (char c : line)
      lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lowered == "none" || lowered == "none.")
      continue;
    result.emplace_back(line);
  }
  return result;
}

void register_platform_tasks(task_registry& registry,
                             platform_task_settings settings) {
  register_cleanups(registry, settings);
  registry.add(
    "agent.scheduled_run",
    [](const args_reader& args) { (void) read_run_args(args); },
    [settings](task_context& ctx) { return run_scheduled(ctx, settings); },
    agent_options());
  registry.add(
    "memory.extract",
    [](const args_reader& args) {
      args.only({"conversation_id"});
      (void) args.uuid("conversation_id");
    },
    [settings](task_context& ctx) { return run_extract(ctx, settings); },
    memory_options());
}

} // namespace engram::tasks
