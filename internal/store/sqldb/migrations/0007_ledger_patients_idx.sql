-- The offline verifier reads the patient index of ledger entries by entry
-- index, batch after batch, to compare it with the entries themselves.
CREATE INDEX ledger_patients_idx ON ledger_patients (idx);
