package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// testKeys are a service's key pairs, generated once: RSA generation is slow.
type testKeys struct {
	rsa     *rsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	ec256   *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	outside *ecdsa.PrivateKey // an attacker's key, never registered
}

var sharedKeys = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.outside, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	return k
})

// keySet returns the JWKS a service registers: rsa1 (no alg: RS384),
// ec1 (P-384, no alg: ES384), ec256 (alg ES256), ed1 (alg EdDSA).
func (k testKeys) keySet(t testing.TB) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsa.PublicKey, KeyID: "rsa1"},
		{Key: &k.ec384.PublicKey, KeyID: "ec1", Use: "sig"},
		{Key: &k.ec256.PublicKey, KeyID: "ec256", Algorithm: "ES256"},
		{Key: k.ed.Public(), KeyID: "ed1", Algorithm: "EdDSA"},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertionFixture is a server with one service registered by key set.
type assertionFixture struct {
	*fixture
	keys    testKeys
	svc     string // the service's client id
	tokenEP string
	n       atomic.Int64 // for unique jti
}

func newAssertionFixture(t testing.TB) *assertionFixture {
	t.Helper()
	f := &assertionFixture{fixture: newFixture(t), keys: sharedKeys(), tokenEP: testIssuer + "/oauth2/token"}
	c, secret, err := f.srv.CreateService(context.Background(), ServiceSpec{Name: "backend", Scopes: []string{"system/*.rs"}, JWKS: f.keys.keySet(t)})
	if err != nil {
		t.Fatal(err)
	}
	if secret.Reveal() != "" || c.SecretHash != nil {
		t.Fatal("a service registered by key set got a secret")
	}
	f.svc = c.ID
	return f
}

// claims returns valid assertion claims, changed by mut.
func (f *assertionFixture) claims(mut func(map[string]any)) map[string]any {
	now := f.clock.Now().Unix()
	c := map[string]any{
		"iss": f.svc, "sub": f.svc, "aud": f.tokenEP,
		"exp": now + 240, "iat": now, "jti": fmt.Sprintf("jti-%d", f.n.Add(1)),
	}
	if mut != nil {
		mut(c)
	}
	return c
}

