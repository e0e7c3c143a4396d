#include "storage/platform_repository.hpp"

#include <stdexcept>
#include <thread>

#include "tests/integration/platform_fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

class platform_repository_test : public test::platform_test {
protected:
  void SetUp() override {
    platform_test::SetUp();
    in_tx([&](auto& tx) {
      project = make_project(tx, "alpha");
      other_project = make_project(tx, "beta");
      agent = make_agent(tx, project, "a1");
      other_agent = make_agent(tx, project, "a2");
    });
  }

  static std::string make_project(pqxx::transaction_base& tx,
                                  const std::string& name) {
    storage::new_project p;
    p.name = name;
    return storage::create_project(tx, p, noon() - 1000h).id;
  }

  static std::string make_agent(pqxx::transaction_base& tx,
                                const std::string& project_id,
                                const std::string& name) {
    storage::new_agent a;
    a.project_id = project_id;
    a.name = name;
    return storage::create_agent(tx, a, noon() - 1000h).id;
  }

  static storage::extracted_fact fact(std::string content,
                                      std::string type = "semantic",
                                      int32_t importance = 5) {
    storage::extracted_fact f;
    f.content = std::move(content);
    f.type = std::move(type);
    f.importance = importance;
    return f;
  }

  storage::extraction_result extract(const std::vector<storage::extracted_fact>& facts,
                                     std::optional<std::string> for_agent,
                                     std::string for_project = {}) {
    return in_tx([&](auto& tx) {
      return storage::insert_extracted_memories(
        tx, for_project.empty() ? project : for_project, for_agent,
        conversation, facts, noon());
    });
  }

  /// Inserts a memory directly, as consolidation or an import would.
  std::string memory(const std::string& project_id,
                     std::optional<std::string> agent_id,
                     const std::string& content,
                     const std::string& status = "active") {
    return query("INSERT INTO engram.memories (project_id, agent_id, type, "
                 "status, content) VALUES ("
                 + quoted(project_id) + ", "
                 + (agent_id ? quoted(*agent_id) + "::uuid" : "NULL")
                 + ", 'episodic', " + quoted(status) + ", " + quoted(content)
                 + ") RETURNING id");
  }

  std::string project, other_project, agent, other_agent;
  std::string conversation = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
};

} // namespace

TEST_F(platform_repository_test, projects_are_created_and_read) {
  pqxx::work tx{*conn};
  storage::new_project p;
  p.id = "5a0e3b8e-1a6e-4c41-9d0f-2f6a8f3c9e21";
  p.name = "gamma";
  p.consolidation_enabled = false;
  p.consolidation_config_json = R"({"merge_threshold": 0.95})";
  auto created = storage::create_project(tx, p, noon());
  EXPECT_EQ(created.id, p.id);
  EXPECT_FALSE(created.consolidation_enabled);
  EXPECT_EQ(created.consolidation_config_json, R"({"merge_threshold": 0.95})");
  EXPECT_EQ(created.created_at, noon());
  auto read = storage::get_project(tx, p.id);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->name, "gamma");
  EXPECT_EQ(read->updated_at, noon());
  auto defaults = storage::get_project(tx, project);
  ASSERT_TRUE(defaults);
  EXPECT_TRUE(defaults->consolidation_enabled);
  EXPECT_EQ(defaults->consolidation_config_json, "{}");
  EXPECT_FALSE(storage::get_project(tx, "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10"));
  EXPECT_FALSE(storage::get_project(tx, "not-a-uuid"));
}

TEST_F(platform_repository_test, a_project_config_must_be_a_json_object) {
  pqxx::work tx{*conn};
  storage::new_project p;
  p.name = "bad";
  p.consolidation_config_json = "[1, 2]";
  EXPECT_THROW((void) storage::create_project(tx, p, noon()),
               pqxx::check_violation);
}

TEST_F(platform_repository_test, agents_are_created_and_read) {
  pqxx::work tx{*conn};
  storage::new_agent a;
  a.project_id = project;
  a.name = "writer";
  a.system_prompt = "You write.";
  a.model = "gpt-x";
  auto created = storage::create_agent(tx, a, noon());
  EXPECT_EQ(created.project_id, std::optional<std::string>{project});
  EXPECT_EQ(created.created_at, noon());
  auto read = storage::get_agent(tx, created.id);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->name, "writer");
  EXPECT_EQ(read->system_prompt, "You write.");
  EXPECT_EQ(read->model, "gpt-x");
  storage::new_agent global;
  global.name = "global";
  auto g = storage::create_agent(tx, global, noon());
  EXPECT_FALSE(g.project_id);
  EXPECT_EQ(g.model, "");
  EXPECT_FALSE(storage::get_agent(tx, "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10"));
  EXPECT_FALSE(storage::get_agent(tx, "0e4b8a5c"));
}

