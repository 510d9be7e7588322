-- The live resources (current, not deleted) of each type, with the columns
-- a search filters on besides the body: compartment and sensitivity. A
-- search's count, and the choice and order of a page's rows, then read
-- this index alone instead of one table row (holding the sealed body) per
-- match; only the page's own rows are read from the table.
CREATE INDEX resources_live ON resources (rtype, rid, compartment, sensitivity) WHERE is_current AND NOT deleted;
