-- The sensitivity class of each resource version: a small bit set that the
-- records service computes from the version's security labels when it writes
-- it (0: normal data; see package policy's Class), so that a search can leave
-- out what the caller may not see in the query itself, and its totals and
-- pages never count it. The class, not the labels, is kept here. Versions
-- written before this migration are sealed: their class cannot be computed
-- here and is 0 until they are written again.
ALTER TABLE resources ADD COLUMN sensitivity INTEGER NOT NULL DEFAULT 0;
