-- Ward 0022 indexes the Reference.identifier of every reference search
-- parameter (blind, under "code:identifier", for ref:identifier): resources
-- stored before it have no such rows. When resources exist, the index
-- rebuild of migration 0012 is set pending again, so that the records
-- service rewrites the index rows of every current version under the
-- current rule (store.Maintenance) and sets it back to 0.
UPDATE index_rebuild SET pending = 1 WHERE EXISTS (SELECT 1 FROM resources);