TEST_F(platform_repository_test, an_agent_of_an_unknown_project_is_refused) {
  pqxx::work tx{*conn};
  storage::new_agent a;
  a.project_id = "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10";
  a.name = "orphan";
  EXPECT_THROW((void) storage::create_agent(tx, a, noon()),
               pqxx::foreign_key_violation);
}

TEST_F(platform_repository_test, extracted_facts_become_active_memories_of_the_conversation) {
  auto episodic = fact("Met Ana in Lisbon", "episodic", 7);
  episodic.embedding = {1.0f, -2.0f};
  episodic.embedding_model = "hash-256";
  auto result = extract({fact("Prefers tea"), episodic}, agent);
  EXPECT_EQ(result.created, 2);
  EXPECT_EQ(result.skipped_duplicates, 0);
  ASSERT_EQ(result.ids.size(), 2u);
  auto row = [&](const std::string& id, const std::string& expr) {
    return query("SELECT " + expr + " FROM engram.memories WHERE id = "
                 + quoted(id));
  };
  EXPECT_EQ(row(result.ids[0], "content"), "Prefers tea");
  EXPECT_EQ(row(result.ids[0], "type || '/' || tier || '/' || status"),
            "semantic/warm/active");
  EXPECT_EQ(row(result.ids[0], "source_type"), "conversation");
  EXPECT_EQ(row(result.ids[0], "metadata->>'conversation_id'"), conversation);
  EXPECT_EQ(row(result.ids[0], "agent_id::text"), agent);
  EXPECT_EQ(row(result.ids[0], "project_id::text"), project);
  EXPECT_EQ(row(result.ids[0], "importance"), "5");
  EXPECT_EQ(row(result.ids[0], "engram.to_us(created_at)"),
            std::to_string(to_epoch_us(noon())));
  EXPECT_EQ(row(result.ids[0], "embedding IS NULL AND embedding_model IS NULL"),
            "t");
  EXPECT_EQ(row(result.ids[1], "type || '/' || importance"), "episodic/7");
  // float32 little-endian: 1.0 = 00 00 80 3f, -2.0 = 00 00 00 c0.
  EXPECT_EQ(row(result.ids[1], "encode(embedding, 'hex')"), "0000803f000000c0");
  EXPECT_EQ(row(result.ids[1], "embedding_model"), "hash-256");
}

TEST_F(platform_repository_test, extraction_skips_content_already_active_for_the_project_and_agent) {
  memory(project, agent, "Prefers tea");
  memory(project, agent, "Lives in Porto", "superseded");
  memory(project, agent, "Has a cat", "archived");
  memory(project, other_agent, "Likes jazz");
  memory(other_project, std::nullopt, "Speaks Portuguese");
  memory(project, std::nullopt, "Works remotely");
  auto result = extract({fact("Prefers tea"),           // active: skipped
                         fact("Prefers tea "),          // not exact: kept
                         fact("prefers tea"),           // case counts: kept
                         fact("Lives in Porto"),        // only superseded
                         fact("Has a cat"),             // only archived
                         fact("Likes jazz"),            // another agent's
                         fact("Speaks Portuguese"),     // another project's
                         fact("Works remotely"),        // project-wide one
                         fact("Drinks coffee"),
                         fact("Drinks coffee", "episodic")}, // repeated input
                        agent);
  EXPECT_EQ(result.created, 8);
  EXPECT_EQ(result.skipped_duplicates, 2);
  EXPECT_EQ(result.ids.size(), 8u);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE agent_id = "
                  + quoted(agent) + " AND status = 'active' AND content = "
                  "'Drinks coffee'"),
            1);
  // The same extraction again (a retried task) creates nothing.
  auto again = extract({fact("Prefers tea"), fact("Drinks coffee"),
                        fact("Has a cat")},
                       agent);
  EXPECT_EQ(again.created, 0);
  EXPECT_EQ(again.skipped_duplicates, 3);
  EXPECT_TRUE(again.ids.empty());
}

