-- The daemons of the cluster: every node upserts its row at start and
-- refreshes heartbeat_at every node.heartbeat_interval; a clean stop sets
-- stopped_at. A row whose heartbeat is old belongs to a dead node.
CREATE TABLE engram.nodes (
  id           uuid        PRIMARY KEY,
  host         text        NOT NULL,
  pid          integer     NOT NULL CHECK (pid > 0),
  version      text        NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at   timestamptz
);

CREATE INDEX nodes_heartbeat_at_idx ON engram.nodes (heartbeat_at DESC);