// sign signs claims with key under alg, with kid and extra header values.
func sign(t testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rsaAssertion is a valid RS384 assertion with claims changed by mut.
func (f *assertionFixture) rsaAssertion(t testing.TB, mut func(map[string]any)) string {
	return sign(t, f.keys.rsa, jose.RS384, "rsa1", f.claims(mut), nil)
}

func (f *assertionFixture) request(assertion string) TokenRequest {
	return TokenRequest{GrantType: "client_credentials", ClientAssertionType: AssertionType, ClientAssertion: assertion}
}

// unsigned builds a compact JWS from a raw header and claims, with sig as
// its signature.
func unsigned(header string, claims map[string]any, sig []byte) string {
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

func TestAssertionAccepted(t *testing.T) {
	f := newAssertionFixture(t)
	ctx := t.Context()
	k := f.keys
	tests := []struct {
		name      string
		assertion string
		clientID  string
	}{
		{"RS384", f.rsaAssertion(t, nil), ""},
		{"RS384 with client_id", f.rsaAssertion(t, nil), f.svc},
		{"ES384", sign(t, k.ec384, jose.ES384, "ec1", f.claims(nil), nil), ""},
		{"ES256 on a key that says so", sign(t, k.ec256, jose.ES256, "ec256", f.claims(nil), nil), ""},
		{"EdDSA on a key that says so", sign(t, k.ed, jose.EdDSA, "ed1", f.claims(nil), nil), ""},
		{"aud array with the token endpoint", f.rsaAssertion(t, func(c map[string]any) { c["aud"] = []string{"https://other.example", f.tokenEP} }), ""},
		{"no iat, nbf now", f.rsaAssertion(t, func(c map[string]any) { delete(c, "iat"); c["nbf"] = f.clock.Now().Unix() }), ""},
		{"exp five minutes ahead", f.rsaAssertion(t, func(c map[string]any) { c["exp"] = f.clock.Now().Add(5 * time.Minute).Unix() }), ""},
		{"exp within the clock skew", f.rsaAssertion(t, func(c map[string]any) { c["exp"] = f.clock.Now().Add(-10 * time.Second).Unix() }), ""},
		{"typ absent", func() string {
			sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: k.ec384}, (&jose.SignerOptions{}).WithHeader("kid", "ec1"))
			obj, _ := sg.Sign(must(json.Marshal(f.claims(nil))))
			return must(obj.CompactSerialize())
		}(), ""},
		{"extra claims", f.rsaAssertion(t, func(c map[string]any) { c["purpose"] = "nightly sync" }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request(tt.assertion)
			req.ClientID = tt.clientID
			resp, err := f.srv.Token(ctx, req)
			if err != nil {
				t.Fatalf("Token = %v", err)
			}
			if resp.ClientID != f.svc || resp.Scope != "system/*.rs" {
				t.Fatalf("response client %q scope %q", resp.ClientID, resp.Scope)
			}
			p, err := f.srv.Verify(ctx, resp.AccessToken)
			if err != nil || p.ClientID != f.svc || p.Subject != f.svc || p.CertThumbprint != "" {
				t.Fatalf("Verify = %+v, %v", p, err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAssertionRejected(t *testing.T) {
	f := newAssertionFixture(t)
	ctx := t.Context()
	k := f.keys
	now := f.clock.Now()
	const authFailed = "client authentication failed"
	hmacWith := func(secret []byte) string {
		hdr := `{"alg":"HS256","kid":"rsa1","typ":"JWT"}`
		p := must(json.Marshal(f.claims(nil)))
		input := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + base64.RawURLEncoding.EncodeToString(p)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	rsaDER := must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))
	rsaJWK := must(json.Marshal(jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "rsa1"}))

	revoked, _, err := f.srv.CreateService(ctx, ServiceSpec{Name: "gone", Scopes: []string{"system/*.rs"}, JWKS: k.keySet(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.RevokeClient(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		assertion string
		mut       func(*TokenRequest)
		desc      string // the description, or a part of it
	}{
		{"expired", f.rsaAssertion(t, func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), nil, "expired"},
		{"exp too far ahead", f.rsaAssertion(t, func(c map[string]any) { c["exp"] = now.Add(6 * time.Minute).Unix() }), nil, "more than 5 minutes"},
		{"no exp", f.rsaAssertion(t, func(c map[string]any) { delete(c, "exp") }), nil, "exp is required"},
		{"future nbf", f.rsaAssertion(t, func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), nil, "not valid yet"},
		{"future iat", f.rsaAssertion(t, func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }), nil, "not valid yet"},
		{"aud the FHIR base", f.rsaAssertion(t, func(c map[string]any) { c["aud"] = testAudience }), nil, "aud must be the token endpoint"},
		{"aud the issuer", f.rsaAssertion(t, func(c map[string]any) { c["aud"] = testIssuer }), nil, "aud must be the token endpoint"},
		{"no aud", f.rsaAssertion(t, func(c map[string]any) { delete(c, "aud") }), nil, "aud must be the token endpoint"},
		{"wrong iss", f.rsaAssertion(t, func(c map[string]any) { c["iss"] = "ward-someoneelse" }), nil, "iss and sub"},
		{"wrong sub", f.rsaAssertion(t, func(c map[string]any) { c["sub"] = "ward-someoneelse" }), func(r *TokenRequest) { r.ClientID = f.svc }, "iss and sub"},
		{"client_id other than iss and sub", f.rsaAssertion(t, nil), func(r *TokenRequest) { r.ClientID = revoked.ID }, authFailed},
		{"no jti", f.rsaAssertion(t, func(c map[string]any) { delete(c, "jti") }), nil, "jti is required"},
		{"huge jti", f.rsaAssertion(t, func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }), nil, "jti is required"},
		{"jti with a NUL", f.rsaAssertion(t, func(c map[string]any) { c["jti"] = "a\x00b" }), nil, "jti is required"},
		{"unknown kid", sign(t, k.rsa, jose.RS384, "rsa2", f.claims(nil), nil), nil, authFailed},
		{"no kid", sign(t, k.rsa, jose.RS384, "", f.claims(nil), nil), nil, "kid"},
		{"kid of another key", sign(t, k.rsa, jose.RS384, "ec1", f.claims(nil), nil), nil, authFailed},
		{"RS256 on a key registered for RS384", sign(t, k.rsa, jose.RS256, "rsa1", f.claims(nil), nil), nil, authFailed},
		{"ES384 claimed for an ES256 key", unsigned(`{"alg":"ES384","kid":"ec256","typ":"JWT"}`, f.claims(nil), make([]byte, 96)), nil, authFailed},
		{"alg none", unsigned(`{"alg":"none","kid":"rsa1","typ":"JWT"}`, f.claims(nil), nil), nil, "alg must be one of"},
		{"alg none, empty signature part", strings.TrimSuffix(unsigned(`{"alg":"none","kid":"rsa1"}`, f.claims(nil), nil), "."), nil, ""},
		{"HS256 keyed with the RSA key's DER", hmacWith(rsaDER), nil, "alg must be one of"},
		{"HS256 keyed with the RSA key's JWK", hmacWith(rsaJWK), nil, "alg must be one of"},
		{"PS384", sign(t, k.rsa, jose.PS384, "rsa1", f.claims(nil), nil), nil, "alg must be one of"},
		{"an outside key under a registered kid", sign(t, k.outside, jose.ES384, "ec1", f.claims(nil), nil), nil, authFailed},
		{"embedded jwk of an outside key", func() string {
			sg := must(jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: k.outside}, (&jose.SignerOptions{EmbedJWK: true}).WithHeader("kid", "ec1")))
			return must(must(sg.Sign(must(json.Marshal(f.claims(nil))))).CompactSerialize())
		}(), nil, "keys are never taken from the assertion"},
		{"x5u header", sign(t, k.ec384, jose.ES384, "ec1", f.claims(nil), map[jose.HeaderKey]any{"x5u": "https://127.0.0.1:1/cert.pem"}), nil, "keys are never taken"},
		{"crit header", sign(t, k.ec384, jose.ES384, "ec1", f.claims(nil), map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), nil, "alg, kid and typ only"},
		{"typ at+jwt", sign(t, k.ec384, jose.ES384, "ec1", f.claims(nil), map[jose.HeaderKey]any{"typ": "at+jwt"}), nil, `typ must be "JWT"`},
		{"revoked client", sign(t, k.rsa, jose.RS384, "rsa1", f.claims(func(c map[string]any) { c["iss"], c["sub"] = revoked.ID, revoked.ID }), nil), nil, authFailed},
		{"unknown client", sign(t, k.rsa, jose.RS384, "rsa1", f.claims(func(c map[string]any) { c["iss"], c["sub"] = "ward-nobody", "ward-nobody" }), nil), nil, authFailed},
		{"client of a secret", f.rsaAssertion(t, func(c map[string]any) { c["iss"], c["sub"] = f.id, f.id }), nil, authFailed},
		{"other assertion type", f.rsaAssertion(t, nil), func(r *TokenRequest) {
			r.ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
		}, "client_assertion_type must be"},
		{"not a JWS", "not.a.jws", nil, ""},
		{"alg repeated, RS256 signed", rsaSignedRaw(t, k.rsa, crypto.SHA256, `{"alg":"RS256","kid":"rsa1","alg":"RS384"}`, f.claims(nil)), nil, ""},
		{"alg repeated, RS256 signed, other order", rsaSignedRaw(t, k.rsa, crypto.SHA256, `{"alg":"RS384","kid":"rsa1","alg":"RS256"}`, f.claims(nil)), nil, ""},
		{"too long", f.rsaAssertion(t, func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) }), nil, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request(tt.assertion)
			if tt.mut != nil {
				tt.mut(&req)
			}
			_, err := f.srv.Token(ctx, req)
			var oe *OAuthError
			if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.Status != http.StatusUnauthorized {
				t.Fatalf("Token = %v, want invalid_client (401)", err)
			}
			if !strings.Contains(oe.Description, tt.desc) {
				t.Fatalf("description %q, want it to say %q", oe.Description, tt.desc)
			}
		})
	}
}

