-- Memories name their project without a foreign key. The key checked each
-- inserted row on its own (a trigger and a locking lookup of the project
-- per row): measured with bench/consolidation, ~0.45 of PostgreSQL's ~3 CPU
-- seconds for 100,000 imported memories. Every transaction of the daemon
-- that inserts memories locks its project's row FOR KEY SHARE once instead
-- (storage::lock_project: the import, extraction, consolidation phase
-- commits), which is what the key's check did per row: a project cannot be
-- deleted under an insert, and an insert cannot name a deleted project. A
-- deleted project takes its memories with it (the key's ON DELETE
-- CASCADE) through its statement trigger; their audit rows and links go
-- with them through memories_deleted.

ALTER TABLE engram.memories DROP CONSTRAINT memories_project_id_fkey;

CREATE OR REPLACE FUNCTION engram.projects_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM engram.memories m USING gone g WHERE m.project_id = g.id;
  DELETE FROM engram.memory_audit a USING gone g WHERE a.project_id = g.id;
  RETURN NULL;
END
$$;