TEST_F(platform_repository_test, project_wide_extraction_compares_with_project_wide_memories) {
  memory(project, agent, "Shared fact");
  memory(project, std::nullopt, "Known to all");
  auto result = extract({fact("Shared fact"), fact("Known to all")},
                        std::nullopt);
  EXPECT_EQ(result.created, 1);
  EXPECT_EQ(result.skipped_duplicates, 1);
  EXPECT_EQ(query("SELECT agent_id IS NULL FROM engram.memories WHERE id = "
                  + quoted(result.ids.at(0))),
            "t");
}

TEST_F(platform_repository_test, invalid_facts_are_refused_before_anything_is_written) {
  auto no_model = fact("x");
  no_model.embedding = {0.5f};
  for (const auto& bad :
       {fact("x", "identity"), fact(""), fact("x", "semantic", 0),
        fact("x", "semantic", 11), no_model}) {
    pqxx::work tx{*conn};
    EXPECT_THROW((void) storage::insert_extracted_memories(
                   tx, project, agent, conversation, {fact("fine"), bad}, noon()),
                 std::invalid_argument)
      << bad.type << "/" << bad.content << "/" << bad.importance;
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 0);
  // A project that is gone (memories.project_id has no foreign key: the
  // extraction's project lock refuses it).
  {
    pqxx::work tx{*conn};
    EXPECT_THROW((void) storage::insert_extracted_memories(
                   tx, "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10", agent,
                   conversation, {fact("fine")}, noon()),
                 std::invalid_argument);
  }
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 0);
  auto nothing = extract({}, agent);
  EXPECT_EQ(nothing.created + nothing.skipped_duplicates, 0);
}

