-- Workflow chains (DESIGN §7): runs, the state of every step attempt, the
-- artifacts the attempts wrote, and the credential checks made before them.
-- A step's work is a durable task (workflow.step); these tables are what an
-- operator reads and what a resumed run continues from.

CREATE TABLE engram.workflow_runs (
  id uuid PRIMARY KEY,
  -- Insertion order: the list's cursor (newest first, stable under inserts).
  seq bigserial NOT NULL UNIQUE,
  workflow text NOT NULL CHECK (workflow <> ''),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN
    ('pending', 'running', 'succeeded', 'failed', 'retrying', 'cancelled')),
  idempotency_key text CHECK (idempotency_key <> ''),
  branch_name text CHECK (branch_name <> ''),
  input jsonb NOT NULL DEFAULT '{}',
  -- The step names at creation, in order.
  steps text[] NOT NULL CHECK (cardinality(steps) > 0),
  current_step_index integer NOT NULL DEFAULT 0 CHECK (current_step_index >= 0),
  current_step text NOT NULL,
  -- 1 + the number of operator retries.
  attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  error text,
  error_kind text,
  missing_credentials text[] NOT NULL DEFAULT '{}',
  note text,
  output jsonb,
  created_at timestamptz NOT NULL,
  started_at timestamptz,
  updated_at timestamptz NOT NULL,
  finished_at timestamptz
);

-- One run per idempotency key, and one live run per branch name.
CREATE UNIQUE INDEX workflow_runs_idempotency_idx
  ON engram.workflow_runs (workflow, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX workflow_runs_branch_idx
  ON engram.workflow_runs (workflow, branch_name)
  WHERE branch_name IS NOT NULL AND status <> 'cancelled';
-- The list's filters, newest first.
CREATE INDEX workflow_runs_workflow_idx
  ON engram.workflow_runs (workflow, seq DESC);
CREATE INDEX workflow_runs_status_idx
  ON engram.workflow_runs (status, seq DESC);

CREATE TABLE engram.workflow_task_states (
  id bigserial PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES engram.workflow_runs (id) ON DELETE CASCADE,
  step text NOT NULL,
  step_index integer NOT NULL CHECK (step_index >= 0),
  -- Every execution of the step in the run: 1, 2, ... (the artifact folder).
  attempt integer NOT NULL CHECK (attempt >= 1),
  run_attempt integer NOT NULL CHECK (run_attempt >= 1),
  try_number integer NOT NULL CHECK (try_number >= 1),
  status text NOT NULL CHECK (status IN
    ('running', 'succeeded', 'failed', 'interrupted', 'cancelled')),
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  duration_ms bigint,
  exit_code integer,
  term_signal integer,
  payload jsonb,
  error text,
  error_kind text,
  artifact_ids bigint[] NOT NULL DEFAULT '{}',
  task_id bigint REFERENCES engram.tasks (id) ON DELETE SET NULL,
  UNIQUE (run_id, step_index, attempt)
);

CREATE INDEX workflow_task_states_run_idx
  ON engram.workflow_task_states (run_id, id);
-- At most one running attempt per step.
CREATE UNIQUE INDEX workflow_task_states_running_idx
  ON engram.workflow_task_states (run_id, step_index)
  WHERE status = 'running';

CREATE TABLE engram.workflow_artifacts (
  id bigserial PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES engram.workflow_runs (id) ON DELETE CASCADE,
  step text NOT NULL,
  step_state_id bigint NOT NULL
    REFERENCES engram.workflow_task_states (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name <> ''),
  relative_path text NOT NULL CHECK (relative_path <> ''
    AND left(relative_path, 1) <> '/'
    AND relative_path !~ '(^|/)\.\.(/|$)'),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  content_type text NOT NULL,
  created_at timestamptz NOT NULL,
  UNIQUE (step_state_id, name)
);

CREATE INDEX workflow_artifacts_run_idx
  ON engram.workflow_artifacts (run_id, id);

CREATE TABLE engram.workflow_credential_audits (
  id bigserial PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES engram.workflow_runs (id) ON DELETE CASCADE,
  step text NOT NULL,
  attempt integer NOT NULL,
  credential text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('env', 'file')),
  present boolean NOT NULL,
  valid boolean NOT NULL,
  checked_at timestamptz NOT NULL,
  detail text NOT NULL
);

CREATE INDEX workflow_credential_audits_run_idx
  ON engram.workflow_credential_audits (run_id, id);
