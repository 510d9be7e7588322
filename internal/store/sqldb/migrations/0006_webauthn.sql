-- A person's WebAuthn credentials (security keys, passkeys), sealed and
-- encoded by package auth as one value; '' (empty) when the person has none.
ALTER TABLE users ADD COLUMN webauthn {{blob}} NOT NULL DEFAULT '';
