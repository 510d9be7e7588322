package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// verifyKey is one usable public key of an issuer and the algorithms it
// may verify.
type verifyKey struct {
	kid  string
	key  any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []string
}

// keySet is an issuer's usable keys from one JWKS.
type keySet struct {
	keys []verifyKey
}

// jwkMeta are the JWK members looked at before the key itself is parsed.
type jwkMeta struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	// Private and symmetric key material: never in a key set Ward trusts.
	D, P, Q, DP, DQ, QI, Oth, Priv, K json.RawMessage
}

// parseKeySet reads a JWKS (RFC 7517) and keeps the public signing keys
// usable with algs. A key of another type, use or algorithm is skipped; a
// malformed document, more than maxKeys keys, private or symmetric key
// material in an asymmetric key, or no usable key fails the whole set.
func parseKeySet(body []byte, algs []string, maxKeys int) (*keySet, error) {
	if err := checkJSON(body); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Keys == nil {
		return nil, errors.New("JWKS: no keys array")
	}
	if len(doc.Keys) > maxKeys {
		return nil, fmt.Errorf("JWKS: more than %d keys", maxKeys)
	}
	set := &keySet{}
	for _, raw := range doc.Keys {
		var m jwkMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, errors.New("JWKS: malformed key")
		}
		if m.Kty != "RSA" && m.Kty != "EC" && m.Kty != "OKP" {
			continue // oct, or a type Ward does not use
		}
		if m.D != nil || m.P != nil || m.Q != nil || m.DP != nil || m.DQ != nil || m.QI != nil || m.Oth != nil || m.Priv != nil || m.K != nil {
			return nil, errors.New("JWKS: contains private key material")
		}
		if m.Use != "" && m.Use != "sig" || m.KeyOps != nil && !slices.Contains(m.KeyOps, "verify") {
			continue
		}
		if m.Alg != "" && !slices.Contains(algs, m.Alg) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue // a curve or size go-jose refuses: unusable, not trusted
		}
		if !jwk.IsPublic() || !jwk.Valid() {
			return nil, errors.New("JWKS: contains a key that is not public")
		}
		usable := keyAlgorithms(jwk.Key, algs)
		if m.Alg != "" {
			usable = slices.DeleteFunc(usable, func(a string) bool { return a != m.Alg })
		}
		if len(usable) == 0 {
			continue
		}
		set.keys = append(set.keys, verifyKey{kid: jwk.KeyID, key: jwk.Key, algs: usable})
	}
	if len(set.keys) == 0 {
		return nil, errors.New("JWKS: no usable signing key")
	}
	return set, nil
}

// minRSABits is the smallest RSA modulus accepted (go-jose caps the
// largest at jose.MaxRSAModulusBits, 4096).
const minRSABits = 2048

// keyAlgorithms returns the algorithms among algs that key can verify.
func keyAlgorithms(key any, algs []string) []string {
	var fit []string
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil
		}
		fit = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			fit = []string{"ES256"}
		case elliptic.P384():
			fit = []string{"ES384"}
		case elliptic.P521():
			fit = []string{"ES512"}
		}
	case ed25519.PublicKey:
		fit = []string{"EdDSA"}
	}
	var out []string
	for _, a := range fit {
		if slices.Contains(algs, a) {
			out = append(out, a)
		}
	}
	return out
}

// lookup returns the keys that may verify a token with this kid and alg. A
// token without kid is verified only when exactly one key fits, so that a
// forged kid-less token cannot make Ward try every key.
func (s *keySet) lookup(kid, alg string) []any {
	if s == nil {
		return nil
	}
	var out []any
	for _, k := range s.keys {
		if (kid == "" || k.kid == kid) && slices.Contains(k.algs, alg) {
			out = append(out, k.key)
		}
	}
	if kid == "" && len(out) != 1 {
		return nil
	}
	return out
}

// keySource holds one issuer's keys: the last good set, when it was
// fetched, and at most one fetch in flight.
type keySource struct {
	is      *Issuer
	f       *fetcher
	timeout time.Duration
	refresh time.Duration // refetch a set this old, in the background
	minGap  time.Duration // between the starts of two fetches
	stale   time.Duration // never use a set older than this
	maxKeys int
	now     func() time.Time
	// endpoints learns the sign-in endpoints from each discovery; nil
	// for an issuer without sign-ins.
	endpoints *endpointSource

	mu       sync.Mutex
	set      *keySet
	setAt    time.Time     // when set was fetched
	lastTry  time.Time     // when the last fetch started
	lastErr  error         // why the last fetch failed; nil after a success
	jwksURL  string        // configured, or discovered ("" until then)
	inflight chan struct{} // closed when the running fetch ends
}

