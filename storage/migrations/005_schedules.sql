-- Durable state of the static schedule entries (DESIGN §5: the beat
-- schedule of the configuration), so a slot fires at most once across
-- nodes and restarts, and a slot missed while no scheduler ran fires once
-- (coalesced) when one starts. Only the scheduler's leader writes here, each
-- fire in the transaction that enqueues its task. Dynamic schedules keep
-- the same state in scheduled_jobs.next_run_at and scheduled_job_runs.
CREATE TABLE engram.schedule_state (
  -- The entry's name in the configuration, e.g. 'cleanup.expire_tokens'.
  entry           text        PRIMARY KEY CHECK (entry <> ''),
  -- The expression and zone next_fire_at was computed with: an entry whose
  -- configuration changed starts afresh.
  cron_expression text        NOT NULL,
  timezone        text        NOT NULL,
  last_fire_at    timestamptz,
  -- The first slot not fired yet; NULL while the entry is disabled (or can
  -- never fire again).
  next_fire_at    timestamptz,
  last_task_id    bigint      REFERENCES engram.tasks (id) ON DELETE SET NULL,
  fire_count      bigint      NOT NULL DEFAULT 0 CHECK (fire_count >= 0),
  -- Fires that coalesced more than one due slot.
  misfire_count   bigint      NOT NULL DEFAULT 0 CHECK (misfire_count >= 0),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