// A jku header is refused before anything is fetched: no key ever comes
// from the assertion, even one the registered key signed.
func TestAssertionJKUNeverFetched(t *testing.T) {
	f := newAssertionFixture(t)
	var hits atomic.Int64
	outside := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.keys.outside.PublicKey, KeyID: "ec1", Algorithm: "ES384"}}})
		w.Write(b)
	}))
	defer outside.Close()
	jku := map[jose.HeaderKey]any{"jku": outside.URL + "/jwks"}
	for name, a := range map[string]string{
		"outside key":          sign(t, f.keys.outside, jose.ES384, "ec1", f.claims(nil), jku),
		"outside key, new kid": sign(t, f.keys.outside, jose.ES384, "evil", f.claims(nil), jku),
		"registered key":       sign(t, f.keys.ec384, jose.ES384, "ec1", f.claims(nil), jku),
	} {
		_, err := f.srv.Token(t.Context(), f.request(a))
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "invalid_client" {
			t.Errorf("%s with a jku header: %v, want invalid_client", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server fetched the jku URL %d times", n)
	}
}

// Every bit flipped in the header, claims or signature of a valid
// assertion makes it fail, and a failed assertion does not use up its jti.
func TestAssertionBitFlips(t *testing.T) {
	f := newAssertionFixture(t)
	ctx := t.Context()
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		kid string
		key any
	}{{jose.RS384, "rsa1", f.keys.rsa}, {jose.ES384, "ec1", f.keys.ec384}, {jose.EdDSA, "ed1", f.keys.ed}} {
		good := sign(t, tc.key, tc.alg, tc.kid, f.claims(nil), nil)
		parts := strings.Split(good, ".")
		accepted := 0
		for part := range parts {
			raw, err := base64.RawURLEncoding.DecodeString(parts[part])
			if err != nil {
				t.Fatal(err)
			}
			for i := range len(raw) * 8 {
				flipped := append([]byte(nil), raw...)
				flipped[i/8] ^= 1 << (i % 8)
				p := append([]string(nil), parts...)
				p[part] = base64.RawURLEncoding.EncodeToString(flipped)
				if _, err := f.srv.Token(ctx, f.request(strings.Join(p, "."))); err == nil {
					accepted++
				}
			}
		}
		if accepted != 0 {
			t.Errorf("%s: %d assertions with one bit flipped were accepted", tc.alg, accepted)
		}
		if _, err := f.srv.Token(ctx, f.request(good)); err != nil {
			t.Errorf("%s: the original assertion after its forgeries failed: %v", tc.alg, err)
		}
	}
}

