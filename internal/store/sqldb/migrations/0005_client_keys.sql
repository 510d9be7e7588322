-- How a service client proves who it is, besides a secret: a public key
-- set (JWKS JSON) for signed assertions (private_key_jwt), or the SHA-256
-- thumbprints of its TLS certificates, space-separated (mutual TLS). ''
-- when the client has none. A client has a secret or keys, not both.
ALTER TABLE clients ADD COLUMN jwks {{text}} NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN cert_thumbprints {{text}} NOT NULL DEFAULT '';

-- Ids (jti) of the client assertions that were accepted, kept until the
-- assertion could no longer be accepted (expires, unix microseconds), so that
-- none is accepted twice by any replica.
CREATE TABLE client_assertions (
    client_id {{text}} NOT NULL,
    jti       {{text}} NOT NULL,
    expires   BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires);
