-- Whether resource versions stored before Ward kept their sensitivity class
-- (migration 0009 gave them class 0 without reading their labels) may still
-- need it computed. One row; pending is 1 when resources existed at this
-- migration, and the records service sets it to 0 once it has classified
-- every current version (store.Maintenance).
CREATE TABLE sensitivity_reindex (
    id      INTEGER PRIMARY KEY,
    pending INTEGER NOT NULL
);
INSERT INTO sensitivity_reindex (id, pending)
    SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM resources) THEN 1 ELSE 0 END;
