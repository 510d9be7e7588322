// Package credential holds the primitives that check what a person signing
// in to Ward presents: passwords, TOTP codes and recovery codes, and the
// throttling policy that bounds how often anyone may guess. It is pure: no
// store, no HTTP, no logging; callers keep the state (hashes, last TOTP
// step, failure counts) and pass it in.
//
// Passwords (OWASP ASVS 4.0.3 V2.1, V2.4; NIST SP 800-63B 5.1.1):
//   - HashPassword derives argon2id (RFC 9106) with a random 128-bit salt and
//     encodes it in the PHC string format
//     "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (unpadded standard
//     base64), so the parameters travel with each hash. The default
//     parameters are OWASP's first recommendation: 19 MiB, 2 passes, 1 lane.
//     Each check therefore allocates 19 MiB: callers bound how many run at
//     once.
//   - CheckPassword compares in constant time and reports needsRehash when
//     the stored parameters differ from the current ones. DummyCheck spends
//     the same work on a fixed dummy hash, so an unknown user is answered
//     after the same time as a wrong password (catalogue B4).
//   - CheckPolicy accepts 12 to 128 characters, counted as Unicode code
//     points (runes) of the password exactly as given, without Unicode
//     normalisation; spaces and any Unicode are allowed. It refuses
//     passwords found on a bundled list of 68,117 breached passwords
//     (breached.go says where it comes from), compared case-insensitively,
//     and passwords that are a common breached stem padded with one to five
//     trailing digits, symbols or spaces ("Password2024!"), and one to
//     three characters repeated. Its errors say what is wrong and never
//     contain the password (catalogue B6).
//
// TOTP (RFC 6238 with the parameters authenticator apps assume: HMAC-SHA-1,
// 6 digits, 30-second steps, 160-bit secrets): CheckTOTP accepts the
// current step and one step either side, compares in constant time, and
// accepts a step only if it is greater than the last one the caller
// recorded, so each code works once (catalogue B5). Malformed, wrong or
// expired, and replayed codes have distinct errors, for the audit entry.
// With the Throttle below an attacker gets about 110 guesses a day against
// 3 valid codes in a million: an expected 3,000 days to hit one.
//
// Recovery codes are 80-bit random values (16 base32 characters) stored as
// salted SHA-256 hashes; each works once.
//
// Throttling: Throttle is the per-account policy (free attempts, then
// exponential backoff capped at 15 minutes: at most 110 guesses in any 24
// hours, and never a permanent lockout). Guessing spread across many
// accounts from one address is limited per address by package ratelimit,
// in front of the sign-in pages (package api).
//
// What it does not do: it does not store anything, seal TOTP secrets (the
// caller seals them with package keys: they are shared secrets, unlike
// password hashes), decide when MFA is required, or raise security events.
package credential
