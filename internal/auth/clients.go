package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

const (
	maxNameLen   = 200
	maxClientID  = 64
	maxScopes    = 64
	clientPrefix = "ward-"
)

// CreateClient registers a service with a random id ("ward-" and 16 base32
// characters) and a random secret, shown once in the returned Secret. Every
// scope must parse with policy.ParseScope; scopes are stored in canonical
// v2 form. The returned Client carries no SecretHash.
func (s *Server) CreateClient(ctx context.Context, name string, scopes []string) (store.Client, Secret, error) {
	return s.CreateService(ctx, ServiceSpec{Name: name, Scopes: scopes})
}

// CreateClientWithID is CreateClient with a caller-chosen id, for the
// bootstrap client of a development server. The id is 1 to 64 characters
// of [A-Za-z0-9._-]. The error wraps store.ErrConflict when the id exists.
func (s *Server) CreateClientWithID(ctx context.Context, id, name string, scopes []string) (store.Client, Secret, error) {
	if id == "" {
		return store.Client{}, Secret{}, errors.New("auth: client id must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
	}
	return s.CreateService(ctx, ServiceSpec{ID: id, Name: name, Scopes: scopes})
}

// ServiceSpec describes a service: a client that obtains tokens of its own
// with the client credentials grant. It authenticates with one of a
// secret (neither JWKS nor Certs set), signed assertions (JWKS) or its TLS
// certificates (Certs), never two.
type ServiceSpec struct {
	ID     string // "" for a random id; else 1 to 64 characters of [A-Za-z0-9._-]
	Name   string
	Scopes []string // SMART scopes, normally system/ ones
	// JWKS is the service's public key set (RFC 7517 JSON) for
	// private_key_jwt. See AssertionAlgorithms for the algorithms; each
	// key needs a unique kid; private and symmetric keys are refused.
	JWKS []byte
	// Certs are the certificates the service presents in the TLS
	// handshake (self_signed_tls_client_auth, RFC 8705 section 2.2); their
	// SHA-256 thumbprints are registered. Several allow a rollover.
	Certs []*x509.Certificate
}

// maxClientCerts bounds the certificates a service registers.
const maxClientCerts = 8

// CreateService registers a service. A service registered with a secret
// gets it in the returned Secret, shown once; one registered with keys or
// certificates gets an empty Secret. The key set is stored in a canonical
// form: public keys, kid, use and alg only. The error wraps
// store.ErrConflict when the id exists.
func (s *Server) CreateService(ctx context.Context, spec ServiceSpec) (store.Client, Secret, error) {
	id := spec.ID
	if id == "" {
		var err error
		if id, err = s.newClientID(); err != nil {
			return store.Client{}, Secret{}, err
		}
	}
	if !validClientID(id) {
		return store.Client{}, Secret{}, errors.New("auth: client id must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
	}
	if !validName(spec.Name) {
		return store.Client{}, Secret{}, errors.New("auth: client name must be 1 to 200 printable characters")
	}
	canon, err := canonicalScopes(spec.Scopes)
	if err != nil {
		return store.Client{}, Secret{}, err
	}
	c := store.Client{ID: id, Name: spec.Name, Scopes: canon, Created: s.cfg.Now().UTC()}
	var secret Secret
	switch {
	case spec.JWKS != nil && spec.Certs != nil:
		return store.Client{}, Secret{}, errors.New("auth: a service authenticates with a key set or with certificates, not both")
	case spec.JWKS != nil:
		keys, err := parseKeySet(spec.JWKS)
		if err != nil {
			return store.Client{}, Secret{}, err
		}
		if c.JWKS, err = canonicalKeySet(keys); err != nil {
			return store.Client{}, Secret{}, err
		}
	case spec.Certs != nil:
		if len(spec.Certs) == 0 || len(spec.Certs) > maxClientCerts {
			return store.Client{}, Secret{}, fmt.Errorf("auth: a service registers 1 to %d certificates", maxClientCerts)
		}
		for _, cert := range spec.Certs {
			if cert == nil || len(cert.Raw) == 0 {
				return store.Client{}, Secret{}, errors.New("auth: an empty certificate")
			}
			if tp := CertThumbprint(cert); !slices.Contains(c.CertThumbprints, tp) {
				c.CertThumbprints = append(c.CertThumbprints, tp)
			}
		}
	default:
		var err error
		if secret, c.SecretHash, err = s.newSecret(); err != nil {
			return store.Client{}, Secret{}, err
		}
	}
	if err := s.clients.CreateClient(ctx, c); err != nil {
		return store.Client{}, Secret{}, fmt.Errorf("auth: create client: %w", err)
	}
	c.SecretHash = nil
	return c, secret, nil
}

// ListClients returns every registered client, revoked ones included,
// without their secret hashes.
func (s *Server) ListClients(ctx context.Context) ([]store.Client, error) {
	cs, err := s.clients.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: list clients: %w", err)
	}
	for i := range cs {
		cs[i].SecretHash = nil
	}
	return cs, nil
}

// RevokeClient revokes a client: it can no longer obtain tokens, and its
// tokens stop verifying here at once and on other replicas within
// Config.ClientCacheTTL. The error wraps store.ErrNotFound for an unknown id.
func (s *Server) RevokeClient(ctx context.Context, id string) error {
	if err := s.clients.RevokeClient(ctx, id); err != nil {
		return fmt.Errorf("auth: revoke client: %w", err)
	}
	if s.cache != nil {
		s.cache.forget(id)
	}
	return nil
}

// canonicalScopes parses, deduplicates and canonicalises a client's scopes.
// Query-restricted scopes are refused: they would grant nothing.
func canonicalScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 || len(scopes) > maxScopes {
		return nil, fmt.Errorf("auth: a client needs 1 to %d scopes", maxScopes)
	}
	out := make([]string, 0, len(scopes))
	seen := make(map[string]bool, len(scopes))
	for _, raw := range scopes {
		sc, err := policy.ParseScope(raw)
		if err != nil {
			return nil, fmt.Errorf("auth: client scope: %w", err)
		}
		if c := sc.String(); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

func validClientID(id string) bool {
	if len(id) == 0 || len(id) > maxClientID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validName(name string) bool {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// CheckClientSecret authenticates a confidential client by its secret.
// Unknown, wrong and revoked all fail alike, after the same work.
func (s *Server) CheckClientSecret(ctx context.Context, id, secret string) error {
	_, err := s.authenticate(ctx, id, secret)
	return err
}

// AppSpec describes an app that signs people in (authorization code grant
// with PKCE).
type AppSpec struct {
	Name         string
	Scopes       []string // SMART patient/ and user/ scopes, and openid fhirUser profile offline_access online_access launch/patient
	RedirectURIs []string // https, or http on a loopback address; matched exactly
	Public       bool     // no secret (browser and native apps); PKCE protects the code
}

// PersonScopes are the scopes an app may hold besides SMART resource
// scopes: OpenID Connect and SMART launch context. They grant no data.
var PersonScopes = []string{"openid", "fhirUser", "profile", "offline_access", "online_access", "launch/patient"}

// IsPersonScope reports whether s is one of PersonScopes.
func IsPersonScope(s string) bool { return slices.Contains(PersonScopes, s) }

// CreateApp registers an app. A confidential app gets a secret, shown once;
// a public one gets none. System scopes are refused: an app acts for a
// person, never as the system.
func (s *Server) CreateApp(ctx context.Context, spec AppSpec) (store.Client, Secret, error) {
	if !validName(spec.Name) {
		return store.Client{}, Secret{}, errors.New("auth: app name must be 1 to 200 printable characters")
	}
	if len(spec.RedirectURIs) == 0 || len(spec.RedirectURIs) > 16 {
		return store.Client{}, Secret{}, errors.New("auth: an app needs 1 to 16 redirect URIs")
	}
	for _, u := range spec.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return store.Client{}, Secret{}, err
		}
	}
	if len(spec.Scopes) == 0 || len(spec.Scopes) > maxScopes {
		return store.Client{}, Secret{}, fmt.Errorf("auth: an app needs 1 to %d scopes", maxScopes)
	}
	var canon []string
	for _, raw := range spec.Scopes {
		if IsPersonScope(raw) {
			if !slices.Contains(canon, raw) {
				canon = append(canon, raw)
			}
			continue
		}
		sc, err := policy.ParseScope(raw)
		if err != nil {
			return store.Client{}, Secret{}, fmt.Errorf("auth: app scope: %w", err)
		}
		if sc.Context == "system" {
			return store.Client{}, Secret{}, errors.New("auth: an app cannot hold system scopes; register a service client for that")
		}
		if c := sc.String(); !slices.Contains(canon, c) {
			canon = append(canon, c)
		}
	}
	id, err := s.newClientID()
	if err != nil {
		return store.Client{}, Secret{}, err
	}
	c := store.Client{
		ID:   id,
		Name: spec.Name, Scopes: canon, Created: s.cfg.Now().UTC(), RedirectURIs: slices.Clone(spec.RedirectURIs),
	}
	var secret Secret
	if !spec.Public {
		var err error
		if secret, c.SecretHash, err = s.newSecret(); err != nil {
			return store.Client{}, Secret{}, err
		}
	}
	if err := s.clients.CreateClient(ctx, c); err != nil {
		return store.Client{}, Secret{}, fmt.Errorf("auth: create app: %w", err)
	}
	c.SecretHash = nil
	return c, secret, nil
}

// checkRedirectURI admits https URIs and http URIs on a loopback address,
// without fragments or user info.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(raw, " \t\r\n") || len(raw) > 512 {
		return fmt.Errorf("auth: redirect URI %q: want an absolute URL without fragment or user info", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip, err := netip.ParseAddr(u.Hostname()); (err == nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("auth: redirect URI %q: want https, or http on a loopback address", raw)
}

// newSecret returns a fresh client secret and the salted hash stored for it.
func (s *Server) newSecret() (Secret, []byte, error) {
	buf := make([]byte, secretBytes+saltBytes)
	if _, err := io.ReadFull(s.cfg.Rand, buf); err != nil {
		return Secret{}, nil, fmt.Errorf("auth: random: %w", err)
	}
	secret := Secret{v: base64URL(buf[:secretBytes])}
	return secret, hashSecret(buf[secretBytes:], secret.v), nil
}

// newClientID returns a random client id: "ward-" and 16 base32 characters.
func (s *Server) newClientID() (string, error) {
	var raw [10]byte
	if _, err := io.ReadFull(s.cfg.Rand, raw[:]); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return clientPrefix + idEncoding.EncodeToString(raw[:]), nil
}

// SuspendClient suspends a client (containment) or lifts its suspension.
// A suspended client obtains no tokens, and its tokens and the tokens of
// people signed in to it stop verifying here at once and on other
// replicas within Config.ClientCacheTTL. The error wraps
// store.ErrNotFound for an unknown id.
func (s *Server) SuspendClient(ctx context.Context, id string, suspended bool) error {
	if err := s.clients.SetClientSuspended(ctx, id, suspended); err != nil {
		return fmt.Errorf("auth: suspend client: %w", err)
	}
	if s.cache != nil {
		s.cache.forget(id)
		s.cache.forgetPrefix("grant:")
	}
	return nil
}

// ForgetPeople drops this process's cached status of people's grants, so
// that a change to an account (containment) stops its tokens here at once;
// other replicas see it within Config.ClientCacheTTL.
func (s *Server) ForgetPeople() {
	if s.cache != nil {
		s.cache.forgetPrefix("grant:")
	}
}
