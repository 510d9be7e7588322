package federation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// clock is a fake clock safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// signingKey is a private key an IdP signs with and the kid it publishes.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// idp is an OpenID provider on an httptest TLS server: discovery at the
// usual place, its key set at /jwks, and counters of both.
type idp struct {
	t   *testing.T
	srv *httptest.Server
	url string

	mu        sync.Mutex
	published []jose.JSONWebKey
	jwks      http.HandlerFunc // replaces the key set handler when set
	disco     http.HandlerFunc // replaces the discovery handler when set

	jwksHits  atomic.Int64
	discoHits atomic.Int64
}

func newIDP(t *testing.T, keys ...signingKey) *idp {
	t.Helper()
	p := &idp{t: t}
	for _, k := range keys {
		p.published = append(p.published, k.public())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoHits.Add(1)
		p.mu.Lock()
		h := p.disco
		p.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		writeJSON(w, map[string]any{"issuer": p.url, "jwks_uri": p.url + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		p.mu.Lock()
		h, set := p.jwks, jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), p.published...)}
		p.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		writeJSON(w, set)
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	p.url = p.srv.URL
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// publish replaces the key set the IdP serves.
func (p *idp) publish(keys ...signingKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published = nil
	for _, k := range keys {
		p.published = append(p.published, k.public())
	}
}

// serveJWKS makes the key set endpoint misbehave with h (nil: behave).
func (p *idp) serveJWKS(h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwks = h
}

func (p *idp) serveDiscovery(h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disco = h
}

func newES256(t *testing.T, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: jose.ES256, key: k}
}

func newEdDSA(t *testing.T, kid string) signingKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: jose.EdDSA, key: k}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// newRS256 returns a signing key over one RSA key shared by the tests
// (generating RSA keys is slow).
func newRS256(t *testing.T, kid string) signingKey {
	t.Helper()
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return signingKey{kid: kid, alg: jose.RS256, key: rsaKey}
}

// sign makes a compact JWS of claims with key k and the extra protected
// header members hdr (typ among them).
func sign(t *testing.T, k signingKey, hdr map[jose.HeaderKey]any, claims any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	opts := &jose.SignerOptions{}
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	for name, v := range hdr {
		opts = opts.WithHeader(name, v)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sg.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const (
	testAudience = "https://ward.test/fhir"
	testClientID = "ward-at-idp"
)

// fixture is two IdPs, A (keys a1 ES256, a-rsa RS256, a-ed EdDSA) and B
// (key b1), a fake clock, and a Verifier trusting both.
type fixture struct {
	t     *testing.T
	clock *clock
	a, b  *idp
	a1    signingKey
	aRSA  signingKey
	aEd   signingKey
	b1    signingKey
	pool  *x509.CertPool
	cfg   Config
	v     *Verifier
}

func newFixture(t *testing.T, mut ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{now: time.Unix(1_800_000_000, 0)}}
	f.a1, f.aRSA, f.aEd, f.b1 = newES256(t, "a1"), newRS256(t, "a-rsa"), newEdDSA(t, "a-ed"), newES256(t, "b1")
	f.a = newIDP(t, f.a1, f.aRSA, f.aEd)
	f.b = newIDP(t, f.b1)
	f.pool = x509.NewCertPool()
	f.pool.AddCert(f.a.srv.Certificate())
	f.pool.AddCert(f.b.srv.Certificate())
	f.cfg = Config{
		RootCAs: f.pool,
		Now:     f.clock.Now,
		Issuers: []Issuer{f.issuerConfig(f.a, "idp-a"), f.issuerConfig(f.b, "idp-b")},
	}
	for _, m := range mut {
		m(&f.cfg)
	}
	v, err := New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func (f *fixture) issuerConfig(p *idp, name string) Issuer {
	return Issuer{
		Name:          name,
		URL:           p.url,
		Audiences:     []string{testAudience},
		ClientID:      testClientID,
		FHIRUserClaim: "fhirUser",
		AllowedScopes: []string{"user/*.rs", "patient/Observation.r"},
		Roles: []RoleRule{
			{Claim: "groups", Value: "ward-admins", Role: "admin"},
			{Claim: "/realm_access/roles", Value: "nurse", Role: "nurse"},
			{Claim: "groups", Value: "clinicians", Role: "practitioner"},
		},
		MFAACRs:       []string{"urn:example:loa:high"},
		AllowLoopback: true,
	}
}

// claims returns a valid access token's claims from p, changed by mut.
func (f *fixture) claims(p *idp, mut func(map[string]any)) map[string]any {
	now := f.clock.Now().Unix()
	c := map[string]any{
		"iss": p.url, "sub": "user-1", "aud": testAudience, "client_id": "app-1",
		"iat": now, "nbf": now, "exp": now + 300, "auth_time": now - 60, "jti": "jti-1",
		"scope":    "openid profile patient/*.rs user/Observation.cruds system/Patient.rs api://other/.default",
		"groups":   []string{"staff", "clinicians"},
		"fhirUser": "Practitioner/p1",
	}
	if mut != nil {
		mut(c)
	}
	return c
}

// token signs a valid access token from A with a1, changed by mut.
func (f *fixture) token(mut func(map[string]any)) string {
	return sign(f.t, f.a1, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, mut))
}
