-- How far each ledger spool has been folded into the ledger. A Ward process
-- on the embedded database first makes a read's entry durable in a spool
-- file of its own, then folds spooled entries into the ledger in batches;
-- the transaction that appends a batch also records here the sequence
-- number of the last spooled entry it holds, so that replaying a spool
-- after a crash folds each entry exactly once. A row lives as long as its
-- spool file.
CREATE TABLE ledger_spools (
    spool  {{text}} PRIMARY KEY,
    folded BIGINT NOT NULL
);
