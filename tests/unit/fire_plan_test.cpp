// What the scheduler fires and when (DESIGN §5), as pure functions: due
// slots, misfires coalesced into one fire, DST through the cron module,
// unique keys, the static entries and how they start, and the rules a
// dynamic schedule must follow before it is stored.

#include "actors/scheduler/fire_plan.hpp"

#include <gtest/gtest.h>

#include "actors/scheduler/job_rules.hpp"

using namespace engram;
using namespace std::chrono_literals;
using std::chrono::sys_seconds;

namespace {

sys_seconds at(std::string_view text) {
  auto t = cron::parse_rfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(sys_seconds{});
}

sched::timing timing_of(std::string_view expr, std::string_view zone = "UTC") {
  auto compiled = sched::compile(expr, zone);
  if (auto* err = std::get_if<std::string>(&compiled)) {
    ADD_FAILURE() << expr << " in " << zone << ": " << *err;
    return {};
  }
  return std::get<sched::timing>(std::move(compiled));
}

std::string text(const std::optional<sys_seconds>& t) {
  return t ? sched::utc_text(*t) : std::string{"none"};
}

std::string compile_error(std::string_view expr, std::string_view zone) {
  auto compiled = sched::compile(expr, zone);
  if (auto* err = std::get_if<std::string>(&compiled))
    return *err;
  ADD_FAILURE() << "accepted: " << expr << " in " << zone;
  return {};
}

} // namespace

// -- compile -------------------------------------------------------------------

TEST(fire_plan, compile_names_the_field_and_the_cron_error) {
  EXPECT_EQ(compile_error("61 * * * *", "UTC"),
            "cron_expression: minute: 61 is out of range 0-59");
  EXPECT_EQ(compile_error("* * * *", "UTC").rfind("cron_expression: ", 0), 0u);
  auto zone = compile_error("0 * * * *", "Mars/Olympus_Mons");
  EXPECT_EQ(zone.rfind("timezone: unknown time zone \"Mars/Olympus_Mons\"", 0),
            0u)
    << zone;
  EXPECT_EQ(compile_error("0 * * * *", "").rfind("timezone: ", 0), 0u);
}

// -- due slots and coalescing ----------------------------------------------------

TEST(fire_plan, nothing_is_due_before_the_next_slot) {
  auto t = timing_of("0 * * * *");
  auto p = sched::plan(t, at("2024-03-10T13:00:00Z"), at("2024-03-10T12:59:59Z"));
  EXPECT_FALSE(p.fire);
  EXPECT_FALSE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-10T13:00:00Z");
}