// An assertion is accepted once: its replay fails, here and on a second
// server over the same store, until its jti could no longer be accepted.
func TestAssertionReplay(t *testing.T) {
	f := newAssertionFixture(t)
	ctx := t.Context()
	a := f.rsaAssertion(t, nil)
	if _, err := f.srv.Token(ctx, f.request(a)); err != nil {
		t.Fatal(err)
	}
	other, err := NewServer(Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}, f.store, f.key)
	if err != nil {
		t.Fatal(err)
	}
	for name, srv := range map[string]*Server{"same server": f.srv, "other server": other} {
		_, err := srv.Token(ctx, f.request(a))
		var oe *OAuthError
		if !errors.As(err, &oe) || !strings.Contains(oe.Description, "used before") {
			t.Errorf("replay on the %s: %v, want invalid_client, used before", name, err)
		} else if oe.Client != f.svc {
			t.Errorf("replay on the %s names client %q, want %q for the audit entry", name, oe.Client, f.svc)
		}
	}
	// A new assertion with the same jti is a replay too.
	var jti string
	_ = json.Unmarshal(must(base64.RawURLEncoding.DecodeString(strings.Split(a, ".")[1])), &struct {
		JTI *string `json:"jti"`
	}{&jti})
	again := f.rsaAssertion(t, func(c map[string]any) { c["jti"] = jti })
	if _, err := f.srv.Token(ctx, f.request(again)); err == nil {
		t.Error("a new assertion reusing a jti was accepted")
	}
	// Once it could no longer be accepted, its id is purged.
	f.clock.Add(6 * time.Minute)
	if _, err := f.srv.Token(ctx, f.request(f.rsaAssertion(t, nil))); err != nil {
		t.Fatal(err)
	}
	f.store.mu.Lock()
	_, kept := f.store.used[[2]string{f.svc, jti}]
	n := len(f.store.used)
	f.store.mu.Unlock()
	if kept || n != 1 {
		t.Errorf("after expiry the store holds %d assertion ids (old one kept: %v), want only the newest", n, kept)
	}
}

