// Package federation verifies tokens that configured external OpenID
// Connect providers (Entra ID, Okta, Keycloak, a hospital's own IdP) issue,
// and maps their claims to a Ward Identity: a namespaced user and client id,
// one Ward role, and SMART scopes. Verify checks access tokens presented to
// Ward's API; VerifyIDToken checks the id_token of a sign-in through such a
// provider. The package fetches each provider's keys itself and is built so
// that a misbehaving provider can take neither Ward down nor anyone in.
//
// What it guarantees:
//   - Trust is configuration only. The issuer is chosen by the token's iss
//     claim, which must name a configured Issuer exactly; the token is then
//     verified with that issuer's keys only, fetched from the configured
//     JWKS URL or the one its discovery document names (https, and on the
//     issuer's origin unless AllowCrossOriginJWKS). No URL or key taken
//     from a token is used or fetched: a header with jku, x5u, jwk, x5c,
//     crit, cty or anything but alg, kid, typ, x5t and x5t#S256 is refused;
//     kid only selects among the issuer's own keys.
//   - Only asymmetric algorithms the issuer allows (default RS256, ES256,
//     EdDSA; none and HS* can never be configured) with a key of the
//     matching type: RSA of 2048 to 4096 bits, the algorithm's EC curve,
//     Ed25519. Keys of other types or uses (oct, enc) are skipped; a JWKS
//     with private key material in an RSA, EC or OKP key is refused
//     entirely.
//   - Strict parsing: canonical base64url in all three parts, one
//     signature, header and claims as JSON objects without duplicate keys,
//     claims in valid UTF-8, typed claims of the right JSON type. A token
//     is at most 16 KiB.
//   - Claims: exact iss, an audience the issuer config lists (Audiences for
//     access tokens, ClientID and a matching nonce for id_tokens, which are
//     kept disjoint so that one can never pass as the other), exp and iat
//     present, a lifetime of at most MaxLifetime, exp, nbf, iat and
//     auth_time checked against the clock with ClockSkew.
//   - Identity ids cannot collide with Ward's own: UserID and ClientID are
//     "ext:" + 16 hex digits of SHA-256(issuer URL) + ":" + the raw value,
//     and ':' occurs in no Ward user or client id.
//   - Mapping fails closed: a token that maps to no role is refused; the
//     first matching RoleRule wins; a privileged role (admin, auditor,
//     privacy-officer, and those configured) needs MFA evidence (amr
//     contains one of MFAMethods, or acr is one of MFAACRs), else the
//     token is refused, never demoted.
//     Scopes are the intersection of the token's SMART scopes with the
//     issuer's AllowedScopes: never more than either grants. Scopes that
//     are not SMART resource scopes (openid, custom API scopes) and
//     query-restricted ones are dropped.
//   - Key fetching is bounded: verified TLS 1.2+, one timeout
//     (FetchTimeout, default 5 s) for discovery plus JWKS together,
//     responses capped (default 256 KiB) and at most MaxKeys keys, status
//     200 and a JSON content type only, redirects only within the same
//     origin, no proxy, and connections to loopback, private,
//     link-local and other special addresses refused at dial time (so DNS
//     rebinding cannot reach them) unless the issuer allows loopback or
//     private networks. Link-local (cloud metadata) is never allowed.
//   - Key caching fails closed and cannot be driven by attackers: at most
//     one fetch per issuer at a time, concurrent callers share it; a key set
//     is refreshed after RefreshInterval in the background while the cached
//     keys keep serving; an unknown kid triggers a refetch at most once per
//     MinRefetchInterval; when refreshes fail, the last good key set is used
//     until it is MaxStaleness old, then the issuer's tokens fail. Verify
//     never waits for a fetch longer than FetchTimeout (or its context).
//   - Sign-ins: SignInIssuers lists the issuers with a ClientID (and
//     Ward's client secret there, a Secret that never prints);
//     SignInEndpoints gives their authorization and token endpoints, read
//     from the same discovery document as the keys and under the same
//     limits and caching, the token endpoint on the issuer's origin unless
//     AllowCrossOriginJWKS, and an HTTP client that keeps the fetch rules
//     (TLS, timeout, no proxy, address checks) for the code exchange.
//
// Every failure wraps ErrInvalidToken; a token naming no configured issuer
// also wraps ErrUnknownIssuer (the caller tries its other verifiers), and a
// failure to obtain the issuer's keys also wraps ErrKeysUnavailable (the
// caller may answer 503 rather than 401). Error text names the issuer but
// never carries token contents.
//
// What it does not do: it keeps no revocation state (external tokens are
// valid until exp; keep MaxLifetime short), caches no verified tokens, does
// not run the sign-in redirect flow (package signin does, with PKCE, and
// calls VerifyIDToken with the nonce it sent), reads no files (the caller
// reads ClientSecretFile), does not check at_hash or c_hash,
// uses no HTTP proxy, and does not decide access (package policy does, from
// the Identity's role and scopes). It does not know Ward's own issuer: the
// caller must not configure it as an external one.
package federation
