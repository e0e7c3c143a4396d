-- The durable task queue (DESIGN §4). A task is claimed with
-- FOR UPDATE SKIP LOCKED, runs under a lease that its worker renews, and is
-- finished only by the holder of the current lease_token (fencing: the token
-- changes at every claim, so a worker whose lease was reclaimed cannot
-- complete late). Every failed attempt's error is kept in `errors`.
CREATE TABLE engram.tasks (
  id                 bigserial   PRIMARY KEY,
  name               text        NOT NULL CHECK (name <> ''),
  queue              text        NOT NULL DEFAULT 'default' CHECK (queue <> ''),
  args               jsonb       NOT NULL DEFAULT '{}'::jsonb,
  status             text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded',
                                       'failed', 'dead', 'cancelled')),
  priority           integer     NOT NULL DEFAULT 0,
  attempts           integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_retries        integer     NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
  run_at             timestamptz NOT NULL DEFAULT now(),
  lease_until        timestamptz,
  locked_by          text,
  lease_token        uuid,
  unique_key         text,
  soft_time_limit_ms bigint      NOT NULL DEFAULT 0 CHECK (soft_time_limit_ms >= 0),
  time_limit_ms      bigint      NOT NULL DEFAULT 0 CHECK (time_limit_ms >= 0),
  cancel_requested   boolean     NOT NULL DEFAULT false,
  result             jsonb,
  last_error         text,
  errors             jsonb       NOT NULL DEFAULT '[]'::jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  finished_at        timestamptz,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'running') = (lease_token IS NOT NULL))
);

-- One queued-or-running task per unique key.
CREATE UNIQUE INDEX tasks_unique_key_idx ON engram.tasks (unique_key)
  WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');

-- The claim query's order, over queued tasks only.
CREATE INDEX tasks_claim_idx ON engram.tasks (queue, priority DESC, run_at, id)
  WHERE status = 'queued';

-- Reclaiming expired leases.
CREATE INDEX tasks_lease_idx ON engram.tasks (lease_until)
  WHERE status = 'running';

-- Listing by status and name, newest first.
CREATE INDEX tasks_status_created_idx ON engram.tasks (status, created_at DESC, id DESC);
