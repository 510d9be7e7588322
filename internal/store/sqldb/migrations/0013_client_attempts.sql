-- Failed client authentications at the token endpoint, for throttling
-- secret guessing across every process sharing the database: one row per
-- client id tried (a hash of it, whether or not the client exists), with
-- the failures in a row and the time (unix microseconds) before which no
-- further attempt is checked. A success deletes the row; rows long
-- unlocked are deleted too.
CREATE TABLE client_attempts (
    id           {{text}} PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
CREATE INDEX client_attempts_locked_until ON client_attempts (locked_until);
