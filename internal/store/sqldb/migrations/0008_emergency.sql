-- Break-the-glass grants: a person's time-limited access to one patient
-- outside their care relationships, kept for review. reason and note are
-- sealed by the caller ('' for no note). reviewed is 0 until a reviewer
-- closes the grant, and reviewer and outcome are '' until then. Times are
-- unix microseconds.
CREATE TABLE emergency_grants (
    id       {{text}} PRIMARY KEY,
    user_id  {{text}} NOT NULL,
    patient  {{text}} NOT NULL,
    purpose  {{text}} NOT NULL,
    reason   {{blob}} NOT NULL,
    created  BIGINT NOT NULL,
    expires  BIGINT NOT NULL,
    reviewed BIGINT NOT NULL,
    reviewer {{text}} NOT NULL,
    outcome  {{text}} NOT NULL,
    note     {{blob}} NOT NULL
);
-- A person's active grants are looked up on each of their requests.
CREATE INDEX emergency_grants_user ON emergency_grants (user_id, expires);
-- The review queue, oldest first: all grants, and those still open.
CREATE INDEX emergency_grants_created ON emergency_grants (created, id);
CREATE INDEX emergency_grants_open ON emergency_grants (created, id) WHERE reviewed = 0;
