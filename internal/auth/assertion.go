package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/wardhealth/ward/internal/store"
)

// AssertionType is the client_assertion_type of a client that
// authenticates with a signed JWT (RFC 7523 section 2.2; private_key_jwt,
// SMART Backend Services).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	maxAssertionLen = 8 << 10
	// maxAssertionTTL is how far ahead of now an assertion's exp may be
	// (SMART Backend Services: no more than five minutes).
	maxAssertionTTL = 5 * time.Minute
	maxKeySetLen    = 64 << 10
	maxClientKeys   = 16
	maxKeyIDLen     = 128
	maxJTILen       = 256
	// purgeEvery is how often, at most, a server deletes expired
	// assertion ids from the store.
	purgeEvery = time.Minute
)

// AssertionAlgorithms returns the JWS algorithms a client assertion may be
// signed with: RS384 and ES384 (SMART's), and RS256, ES256 and EdDSA for a
// key registered with that alg. Never none, never HMAC.
func AssertionAlgorithms() []string {
	out := make([]string, 0, len(assertionAlgs))
	for _, a := range assertionAlgs {
		out = append(out, string(a))
	}
	return out
}

var assertionAlgs = [...]jose.SignatureAlgorithm{jose.RS384, jose.ES384, jose.RS256, jose.ES256, jose.EdDSA}

// clientKey is one verified public key of a client and the one algorithm
// it may sign with.
type clientKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// parseKeySet reads a client's JWK Set strictly: public signing keys only,
// each with a unique kid and one algorithm. A key without alg signs with
// SMART's algorithm for its type (RSA: RS384, EC P-384: ES384); an EC P-256
// or Ed25519 key must say ES256 or EdDSA. RSA keys have 2048 to 8192 bits.
func parseKeySet(raw []byte) ([]clientKey, error) {
	if len(raw) == 0 || len(raw) > maxKeySetLen {
		return nil, fmt.Errorf("auth: key set: want 1 to %d bytes of JSON", maxKeySetLen)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("auth: key set: want a JWK Set, {\"keys\":[...]}: %w", err)
	}
	if dec.More() {
		return nil, errors.New("auth: key set: trailing data")
	}
	if len(set.Keys) == 0 || len(set.Keys) > maxClientKeys {
		return nil, fmt.Errorf("auth: key set: want 1 to %d keys", maxClientKeys)
	}
	out := make([]clientKey, 0, len(set.Keys))
	for i, rk := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(rk); err != nil {
			return nil, fmt.Errorf("auth: key set: key %d: %w", i, err)
		}
		ck, err := checkClientKey(k)
		if err != nil {
			return nil, fmt.Errorf("auth: key set: key %d (kid %q): %w", i, k.KeyID, err)
		}
		for _, o := range out {
			if o.kid == ck.kid {
				return nil, fmt.Errorf("auth: key set: kid %q appears twice", ck.kid)
			}
		}
		out = append(out, ck)
	}
	return out, nil
}

func checkClientKey(k jose.JSONWebKey) (clientKey, error) {
	if !k.IsPublic() {
		return clientKey{}, errors.New("not a public key: register public keys only, never a private or symmetric key")
	}
	if !k.Valid() {
		return clientKey{}, errors.New("incomplete key")
	}
	if k.KeyID == "" || len(k.KeyID) > maxKeyIDLen {
		return clientKey{}, fmt.Errorf("kid must be 1 to %d characters", maxKeyIDLen)
	}
	if k.Use != "" && k.Use != "sig" {
		return clientKey{}, errors.New(`use must be "sig"`)
	}
	alg := jose.SignatureAlgorithm(k.Algorithm)
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if n := key.N.BitLen(); n < 2048 || n > 8192 {
			return clientKey{}, fmt.Errorf("RSA key of %d bits; want 2048 to 8192", n)
		}
		if alg == "" {
			alg = jose.RS384
		}
		if alg != jose.RS384 && alg != jose.RS256 {
			return clientKey{}, fmt.Errorf("alg %q: an RSA key signs with RS384 or RS256", alg)
		}
	case *ecdsa.PublicKey:
		switch {
		case key.Curve == elliptic.P384() && (alg == "" || alg == jose.ES384):
			alg = jose.ES384
		case key.Curve == elliptic.P256() && alg == jose.ES256:
		case key.Curve == elliptic.P256():
			return clientKey{}, errors.New(`an EC P-256 key must say "alg":"ES256"`)
		default:
			return clientKey{}, fmt.Errorf("alg %q on curve %s: want ES384 on P-384 or ES256 on P-256", alg, key.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg != jose.EdDSA {
			return clientKey{}, errors.New(`an Ed25519 key must say "alg":"EdDSA"`)
		}
	default:
		return clientKey{}, fmt.Errorf("key type %T is not accepted", k.Key)
	}
	return clientKey{kid: k.KeyID, alg: alg, key: k.Key}, nil
}

// canonicalKeySet returns the key set as stored: each key's public part,
// kid, use sig and its one algorithm, and nothing else (no certificates,
// no URLs).
func canonicalKeySet(keys []clientKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("auth: encode key set: %w", err)
	}
	return b, nil
}

