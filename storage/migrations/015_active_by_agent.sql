-- The active memories of an agent, whatever its project: the hot-memory
-- cache loads an agent's hot memories by agent id alone
-- (GET /api/agents/{id}/memories/hot), and no index led with agent_id, so a
-- cache miss read every active memory of every project. The index of a
-- project's active memories led with project_id; the known-fact index
-- (project_id, agent_id, hashtext(content)) serves those queries as well
-- (the snapshot load, a project's agents), so this one now leads with the
-- agent: the same number of index entries per memory as before.
DROP INDEX engram.memories_active_idx;

CREATE INDEX memories_active_agent_idx ON engram.memories (agent_id, type)
  WHERE status = 'active';
