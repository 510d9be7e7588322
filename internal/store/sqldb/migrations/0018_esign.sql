-- Electronic signatures (21 CFR Part 11). A person's printed name, shown
-- with each signature they make, and their right to sign, which an
-- administrator grants and withdraws (users are never deleted, so a
-- signature's user id names one person for ever).
ALTER TABLE users ADD COLUMN display_name {{text}} NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN signing BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per signature: the signed version, the Provenance holding it,
-- the signer's id and the signing's ledger entry. Ids only, no PHI.
CREATE TABLE signatures (
    provenance   {{text}} PRIMARY KEY,
    rtype        {{text}} NOT NULL,
    rid          {{text}} NOT NULL,
    version      BIGINT NOT NULL,
    signer       {{text}} NOT NULL,
    ledger_index BIGINT NOT NULL,
    signed       BIGINT NOT NULL
);
CREATE INDEX signatures_resource ON signatures (rtype, rid, version);

-- Signing ceremonies in progress: a hash of each single-use nonce, bound
-- to the user, the exact version and the meaning, until it expires.
CREATE TABLE sign_challenges (
    nonce   {{text}} PRIMARY KEY,
    user_id {{text}} NOT NULL,
    target  {{text}} NOT NULL,
    meaning {{text}} NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX sign_challenges_expires ON sign_challenges (expires);
