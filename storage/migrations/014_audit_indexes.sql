-- memory_audit takes ~160,000 rows per 100,000-memory consolidation job, in
-- the phase commits. Its project and job indexes served deletions only, and
-- each was an index entry per row (together ~0.2 s of a 100k job's commits,
-- measured with bench/consolidation):
-- * memory_audit_project_idx: the second DELETE of projects_deleted, which
--   finds nothing: a project's memories go first and take their audit rows
--   with them (memories_deleted, by memory_audit_memory_idx), and every
--   audit row names a memory of its own project.
-- * memory_audit_job_idx: consolidation_jobs_deleted's SET NULL. The daemon
--   deletes no job (a job row outlives even its project, as a record), so
--   only an operator's DELETE fires it; its audit rows are now found
--   through the job's project's memories (the project index of memories,
--   then memory_audit_memory_idx), a look at that project's memories per
--   deleting statement instead of an index entry per audit row.
DROP INDEX engram.memory_audit_project_idx;
DROP INDEX engram.memory_audit_job_idx;

CREATE OR REPLACE FUNCTION engram.projects_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM engram.memories m USING gone g WHERE m.project_id = g.id;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION engram.consolidation_jobs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE engram.memory_audit a SET job_id = NULL
    FROM gone g JOIN engram.memories m ON m.project_id = g.project_id
    WHERE a.memory_id = m.id AND a.job_id = g.id;
  RETURN NULL;
END
$$;
