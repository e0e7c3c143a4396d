-- The agent platform's tables (DESIGN §3, §5): projects and their agents,
-- agents' memories, conversations and their messages, refresh tokens, and
-- the dynamic schedules (scheduled_jobs) with one row per fire
-- (scheduled_job_runs). Every timestamp the daemon writes comes from its
-- clock (engram.from_us); the column defaults only serve other writers.

CREATE TABLE engram.projects (
  id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  name                  text        NOT NULL CHECK (name <> ''),
  consolidation_enabled boolean     NOT NULL DEFAULT true,
  -- Overrides of the consolidation defaults (thresholds, windows).
  consolidation_config  jsonb       NOT NULL DEFAULT '{}'::jsonb
                        CHECK (jsonb_typeof(consolidation_config) = 'object'),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- An agent without a project is a global one. Deleting a project deletes
-- its agents (and, through them, their schedules and conversations).
CREATE TABLE engram.agents (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id    uuid        REFERENCES engram.projects (id) ON DELETE CASCADE,
  name          text        NOT NULL CHECK (name <> ''),
  system_prompt text        NOT NULL DEFAULT '',
  -- Empty: the daemon's configured default model.
  model         text        NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX agents_project_idx ON engram.agents (project_id);

-- Agents' memories. `agent_id` has no foreign key on purpose: memories are
-- bulk-imported for agents that may live only in the platform's own
-- database (DESIGN §8 has no agents resource); NULL = a project-wide memory.
-- `embedding` is float32 little-endian; an embedding is only meaningful
-- with the model that made it, so it never comes without `embedding_model`.
CREATE TABLE engram.memories (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id       uuid        NOT NULL
                   REFERENCES engram.projects (id) ON DELETE CASCADE,
  agent_id         uuid,
  type             text        NOT NULL
                   CHECK (type IN ('episodic', 'semantic', 'procedural',
                                   'identity', 'principle')),
  tier             text        NOT NULL DEFAULT 'warm'
                   CHECK (tier IN ('hot', 'warm', 'cold')),
  status           text        NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'superseded', 'archived')),
  content          text        NOT NULL,
  embedding        bytea       CHECK (length(embedding) % 4 = 0),
  embedding_model  text,
  importance       integer     NOT NULL DEFAULT 5
                   CHECK (importance BETWEEN 1 AND 10),
  pinned           boolean     NOT NULL DEFAULT false,
  access_count     integer     NOT NULL DEFAULT 0 CHECK (access_count >= 0),
  source_type      text        NOT NULL DEFAULT 'manual'
                   CHECK (source_type <> ''),
  superseded_by    uuid        REFERENCES engram.memories (id) ON DELETE SET NULL,
  parent_id        uuid        REFERENCES engram.memories (id) ON DELETE SET NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  last_accessed_at timestamptz,
  expires_at       timestamptz,
  metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb
                   CHECK (jsonb_typeof(metadata) = 'object'),
  CHECK (embedding IS NULL OR embedding_model IS NOT NULL),
  CHECK (superseded_by <> id),
  CHECK (parent_id <> id)
);

-- Consolidation and retrieval: the active memories of a project, per agent
-- and type.
CREATE INDEX memories_active_idx ON engram.memories (project_id, agent_id, type)
  WHERE status = 'active';

-- Expiry (cleanup.archive_expired_memories, the decay phase).
CREATE INDEX memories_expiry_idx ON engram.memories (expires_at)
  WHERE status = 'active' AND expires_at IS NOT NULL;

-- Exact-duplicate content among the active memories of a project and agent
-- (extraction skips facts that are already known).
CREATE INDEX memories_active_content_idx
  ON engram.memories (project_id, agent_id, md5(content))
  WHERE status = 'active';

-- Following the links (and keeping ON DELETE SET NULL cheap).
CREATE INDEX memories_superseded_by_idx ON engram.memories (superseded_by)
  WHERE superseded_by IS NOT NULL;
CREATE INDEX memories_parent_idx ON engram.memories (parent_id)
  WHERE parent_id IS NOT NULL;

-- Conversations: active → idle (no activity for a while, reopened by a new
-- message) → closed (archived; terminal). Activity is the last message, or
-- the creation when there is none.
CREATE TABLE engram.conversations (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id      uuid        REFERENCES engram.projects (id) ON DELETE CASCADE,
  agent_id        uuid        REFERENCES engram.agents (id) ON DELETE CASCADE,
  user_id         text,
  title           text        NOT NULL DEFAULT '',
  status          text        NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'idle', 'closed')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_message_at timestamptz
);

-- cleanup.close_stale_sessions: active conversations by last activity.
CREATE INDEX conversations_active_activity_idx
  ON engram.conversations ((coalesce(last_message_at, created_at)))
  WHERE status = 'active';

-- cleanup.archive_old_conversations: open conversations by last activity.
CREATE INDEX conversations_open_activity_idx
  ON engram.conversations ((coalesce(last_message_at, created_at)))
  WHERE status <> 'closed';

