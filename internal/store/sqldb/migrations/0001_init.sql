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
CREATE INDEX search_index_value ON search_index (rtype, param, value);
CREATE INDEX search_index_range ON search_index (rtype, param, lo, hi);
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
