-- Resources: every version of every resource. Bodies are sealed ciphertext.
-- Exactly one row per (rtype, rid) is current: the newest version.
CREATE TABLE resources (
    rtype        {{text}} NOT NULL,
    rid          {{text}} NOT NULL,
    version      BIGINT NOT NULL,
    compartment  {{text}} NOT NULL,
    deleted      BOOLEAN NOT NULL,
    last_updated BIGINT NOT NULL,
    body         {{blob}} NOT NULL,
    is_current   BOOLEAN NOT NULL,
    PRIMARY KEY (rtype, rid, version)
);
CREATE UNIQUE INDEX resources_current ON resources (rtype, rid) WHERE is_current;
CREATE INDEX resources_type_updated ON resources (rtype, last_updated);
CREATE INDEX resources_updated ON resources (last_updated);

-- Search index rows of current versions only.
CREATE TABLE search_index (
    rtype  {{text}} NOT NULL,
    rid    {{text}} NOT NULL,
    param  {{text}} NOT NULL,
    kind   INTEGER NOT NULL,
    system {{text}} NOT NULL,
    value  {{text}} NOT NULL,
    lo     DOUBLE PRECISION NOT NULL,
    hi     DOUBLE PRECISION NOT NULL
);
-- One partial index per kind, so each row enters one lookup index (two for
-- quantities): values for strings, tokens, references, URIs and blind
-- indexes, ranges for dates, numbers and quantities. Queries name the kind
-- as a literal so the planner can pick the partial index.
CREATE INDEX search_index_string ON search_index (rtype, param, value) WHERE kind = 1;
CREATE INDEX search_index_token ON search_index (rtype, param, value, system) WHERE kind = 2;
CREATE INDEX search_index_date ON search_index (rtype, param, lo, hi) WHERE kind = 3;
CREATE INDEX search_index_number ON search_index (rtype, param, lo, hi) WHERE kind = 4;
CREATE INDEX search_index_quantity ON search_index (rtype, param, value, lo, hi) WHERE kind = 5;
CREATE INDEX search_index_reference ON search_index (rtype, param, value) WHERE kind = 6;
CREATE INDEX search_index_uri ON search_index (rtype, param, value) WHERE kind = 7;
CREATE INDEX search_index_blind ON search_index (rtype, param, value) WHERE kind = 8;
CREATE INDEX search_index_resource ON search_index (rtype, rid);

-- Wrapped data keys, one per patient compartment ('' is the shared key).
CREATE TABLE data_keys (
    compartment {{text}} PRIMARY KEY,
    kek_id      {{text}} NOT NULL,
    wrapped     {{blob}} NOT NULL
);

-- OAuth2 clients; secrets are stored hashed.
CREATE TABLE clients (
    id          {{text}} PRIMARY KEY,
    name        {{text}} NOT NULL,
    secret_hash {{blob}} NOT NULL,
    scopes      {{text}} NOT NULL,
    created     BIGINT NOT NULL,
    revoked     BOOLEAN NOT NULL
);
