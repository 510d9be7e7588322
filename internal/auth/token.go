package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// TokenResponse is a successful RFC 6749 section 5.1 response.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "Bearer"
	ExpiresIn   int    `json:"expires_in"` // seconds
	Scope       string `json:"scope"`      // granted scopes, canonical v2, space-separated

	// ClientID is the authenticated client, for the caller's audit
	// entry; it is not part of the response.
	ClientID string `json:"-"`
}

// claims are the RFC 9068 access token claims Ward issues and accepts.
type claims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	TokenID   string `json:"jti"`
	// Confirmation binds the token to the client certificate of the
	// connection it was requested over (RFC 8705); nil when there was none.
	Confirmation *confirmation `json:"cnf,omitempty"`
}

// maxScopeParam bounds the requested scope parameter.
const maxScopeParam = 4096

// Token answers a token request. Only grant_type=client_credentials is
// supported. The client authenticates with its secret, a signed assertion
// (private_key_jwt) or its registered TLS certificate, whichever it was
// registered with. Failures the client caused are *OAuthError:
// invalid_request, unsupported_grant_type, invalid_client (401; the same
// description for an unknown client, a wrong secret or signature and a
// revoked client) and invalid_scope (a requested scope is malformed or not
// covered by the client's scopes). A client id whose secret failed too
// often is refused without a check for a while, with a *ThrottledError
// (known and unknown ids alike); the failure that starts such a lock also
// wraps ErrClientLocked. Any other error is the server's (the store,
// randomness, signing); it may wrap store.ErrUnavailable.
//
// With no scope requested the token carries all of the client's scopes.
// When the request came with a client certificate (req.ClientCert), the
// token is bound to it: VerifyFor accepts it only with that certificate.
func (s *Server) Token(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	switch req.GrantType {
	case "client_credentials":
		return s.clientCredentials(ctx, req)
	case "":
		return TokenResponse{}, invalidRequest("grant_type is required")
	default:
		return TokenResponse{}, &OAuthError{Code: codeUnsupportedGrantType, Description: "only client_credentials is supported", Status: 400}
	}
}

func (s *Server) clientCredentials(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	c, err := s.authenticateClient(ctx, req)
	if err != nil {
		return TokenResponse{}, err
	}
	if len(c.RedirectURIs) > 0 {
		// An app acts for people; it never gets a token of its own.
		return TokenResponse{}, &OAuthError{Code: "unauthorized_client", Description: "this client signs people in; client credentials are for services", Status: http.StatusBadRequest, Client: c.ID}
	}
	scopes, err := grantScopes(c.Scopes, req.Scope)
	if err != nil {
		return TokenResponse{}, naming(err, c.ID)
	}
	resp, err := s.issue(c.ID, c.ID, scopes, binding(req.ClientCert))
	if err != nil {
		return TokenResponse{}, err
	}
	resp.ClientID = c.ID
	return resp, nil
}

// authenticateClient authenticates the client of a token request by the
// one method it used: an assertion, a secret, or else the TLS client
// certificate. A certificate presented alongside a secret or an assertion
// only binds the token.
func (s *Server) authenticateClient(ctx context.Context, req TokenRequest) (store.Client, error) {
	switch {
	case req.ClientAssertion != "" || req.ClientAssertionType != "":
		if req.ClientSecret != "" {
			return store.Client{}, invalidRequest("more than one client authentication method")
		}
		return s.authenticateAssertion(ctx, req)
	case req.ClientSecret == "" && req.ClientCert != nil:
		return s.authenticateCert(ctx, req.ClientID, req.ClientCert)
	}
	return s.authenticate(ctx, req.ClientID, req.ClientSecret)
}