// A store outage while recording the jti is the server's error, not the
// client's, and issues no token.
func TestAssertionStoreOutage(t *testing.T) {
	f := newAssertionFixture(t)
	a := f.rsaAssertion(t, nil)
	f.store.fail = store.ErrUnavailable
	resp, err := f.srv.Token(t.Context(), f.request(a))
	var oe *OAuthError
	if !errors.Is(err, store.ErrUnavailable) || errors.As(err, &oe) || resp.AccessToken != "" {
		t.Fatalf("Token during an outage = %+v, %v; want a server error wrapping ErrUnavailable", resp, err)
	}
}

// A service registered by key set has no secret to authenticate with.
func TestKeyedServiceHasNoSecret(t *testing.T) {
	f := newAssertionFixture(t)
	for _, secret := range []string{"", f.secret.Reveal(), "x"} {
		if _, err := f.srv.Token(t.Context(), TokenRequest{GrantType: "client_credentials", ClientID: f.svc, ClientSecret: secret}); err == nil {
			t.Fatalf("a keyed service authenticated with secret %q", secret)
		}
	}
	if err := f.srv.CheckClientSecret(t.Context(), f.svc, ""); err == nil {
		t.Fatal("CheckClientSecret accepted an empty secret for a keyed service")
	}
}

func TestCreateServiceKeySets(t *testing.T) {
	f := newFixture(t)
	k := sharedKeys()
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	set := func(keys ...jose.JSONWebKey) []byte { return must(json.Marshal(jose.JSONWebKeySet{Keys: keys})) }
	pub := func(key any, kid, alg string) jose.JSONWebKey {
		return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg}
	}
	cert := selfSigned(t, "svc")
	bad := []struct {
		name string
		spec ServiceSpec
		want string
	}{
		{"private RSA key", ServiceSpec{JWKS: set(pub(k.rsa, "r", ""))}, "not a public key"},
		{"private EC key", ServiceSpec{JWKS: set(pub(k.ec384, "e", ""))}, "not a public key"},
		{"symmetric key", ServiceSpec{JWKS: []byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)}, "not a public key"},
		{"no kid", ServiceSpec{JWKS: set(pub(&k.rsa.PublicKey, "", ""))}, "kid"},
		{"duplicate kid", ServiceSpec{JWKS: set(pub(&k.rsa.PublicKey, "a", ""), pub(&k.ec384.PublicKey, "a", ""))}, "twice"},
		{"RSA 1024", ServiceSpec{JWKS: set(pub(&small.PublicKey, "r", ""))}, "1024 bits"},
		{"RSA with HS256", ServiceSpec{JWKS: set(pub(&k.rsa.PublicKey, "r", "HS256"))}, "RS384 or RS256"},
		{"RSA with PS256", ServiceSpec{JWKS: set(pub(&k.rsa.PublicKey, "r", "PS256"))}, "RS384 or RS256"},
		{"P-256 without alg", ServiceSpec{JWKS: set(pub(&k.ec256.PublicKey, "e", ""))}, "ES256"},
		{"P-384 with ES256", ServiceSpec{JWKS: set(pub(&k.ec384.PublicKey, "e", "ES256"))}, "want ES384"},
		{"Ed25519 without alg", ServiceSpec{JWKS: set(pub(k.ed.Public(), "d", ""))}, "EdDSA"},
		{"encryption key", ServiceSpec{JWKS: set(jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "r", Use: "enc"})}, "sig"},
		{"empty set", ServiceSpec{JWKS: []byte(`{"keys":[]}`)}, "1 to 16 keys"},
		{"not a set", ServiceSpec{JWKS: []byte(`[{"kty":"EC"}]`)}, "JWK Set"},
		{"unknown member", ServiceSpec{JWKS: []byte(`{"keys":[],"jku":"https://x"}`)}, "JWK Set"},
		{"trailing data", ServiceSpec{JWKS: append(set(pub(&k.rsa.PublicKey, "r", "")), "{}"...)}, "trailing"},
		{"keys and certificates", ServiceSpec{JWKS: set(pub(&k.rsa.PublicKey, "r", "")), Certs: []*x509.Certificate{cert}}, "not both"},
		{"empty certificate list", ServiceSpec{Certs: []*x509.Certificate{}}, "1 to 8"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Name, tt.spec.Scopes = "svc", []string{"system/*.rs"}
			_, _, err := f.srv.CreateService(t.Context(), tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CreateService = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	if cs, _ := f.srv.ListClients(t.Context()); len(cs) != 1 {
		t.Fatalf("refused services were stored: %d clients", len(cs))
	}

	// What is stored: the public keys with kid, use sig and one alg; no
	// certificate chain or URL the operator's file carried.
	point := must(k.ec384.PublicKey.Bytes()) // 0x04 || x || y
	withExtras := []byte(fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-384","kid":"e1","x":%q,"y":%q,"x5u":"https://x.example/c.pem"}]}`,
		base64.RawURLEncoding.EncodeToString(point[1:49]), base64.RawURLEncoding.EncodeToString(point[49:])))
	c, _, err := f.srv.CreateService(t.Context(), ServiceSpec{Name: "svc", Scopes: []string{"system/*.rs"}, JWKS: withExtras})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := f.store.Client(t.Context(), c.ID)
	var got struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(stored.JWKS, &got); err != nil || len(got.Keys) != 1 {
		t.Fatalf("stored key set %s: %v", stored.JWKS, err)
	}
	for _, name := range []string{"x5u", "x5c", "d"} {
		if _, ok := got.Keys[0][name]; ok {
			t.Errorf("stored key keeps %s: %s", name, stored.JWKS)
		}
	}
	if got.Keys[0]["alg"] != "ES384" || got.Keys[0]["kid"] != "e1" || got.Keys[0]["use"] != "sig" {
		t.Errorf("stored key %v, want alg ES384, kid e1, use sig", got.Keys[0])
	}
	want := jose.JSONWebKey{Key: &k.ec384.PublicKey}
	var back jose.JSONWebKey
	if err := back.UnmarshalJSON(must(json.Marshal(got.Keys[0]))); err != nil ||
		!bytes.Equal(must(back.Thumbprint(crypto.SHA256)), must(want.Thumbprint(crypto.SHA256))) {
		t.Errorf("stored key is not the registered public key: %v", err)
	}
}

