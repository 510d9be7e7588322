// Package auth is Ward's OAuth2 authorization server for service callers and
// the verifier of the access tokens it issues.
//
// It implements the client credentials grant (RFC 6749 4.4) for services,
// SMART App Launch 2.0 system scopes, and RFC 9068 JWT access tokens signed
// with Ed25519 (JWS alg EdDSA) through go-jose. People sign in through
// package signin, whose tokens Verify also accepts (WithPeople). Token
// dispatches on the grant type, and issuing a token is separate from
// authenticating the client, so another grant is another case, not a
// rewrite.
//
// A service authenticates in exactly one of three ways, fixed when it is
// registered (CreateService):
//   - a secret: client_secret_basic or client_secret_post;
//   - a public key set (private_key_jwt, RFC 7523, as SMART Backend
//     Services profiles it): a client_assertion JWT signed with one of its
//     keys, iss = sub = client id, aud = the token endpoint URL, exp at
//     most five minutes ahead, a jti never used before;
//   - its TLS client certificates (self_signed_tls_client_auth, RFC 8705
//     section 2.2): the certificate presented in the handshake, whose key
//     the handshake proved, must have a registered SHA-256 thumbprint.
//
// Whatever the method, a token requested over a connection with a client
// certificate is bound to that certificate (RFC 8705 section 3: cnf
// x5t#S256), and VerifyFor accepts it only from a request made with the
// same certificate; Verify, which has no certificate, refuses it.
//
// What it guarantees:
//   - Client secrets are 256-bit random values shown once at creation and
//     stored as salt || SHA-256(salt || secret). A slow password hash would
//     add nothing: the secret has 256 bits of entropy, so an offline guess
//     against the stored hash is as hopeless as against the key itself.
//     Comparison is constant time, and an unknown client is compared
//     against a dummy hash so that unknown, wrong-secret and revoked clients
//     get the same error after the same work.
//   - Client assertions are checked against the registered keys only: the
//     kid names one, and the assertion's alg must be that key's one
//     algorithm (RS384 or ES384, or RS256, ES256 or EdDSA when the key
//     says so; never none or HMAC). An assertion that carries a key or a
//     key's location (jwk, jku, x5u, x5c) or crit is refused and nothing
//     is fetched. Registered key sets hold public signing keys only (RSA
//     of 2048 to 8192 bits) and are stored without certificates or URLs.
//     Each jti is recorded in the store until the assertion could no
//     longer be accepted, so a replay fails on every replica sharing the
//     database. Until the signature verifies, failures that involve the
//     client get one description; client ids are not secrets, so an
//     unknown id may answer faster than a bad signature.
//   - A certificate-bound token is useless without the certificate's
//     private key: the binding is checked on every VerifyFor, cached token
//     or not, in constant time.
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
// OAuthError to a response, adding WWW-Authenticate on 401, and passes the
// request's client certificate to VerifyFor), and it keeps no per-token
// revocation list: tokens are short-lived (at most one hour). It does not
// fetch key sets by URL, does not authenticate by certificate subject
// (RFC 8705 tls_client_auth), and does not check a self-signed
// certificate's validity dates: registering and removing thumbprints is
// the operator's control (a CA, when the TLS listener has one, checks
// chains and dates in the handshake).
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
	// Client is the registered client the failed request named, when the
	// failure came after it was found: for the request's audit entry,
	// never for the caller, who gets the same answer for an unknown one.
	Client string
}

// naming returns err with Client set to id when err is an *OAuthError;
// other errors pass unchanged.
func naming(err error, id string) error {
	var oe *OAuthError
	if !errors.As(err, &oe) {
		return err
	}
	named := *oe
	named.Client = id
	return &named
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
