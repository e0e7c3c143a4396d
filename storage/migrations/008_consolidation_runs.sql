-- How consolidation jobs run (DESIGN §6): each job is run by a durable task
-- (consolidation.run_project) created in the same transaction, and the
-- patterns of a run keep their order, so a job resumed after a crash hands
-- the hierarchy phase the patterns in the order the patterns phase found
-- them.

ALTER TABLE engram.consolidation_jobs
  ADD COLUMN task_id bigint REFERENCES engram.tasks (id) ON DELETE SET NULL;

CREATE INDEX consolidation_jobs_task_idx ON engram.consolidation_jobs (task_id)
  WHERE task_id IS NOT NULL;

ALTER TABLE engram.patterns
  ADD COLUMN position integer NOT NULL DEFAULT 0 CHECK (position >= 0);
