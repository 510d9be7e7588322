package auth

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Claims Ward adds to the access tokens of people (package signin issues
// them through its OpenID provider).
const (
	ClaimGrant   = "ward_grant"    // the grant the token belongs to
	ClaimRole    = "ward_role"     // the user's role when the token was issued
	ClaimMFATime = "ward_mfa_time" // when the second factor was last checked (unix seconds)
)

// personType is the typ header of tokens the OpenID provider signs.
const personType = "JWT"

// personClaims are the claims of a person's access token. Unknown claims
// are refused, and so are the claims only an id_token has (nonce, at_hash),
// so an id_token is never accepted as an access token.
type personClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	TokenID   string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Grant     string   `json:"ward_grant"`
	Role      string   `json:"ward_role"`
	ACR       string   `json:"acr"`
	AMR       []string `json:"amr"`
	AuthTime  int64    `json:"auth_time"`
	MFATime   int64    `json:"ward_mfa_time"`
	Patient   string   `json:"patient"`
	FHIRUser  string   `json:"fhirUser"`
}

// audience is aud as a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// WithPeople lets Verify accept people's access tokens, checking each
// token's grant and user in st.
func (s *Server) WithPeople(st store.Identity) *Server {
	s.people = st
	return s
}

// isPersonHeader reports whether hdr is the header of a person's token
// under a key this server accepts.
func (s *Server) isPersonHeader(hdr string) bool {
	k, ok := s.keyFor(hdr)
	return ok && k.person
}

// personHeader computes the exact protected header the OpenID provider
// signs with (alg EdDSA, kid, typ JWT).
func personHeader(key crypto.Signer, kid string) (string, error) {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: &jose.JSONWebKey{Key: cryptosigner.Opaque(key), KeyID: kid}},
		(&jose.SignerOptions{}).WithType(personType))
	if err != nil {
		return "", err
	}
	obj, err := sg.Sign([]byte("{}"))
	if err != nil {
		return "", err
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		return "", err
	}
	h, _, _ := strings.Cut(tok, ".")
	return h, nil
}

// verifyPerson checks a person's token: the provider's exact header, the
// signature, the claims, and scopes that parse.
func (s *Server) verifyPerson(bearer string) (verified, error) {
	hdr, _, _ := strings.Cut(bearer, ".")
	key, ok := s.keyFor(hdr)
	if !ok || !key.person {
		return verified{}, errors.New("auth: unexpected token header")
	}
	jws, err := jose.ParseSignedCompact(bearer, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return verified{}, fmt.Errorf("auth: parse token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return verified{}, errors.New("auth: want exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if h.Algorithm != string(jose.EdDSA) || h.KeyID != key.kid || h.JSONWebKey != nil ||
		len(h.ExtraHeaders) != 1 || h.ExtraHeaders[jose.HeaderType] != personType {
		return verified{}, errors.New("auth: unexpected token header")
	}
	body, err := jws.Verify(key.pub)
	if err != nil {
		return verified{}, fmt.Errorf("auth: signature: %w", err)
	}
	var c personClaims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return verified{}, fmt.Errorf("auth: decode claims: %w", err)
	}
	if dec.More() {
		return verified{}, errors.New("auth: trailing data after claims")
	}
	base := claims{Issuer: c.Issuer, Subject: c.Subject, ClientID: c.ClientID, Scope: c.Scope,
		IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, Expiry: c.Expiry, TokenID: c.TokenID}
	if slices.Contains(c.Audience, s.cfg.Audience) {
		base.Audience = s.cfg.Audience
	}
	if err := s.checkClaims(base); err != nil {
		return verified{}, err
	}
	if c.Grant == "" || c.Role == "" || !strings.HasPrefix(c.TokenID, c.Grant+".") {
		return verified{}, errors.New("auth: not an access token")
	}
	scopes, err := parsePersonScopes(c.Scope)
	if err != nil {
		return verified{}, err
	}
	return verified{claims: base, scopes: scopes, person: &c}, nil
}

// parsePersonScopes keeps the SMART resource scopes of a person's token;
// the OpenID and launch scopes it also carries grant no data.
func parsePersonScopes(scope string) ([]policy.Scope, error) {
	var out []policy.Scope
	for _, raw := range splitScope(scope) {
		if IsPersonScope(raw) {
			continue
		}
		sc, err := policy.ParseScope(raw)
		if err != nil {
			return nil, fmt.Errorf("auth: token scope: %w", err)
		}
		if sc.Context == "system" {
			return nil, errors.New("auth: system scope in a person's token")
		}
		out = append(out, sc)
		if len(out) > maxScopes {
			return nil, errors.New("auth: too many scopes")
		}
	}
	return out, nil
}

// personActive checks that a person's grant is not revoked and the user
// is enabled and has not invalidated older tokens (password change,
// disabling), reading the store at most once per ClientCacheTTL per grant.
func (s *Server) personActive(ctx context.Context, c *personClaims) error {
	if s.people == nil {
		return errors.New("auth: people's tokens are not accepted here")
	}
	now := s.cfg.Now()
	key := "grant:" + c.Grant + ":" + c.Subject
	if s.cache != nil {
		if active, ok := s.cache.get(key, now); ok {
			if !active {
				return errors.New("auth: grant revoked")
			}
			return nil
		}
	}
	active, err := s.grantActive(ctx, c)
	if err != nil {
		return err
	}
	if s.cache != nil {
		s.cache.put(key, active, now)
	}
	if !active {
		return errors.New("auth: grant revoked")
	}
	return nil
}

func (s *Server) grantActive(ctx context.Context, c *personClaims) (bool, error) {
	g, err := s.people.Grant(ctx, c.Grant)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: load grant: %w", err)
	}
	if g.Revoked || g.UserID != c.Subject || g.ClientID != c.ClientID {
		return false, nil
	}
	u, err := s.people.User(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: load user: %w", err)
	}
	if u.Disabled || time.Unix(c.IssuedAt, 0).Before(u.NotBefore) {
		return false, nil
	}
	// The app the person signed in to may have been revoked or suspended
	// since (containment of a compromised app).
	cl, err := s.clients.Client(ctx, c.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: load client: %w", err)
	}
	return cl.Active(), nil
}

// FreshMFA reports whether the principal checked a second factor within
// maxAge of now: operations that demand step-up (erasure, break-the-glass,
// signatures) ask this and answer 401 insufficient_user_authentication
// (RFC 9470) when it is false.
func (p Principal) FreshMFA(now time.Time, maxAge time.Duration) bool {
	return !p.MFATime.IsZero() && now.Sub(p.MFATime) <= maxAge
}