// allowedAssertionHeader lists the protected header parameters an
// assertion may carry. Keys named by the token (jwk, jku, x5u, x5c) are
// refused, not merely ignored, and so is crit.
var allowedAssertionHeader = map[string]bool{"alg": true, "kid": true, "typ": true, "x5t": true, "x5t#S256": true}

// assertionHeader checks an assertion's protected header before anything
// is looked up: only the parameters above, an allowed alg, a kid, and typ
// JWT if any. Its errors are safe to show the client.
func assertionHeader(assertion string) (alg jose.SignatureAlgorithm, kid string, err error) {
	enc, _, _ := strings.Cut(assertion, ".")
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", "", invalidClient("client_assertion is not a compact JWS")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", "", invalidClient("client_assertion header is not a JSON object")
	}
	for name := range h {
		if !allowedAssertionHeader[name] {
			return "", "", invalidClient("client_assertion header may carry alg, kid and typ only; keys are never taken from the assertion")
		}
	}
	var a, k, typ string
	for name, dst := range map[string]*string{"alg": &a, "kid": &k, "typ": &typ} {
		if h[name] != nil && json.Unmarshal(h[name], dst) != nil {
			return "", "", invalidClient("client_assertion header: alg, kid and typ must be strings")
		}
	}
	allowed := false
	for _, x := range assertionAlgs {
		allowed = allowed || string(x) == a
	}
	switch {
	case !allowed:
		return "", "", invalidClient("client_assertion alg must be one of " + strings.Join(AssertionAlgorithms(), ", "))
	case k == "":
		return "", "", invalidClient("client_assertion header must name the signing key (kid)")
	case h["typ"] != nil && !strings.EqualFold(typ, "JWT"):
		return "", "", invalidClient(`client_assertion typ must be "JWT"`)
	}
	return jose.SignatureAlgorithm(a), k, nil
}

// authenticateAssertion authenticates a client by a signed JWT (RFC 7523
// section 3, SMART Backend Services). Until the signature has verified,
// every failure that involves the client (unknown, revoked, no key set,
// unknown kid, wrong alg for the key, bad signature) gets one description;
// after it, the description says what is wrong with the claims. A
// failure after the client was found names it (OAuthError.Client).
func (s *Server) authenticateAssertion(ctx context.Context, req TokenRequest) (_ store.Client, err error) {
	fail := invalidClient("client authentication failed")
	var found string
	defer func() {
		if err != nil && found != "" {
			err = naming(err, found)
		}
	}()
	switch {
	case req.ClientAssertionType != AssertionType:
		return store.Client{}, invalidClient("client_assertion_type must be " + AssertionType)
	case req.ClientAssertion == "":
		return store.Client{}, invalidRequest("client_assertion is required with client_assertion_type")
	case len(req.ClientAssertion) > maxAssertionLen:
		return store.Client{}, invalidClient("client_assertion too long")
	}
	alg, kid, err := assertionHeader(req.ClientAssertion)
	if err != nil {
		return store.Client{}, err
	}
	jws, err := jose.ParseSignedCompact(req.ClientAssertion, assertionAlgs[:])
	if err != nil || len(jws.Signatures) != 1 {
		return store.Client{}, invalidClient("client_assertion is not a compact JWS")
	}
	// go-jose read the same header: it must agree on alg and kid (a
	// header with a repeated member could be read two ways).
	if h := jws.Signatures[0].Protected; h.Algorithm != string(alg) || h.KeyID != kid || h.JSONWebKey != nil {
		return store.Client{}, invalidClient("client_assertion header is ambiguous")
	}
	// The client is named by client_id when sent, else by the (not yet
	// verified) sub; either way iss and sub must name it once verified.
	id := req.ClientID
	if id == "" {
		var unverified jwt.Claims
		if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified) != nil {
			return store.Client{}, invalidClient("client_assertion claims are not a JSON object")
		}
		id = unverified.Subject
	}
	if !validClientID(id) {
		return store.Client{}, fail
	}
	c, err := s.clients.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, fail
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("auth: load client: %w", err)
	}
	found = c.ID
	if s.cache != nil {
		s.cache.put(c.ID, c.Active(), s.cfg.Now())
	}
	if !c.Active() || c.JWKS == nil {
		return store.Client{}, fail
	}
	keys, err := s.keySets.parse(c.JWKS)
	if err != nil {
		return store.Client{}, fmt.Errorf("auth: stored key set of client %s: %w", c.ID, err)
	}
	var key *clientKey
	for i := range keys {
		if keys[i].kid == kid {
			key = &keys[i]
		}
	}
	if key == nil || key.alg != alg {
		return store.Client{}, fail
	}
	body, err := jws.Verify(key.key)
	if err != nil {
		return store.Client{}, fail
	}
	var cl jwt.Claims
	if err := json.Unmarshal(body, &cl); err != nil {
		return store.Client{}, invalidClient("client_assertion claims are malformed")
	}
	until, err := s.checkAssertionClaims(cl, c.ID)
	if err != nil {
		return store.Client{}, err
	}
	if err := s.clients.UseAssertionID(ctx, c.ID, cl.ID, until); errors.Is(err, store.ErrConflict) {
		return store.Client{}, invalidClient("client_assertion was used before: every assertion needs a new jti")
	} else if err != nil {
		return store.Client{}, fmt.Errorf("auth: record assertion id: %w", err)
	}
	s.purgeAssertionIDs(ctx)
	return c, nil
}