CREATE INDEX conversations_project_idx ON engram.conversations (project_id);
CREATE INDEX conversations_agent_idx
  ON engram.conversations (agent_id, created_at DESC);

CREATE TABLE engram.messages (
  id              bigserial   PRIMARY KEY,
  conversation_id uuid        NOT NULL
                  REFERENCES engram.conversations (id) ON DELETE CASCADE,
  role            text        NOT NULL
                  CHECK (role IN ('system', 'user', 'assistant', 'tool')),
  content         text        NOT NULL,
  token_count     integer     CHECK (token_count >= 0),
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- A conversation's messages in order (messages of one instant by id).
CREATE INDEX messages_conversation_idx
  ON engram.messages (conversation_id, created_at, id);

-- Refresh tokens of the platform's users; only a hash is stored.
CREATE TABLE engram.refresh_tokens (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    text        NOT NULL,
  token_hash text        NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE INDEX refresh_tokens_expires_at_idx ON engram.refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_user_idx ON engram.refresh_tokens (user_id);

-- Dynamic schedules (DESIGN §5): each fire runs `agent_id` with `message`.
-- The API validates cron_expression and timezone before storing them.
CREATE TABLE engram.scheduled_jobs (
  id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  team_id              text,
  agent_id             uuid        NOT NULL
                       REFERENCES engram.agents (id) ON DELETE CASCADE,
  user_id              text,
  name                 text        NOT NULL CHECK (name <> ''),
  message              text        NOT NULL,
  cron_expression      text        NOT NULL CHECK (cron_expression <> ''),
  timezone             text        NOT NULL DEFAULT 'UTC' CHECK (timezone <> ''),
  is_active            boolean     NOT NULL DEFAULT true,
  last_run_at          timestamptz,
  next_run_at          timestamptz,
  run_count            bigint      NOT NULL DEFAULT 0 CHECK (run_count >= 0),
  consecutive_failures integer     NOT NULL DEFAULT 0
                       CHECK (consecutive_failures >= 0),
  last_error           text,
  delivery_config      jsonb       NOT NULL DEFAULT '{}'::jsonb
                       CHECK (jsonb_typeof(delivery_config) = 'object'),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- The scheduler: active jobs by next run.
CREATE INDEX scheduled_jobs_due_idx ON engram.scheduled_jobs (is_active, next_run_at);
-- Listing, newest first, with a (created_at, id) cursor.
CREATE INDEX scheduled_jobs_created_idx
  ON engram.scheduled_jobs (created_at DESC, id DESC);
CREATE INDEX scheduled_jobs_agent_idx ON engram.scheduled_jobs (agent_id);

-- The scheduler reloads when the schedule changes: a job appears or goes,
-- or its expression, zone, activity or next run changes. Run bookkeeping
-- (run_count, last_run_at, failures, last_error) does not wake it; an
-- automatic deactivation does. Notifications of one transaction are
-- delivered once, at commit.
CREATE FUNCTION engram.notify_schedules_changed() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('engram_schedules', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER scheduled_jobs_notify_insert_delete
  AFTER INSERT OR DELETE ON engram.scheduled_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION engram.notify_schedules_changed();

CREATE TRIGGER scheduled_jobs_notify_update
  AFTER UPDATE ON engram.scheduled_jobs
  FOR EACH ROW
  WHEN (OLD.cron_expression IS DISTINCT FROM NEW.cron_expression
        OR OLD.timezone IS DISTINCT FROM NEW.timezone
        OR OLD.is_active IS DISTINCT FROM NEW.is_active
        OR OLD.next_run_at IS DISTINCT FROM NEW.next_run_at)
  EXECUTE FUNCTION engram.notify_schedules_changed();

-- One row per fire of a scheduled job (GET /api/schedules/{id}/runs):
-- queued when the scheduler enqueues its task, running while the task
-- runs, then succeeded, failed or skipped. A fire time happens once per job;
-- a manual "run now" has no fire time.
CREATE TABLE engram.scheduled_job_runs (
  id              bigserial   PRIMARY KEY,
  job_id          uuid        NOT NULL
                  REFERENCES engram.scheduled_jobs (id) ON DELETE CASCADE,
  task_id         bigint      REFERENCES engram.tasks (id) ON DELETE SET NULL,
  fire_time       timestamptz,
  status          text        NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded',
                                    'failed', 'skipped')),
  conversation_id uuid        REFERENCES engram.conversations (id)
                  ON DELETE SET NULL,
  error           text,
  started_at      timestamptz,
  finished_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX scheduled_job_runs_fire_idx
  ON engram.scheduled_job_runs (job_id, fire_time) WHERE fire_time IS NOT NULL;
-- A job's runs, newest first.
CREATE INDEX scheduled_job_runs_job_idx ON engram.scheduled_job_runs (job_id, id DESC);
CREATE INDEX scheduled_job_runs_task_idx ON engram.scheduled_job_runs (task_id)
  WHERE task_id IS NOT NULL;
CREATE INDEX scheduled_job_runs_conversation_idx
  ON engram.scheduled_job_runs (conversation_id) WHERE conversation_id IS NOT NULL;