TEST_F(platform_repository_test, concurrent_extractions_of_one_agent_never_duplicate) {
  pqxx::connection other{db};
  pqxx::work first{*conn};
  auto mine = storage::insert_extracted_memories(
    first, project, agent, conversation, {fact("Runs marathons")}, noon());
  EXPECT_EQ(mine.created, 1);
  storage::extraction_result theirs;
  std::thread second{[&] {
    pqxx::work tx{other};
    theirs = storage::insert_extracted_memories(
      tx, project, agent, conversation, {fact("Runs marathons")}, noon());
    tx.commit();
  }};
  // Wait until the second one waits for the first one's lock.
  pqxx::connection observer{db};
  bool waiting = false;
  for (int i = 0; i < 500 && !waiting; ++i) {
    pqxx::nontransaction q{observer};
    waiting = q.exec1("SELECT count(*) FROM pg_locks WHERE locktype = "
                      "'advisory' AND NOT granted")[0]
                .as<int>()
              > 0;
    if (!waiting)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(waiting) << "the second extraction waits for the first";
  first.commit();
  second.join();
  EXPECT_EQ(theirs.created, 0);
  EXPECT_EQ(theirs.skipped_duplicates, 1);
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories"), 1);
}

TEST_F(platform_repository_test, the_memories_table_enforces_the_design_values) {
  auto refused = [&](const std::string& columns, const std::string& values) {
    pqxx::work tx{*conn};
    try {
      tx.exec("INSERT INTO engram.memories (project_id, " + columns
              + ") VALUES (" + quoted(project) + ", " + values + ")");
      return false;
    } catch (const pqxx::check_violation&) {
      return true;
    }
  };
  EXPECT_TRUE(refused("type, content", "'opinion', 'x'"));
  EXPECT_TRUE(refused("type, content, tier", "'semantic', 'x', 'lukewarm'"));
  EXPECT_TRUE(refused("type, content, status", "'semantic', 'x', 'deleted'"));
  EXPECT_TRUE(refused("type, content, importance", "'semantic', 'x', 0"));
  EXPECT_TRUE(refused("type, content, importance", "'semantic', 'x', 11"));
  EXPECT_TRUE(refused("type, content, embedding", "'semantic', 'x', '\\x00000000'"))
    << "an embedding needs its model";
  EXPECT_TRUE(refused("type, content, embedding, embedding_model",
                      "'semantic', 'x', '\\x000000', 'm'"))
    << "float32: a multiple of 4 bytes";
  EXPECT_FALSE(refused("type, content, importance, embedding, embedding_model",
                       "'principle', 'x', 10, '\\x0000803f', 'm'"));
  // Superseding links to another memory; deleting it unlinks.
  auto a = memory(project, agent, "a");
  auto b = memory(project, agent, "b");
  exec("UPDATE engram.memories SET status = 'superseded', superseded_by = "
       + quoted(b) + " WHERE id = " + quoted(a));
  exec("DELETE FROM engram.memories WHERE id = " + quoted(b));
  EXPECT_EQ(query("SELECT superseded_by IS NULL FROM engram.memories WHERE id = "
                  + quoted(a)),
            "t");
}

// The audit trail and the parent links keep the delete actions of foreign
// keys (migration 010 replaced the keys with statement triggers, so
// consolidation's bulk writes are not checked row by row).
TEST_F(platform_repository_test, deleting_memories_jobs_and_projects_keeps_audit_and_links_consistent) {
  auto principle = memory(project, agent, "principle");
  auto member = memory(project, agent, "member");
  auto elsewhere = memory(other_project, agent, "elsewhere");
  exec("UPDATE engram.memories SET parent_id = " + quoted(principle)
       + " WHERE id = " + quoted(member));
  auto job = query("INSERT INTO engram.consolidation_jobs (project_id, "
                   "trigger_type) VALUES (" + quoted(project)
                   + ", 'manual') RETURNING id");
  // A job's audit rows are its project's (the job of the row elsewhere is
  // another project's).
  auto other_job = query("INSERT INTO engram.consolidation_jobs (project_id, "
                         "trigger_type) VALUES (" + quoted(other_project)
                         + ", 'manual') RETURNING id");
  for (const auto& [id, owner, by] :
       {std::tuple{principle, project, job}, std::tuple{member, project, job},
        std::tuple{elsewhere, other_project, other_job}})
    exec("INSERT INTO engram.memory_audit (memory_id, project_id, job_id, "
         "action) VALUES (" + quoted(id) + ", " + quoted(owner) + ", "
         + quoted(by) + ", 'linked')");
  auto audits_of = [&](const std::string& id) {
    return count("SELECT count(*) FROM engram.memory_audit WHERE memory_id = "
                 + quoted(id));
  };

  exec("DELETE FROM engram.memories WHERE id = " + quoted(principle));
  EXPECT_EQ(audits_of(principle), 0) << "a memory's audit goes with it";
  EXPECT_EQ(audits_of(member), 1);
  EXPECT_EQ(query("SELECT parent_id IS NULL FROM engram.memories WHERE id = "
                  + quoted(member)),
            "t")
    << "members of a deleted memory are unlinked";

  exec("DELETE FROM engram.consolidation_jobs WHERE id = " + quoted(job));
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id = "
                  + quoted(job)),
            0)
    << "audit rows outlive their job, without it";
  EXPECT_EQ(count("SELECT count(*) FROM engram.memory_audit WHERE job_id = "
                  + quoted(other_job)),
            1)
    << "another job's rows keep theirs";
  EXPECT_EQ(audits_of(member), 1);

  exec("DELETE FROM engram.projects WHERE id = " + quoted(project));
  EXPECT_EQ(audits_of(member), 0) << "a project's audit goes with it";
  EXPECT_EQ(audits_of(elsewhere), 1) << "other projects keep theirs";
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = "
                  + quoted(project)),
            0)
    << "a project's memories go with it";
  EXPECT_EQ(count("SELECT count(*) FROM engram.memories WHERE project_id = "
                  + quoted(other_project)),
            1);
}

// memories.project_id has no foreign key (migration 011): a writer locks
// the project instead, which keeps a delete from going under it.
TEST_F(platform_repository_test, a_locked_project_cannot_be_deleted_until_the_writer_commits) {
  pqxx::connection writer_conn{db};
  pqxx::work writer{writer_conn};
  EXPECT_TRUE(storage::lock_project(writer, project));
  EXPECT_FALSE(storage::lock_project(writer, "0e4b8a5c-4f1e-4b7a-9a57-3f3d6f1c2b10"));
  EXPECT_FALSE(storage::lock_project(writer, "not-a-uuid"));
  {
    pqxx::work deleter{*conn};
    deleter.exec0("SET LOCAL lock_timeout = '200ms'");
    EXPECT_THROW(deleter.exec0("DELETE FROM engram.projects WHERE id = "
                               + quoted(project)),
                 pqxx::sql_error);
  }
  writer.commit();
  exec("DELETE FROM engram.projects WHERE id = " + quoted(project));
  EXPECT_EQ(count("SELECT count(*) FROM engram.projects WHERE id = "
                  + quoted(project)),
            0);
}
