-- People who sign in. Users are disabled, never deleted. revision makes
-- updates compare-and-swap. Byte columns hold '' (empty) for nil: an empty
-- mfa_secret means not enrolled. Times are unix microseconds.
CREATE TABLE users (
    id            {{text}} PRIMARY KEY,
    username      {{text}} NOT NULL,
    role          {{text}} NOT NULL,
    fhir_user     {{text}} NOT NULL,
    created       BIGINT NOT NULL,
    disabled      BOOLEAN NOT NULL,
    revision      BIGINT NOT NULL,
    password_hash {{blob}} NOT NULL,
    mfa_secret    {{blob}} NOT NULL,
    mfa_last_step BIGINT NOT NULL,
    recovery      {{blob}} NOT NULL,
    failures      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    not_before    BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);

-- Signed-in browser sessions, by a hash of the cookie. amr is the
-- authentication methods, space-separated.
CREATE TABLE sessions (
    id        {{text}} PRIMARY KEY,
    user_id   {{text}} NOT NULL,
    created   BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    auth_time BIGINT NOT NULL,
    mfa_time  BIGINT NOT NULL,
    amr       {{text}} NOT NULL,
    ended     BOOLEAN NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Authorizations people gave apps; revoking one stops its tokens.
CREATE TABLE grants (
    id         {{text}} PRIMARY KEY,
    user_id    {{text}} NOT NULL,
    client_id  {{text}} NOT NULL,
    session_id {{text}} NOT NULL,
    created    BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL
);
CREATE INDEX grants_session ON grants (session_id);
CREATE INDEX grants_user ON grants (user_id);

-- Refresh tokens by a hash of the token; used marks a rotated token.
CREATE TABLE refresh_tokens (
    id       {{text}} PRIMARY KEY,
    grant_id {{text}} NOT NULL,
    data     {{blob}} NOT NULL,
    created  BIGINT NOT NULL,
    expires  BIGINT NOT NULL,
    used     BOOLEAN NOT NULL
);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires);

-- OAuth2 authorization requests in flight. code is a hash of the issued
-- code, '' until issued; an issued code names one request.
CREATE TABLE auth_requests (
    id      {{text}} PRIMARY KEY,
    code    {{text}} NOT NULL,
    data    {{blob}} NOT NULL,
    expires BIGINT NOT NULL
);
CREATE UNIQUE INDEX auth_requests_code ON auth_requests (code) WHERE code <> '';
CREATE INDEX auth_requests_expires ON auth_requests (expires);

-- Redirect URIs of apps that sign people in, space-separated ('' for a
-- service client). A public client's secret_hash is empty.
ALTER TABLE clients ADD COLUMN redirect_uris {{text}} NOT NULL DEFAULT '';
