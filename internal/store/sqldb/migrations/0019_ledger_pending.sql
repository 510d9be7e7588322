-- The pending table: ledger entries made durable before they are in the
-- ledger. A Ward process on a shared database (PostgreSQL) writes each
-- group of read entries here in one statement that commits on its own, so
-- processes and groups do not queue for the ledger's lock; a fold, in any
-- process, moves them into the ledger in batches, deleting them in the
-- transaction that appends them. Each row carries its writer's MAC (tag),
-- made with a key the database does not hold. Times are unix
-- microseconds; patients is a JSON array of the entry's further patients.
CREATE TABLE ledger_pending (
    writer   {{text}} NOT NULL,
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    patient  {{text}} NOT NULL,
    patients {{text}} NOT NULL,
    actor    {{text}} NOT NULL,
    client   {{text}} NOT NULL,
    entry    {{blob}} NOT NULL,
    tag      {{blob}} NOT NULL,
    PRIMARY KEY (writer, seq)
);
CREATE INDEX ledger_pending_at ON ledger_pending (at, writer, seq);
