-- The audit ledger. ledger_head holds the one row every appender locks: it
-- sequences appends from every process sharing the database.
CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY,
    size BIGINT NOT NULL
);
INSERT INTO ledger_head (id, size) VALUES (1, 0);

-- Entries in canonical encoding, with patient and time copied out for the
-- accounting of disclosures and breach scoping.
CREATE TABLE ledger_entries (
    idx     BIGINT PRIMARY KEY,
    entry   {{blob}} NOT NULL,
    patient {{text}} NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX ledger_entries_patient ON ledger_entries (patient, at, idx);

-- Stored Merkle tree hashes (RFC 6962, tlog storage indexes).
CREATE TABLE ledger_hashes (
    idx  BIGINT PRIMARY KEY,
    hash {{blob}} NOT NULL
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), one per tree size.
CREATE TABLE ledger_checkpoints (
    size    BIGINT PRIMARY KEY,
    note    {{blob}} NOT NULL,
    created BIGINT NOT NULL
);
