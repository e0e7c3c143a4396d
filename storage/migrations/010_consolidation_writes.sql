-- Consolidation writes many rows per phase (DESIGN §6): on a 100,000-memory
-- project, about 110,000 audit rows and as many memory updates per job.
-- Two things made those writes cost several seconds, both measured with
-- bench/consolidation:
--
-- 1. Foreign keys check each written row on its own (a trigger and a
--    query per row and key). memory_audit had three, so an audit row cost
--    three lookups; about 1 s per 60,000 audit rows. A supersede paid one
--    more for superseded_by (0.3 s per 33,000). The audit rows and the
--    links are written by the daemon only, in the transaction that changes
--    the memories they name, so the checks never found anything. The keys'
--    ON DELETE actions remain, as statement-level triggers that act once
--    per DELETE statement on all the rows it deleted.
--
-- 2. An UPDATE that changes no indexed column, and finds room on the row's
--    page, is a heap-only (HOT) update: no index is touched. Every other
--    update adds an entry to each of the table's indexes, which is most of
--    the cost (about 35 µs per row with the memories table's indexes). The
--    hierarchy phase links members to their principle (parent_id) and decay
--    demotes warm memories to cold (tier): both can be HOT once parent_id
--    is not indexed and pages keep room for a new row version. parent_id's
--    index only served its foreign key's ON DELETE SET NULL; a statement
--    trigger does that instead. A memory row is about 2 KB (a 384-float
--    embedding is 1.5 KB), so pages are filled to 60%: two or three rows
--    and room for as many new versions.

ALTER TABLE engram.memory_audit
  DROP CONSTRAINT memory_audit_memory_id_fkey,
  DROP CONSTRAINT memory_audit_project_id_fkey,
  DROP CONSTRAINT memory_audit_job_id_fkey;

ALTER TABLE engram.memories
  DROP CONSTRAINT memories_parent_id_fkey,
  DROP CONSTRAINT memories_superseded_by_fkey;
DROP INDEX engram.memories_parent_idx;

ALTER TABLE engram.memories SET (fillfactor = 60);

-- A deleted memory takes its audit rows with it and unlinks the memories
-- it superseded or leads (ON DELETE CASCADE and SET NULL, as the keys
-- did; superseded_by keeps its index for this).
CREATE FUNCTION engram.memories_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM engram.memory_audit a USING gone g WHERE a.memory_id = g.id;
  UPDATE engram.memories m SET superseded_by = NULL
    FROM gone g WHERE m.superseded_by = g.id;
  UPDATE engram.memories m SET parent_id = NULL
    FROM gone g WHERE m.parent_id = g.id;
  RETURN NULL;
END
$$;

CREATE TRIGGER memories_deleted AFTER DELETE ON engram.memories
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION engram.memories_deleted();

-- A deleted project takes its audit rows with it (its memories go by
-- their own key).
CREATE FUNCTION engram.projects_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM engram.memory_audit a USING gone g WHERE a.project_id = g.id;
  RETURN NULL;
END
$$;

CREATE TRIGGER projects_deleted AFTER DELETE ON engram.projects
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION engram.projects_deleted();

-- A deleted job leaves its audit rows without a job (ON DELETE SET NULL).
CREATE FUNCTION engram.consolidation_jobs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE engram.memory_audit a SET job_id = NULL
    FROM gone g WHERE a.job_id = g.id;
  RETURN NULL;
END
$$;

CREATE TRIGGER consolidation_jobs_deleted AFTER DELETE
  ON engram.consolidation_jobs
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION engram.consolidation_jobs_deleted();
