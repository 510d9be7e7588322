-- The patient index of ledger entries that name several patients (a search,
-- history or batch answer holding more than one patient's data): one row
-- per entry and patient it names besides ledger_entries.patient, so that
-- the accounting of disclosures and breach scoping find the entry under
-- each of them. Written in the transaction that appends the entry; like the
-- ledger, never updated or deleted. Entries appended before this table
-- existed name at most one patient, in ledger_entries.patient: nothing to
-- copy.
CREATE TABLE ledger_patients (
    patient {{text}} NOT NULL,
    at      BIGINT NOT NULL,
    idx     BIGINT NOT NULL,
    PRIMARY KEY (patient, at, idx)
);
