#include "storage/conversation_repository.hpp"

#include <stdexcept>

#include "storage/platform_repository.hpp"
#include "tests/integration/platform_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;
using outcome = storage::add_messages_result::outcome;

namespace {

class conversation_repository_test : public test::platform_test {
protected:
  storage::conversation_row create(wall_time at) {
    return in_tx([&](auto& tx) {
      storage::project_row project;
      {
        storage::new_project p;
        p.name = "p";
        project = storage::create_project(tx, p, at);
      }
      storage::new_agent a;
      a.project_id = project.id;
      a.name = "helper";
      auto agent = storage::create_agent(tx, a, at);
      storage::new_conversation c;
      c.project_id = project.id;
      c.agent_id = agent.id;
      c.user_id = "user-1";
      c.title = "Trip planning";
      return storage::create_conversation(tx, c, at);
    });
  }

  storage::add_messages_result add(const std::string& id,
                                   std::vector<storage::new_message> messages,
                                   wall_time at) {
    return in_tx([&](auto& tx) {
      return storage::add_messages(tx, id, messages, at);
    });
  }

  static storage::new_message msg(std::string role, std::string content,
                                  std::optional<int32_t> tokens = {}) {
    return {std::move(role), std::move(content), tokens};
  }

  static std::vector<std::string>
  contents(const std::vector<storage::message_row>& messages) {
    std::vector<std::string> result;
    for (const auto& m : messages)
      result.push_back(m.content);
    return result;
  }
};

} // namespace

TEST_F(conversation_repository_test, creates_and_reads_a_conversation) {
  auto created = create(noon());
  EXPECT_EQ(created.status, "active");
  EXPECT_EQ(created.title, "Trip planning");
  EXPECT_EQ(created.user_id, std::optional<std::string>{"user-1"});
  EXPECT_TRUE(created.project_id && created.agent_id);
  EXPECT_EQ(created.created_at, noon());
  EXPECT_EQ(created.updated_at, noon());
  EXPECT_FALSE(created.last_message_at);
  pqxx::work tx{*conn};
  auto read = storage::get_conversation(tx, created.id);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->id, created.id);
  EXPECT_EQ(read->agent_id, created.agent_id);
  EXPECT_EQ(read->created_at, noon());
  // A conversation needs nothing but may name nothing.
  auto bare = storage::create_conversation(tx, {}, noon());
  EXPECT_FALSE(bare.project_id || bare.agent_id || bare.user_id);
  EXPECT_EQ(bare.title, "");
}

TEST_F(conversation_repository_test, unknown_and_malformed_ids_are_not_found) {
  pqxx::work tx{*conn};
  for (std::string id : {"6b1f4c1e-2a43-4d38-9a53-0d7f3f0f1a11", "nope", "",
                         "6b1f4c1e-2a43-4d38-9a53-0d7f3f0f1a1g"}) {
    EXPECT_FALSE(storage::get_conversation(tx, id)) << id;
    EXPECT_FALSE(storage::get_conversation_with_messages(tx, id)) << id;
    EXPECT_TRUE(storage::list_messages(tx, id).empty()) << id;
    auto added = storage::add_messages(tx, id, {msg("user", "x")}, noon());
    EXPECT_EQ(added.result, outcome::not_found) << id;
    EXPECT_TRUE(added.messages.empty());
  }
  tx.commit();
  EXPECT_EQ(count("SELECT count(*) FROM engram.messages"), 0);
}

TEST_F(conversation_repository_test, messages_come_back_in_time_then_insertion_order) {
  auto c = create(noon() - 1h);
  auto first = add(c.id,
                   {msg("system", "be brief"), msg("user", "hi", 2),
                    msg("assistant", "hello", 3)},
                   noon());
  ASSERT_EQ(first.result, outcome::added);
  ASSERT_EQ(first.messages.size(), 3u);
  EXPECT_EQ(contents(first.messages),
            (std::vector<std::string>{"be brief", "hi", "hello"}));
  EXPECT_LT(first.messages[0].id, first.messages[1].id);
  EXPECT_EQ(first.messages[1].token_count, std::optional<int32_t>{2});
  EXPECT_FALSE(first.messages[0].token_count);
  EXPECT_EQ(first.messages[2].created_at, noon());
  EXPECT_EQ(first.messages[2].conversation_id, c.id);
  // Another node's clock is a little behind: its message sorts by time.
  ASSERT_EQ(add(c.id, {msg("tool", "late")}, noon() - 1s).result,
            outcome::added);
  pqxx::work tx{*conn};
  auto full = storage::get_conversation_with_messages(tx, c.id);
  ASSERT_TRUE(full);
  EXPECT_EQ(contents(full->messages),
            (std::vector<std::string>{"late", "be brief", "hi", "hello"}));
  EXPECT_EQ(full->conversation.last_message_at, std::optional<wall_time>{noon()})
    << "last activity never moves back";
  EXPECT_EQ(full->conversation.updated_at, noon() - 1s);
}