TEST(fire_plan, one_due_slot_fires_and_the_entry_moves_to_the_following_one) {
  auto t = timing_of("0 * * * *");
  auto p = sched::plan(t, at("2024-03-10T13:00:00Z"), at("2024-03-10T13:00:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T13:00:00Z");
  EXPECT_FALSE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-10T14:00:00Z");
  // A few seconds late is still that one slot.
  p = sched::plan(t, at("2024-03-10T13:00:00Z"), at("2024-03-10T13:00:59Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T13:00:00Z");
  EXPECT_FALSE(p.misfire);
}

TEST(fire_plan, missed_slots_coalesce_into_one_fire_of_the_latest) {
  auto t = timing_of("0 * * * *");
  // Down from 10:00 to 15:30: five slots missed, one fire (15:00).
  auto p = sched::plan(t, at("2024-03-10T10:00:00Z"), at("2024-03-10T15:30:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T15:00:00Z");
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-10T16:00:00Z");
  // Two slots due (the second exactly now): still one fire.
  p = sched::plan(t, at("2024-03-10T10:00:00Z"), at("2024-03-10T11:00:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T11:00:00Z");
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-10T12:00:00Z");
}

TEST(fire_plan, a_long_downtime_costs_no_walk_over_every_missed_minute) {
  auto t = timing_of("* * * * *");
  // Ten years of minutes missed: the latest is found at once.
  auto started = std::chrono::steady_clock::now();
  auto p = sched::plan(t, at("2014-01-01T00:00:00Z"), at("2024-03-10T12:34:56Z"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(text(p.fire), "2024-03-10T12:34:00Z");
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-10T12:35:00Z");
}

TEST(fire_plan, bursts_of_slots_find_the_latest_of_the_burst) {
  // Every minute of hour 0 only; down all day: the latest is 00:59.
  auto t = timing_of("* 0 * * *");
  auto p = sched::plan(t, at("2024-03-10T00:00:00Z"), at("2024-03-10T23:00:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T00:59:00Z");
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-11T00:00:00Z");
  // Sparse and irregular: the 1st, 15th and Sundays at 06:00.
  t = timing_of("0 6 1,15 * sun");
  p = sched::plan(t, at("2024-01-01T06:00:00Z"), at("2024-03-12T00:00:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T06:00:00Z"); // a Sunday
  EXPECT_EQ(text(p.next), "2024-03-15T06:00:00Z");
}

TEST(fire_plan, a_yearly_entry_down_for_years_fires_once) {
  auto t = timing_of("@yearly");
  auto p = sched::plan(t, at("2019-01-01T00:00:00Z"), at("2024-03-10T00:00:00Z"));
  EXPECT_EQ(text(p.fire), "2024-01-01T00:00:00Z");
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2025-01-01T00:00:00Z");
}

// -- DST (through the cron module) -----------------------------------------------

TEST(fire_plan, a_fixed_time_in_the_spring_gap_fires_once_at_the_transition) {
  // 02:30 does not exist in New York on 2024-03-10: it fires at 03:00 EDT.
  auto t = timing_of("30 2 * * *", "America/New_York");
  auto slot = sched::next_slot(t, at("2024-03-09T12:00:00Z"));
  ASSERT_TRUE(slot);
  EXPECT_EQ(text(slot), "2024-03-10T07:00:00Z");
  auto p = sched::plan(t, *slot, at("2024-03-10T07:00:30Z"));
  EXPECT_EQ(text(p.fire), "2024-03-10T07:00:00Z");
  EXPECT_FALSE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-11T06:30:00Z"); // 02:30 EDT
}

TEST(fire_plan, the_repeated_hour_fires_twice_for_wildcards_once_for_fixed_times) {
  // 01:30 happens twice in New York on 2024-11-03 (EDT, then EST).
  auto wildcard = timing_of("30 * * * *", "America/New_York");
  auto p = sched::plan(wildcard, at("2024-11-03T05:30:00Z"),
                       at("2024-11-03T05:45:00Z"));
  EXPECT_EQ(text(p.fire), "2024-11-03T05:30:00Z");
  EXPECT_EQ(text(p.next), "2024-11-03T06:30:00Z"); // 01:30 EST
  auto fixed = timing_of("30 1 * * *", "America/New_York");
  p = sched::plan(fixed, at("2024-11-03T05:30:00Z"), at("2024-11-03T05:45:00Z"));
  EXPECT_EQ(text(p.fire), "2024-11-03T05:30:00Z");
  EXPECT_EQ(text(p.next), "2024-11-04T06:30:00Z"); // the next day, EST
}

TEST(fire_plan, missed_slots_across_a_dst_change_still_fire_once) {
  auto t = timing_of("*/30 * * * *", "Europe/Berlin");
  // Down across the spring-forward night of 2024-03-31 (02:00 → 03:00).
  auto p = sched::plan(t, at("2024-03-30T22:00:00Z"), at("2024-03-31T02:10:00Z"));
  EXPECT_EQ(text(p.fire), "2024-03-31T02:00:00Z"); // 04:00 CEST
  EXPECT_TRUE(p.misfire);
  EXPECT_EQ(text(p.next), "2024-03-31T02:30:00Z");
}

// -- keys --------------------------------------------------------------------------

TEST(fire_plan, keys_name_the_entry_and_the_slot_in_utc) {
  EXPECT_EQ(sched::fire_key("cleanup.expire_tokens", at("2024-03-10T03:00:00-04:00")),
            "schedule:cleanup.expire_tokens@2024-03-10T07:00:00Z");
  auto id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
  EXPECT_EQ(sched::fire_key(sched::job_entry(id), at("2024-03-10T07:00:00Z")),
            std::string{"schedule:job:"} + id + "@2024-03-10T07:00:00Z");
  EXPECT_EQ(sched::manual_key(id), std::string{"schedule:job:"} + id + "@manual");
}

TEST(fire_plan, slot_microseconds_round_trip_and_zero_means_none) {
  auto t = at("2024-03-10T07:00:00Z");
  EXPECT_EQ(sched::slot_of_us(sched::slot_us(t)), t);
  EXPECT_EQ(sched::slot_us(std::nullopt), 0);
  EXPECT_FALSE(sched::slot_of_us(0));
  EXPECT_EQ(sched::to_seconds(wall_time{t} + 999ms), t);
}

// -- static entries ----------------------------------------------------------------

TEST(fire_plan, the_default_static_entries_are_design_s_six_in_utc) {
  auto entries = sched::default_static_entries();
  ASSERT_EQ(entries.size(), 6u);
  std::vector<std::pair<std::string, std::string>> expected{
    {"cleanup.expire_tokens", "0 * * * *"},
    {"cleanup.close_stale_sessions", "*/15 * * * *"},
    {"cleanup.archive_old_conversations", "0 3 * * *"},
    {"cleanup.archive_expired_memories", "0 4 * * *"},
    {"memory.consolidate", "0 2 * * *"},
    {"memory.decay_and_expire", "0 5 * * *"},
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].name, expected[i].first);
    EXPECT_EQ(entries[i].task_name, expected[i].first);
    EXPECT_EQ(entries[i].cron, expected[i].second);
    EXPECT_EQ(entries[i].timezone, "UTC");
    EXPECT_TRUE(entries[i].enabled);
    EXPECT_EQ(entries[i].args_json, "{}");
  }
  EXPECT_FALSE(sched::validate_static_entries(entries));
}

TEST(fire_plan, invalid_static_entries_are_refused_naming_the_entry) {
  auto entries = sched::default_static_entries();
  entries[1].cron = "*/0 * * * *";
  auto err = sched::validate_static_entries(entries);
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("cleanup.close_stale_sessions"), std::string::npos) << *err;
  EXPECT_NE(err->find("cron_expression: minute"), std::string::npos) << *err;

  entries = sched::default_static_entries();
  entries[2].timezone = "Nowhere/Land";
  err = sched::validate_static_entries(entries);
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("timezone"), std::string::npos) << *err;

  entries = sched::default_static_entries();
  entries[3].args_json = "[1]";
  err = sched::validate_static_entries(entries);
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("args must be a JSON object"), std::string::npos) << *err;

  entries = sched::default_static_entries();
  entries.push_back(entries.front());
  err = sched::validate_static_entries(entries);
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("used twice"), std::string::npos) << *err;

  // A disabled entry is still checked (enabling it must not fail later).
  entries = sched::default_static_entries();
  entries[0].enabled = false;
  entries[0].cron = "bogus";
  EXPECT_TRUE(sched::validate_static_entries(entries));
}

TEST(fire_plan, a_static_entry_keeps_its_stored_slot_only_with_the_same_timing) {
  auto entry = sched::default_static_entries().front(); // hourly
  auto t = timing_of(entry.cron);
  auto now = at("2024-03-10T12:34:00Z");
  // Nothing stored: the first slot after now, saved.
  auto s = sched::start_static(t, entry, std::nullopt, now);
  EXPECT_EQ(text(s.next), "2024-03-10T13:00:00Z");
  EXPECT_TRUE(s.save);
  // Stored with the same timing: kept, even in the past (a missed slot).
  schedules::static_state stored{entry.name, entry.cron, entry.timezone, 0,
                                 sched::slot_us(at("2024-03-10T09:00:00Z"))};
  s = sched::start_static(t, entry, stored, now);
  EXPECT_EQ(text(s.next), "2024-03-10T09:00:00Z");
  EXPECT_FALSE(s.save);
  // Re-timed: afresh from now.
  stored.cron_expression = "0 3 * * *";
  s = sched::start_static(t, entry, stored, now);
  EXPECT_EQ(text(s.next), "2024-03-10T13:00:00Z");
  EXPECT_TRUE(s.save);
  stored.cron_expression = entry.cron;
  stored.timezone = "Europe/Berlin";
  EXPECT_TRUE(sched::start_static(t, entry, stored, now).save);
  // Not scheduled (it was disabled): afresh, no catch-up.
  stored.timezone = entry.timezone;
  stored.next_fire_us = 0;
  s = sched::start_static(t, entry, stored, now);
  EXPECT_EQ(text(s.next), "2024-03-10T13:00:00Z");
  EXPECT_TRUE(s.save);
}

// -- job rules ---------------------------------------------------------------------

namespace {

schedules::job_spec good_spec() {
  schedules::job_spec spec;
  spec.agent_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
  spec.name = "inbox";
  spec.message = "Summarise my inbox";
  spec.cron_expression = "0 9 * * MON-FRI";
  spec.timezone = "Europe/Berlin";
  spec.delivery_config_json = R"({"webhook_url": "https://example.com/hook"})";
  return spec;
}

std::string spec_error(const std::function<void(schedules::job_spec&)>& change) {
  auto spec = good_spec();
  change(spec);
  auto err = sched::check_spec(spec);
  if (!err) {
    ADD_FAILURE() << "accepted";
    return {};
  }
  return *err;
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.rfind(prefix, 0) == 0;
}

} // namespace

TEST(job_rules, a_good_spec_passes) {
  EXPECT_FALSE(sched::check_spec(good_spec()));
  auto spec = good_spec();
  spec.delivery_config_json = "{}";
  spec.timezone = "UTC";
  EXPECT_FALSE(sched::check_spec(spec));
  spec.delivery_config_json
    = R"({"webhook_url": null, "webhook_headers": {"X-Token": "a"}})";
  EXPECT_FALSE(sched::check_spec(spec));
}

TEST(job_rules, every_problem_names_its_field) {
  EXPECT_EQ(spec_error([](auto& s) { s.agent_id.clear(); }),
            "agent_id is required");
  EXPECT_TRUE(starts_with(spec_error([](auto& s) { s.agent_id = "42"; }),
                          "agent_id must be a UUID"));
  EXPECT_EQ(spec_error([](auto& s) { s.name.clear(); }),
            "name must not be empty");
  EXPECT_EQ(spec_error([](auto& s) { s.name = std::string(201, 'x'); }),
            "name is longer than 200 characters");
  // 200 characters of two bytes each are fine.
  auto spec = good_spec();
  spec.name.clear();
  for (int i = 0; i < 200; ++i)
    spec.name += "\xC3\xA9";
  EXPECT_FALSE(sched::check_spec(spec));
  EXPECT_EQ(spec_error([](auto& s) { s.message.clear(); }),
            "message must not be empty");
  EXPECT_EQ(spec_error([](auto& s) { s.cron_expression = "0 25 * * *"; }),
            "cron_expression: hour: 25 is out of range 0-23");
  EXPECT_EQ(spec_error([](auto& s) { s.cron_expression.clear(); }),
            "cron_expression must not be empty");
  EXPECT_TRUE(starts_with(spec_error([](auto& s) { s.timezone = "Moon/Base"; }),
                          "timezone: unknown time zone \"Moon/Base\""));
  EXPECT_TRUE(starts_with(
    spec_error([](auto& s) { s.team_id = std::string(300, 't'); }), "team_id"));
}

TEST(job_rules, the_delivery_config_holds_a_webhook_url_with_a_host) {
  auto with = [](std::string config) {
    return [config](schedules::job_spec& s) { s.delivery_config_json = config; };
  };
  EXPECT_TRUE(starts_with(spec_error(with(R"({"webhook_url": "ftp://x.org/"})")),
                          "delivery_config.webhook_url must be an http or "
                          "https URL with a host"));
  EXPECT_TRUE(starts_with(spec_error(with(R"({"webhook_url": "http://"})")),
                          "delivery_config.webhook_url"));
  EXPECT_TRUE(starts_with(spec_error(with(R"({"webhook_url": "not a url"})")),
                          "delivery_config.webhook_url"));
  EXPECT_EQ(spec_error(with(R"({"webhook_url": 42})")),
            "delivery_config.webhook_url must be a string");
  EXPECT_TRUE(starts_with(spec_error(with(R"({"webhook": "https://x.org"})")),
                          "unknown field delivery_config.webhook"));
  EXPECT_EQ(spec_error(with(R"({"webhook_headers": {"a": 1}})")),
            "delivery_config.webhook_headers.a must be a string");
  EXPECT_EQ(spec_error(with("[]")), "delivery_config must be a JSON object");
  EXPECT_TRUE(starts_with(
    spec_error(with(R"({"webhook_url": "https://x.org/)"
                    + std::string(20000, 'a') + "\"}")),
    "delivery_config is larger than"));
}

TEST(job_rules, a_patch_is_checked_field_by_field) {
  schedules::job_patch patch;
  EXPECT_FALSE(sched::check_patch(patch));
  patch.has_cron_expression = true;
  patch.cron_expression = "*/0 * * * *";
  auto err = sched::check_patch(patch);
  ASSERT_TRUE(err);
  EXPECT_TRUE(starts_with(*err, "cron_expression: minute")) << *err;
  patch = {};
  patch.has_timezone = true;
  patch.timezone = "Atlantis/Capital";
  err = sched::check_patch(patch);
  ASSERT_TRUE(err);
  EXPECT_TRUE(starts_with(*err, "timezone: unknown time zone")) << *err;
  patch = {};
  patch.has_name = true;
  EXPECT_EQ(sched::check_patch(patch).value_or(""), "name must not be empty");
  patch = {};
  patch.has_delivery_config = true;
  patch.delivery_config_json = R"({"webhook_url": "mailto:me@example.com"})";
  EXPECT_TRUE(sched::check_patch(patch));
  patch.delivery_config_json = R"({"webhook_url": "http://example.com:8080/x"})";
  EXPECT_FALSE(sched::check_patch(patch));
}
