#include "storage/cleanup_repository.hpp"

#include <vector>

#include "storage/conversation_repository.hpp"
#include "storage/platform_repository.hpp"
#include "tests/integration/platform_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

class cleanup_repository_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    project = in_tx([&](auto& tx) {
      storage::new_project p;
      p.name = "p";
      return storage::create_project(tx, p, noon() - 1000h).id;
    });
  }

  void insert_token(const std::string& hash, wall_time expires_at,
                    std::optional<wall_time> revoked_at = {}) {
    exec("INSERT INTO engram.refresh_tokens (user_id, token_hash, expires_at, "
         "revoked_at) VALUES ('u', "
         + quoted(hash) + ", " + sql_time(expires_at) + ", "
         + (revoked_at ? sql_time(*revoked_at) : "NULL") + ")");
  }

  std::string tokens() {
    return query("SELECT coalesce(string_agg(token_hash, ',' ORDER BY "
                 "token_hash), '') FROM engram.refresh_tokens");
  }

  /// A conversation created at `created`, with one message at each of
  /// `messages`, then given `status`.
  std::string conversation(wall_time created, std::vector<wall_time> messages,
                           const std::string& status = "active") {
    auto id = in_tx([&](auto& tx) {
      storage::new_conversation c;
      c.title = "c";
      return storage::create_conversation(tx, c, created).id;
    });
    for (auto at : messages)
      in_tx([&](auto& tx) {
        auto added = storage::add_messages(tx, id, {{"user", "hi", {}}}, at);
        ASSERT_EQ(added.result, storage::add_messages_result::outcome::added);
      });
    if (status != "active")
      exec("UPDATE engram.conversations SET status = " + quoted(status)
           + ", updated_at = " + sql_time(created) + " WHERE id = "
           + quoted(id));
    return id;
  }

  std::string status_of_conversation(const std::string& id) {
    return query("SELECT status FROM engram.conversations WHERE id = "
                 + quoted(id));
  }

  int64_t updated_us(const std::string& table, const std::string& id) {
    return count("SELECT engram.to_us(updated_at) FROM engram." + table
                 + " WHERE id = " + quoted(id));
  }

  std::string memory(const std::string& status,
                     std::optional<wall_time> expires_at, bool pinned = false,
                     const std::string& tier = "hot") {
    return query(
      "INSERT INTO engram.memories (project_id, type, tier, status, content, "
      "pinned, expires_at, created_at, updated_at) VALUES ("
      + quoted(project) + ", 'semantic', " + quoted(tier) + ", "
      + quoted(status) + ", 'm', " + (pinned ? "true" : "false") + ", "
      + (expires_at ? sql_time(*expires_at) : "NULL") + ", "
      + sql_time(noon() - 100h) + ", " + sql_time(noon() - 100h)
      + ") RETURNING id");
  }

  std::string status_and_tier(const std::string& id) {
    return query("SELECT status || '/' || tier FROM engram.memories WHERE id = "
                 + quoted(id));
  }

  std::string project;
};

} // namespace

TEST_F(cleanup_repository_test, expire_tokens_deletes_exactly_the_expired_ones) {
  const auto now = noon();
  insert_token("expired", now - 1h);
  insert_token("expires_now", now);
  insert_token("expires_next_us", now + 1us);
  insert_token("revoked_live", now + 1h, now - 2h);
  insert_token("revoked_expired", now - 1s, now - 2h);
  EXPECT_EQ(in_tx([&](auto& tx) { return storage::expire_tokens(tx, now); }), 3);
  EXPECT_EQ(tokens(), "expires_next_us,revoked_live");
  EXPECT_EQ(in_tx([&](auto& tx) { return storage::expire_tokens(tx, now); }), 0)
    << "a second run finds nothing";
  EXPECT_EQ(tokens(), "expires_next_us,revoked_live");
  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::expire_tokens(tx, now + 1us);
            }),
            1);
  EXPECT_EQ(tokens(), "revoked_live");
}

TEST_F(cleanup_repository_test, cleanups_work_in_bounded_batches) {
  const auto now = noon();
  for (int i = 0; i < 5; ++i)
    insert_token("t" + std::to_string(i), now - std::chrono::minutes{i + 1});
  insert_token("live", now + 1h);
  std::vector<int64_t> batches;
  for (;;) {
    auto n = in_tx([&](auto& tx) { return storage::expire_tokens(tx, now, 2); });
    batches.push_back(n);
    if (n < 2)
      break;
  }
  EXPECT_EQ(batches, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(tokens(), "live");
  // The oldest go first.
  for (int i = 0; i < 3; ++i)
    memory("active", now - std::chrono::hours{i + 1});
  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_expired_memories(tx, now, 1);
            }),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories "
                  "WHERE status = 'archived' AND expires_at = "
                  + sql_time(now - 3h)),
            1);
  // limit <= 0: everything due.
  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_expired_memories(tx, now, 0);
            }),
            2);
}

TEST_F(cleanup_repository_test, expired_rows_locked_elsewhere_are_skipped_not_waited_for) {
  const auto now = noon();
  insert_token("a", now - 1h);
  insert_token("b", now - 2h);
  pqxx::connection other{db};
  pqxx::work holder{other};
  holder.exec("SELECT 1 FROM engram.refresh_tokens WHERE token_hash = 'b' "
              "FOR UPDATE");
  EXPECT_EQ(in_tx([&](auto& tx) { return storage::expire_tokens(tx, now); }), 1);
  holder.commit();
  EXPECT_EQ(in_tx([&](auto& tx) { return storage::expire_tokens(tx, now); }), 1);
  EXPECT_EQ(tokens(), "");
}

