-- Erasure requests (GDPR Art. 17): one person asks, a second approves, and
-- the approval destroys what the patient's compartment sealed. reason and
-- legal_basis are codes. approved is 0 while the request waits; approver
-- is '' until then. Times are unix microseconds.
CREATE TABLE erasures (
    id          {{text}} PRIMARY KEY,
    patient     {{text}} NOT NULL,
    requester   {{text}} NOT NULL,
    reason      {{text}} NOT NULL,
    legal_basis {{text}} NOT NULL,
    requested   BIGINT NOT NULL,
    approved    BIGINT NOT NULL,
    approver    {{text}} NOT NULL,
    versions    BIGINT NOT NULL,
    index_rows  BIGINT NOT NULL
);
CREATE INDEX erasures_patient ON erasures (patient);

-- Legal holds keep a patient's data from erasure. reason is a code.
CREATE TABLE legal_holds (
    patient {{text}} PRIMARY KEY,
    reason  {{text}} NOT NULL,
    set_by  {{text}} NOT NULL,
    set_at  BIGINT NOT NULL
);

-- An erasure finds every version sealed in a compartment.
CREATE INDEX resources_compartment ON resources (compartment, is_current);