TEST_F(conversation_repository_test, list_messages_pages_after_a_message) {
  auto c = create(noon() - 1h);
  std::vector<storage::new_message> batch;
  for (int i = 0; i < 5; ++i)
    batch.push_back(msg("user", "m" + std::to_string(i)));
  auto added = add(c.id, batch, noon());
  ASSERT_EQ(added.messages.size(), 5u);
  pqxx::work tx{*conn};
  EXPECT_EQ(contents(storage::list_messages(tx, c.id, 0, 2)),
            (std::vector<std::string>{"m0", "m1"}));
  EXPECT_EQ(contents(storage::list_messages(tx, c.id, added.messages[1].id, 2)),
            (std::vector<std::string>{"m2", "m3"}));
  EXPECT_EQ(contents(storage::list_messages(tx, c.id, added.messages[3].id)),
            (std::vector<std::string>{"m4"}));
  EXPECT_TRUE(storage::list_messages(tx, c.id, added.messages[4].id).empty());
}

TEST_F(conversation_repository_test, a_message_reopens_an_idle_conversation_but_not_a_closed_one) {
  auto c = create(noon() - 2h);
  exec("UPDATE engram.conversations SET status = 'idle' WHERE id = "
       + quoted(c.id));
  ASSERT_EQ(add(c.id, {msg("user", "back again")}, noon()).result,
            outcome::added);
  {
    pqxx::work tx{*conn};
    auto read = storage::get_conversation(tx, c.id);
    EXPECT_EQ(read->status, "active");
    EXPECT_EQ(read->last_message_at, std::optional<wall_time>{noon()});
  }
  exec("UPDATE engram.conversations SET status = 'closed' WHERE id = "
       + quoted(c.id));
  auto refused = add(c.id, {msg("user", "anyone?")}, noon() + 1h);
  EXPECT_EQ(refused.result, outcome::closed);
  EXPECT_TRUE(refused.messages.empty());
  pqxx::work tx{*conn};
  auto read = storage::get_conversation_with_messages(tx, c.id);
  EXPECT_EQ(read->conversation.status, "closed");
  EXPECT_EQ(read->conversation.last_message_at, std::optional<wall_time>{noon()});
  EXPECT_EQ(read->messages.size(), 1u);
}

TEST_F(conversation_repository_test, a_bad_role_is_refused_before_anything_is_written) {
  auto c = create(noon());
  pqxx::work tx{*conn};
  EXPECT_THROW((void) storage::add_messages(
                 tx, c.id, {msg("user", "ok"), msg("robot", "no")}, noon()),
               std::invalid_argument);
  EXPECT_THROW((void) storage::add_messages(tx, c.id, {msg("user", "ok", -1)},
                                            noon()),
               std::invalid_argument);
  EXPECT_TRUE(storage::list_messages(tx, c.id).empty());
  // The database refuses one too, should a writer bypass this repository.
  EXPECT_THROW(tx.exec("INSERT INTO engram.messages (conversation_id, role, "
                       "content) VALUES ('" + c.id + "', 'robot', 'x')"),
               pqxx::check_violation);
}

TEST_F(conversation_repository_test, deleting_a_conversation_deletes_its_messages) {
  auto c = create(noon());
  ASSERT_EQ(add(c.id, {msg("user", "a"), msg("user", "b")}, noon()).result,
            outcome::added);
  exec("DELETE FROM engram.conversations WHERE id = " + quoted(c.id));
  EXPECT_EQ(count("SELECT count(*) FROM engram.messages"), 0);
}
