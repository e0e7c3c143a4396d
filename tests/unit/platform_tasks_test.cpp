// Pure parts of the platform tasks: reading a model's fact list, the last
// attempt rule that decides when a scheduled run's failure is recorded, and
// the argument checks the registry applies before anything is enqueued.

#include "actors/tasks/platform_tasks.hpp"

#include <gtest/gtest.h>

using namespace engram;
using namespace engram::tasks;

TEST(parse_fact_lines, takes_one_fact_per_line_without_list_markers) {
  auto facts = parse_fact_lines("- The user lives in Porto.\n"
                                "* They keep bees.\r\n"
                                "\u2022 Their dog is called Rui.\n"
                                "1. They cycle to work.\n"
                                "12) They speak Danish.\n"
                                "   \n"
                                "  Plain line.  \n",
                                100);
  EXPECT_EQ(facts, (std::vector<std::string>{
                     "The user lives in Porto.", "They keep bees.",
                     "Their dog is called Rui.", "They cycle to work.",
                     "They speak Danish.", "Plain line."}));
}

TEST(parse_fact_lines, a_none_answer_and_blank_text_give_no_facts) {
  EXPECT_TRUE(parse_fact_lines("NONE", 10).empty());
  EXPECT_TRUE(parse_fact_lines("none.\n", 10).empty());
  EXPECT_TRUE(parse_fact_lines("", 10).empty());
  EXPECT_TRUE(parse_fact_lines("\n\n  \n", 10).empty());
}

TEST(parse_fact_lines, keeps_numbers_that_are_not_list_markers) {
  EXPECT_EQ(parse_fact_lines("2024 was their first year in Lisbon.\n"
                             "3.5 kg is their cat's weight.",
                             10),
            (std::vector<std::string>{"2024 was their first year in Lisbon.",
                                      "3.5 kg is their cat's weight."}));
}

TEST(parse_fact_lines, stops_at_the_maximum) {
  EXPECT_EQ(parse_fact_lines("a\nb\nc\nd", 2),
            (std::vector<std::string>{"a", "b"}));
}

TEST(is_last_attempt, is_true_once_no_retry_remains) {
  claimed_task t;
  t.max_retries = 2;
  t.attempts = 1;
  EXPECT_FALSE(is_last_attempt(t));
  t.attempts = 2;
  EXPECT_FALSE(is_last_attempt(t));
  t.attempts = 3; // the first attempt plus two retries
  EXPECT_TRUE(is_last_attempt(t));
  t.max_retries = 0;
  t.attempts = 1;
  EXPECT_TRUE(is_last_attempt(t));
}

TEST(platform_task_registry, every_task_has_its_queue_and_checks_its_arguments) {
  task_registry registry;
  register_platform_tasks(registry);
  EXPECT_EQ(registry.request_for("cleanup.expire_tokens").queue, "default");
  EXPECT_EQ(registry.request_for("cleanup.close_stale_sessions").queue,
            "default");
  EXPECT_EQ(registry.request_for("cleanup.archive_old_conversations").queue,
            "default");
  EXPECT_EQ(registry.request_for("cleanup.archive_expired_memories").queue,
            "default");
  EXPECT_EQ(registry.request_for("agent.scheduled_run").queue, "agents");
  EXPECT_EQ(registry.request_for("memory.extract").queue, "memory");
  EXPECT_EQ(registry.find("memory.extract")->options.retry.base,
            std::chrono::seconds{30})
    << "DESIGN §4: memory tasks back off from 30 s";

  auto check = [&](const char* name, const char* args) {
    return registry.check(registry.request_for(name, args)).value_or("ok");
  };
  EXPECT_EQ(check("cleanup.close_stale_sessions", "{}"), "ok");
  EXPECT_EQ(check("cleanup.close_stale_sessions", R"({"idle_minutes":0})"),
            "args.idle_minutes must be between 1 and 525600, got 0");
  EXPECT_EQ(check("cleanup.archive_old_conversations", R"({"days":true})"),
            "args.days must be an integer");
  EXPECT_EQ(check("memory.extract", R"({"conversation_id":"x"})"),
            "args.conversation_id must be a UUID, got 'x'");
  EXPECT_EQ(check("memory.extract", "{}"), "args.conversation_id is required");
  EXPECT_EQ(check("agent.scheduled_run",
                  R"({"job_id":"6f1c0a52-9d59-4b7e-8f43-7c8f7d1c2a10",)"
                  R"("run_id":7,"fire_time":"2024-03-10T08:00:00Z"})"),
            "ok");
  EXPECT_EQ(check("agent.scheduled_run",
                  R"({"job_id":"6f1c0a52-9d59-4b7e-8f43-7c8f7d1c2a10"})"),
            "args.run_id is required");
}