// authenticate checks a client id and secret. Unknown, wrong and revoked
// all return the same error after the same work: the attempt counted
// (secretthrottle.go), one hash comparison. While the id's attempts are
// throttled the secret is not checked and the error is a *ThrottledError,
// for known and unknown ids alike; the failure that starts a lock wraps
// ErrClientLocked too.
func (s *Server) authenticate(ctx context.Context, id, secret string) (store.Client, error) {
	fail := invalidClient("client authentication failed")
	if id == "" || secret == "" || len(id) > maxClientID || len(secret) > 256 {
		// No client has such an id or secret: nothing to throttle.
		checkSecret(s.dummy, secret)
		return store.Client{}, fail
	}
	now := s.cfg.Now()
	key := attemptKey(id)
	taken, err := s.takeAttempt(ctx, key, now)
	if err != nil {
		checkSecret(s.dummy, secret)
		return store.Client{}, err
	}
	c, err := s.clients.Client(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		checkSecret(s.dummy, secret)
	case err != nil:
		return store.Client{}, fmt.Errorf("auth: load client: %w", err)
	default:
		ok := checkSecret(c.SecretHash, secret)
		if s.cache != nil {
			s.cache.put(c.ID, c.Active(), s.cfg.Now())
		}
		if ok && c.Active() {
			if err := s.resetAttempts(ctx, key); err != nil {
				return store.Client{}, err
			}
			return c, nil
		}
	}
	if taken.LockedUntil.After(now) {
		return store.Client{}, fmt.Errorf("%w: %w", naming(fail, c.ID), ErrClientLocked)
	}
	return store.Client{}, naming(fail, c.ID) // c.ID is "" for an unknown id
}

// grantScopes returns the canonical scopes a token gets: the requested ones,
// each covered by one of the client's, or all of the client's.
func grantScopes(clientScopes []string, requested string) ([]string, error) {
	held := make([]policy.Scope, 0, len(clientScopes))
	for _, raw := range clientScopes {
		if sc, err := policy.ParseScope(raw); err == nil {
			held = append(held, sc)
		}
	}
	if requested == "" {
		out := make([]string, 0, len(held))
		for _, sc := range held {
			out = append(out, sc.String())
		}
		if len(out) == 0 {
			return nil, invalidScope("the client holds no usable scope")
		}
		return out, nil
	}
	if len(requested) > maxScopeParam {
		return nil, invalidScope("scope parameter too long")
	}
	parts := splitScope(requested)
	if len(parts) > maxScopes {
		return nil, invalidScope("too many scopes requested")
	}
	out := make([]string, 0, len(parts))
	for _, raw := range parts {
		want, err := policy.ParseScope(raw)
		if err != nil {
			return nil, invalidScope("a requested scope is malformed or unsupported")
		}
		covered := false
		for _, h := range held {
			if h.Covers(want) {
				covered = true
				break
			}
		}
		if !covered {
			return nil, invalidScope("a requested scope exceeds the client's scopes")
		}
		if c := want.String(); !contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// issue signs an access token for subject, obtained by clientID, carrying
// the given canonical scopes, and bound to a certificate when cnf is not
// nil. Every grant ends here.
func (s *Server) issue(subject, clientID string, scopes []string, cnf *confirmation) (TokenResponse, error) {
	var jti [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, jti[:]); err != nil {
		return TokenResponse{}, fmt.Errorf("auth: random: %w", err)
	}
	now := s.cfg.Now().Unix()
	ttl := int64(s.cfg.TokenTTL / time.Second)
	scope := strings.Join(scopes, " ")
	payload, err := json.Marshal(claims{
		Issuer: s.cfg.Issuer, Audience: s.cfg.Audience, Subject: subject, ClientID: clientID,
		Scope: scope, IssuedAt: now, NotBefore: now, Expiry: now + ttl, TokenID: base64URL(jti[:]),
		Confirmation: cnf,
	})
	if err != nil {
		return TokenResponse{}, fmt.Errorf("auth: encode claims: %w", err)
	}
	tok, err := s.sign(payload)
	if err != nil {
		return TokenResponse{}, err
	}
	return TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(ttl), Scope: scope}, nil
}