// checkAssertionClaims checks a verified assertion's claims and returns
// until when its jti must be remembered: the last moment it could be
// accepted.
func (s *Server) checkAssertionClaims(cl jwt.Claims, clientID string) (time.Time, error) {
	now := s.cfg.Now()
	switch {
	case cl.Issuer != clientID || cl.Subject != clientID:
		return time.Time{}, invalidClient("client_assertion iss and sub must both be the client id")
	case !cl.Audience.Contains(s.cfg.TokenEndpoint):
		return time.Time{}, invalidClient("client_assertion aud must be the token endpoint, " + s.cfg.TokenEndpoint)
	case cl.Expiry == nil:
		return time.Time{}, invalidClient("client_assertion exp is required")
	case cl.ID == "" || len(cl.ID) > maxJTILen || strings.ContainsFunc(cl.ID, unicode.IsControl):
		return time.Time{}, invalidClient(fmt.Sprintf("client_assertion jti is required, at most %d characters without control characters", maxJTILen))
	}
	exp := cl.Expiry.Time()
	switch {
	case !now.Before(exp.Add(clockSkew)):
		return time.Time{}, invalidClient("client_assertion expired")
	case exp.After(now.Add(maxAssertionTTL + clockSkew)):
		return time.Time{}, invalidClient("client_assertion exp is more than 5 minutes ahead")
	case cl.NotBefore != nil && cl.NotBefore.Time().After(now.Add(clockSkew)),
		cl.IssuedAt != nil && cl.IssuedAt.Time().After(now.Add(clockSkew)):
		return time.Time{}, invalidClient("client_assertion is not valid yet (nbf or iat in the future)")
	}
	return exp.Add(clockSkew), nil
}

// purgeAssertionIDs deletes expired assertion ids, at most once per
// purgeEvery per server. A failure is not the client's: the ids are
// deleted on a later request.
func (s *Server) purgeAssertionIDs(ctx context.Context) {
	now := s.cfg.Now()
	last := s.lastPurge.Load()
	if now.UnixNano()-last < int64(purgeEvery) || !s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_ = s.clients.DeleteAssertionIDs(ctx, now)
}

// maxCachedKeySets bounds the parsed key set cache.
const maxCachedKeySets = 1024

// keySetCache remembers parsed key sets by the SHA-256 of their stored
// JSON, so that a client's assertions cost a signature check, not a parse
// of every key. The client row is still read on every request: a revoked
// client or a changed key set takes effect at once.
type keySetCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte][]clientKey
}

func (c *keySetCache) parse(raw []byte) ([]clientKey, error) {
	key := sha256.Sum256(raw)
	c.mu.Lock()
	keys, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return keys, nil
	}
	keys, err := parseKeySet(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte][]clientKey)
	}
	for k := range c.m {
		if len(c.m) < maxCachedKeySets {
			break
		}
		delete(c.m, k) // map order: an arbitrary victim
	}
	c.m[key] = keys
	return keys, nil
}
