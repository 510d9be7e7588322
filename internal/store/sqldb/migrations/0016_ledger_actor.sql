-- The actor index of ledger entries, for breach scoping ("everything user
-- or client X touched between T1 and T2"): each entry's actor and client
-- copied out of its encoding, and one index on each with the time, as the
-- patient column has. Entries appended before this migration get theirs
-- from their encoding here, in the migration's transaction ({{json c k}}
-- reads the string value k of the JSON text in column c). Like the
-- patient column, these columns are not covered by the Merkle tree: the
-- offline verifier checks them against the entries (audit.VerifyIndex).
ALTER TABLE ledger_entries ADD COLUMN actor {{text}} NOT NULL DEFAULT '';
ALTER TABLE ledger_entries ADD COLUMN client {{text}} NOT NULL DEFAULT '';
UPDATE ledger_entries SET actor = COALESCE({{json entry actor}}, ''), client = COALESCE({{json entry client}}, '');
CREATE INDEX ledger_entries_actor ON ledger_entries (actor, at, idx);
CREATE INDEX ledger_entries_client ON ledger_entries (client, at, idx);