// Two replicas over one database accept an assertion once between them:
// the jti is recorded in the database, not in either process.
func TestAssertionReplayAcrossReplicas(t *testing.T) {
	backends := map[string]func(t *testing.T) (store.Clients, store.Clients){
		"sqlite": func(t *testing.T) (store.Clients, store.Clients) {
			path := filepath.Join(t.TempDir(), "ward.db")
			a, errA := sqlite.Open(t.Context(), path)
			b, errB := sqlite.Open(t.Context(), path)
			return storetest.Opened(t, a, errA), storetest.Opened(t, b, errB)
		},
		"postgres": func(t *testing.T) (store.Clients, store.Clients) {
			schema := storetest.FreshSchema(t, "auth_")
			a, errA := postgres.Open(t.Context(), schema.URL)
			b, errB := postgres.Open(t.Context(), schema.URL)
			return storetest.Opened(t, a, errA), storetest.Opened(t, b, errB)
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			dbA, dbB := open(t)
			f := &assertionFixture{fixture: &fixture{clock: &clock{t: time.Now().UTC()}}, keys: sharedKeys(), tokenEP: testIssuer + "/oauth2/token"}
			_, key, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}
			a, errA := NewServer(cfg, dbA, key)
			b, errB := NewServer(cfg, dbB, key)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			c, _, err := a.CreateService(t.Context(), ServiceSpec{Name: "backend", Scopes: []string{"system/*.rs"}, JWKS: f.keys.keySet(t)})
			if err != nil {
				t.Fatal(err)
			}
			f.svc = c.ID
			// Sequentially: used on a, replayed on b.
			first := f.rsaAssertion(t, nil)
			if _, err := a.Token(t.Context(), f.request(first)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Token(t.Context(), f.request(first)); err == nil {
				t.Fatal("replica b accepted an assertion replica a had accepted")
			}
			// Concurrently: one assertion presented to both replicas at once.
			for round := range 5 {
				as := sign(t, f.keys.ec384, jose.ES384, "ec1", f.claims(nil), nil)
				var wins atomic.Int64
				var wg sync.WaitGroup
				for i := range 6 {
					srv := a
					if i%2 == 1 {
						srv = b
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := srv.Token(context.Background(), f.request(as)); err == nil {
							wins.Add(1)
						}
					}()
				}
				wg.Wait()
				if n := wins.Load(); n != 1 {
					t.Fatalf("round %d: %d token requests with one assertion succeeded, want exactly 1", round, n)
				}
			}
		})
	}
}

