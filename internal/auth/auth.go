// Package auth is Ward's OAuth2 authorization server for service callers and
// the verifier of the access tokens it issues.
//
// Today it implements the client credentials grant (RFC 6749 4.4) with
// client_secret_basic and client_secret_post authentication, SMART App
// Launch 2.0 system scopes, and RFC 9068 JWT access tokens signed with
// Ed25519 (JWS alg EdDSA) through go-jose. Sign-in of people (authorization
// code + PKCE, refresh tokens, MFA) comes later: Token dispatches on the
// grant type, and issuing a token is separate from authenticating the
// client, so another grant is another case, not a rewrite.
//
// What it guarantees:
//   - Client secrets are 256-bit random values shown once at creation and
//     stored as salt || SHA-256(salt || secret). A slow password hash would
//     add nothing: the secret has 256 bits of entropy, so an offline guess
//     against the stored hash is as hopeless as against the key itself.
//     Comparison is constant time, and an unknown client is compared
//     against a dummy hash so that unknown, wrong-secret and revoked clients
//     get the same error after the same work.
//   - Verify accepts only tokens this server signed: the exact protected
//     header it produces (alg EdDSA, the key's RFC 7638 thumbprint as kid,
//     typ at+jwt), canonical base64url, a valid Ed25519 signature, this
//     issuer and audience, a current validity window (30 s clock skew), and
//     scopes that still parse. Keys named in a token (jwk, jku, x5u, x5c)
//     are never used or fetched. Every failure wraps ErrInvalidToken; the
//     detail is for logs only.
//   - A revoked client's tokens stop working within Config.ClientCacheTTL
//     (default 5 s) on every replica sharing the store, since each replica
//     re-reads a client's status once that long has passed.
//
// What it does not do: it does not decide access (package policy does), it
// does not speak HTTP beyond parsing a token request (package api maps
// OAuthError to a response, adding WWW-Authenticate on 401), and it keeps no
// per-token revocation list: tokens are short-lived (at most one hour).
package auth

import (
	"errors"
	"net/http"
)

// ErrInvalidToken is wrapped by every failure of Verify. Callers answer 401.
// When the cause is the store being unavailable the error also wraps
// store.ErrUnavailable, so a caller can answer 503 instead.
var ErrInvalidToken = errors.New("auth: invalid token")

// OAuthError is an RFC 6749 section 5.2 error response. Code and
// Description are safe to send to the client; Status is the HTTP status.
type OAuthError struct {
	Code        string
	Description string
	Status      int
}

func (e *OAuthError) Error() string { return "auth: " + e.Code + ": " + e.Description }

// RFC 6749 section 5.2 error codes.
const (
	codeInvalidRequest       = "invalid_request"
	codeInvalidClient        = "invalid_client"
	codeUnsupportedGrantType = "unsupported_grant_type"
	codeInvalidScope         = "invalid_scope"
)

func invalidRequest(desc string) *OAuthError {
	return &OAuthError{Code: codeInvalidRequest, Description: desc, Status: http.StatusBadRequest}
}

func invalidClient(desc string) *OAuthError {
	return &OAuthError{Code: codeInvalidClient, Description: desc, Status: http.StatusUnauthorized}
}

func invalidScope(desc string) *OAuthError {
	return &OAuthError{Code: codeInvalidScope, Description: desc, Status: http.StatusBadRequest}
}
