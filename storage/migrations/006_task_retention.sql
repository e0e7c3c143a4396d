-- Finished tasks by the time they finished, for the retention purge
-- (cleanup.purge_finished_tasks).
CREATE INDEX tasks_finished_idx ON engram.tasks (finished_at)
  WHERE status IN ('succeeded', 'cancelled', 'dead');