// keys returns the keys for a token's kid and alg, fetching the key set
// when it is missing, too old or lacks the kid, within the limits above.
func (s *keySource) keys(ctx context.Context, kid, alg string) ([]any, error) {
	now := s.now()
	s.mu.Lock()
	cached := s.set.lookup(kid, alg)
	if s.set != nil && now.Sub(s.setAt) > s.stale {
		cached = nil
	}
	if len(cached) > 0 && now.Sub(s.setAt) < s.refresh {
		s.mu.Unlock()
		return cached, nil
	}
	// The set is due for a refresh, or lacks the key: join the fetch in
	// flight, or start one unless the last started too recently.
	wait := s.inflight
	if wait == nil && (s.lastTry.IsZero() || now.Sub(s.lastTry) >= s.minGap) {
		wait = s.start(ctx, now)
	}
	lastErr := s.lastErr
	s.mu.Unlock()
	if len(cached) > 0 {
		return cached, nil // still good; the refresh runs in the background
	}
	if wait == nil {
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
		}
		return nil, errors.New("no key for the token's kid and alg")
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for keys: %w", ErrKeysUnavailable, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set != nil && s.now().Sub(s.setAt) <= s.stale {
		if found := s.set.lookup(kid, alg); len(found) > 0 {
			return found, nil
		}
	}
	if s.lastErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, s.lastErr)
	}
	return nil, errors.New("no key for the token's kid and alg")
}

// start begins a fetch in its own goroutine, bounded by the fetch
// timeout and detached from the caller's cancellation (other callers may
// be waiting for it). It is called with s.mu held.
func (s *keySource) start(ctx context.Context, now time.Time) chan struct{} {
	done := make(chan struct{})
	s.inflight, s.lastTry = done, now
	jwksURL := s.jwksURL
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	go func() {
		defer cancel()
		set, discovered, err := s.fetch(fctx, jwksURL)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.lastErr = err
			if s.is.JWKSURL == "" {
				s.jwksURL = "" // discover again next time: the keys may have moved
			}
		} else {
			s.set, s.setAt, s.lastErr, s.jwksURL = set, s.now(), nil, discovered
		}
		s.inflight = nil
		close(done)
	}()
	return done
}

// fetch discovers the JWKS URL if needed and reads the key set.
func (s *keySource) fetch(ctx context.Context, jwksURL string) (*keySet, string, error) {
	if jwksURL == "" {
		jwksURL = s.is.JWKSURL
	}
	if jwksURL == "" {
		doc, err := s.f.discover(ctx, s.is)
		if err != nil {
			return nil, "", err
		}
		jwksURL = doc.jwksURI
		if s.endpoints != nil {
			s.endpoints.learn(doc) // the sign-in flow needs no fetch of its own
		}
	}
	body, err := s.f.getJSON(ctx, jwksURL, "application/jwk-set+json")
	if err != nil {
		return nil, "", fmt.Errorf("JWKS: %w", err)
	}
	set, err := parseKeySet(body, s.is.Algorithms, s.maxKeys)
	if err != nil {
		return nil, "", err
	}
	return set, jwksURL, nil
}

// kick starts a fetch unless one is running or one started less than
// minGap ago, and returns what to wait for (nil: nothing).
func (s *keySource) kick(ctx context.Context) chan struct{} {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil && (s.lastTry.IsZero() || now.Sub(s.lastTry) >= s.minGap) {
		return s.start(ctx, now)
	}
	return s.inflight
}

// await waits for wait (if not nil) and reports whether a key set fresh
// enough to use is at hand.
func (s *keySource) await(ctx context.Context, wait chan struct{}) error {
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set != nil && s.now().Sub(s.setAt) <= s.stale {
		return nil
	}
	if s.lastErr != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, s.lastErr)
	}
	return fmt.Errorf("%w: no key set fetched yet", ErrKeysUnavailable)
}
