-- Detection and response: the detector's alerts, one per dedupe key, the
-- position in the ledger the detector has read up to, incidents (their
-- body is JSON owned by package incident: ids, codes and times, never
-- PHI), and a client's suspension, which containment sets and lifts.
-- Times are unix microseconds.
CREATE TABLE alerts (
    id        {{text}} PRIMARY KEY,
    akey      {{text}} NOT NULL UNIQUE,
    rule      {{text}} NOT NULL,
    severity  {{text}} NOT NULL,
    actor     {{text}} NOT NULL,
    client    {{text}} NOT NULL,
    source    {{text}} NOT NULL,
    summary   {{text}} NOT NULL,
    evidence  {{text}} NOT NULL,
    count     BIGINT NOT NULL,
    first_at  BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,
    raised    BIGINT NOT NULL,
    status    {{text}} NOT NULL,
    status_by {{text}} NOT NULL,
    status_at BIGINT NOT NULL,
    incident  {{text}} NOT NULL
);
CREATE INDEX alerts_raised ON alerts (raised, id);
CREATE INDEX alerts_incident ON alerts (incident);

CREATE TABLE detector_cursor (
    id       INTEGER PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO detector_cursor (id, position) VALUES (1, 0);

CREATE TABLE incidents (
    id       {{text}} PRIMARY KEY,
    status   {{text}} NOT NULL,
    opened   BIGINT NOT NULL,
    updated  BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    body     {{blob}} NOT NULL
);
CREATE INDEX incidents_opened ON incidents (opened, id);

ALTER TABLE clients ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE;
