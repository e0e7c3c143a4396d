-- Consolidation (DESIGN §6): one row per job, the audit trail of every
-- change a job (or an operator's restore) makes to a memory, the patterns
-- the patterns phase finds, and the playbook entries principles become.
-- Plus the indexes on memories that listing and the import's dimension
-- check need. Every timestamp the daemon writes comes from its clock
-- (engram.from_us); the column defaults only serve other writers.

-- A consolidation of one project. `project_id` has no foreign key on
-- purpose: a job for a project that does not exist (or was deleted while
-- the job waited) is recorded, with the reason in error_message, rather
-- than refused. queued → running → completed | failed | cancelled.
CREATE TABLE engram.consolidation_jobs (
  id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id         uuid        NOT NULL,
  status             text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'completed',
                                       'failed', 'cancelled')),
  trigger_type       text        NOT NULL
                     CHECK (trigger_type IN ('scheduled', 'manual')),
  -- Who asked: the schedule entry's name, an operator, ... (free text).
  triggered_by       text,
  -- The job's selection, e.g. {"phases": ["patterns", "merge"]}.
  options            jsonb       NOT NULL DEFAULT '{}'::jsonb
                     CHECK (jsonb_typeof(options) = 'object'),
  -- Phases that committed, in the order they ran.
  phases_completed   text[]      NOT NULL DEFAULT '{}',
  -- Per-phase metrics, e.g. {"merge": {"groups": 3, "superseded": 7}}.
  metrics            jsonb       NOT NULL DEFAULT '{}'::jsonb
                     CHECK (jsonb_typeof(metrics) = 'object'),
  memories_processed integer     NOT NULL DEFAULT 0
                     CHECK (memories_processed >= 0),
  memories_merged    integer     NOT NULL DEFAULT 0
                     CHECK (memories_merged >= 0),
  memories_archived  integer     NOT NULL DEFAULT 0
                     CHECK (memories_archived >= 0),
  -- Why the job failed or did nothing (the phase and the error).
  error_message      text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  completed_at       timestamptz,
  duration_ms        bigint      CHECK (duration_ms >= 0)
);

-- A project's jobs, newest first, with a (created_at, id) cursor.
CREATE INDEX consolidation_jobs_project_idx
  ON engram.consolidation_jobs (project_id, created_at DESC, id DESC);
-- Jobs by status (the queued and running ones above all), newest first.
CREATE INDEX consolidation_jobs_status_idx
  ON engram.consolidation_jobs (status, created_at DESC, id DESC);

-- Every change made to a memory by consolidation or an operator, written in
-- the transaction of the change itself, so each can be explained: `action`
-- names it (e.g. 'superseded', 'merged', 'archived', 'demoted',
-- 'restored'), `detail` holds what it needs to be understood or undone
-- (e.g. {"previous_status": "active", "previous_tier": "warm"}). A job's
-- audit rows outlive the job row (job_id becomes NULL).
CREATE TABLE engram.memory_audit (
  id         bigserial   PRIMARY KEY,
  memory_id  uuid        NOT NULL
             REFERENCES engram.memories (id) ON DELETE CASCADE,
  project_id uuid        NOT NULL
             REFERENCES engram.projects (id) ON DELETE CASCADE,
  job_id     uuid        REFERENCES engram.consolidation_jobs (id)
             ON DELETE SET NULL,
  action     text        NOT NULL CHECK (action <> ''),
  detail     jsonb       NOT NULL DEFAULT '{}'::jsonb
             CHECK (jsonb_typeof(detail) = 'object'),
  at         timestamptz NOT NULL DEFAULT now()
);

-- A memory's history in order (GET /api/memories/{id}, restore).
CREATE INDEX memory_audit_memory_idx ON engram.memory_audit (memory_id, id);
-- What a job did; also keeps ON DELETE SET NULL and the project cascade
-- cheap.
CREATE INDEX memory_audit_job_idx ON engram.memory_audit (job_id)
  WHERE job_id IS NOT NULL;
CREATE INDEX memory_audit_project_idx ON engram.memory_audit (project_id);

-- Clusters of similar memories found by the patterns phase. A pattern is
-- known by its seed (the first member in the phase's deterministic order),
-- so a re-run updates it instead of adding a twin. `seed_memory_id` and
-- `member_ids` carry no foreign keys (arrays cannot); members that are gone
-- are dropped at the next run. `centroid` is float32 little-endian, in the
-- space of `embedding_model`.
CREATE TABLE engram.patterns (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id      uuid        NOT NULL
                  REFERENCES engram.projects (id) ON DELETE CASCADE,
  seed_memory_id  uuid        NOT NULL,
  label           text        NOT NULL,
  -- Number of members when last computed.
  support         integer     NOT NULL CHECK (support >= 1),
  member_ids      uuid[]      NOT NULL DEFAULT '{}',
  centroid        bytea       CHECK (length(centroid) % 4 = 0),
  embedding_model text,
  -- The job that last wrote it.
  job_id          uuid        REFERENCES engram.consolidation_jobs (id)
                  ON DELETE SET NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, seed_memory_id),
  CHECK (centroid IS NULL OR embedding_model IS NOT NULL)
);

CREATE INDEX patterns_job_idx ON engram.patterns (job_id)
  WHERE job_id IS NOT NULL;

-- What agents should do, learnt from principles (the playbook phase):
-- each principle creates an entry or updates the one it matches. `agent_id`
-- has no foreign key, like memories.agent_id; NULL = project-wide. An entry
-- outlives its principle (principle_id becomes NULL). `helpful` and
-- `harmful` count the feedback agents gave on it.
CREATE TABLE engram.playbook_entries (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id      uuid        NOT NULL
                  REFERENCES engram.projects (id) ON DELETE CASCADE,
  agent_id        uuid,
  principle_id    uuid        REFERENCES engram.memories (id) ON DELETE SET NULL,
  title           text        NOT NULL,
  content         text        NOT NULL,
  embedding       bytea       CHECK (length(embedding) % 4 = 0),
  embedding_model text,
  helpful         integer     NOT NULL DEFAULT 0 CHECK (helpful >= 0),
  harmful         integer     NOT NULL DEFAULT 0 CHECK (harmful >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);

CREATE INDEX playbook_entries_project_idx ON engram.playbook_entries (project_id);
CREATE INDEX playbook_entries_principle_idx ON engram.playbook_entries (principle_id)
  WHERE principle_id IS NOT NULL;

-- Listing a project's memories, newest first, with a (created_at, id)
-- cursor (GET /api/projects/{id}/memories).
CREATE INDEX memories_project_created_idx
  ON engram.memories (project_id, created_at DESC, id DESC);

-- The embedding models of a project: an import checks that its vectors
-- have the dimension of the model's existing ones (one row per model).
CREATE INDEX memories_project_model_idx
  ON engram.memories (project_id, embedding_model)
  WHERE embedding IS NOT NULL;
