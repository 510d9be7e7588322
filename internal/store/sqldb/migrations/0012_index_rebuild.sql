-- Whether the search index rows of stored resources must be rebuilt under
-- the current indexing rule (Ward 0012: every value of a resource that can
-- belong to a patient, or that describes a person, is blind-indexed unless
-- allowlisted; earlier releases stored free text in the clear). One row;
-- pending is 1 when resources existed at this migration, and the records
-- service sets it to 0 once it has rebuilt the index of every current
-- version (store.Maintenance).
CREATE TABLE index_rebuild (
    id      INTEGER PRIMARY KEY,
    pending INTEGER NOT NULL
);
INSERT INTO index_rebuild (id, pending)
    SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM resources) THEN 1 ELSE 0 END;
