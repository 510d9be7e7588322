package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Principal is who a verified token speaks for.
type Principal struct {
	ClientID string // the client that obtained the token
	Subject  string // sub: the client itself for client credentials, else the user id
	TokenID  string // jti, for audit entries
	Scopes   []policy.Scope
	Expiry   time.Time
	// CertThumbprint is the x5t#S256 of the client certificate the token
	// is bound to, which the request presenting it used; "" when unbound.
	CertThumbprint string

	// Set for a person's token only.
	UserID   string
	Role     string
	Patient  string // SMART launch context: the patient id chosen at sign-in
	FHIRUser string // "Practitioner/123" and the like
	ACR      string
	AMR      []string
	AuthTime time.Time
	MFATime  time.Time // zero when no second factor was used
}

// Verify checks a bearer token (without the "Bearer " prefix) presented
// without a client certificate: it is VerifyFor with no certificate, so a
// certificate-bound token fails.
func (s *Server) Verify(ctx context.Context, bearer string) (Principal, error) {
	return s.VerifyFor(ctx, bearer, nil)
}

// VerifyFor checks a bearer token (without the "Bearer " prefix) presented
// over a connection whose client certificate is peer (nil without one),
// and returns its Principal. A token bound to a certificate (cnf x5t#S256,
// RFC 8705 section 3) verifies only when peer is that certificate; an
// unbound token verifies with or without one. Every failure wraps
// ErrInvalidToken; the rest of the error is for logs, not for the caller.
// A token of a revoked or deleted client fails once the client's cached
// status is older than Config.ClientCacheTTL.
func (s *Server) VerifyFor(ctx context.Context, bearer string, peer *x509.Certificate) (Principal, error) {
	if s.fed != nil && !s.ownHeader(bearer) {
		return s.verifyFederated(ctx, bearer)
	}
	v, err := s.verifyCached(bearer)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c := v.claims
	if err := checkBinding(c.Confirmation, peer); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p := Principal{ClientID: c.ClientID, Subject: c.Subject, TokenID: c.TokenID, Expiry: time.Unix(c.Expiry, 0).UTC(), Scopes: v.scopes}
	if c.Confirmation != nil {
		p.CertThumbprint = c.Confirmation.X5tS256
	}
	if pc := v.person; pc != nil {
		if err := s.personActive(ctx, pc); err != nil {
			return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
		p.UserID, p.Role, p.Patient, p.FHIRUser, p.ACR = pc.Subject, pc.Role, pc.Patient, pc.FHIRUser, pc.ACR
		p.AMR, p.AuthTime = pc.AMR, time.Unix(pc.AuthTime, 0).UTC()
		if pc.MFATime != 0 {
			p.MFATime = time.Unix(pc.MFATime, 0).UTC()
		}
		return p, nil
	}
	if err := s.clientActive(ctx, c.ClientID); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return p, nil
}

// verifyCached verifies a token, or finds it among tokens verified before;
// either way its validity window is checked against the clock now.
func (s *Server) verifyCached(bearer string) (verified, error) {
	if len(bearer) == 0 || len(bearer) > maxTokenLen {
		return verified{}, errors.New("auth: token empty or too long")
	}
	key := sha256.Sum256([]byte(bearer))
	if v, ok := s.tokens.get(key); ok {
		return v, s.checkClaims(v.claims)
	}
	var v verified
	if hdr, _, _ := strings.Cut(bearer, "."); s.people != nil && s.isPersonHeader(hdr) {
		var err error
		if v, err = s.verifyPerson(bearer); err != nil {
			return verified{}, err
		}
	} else {
		c, err := s.verifyToken(bearer)
		if err != nil {
			return verified{}, err
		}
		scopes, err := parseScopes(c.Scope)
		if err != nil {
			return verified{}, err
		}
		v = verified{claims: c, scopes: scopes}
	}
	s.tokens.put(key, v, s.cfg.Now().Unix())
	return v, nil
}

// verifyToken checks everything that needs no I/O: shape, header,
// signature and claims.
func (s *Server) verifyToken(bearer string) (claims, error) {
	if len(bearer) == 0 || len(bearer) > maxTokenLen {
		return claims{}, errors.New("auth: token empty or too long")
	}
	header, rest, _ := strings.Cut(bearer, ".")
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return claims{}, errors.New("auth: not a compact JWS")
	}
	// Only the exact header this server signs: alg EdDSA, the kid of a
	// key it accepts (the signing key, or an earlier one whose tokens may
	// still be live), typ at+jwt, and nothing else (no jwk, jku, x5u,
	// x5c, crit).
	key, ok := s.keyFor(header)
	if !ok || key.person {
		return claims{}, errors.New("auth: unexpected token header")
	}
	// base64url with non-zero trailing bits decodes to the same bytes;
	// refuse it so that a token has exactly one encoding.
	if !canonicalBase64(payload) || !canonicalBase64(sig) {
		return claims{}, errors.New("auth: non-canonical base64url")
	}
	jws, err := jose.ParseSignedCompact(bearer, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return claims{}, fmt.Errorf("auth: parse token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return claims{}, errors.New("auth: want exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if h.Algorithm != string(jose.EdDSA) || h.KeyID != key.kid || h.JSONWebKey != nil ||
		len(h.ExtraHeaders) != 1 || h.ExtraHeaders[jose.HeaderType] != tokenType {
		return claims{}, errors.New("auth: unexpected token header")
	}
	body, err := jws.Verify(key.pub)
	if err != nil {
		return claims{}, fmt.Errorf("auth: signature: %w", err)
	}
	var c claims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return claims{}, fmt.Errorf("auth: decode claims: %w", err)
	}
	if dec.More() {
		return claims{}, errors.New("auth: trailing data after claims")
	}
	return c, s.checkClaims(c)
}

func (s *Server) checkClaims(c claims) error {
	switch {
	case c.Issuer != s.cfg.Issuer:
		return errors.New("auth: wrong issuer")
	case c.Audience != s.cfg.Audience:
		return errors.New("auth: wrong audience")
	case c.Subject == "" || c.ClientID == "" || c.TokenID == "":
		return errors.New("auth: missing sub, client_id or jti")
	case c.Expiry <= c.IssuedAt || c.Expiry-c.IssuedAt > int64(maxTokenTTL/time.Second) || c.NotBefore < c.IssuedAt:
		return errors.New("auth: inconsistent validity window")
	}
	now := s.cfg.Now()
	skew := int64(clockSkew / time.Second)
	if now.Unix() >= c.Expiry+skew {
		return errors.New("auth: token expired")
	}
	if c.NotBefore > now.Unix()+skew || c.IssuedAt > now.Unix()+skew {
		return errors.New("auth: token not yet valid")
	}
	return nil
}

// parseScopes parses a token's scope claim. A scope that no longer parses,
// or that is no longer supported, invalidates the token.
func parseScopes(scope string) ([]policy.Scope, error) {
	parts := splitScope(scope)
	if len(parts) == 0 || len(parts) > maxScopes {
		return nil, errors.New("auth: token scope count out of range")
	}
	out := make([]policy.Scope, 0, len(parts))
	for _, raw := range parts {
		sc, err := policy.ParseScope(raw)
		if err != nil {
			return nil, fmt.Errorf("auth: token scope: %w", err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// clientActive reports whether the client may still use its tokens,
// reading the store at most once per ClientCacheTTL per client.
func (s *Server) clientActive(ctx context.Context, id string) error {
	now := s.cfg.Now()
	if s.cache != nil {
		if active, ok := s.cache.get(id, now); ok {
			if !active {
				return errors.New("auth: client revoked or unknown")
			}
			return nil
		}
	}
	c, err := s.clients.Client(ctx, id)
	active := err == nil && c.Active()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("auth: load client: %w", err)
	}
	if s.cache != nil {
		s.cache.put(id, active, now)
	}
	if !active {
		return errors.New("auth: client revoked or unknown")
	}
	return nil
}

// canonicalBase64 reports whether s is unpadded base64url whose unused
// trailing bits are zero (so it is the only encoding of its bytes). It does
// not check the alphabet; the decoder does.
func canonicalBase64(s string) bool {
	if len(s) == 0 {
		return false
	}
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", s[len(s)-1])
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return last >= 0 && last&0x0f == 0
	case 3:
		return last >= 0 && last&0x03 == 0
	}
	return true
}