TEST_F(cleanup_repository_test, close_stale_sessions_marks_only_active_conversations_idle_past_the_window) {
  const auto now = noon();
  const auto t0 = now - 10h;
  auto stale_message = conversation(t0, {now - 31min});
  auto exactly_at_window = conversation(t0, {now - 30min});
  auto never_spoke = conversation(now - 2h, {});
  auto young = conversation(now - 29min, {});
  auto old_but_recent_message = conversation(t0, {now - 2h, now - 5min});
  auto already_idle = conversation(t0, {}, "idle");
  auto closed = conversation(t0, {}, "closed");
  auto before_closed = updated_us("conversations", closed);
  auto before_idle = updated_us("conversations", already_idle);

  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::close_stale_sessions(tx, now, 30);
            }),
            2);
  EXPECT_EQ(status_of_conversation(stale_message), "idle");
  EXPECT_EQ(status_of_conversation(never_spoke), "idle");
  EXPECT_EQ(status_of_conversation(exactly_at_window), "active")
    << "idle means strictly older than the window";
  EXPECT_EQ(status_of_conversation(young), "active");
  EXPECT_EQ(status_of_conversation(old_but_recent_message), "active");
  EXPECT_EQ(status_of_conversation(already_idle), "idle");
  EXPECT_EQ(status_of_conversation(closed), "closed");
  EXPECT_EQ(updated_us("conversations", stale_message), to_epoch_us(now));
  EXPECT_EQ(updated_us("conversations", closed), before_closed);
  EXPECT_EQ(updated_us("conversations", already_idle), before_idle);

  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::close_stale_sessions(tx, now, 30);
            }),
            0)
    << "a second run changes nothing";
  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::close_stale_sessions(tx, now + 1us, 30);
            }),
            1)
    << "a microsecond later the boundary one is past the window";
  EXPECT_EQ(status_of_conversation(exactly_at_window), "idle");
}

TEST_F(cleanup_repository_test, archive_old_conversations_closes_open_ones_inactive_for_days) {
  const auto now = noon();
  const auto long_ago = now - 24h * 60;
  auto old_active = conversation(now - 24h * 31, {});
  auto old_idle = conversation(long_ago, {now - 24h * 31}, "idle");
  auto exactly_30_days = conversation(now - 24h * 30, {});
  auto old_but_active_yesterday = conversation(long_ago, {now - 24h});
  auto old_closed = conversation(long_ago, {}, "closed");
  auto before_closed = updated_us("conversations", old_closed);

  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_old_conversations(tx, now, 30);
            }),
            2);
  EXPECT_EQ(status_of_conversation(old_active), "closed");
  EXPECT_EQ(status_of_conversation(old_idle), "closed");
  EXPECT_EQ(status_of_conversation(exactly_30_days), "active");
  EXPECT_EQ(status_of_conversation(old_but_active_yesterday), "active");
  EXPECT_EQ(status_of_conversation(old_closed), "closed");
  EXPECT_EQ(updated_us("conversations", old_active), to_epoch_us(now));
  EXPECT_EQ(updated_us("conversations", old_closed), before_closed);
  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_old_conversations(tx, now, 30);
            }),
            0);
  // A closed conversation takes no more messages.
  auto added = in_tx([&](auto& tx) {
    return storage::add_messages(tx, old_active, {{"user", "hello?", {}}}, now);
  });
  EXPECT_EQ(added.result, storage::add_messages_result::outcome::closed);
}

TEST_F(cleanup_repository_test, archive_expired_memories_archives_active_expired_ones_pinned_or_not) {
  const auto now = noon();
  auto expired = memory("active", now - 1h);
  auto pinned = memory("active", now - 1h, true);
  auto expires_now = memory("active", now, false, "warm");
  auto expires_later = memory("active", now + 1us);
  auto no_expiry = memory("active", std::nullopt);
  auto superseded = memory("superseded", now - 1h);
  auto archived = memory("archived", now - 1h, false, "warm");
  auto before = updated_us("memories", superseded);

  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_expired_memories(tx, now);
            }),
            3);
  EXPECT_EQ(status_and_tier(expired), "archived/cold");
  EXPECT_EQ(status_and_tier(pinned), "archived/cold")
    << "an explicit expiry wins over the pin (DESIGN §6, decay)";
  EXPECT_EQ(status_and_tier(expires_now), "archived/cold");
  EXPECT_EQ(status_and_tier(expires_later), "active/hot");
  EXPECT_EQ(status_and_tier(no_expiry), "active/hot");
  EXPECT_EQ(status_and_tier(superseded), "superseded/hot")
    << "memories that are not active are never touched";
  EXPECT_EQ(status_and_tier(archived), "archived/warm");
  EXPECT_EQ(updated_us("memories", expired), to_epoch_us(now));
  EXPECT_EQ(updated_us("memories", superseded), before);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE pinned"), 1)
    << "the pin itself stays";

  EXPECT_EQ(in_tx([&](auto& tx) {
              return storage::archive_expired_memories(tx, now);
            }),
            0);
  EXPECT_EQ(updated_us("memories", expired), to_epoch_us(now));
}