// The parsed key set cache stays bounded and answers by content: two sets
// that differ only in a kid are two entries.
func TestKeySetCacheBounded(t *testing.T) {
	k := sharedKeys()
	var c keySetCache
	for i := range maxCachedKeySets + 10 {
		raw := must(json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.ec384.PublicKey, KeyID: fmt.Sprint("k", i)}}}))
		keys, err := c.parse(raw)
		if err != nil || len(keys) != 1 || keys[0].kid != fmt.Sprint("k", i) {
			t.Fatalf("parse #%d = %+v, %v", i, keys, err)
		}
	}
	if n := len(c.m); n > maxCachedKeySets {
		t.Fatalf("cache holds %d key sets, bound %d", n, maxCachedKeySets)
	}
	if _, err := c.parse([]byte(`{"keys":[{"kty":"oct","kid":"s","k":"AAAA"}]}`)); err == nil {
		t.Fatal("the cache accepted a set parseKeySet refuses")
	}
}

// FuzzParseKeySet: no input panics; an accepted set holds public keys
// only and survives its canonical form unchanged.
func FuzzParseKeySet(f *testing.F) {
	f.Add(sharedKeys().keySet(f))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"s","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"AA","y":"AA","alg":"ES256"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		keys, err := parseKeySet(raw)
		if err != nil {
			return
		}
		canon, err := canonicalKeySet(keys)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseKeySet(canon)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("canonical form %s does not parse back: %v", canon, err)
		}
		for i := range keys {
			if again[i].kid != keys[i].kid || again[i].alg != keys[i].alg {
				t.Fatalf("key %d changed in its canonical form: %+v -> %+v", i, keys[i], again[i])
			}
			switch keys[i].key.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("accepted a %T", keys[i].key)
			}
		}
	})
}

// FuzzClientAssertion: no assertion but the valid seeds authenticates,
// and every refusal is a client error. (Fuzzing workers build their own
// fixture, in which the seeds name an unknown client: there, nothing may
// authenticate.)
func FuzzClientAssertion(f *testing.F) {
	fx := newAssertionFixture(f)
	valid := map[string]bool{fx.rsaAssertion(f, nil): true, sign(f, fx.keys.ec384, jose.ES384, "ec1", fx.claims(nil), nil): true}
	for a := range valid {
		f.Add(a)
	}
	f.Add(unsigned(`{"alg":"none","kid":"rsa1"}`, fx.claims(nil), nil))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, assertion string) {
		_, err := fx.srv.Token(context.Background(), fx.request(assertion))
		if err == nil {
			if valid[assertion] {
				return
			}
			t.Fatalf("an assertion that was never signed by the client authenticated: %q", assertion)
		}
		var oe *OAuthError
		if !errors.As(err, &oe) || (oe.Code != "invalid_client" && oe.Code != "invalid_request") {
			t.Fatalf("refusal %v is not a client error", err)
		}
	})
}

// rsaSignedRaw signs an exact header text and claims with PKCS #1 v1.5
// over hash, as a client with its own JOSE code might.
func rsaSignedRaw(t testing.TB, key *rsa.PrivateKey, hash crypto.Hash, header string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(must(json.Marshal(claims)))
	h := hash.New()
	h.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}
