package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/store"
)

// forge signs claims c with any algorithm, key and header, the way an
// attacker (or a different issuer) would.
type forgery struct {
	alg     jose.SignatureAlgorithm
	key     any
	kid     string // "" omits kid
	typ     string // "" omits typ
	extra   map[jose.HeaderKey]any
	embed   bool // embed the signing key as a jwk header
	payload any
}

func (f *fixture) forge(t *testing.T, g forgery) string {
	t.Helper()
	body, err := json.Marshal(g.payload)
	if err != nil {
		t.Fatal(err)
	}
	opts := &jose.SignerOptions{EmbedJWK: g.embed}
	if g.typ != "" {
		opts = opts.WithType(jose.ContentType(g.typ))
	}
	if g.kid != "" {
		opts = opts.WithHeader("kid", g.kid)
	}
	for k, v := range g.extra {
		opts = opts.WithHeader(k, v)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: g.alg, Key: g.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) claims(mut func(*claims)) claims {
	now := f.clock.Now().Unix()
	c := claims{Issuer: testIssuer, Audience: testAudience, Subject: f.id, ClientID: f.id, Scope: "system/Patient.rs",
		IssuedAt: now, NotBefore: now, Expiry: now + 300, TokenID: "jti-1"}
	if mut != nil {
		mut(&c)
	}
	return c
}

// TestVerifyRejects is catalogue case B1: every token this server did not
// issue, or that is no longer valid, is refused with ErrInvalidToken.
func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	kid := f.srv.KeyID()
	pub := f.key.Public().(ed25519.PublicKey)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ours := func(mut func(*claims)) forgery {
		return forgery{alg: jose.EdDSA, key: f.key, kid: kid, typ: "at+jwt", payload: f.claims(mut)}
	}
	with := func(g forgery, mut func(*forgery)) forgery { mut(&g); return g }
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	payload, _ := json.Marshal(f.claims(nil))

	tests := []struct {
		name  string
		token func() string
		ok    bool
	}{
		{"control: our own forge is accepted", func() string { return f.forge(t, ours(nil)) }, true},
		{"control: expired within skew", func() string {
			return f.forge(t, ours(func(c *claims) { c.IssuedAt -= 329; c.NotBefore -= 329; c.Expiry -= 329 }))
		}, true},
		{"control: nbf within skew", func() string {
			return f.forge(t, ours(func(c *claims) { c.IssuedAt += 29; c.NotBefore += 29; c.Expiry += 29 }))
		}, true},
		{"alg none", func() string {
			return b64(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
		}, false},
		{"HS256 keyed with the public key", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.alg, g.key = jose.HS256, []byte(pub) }))
		}, false},
		{"RS256", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.alg, g.key = jose.RS256, rsaKey }))
		}, false},
		{"ES256", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.alg, g.key = jose.ES256, ecKey }))
		}, false},
		{"unknown kid", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.kid = "other" })) }, false},
		{"no kid", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.kid = "" })) }, false},
		{"jku header", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.extra = map[jose.HeaderKey]any{"jku": "https://evil.example/jwks"} }))
		}, false},
		{"x5u header", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.extra = map[jose.HeaderKey]any{"x5u": "https://evil.example/cert"} }))
		}, false},
		{"jwk header with the attacker's key", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.key, g.embed, g.kid = otherKey, true, "" }))
		}, false},
		{"jwk header with our own key", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.embed, g.kid = true, "" })) }, false},
		{"crit header", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) { g.extra = map[jose.HeaderKey]any{"crit": []string{"exp"}} }))
		}, false},
		{"expired beyond skew", func() string {
			return f.forge(t, ours(func(c *claims) { c.IssuedAt -= 330; c.NotBefore -= 330; c.Expiry -= 330 }))
		}, false},
		{"future nbf beyond skew", func() string {
			return f.forge(t, ours(func(c *claims) { c.IssuedAt += 31; c.NotBefore += 31; c.Expiry += 31 }))
		}, false},
		{"nbf before iat", func() string { return f.forge(t, ours(func(c *claims) { c.NotBefore -= 10 })) }, false},
		{"lifetime above one hour", func() string { return f.forge(t, ours(func(c *claims) { c.Expiry = c.IssuedAt + 3601 })) }, false},
		{"wrong issuer", func() string { return f.forge(t, ours(func(c *claims) { c.Issuer = "https://evil.example" })) }, false},
		{"wrong audience", func() string { return f.forge(t, ours(func(c *claims) { c.Audience = "https://other.example/fhir" })) }, false},
		{"audience as array", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) {
				m := map[string]any{}
				b, _ := json.Marshal(g.payload)
				json.Unmarshal(b, &m)
				m["aud"] = []string{testAudience}
				g.payload = m
			}))
		}, false},
		{"missing jti", func() string { return f.forge(t, ours(func(c *claims) { c.TokenID = "" })) }, false},
		{"missing sub", func() string { return f.forge(t, ours(func(c *claims) { c.Subject = "" })) }, false},
		{"unknown client", func() string {
			return f.forge(t, ours(func(c *claims) { c.ClientID, c.Subject = "ward-gone", "ward-gone" }))
		}, false},
		{"scope no longer parses", func() string { return f.forge(t, ours(func(c *claims) { c.Scope = "system/Patient.sr" })) }, false},
		{"query-restricted scope", func() string {
			return f.forge(t, ours(func(c *claims) { c.Scope = "system/Observation.rs?category=laboratory" }))
		}, false},
		{"empty scope", func() string { return f.forge(t, ours(func(c *claims) { c.Scope = "" })) }, false},
		{"extra claim (id_token shaped)", func() string {
			return f.forge(t, with(ours(nil), func(g *forgery) {
				g.payload = map[string]any{"iss": testIssuer, "aud": testAudience, "sub": f.id, "client_id": f.id, "scope": "system/Patient.rs",
					"iat": f.clock.Now().Unix(), "nbf": f.clock.Now().Unix(), "exp": f.clock.Now().Unix() + 300, "jti": "j", "nonce": "n"}
			}))
		}, false},
		{"typ JWT (id_token)", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.typ = "JWT" })) }, false},
		{"missing typ", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.typ = "" })) }, false},
		{"another key, our header", func() string { return f.forge(t, with(ours(nil), func(g *forgery) { g.key = otherKey })) }, false},
		{"non-canonical signature encoding", func() string {
			tok := f.forge(t, ours(nil))
			last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[len(tok)-1])
			return tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
		}, false},
		{"trailing dot", func() string { return f.token + "." }, false},
		{"JSON serialization", func() string {
			jws, _ := jose.ParseSignedCompact(f.token, []jose.SignatureAlgorithm{jose.EdDSA})
			return jws.FullSerialize()
		}, false},
		{"empty", func() string { return "" }, false},
		{"garbage", func() string { return "not a token" }, false},
		{"three dots of nothing", func() string { return ".." }, false},
		{"oversized", func() string { return f.srv.keys.Load().header + "." + strings.Repeat("A", 8<<10) + ".AA" }, false},
		{"Bearer prefix left on", func() string { return "Bearer " + f.token }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.srv.Verify(context.Background(), tt.token())
			if tt.ok {
				if err != nil {
					t.Fatalf("valid token rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestVerifyBitFlips flips every bit of a valid token and expects rejection.
func TestVerifyBitFlips(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.srv.Verify(ctx, f.token); err != nil {
		t.Fatal(err)
	}
	b := []byte(f.token)
	for i := range len(b) * 8 {
		b[i/8] ^= 1 << (i % 8)
		if _, err := f.srv.Verify(ctx, string(b)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("token with bit %d flipped: err = %v", i, err)
		}
		b[i/8] ^= 1 << (i % 8)
	}
}

func TestVerifyClock(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.clock.Add(5*time.Minute + 29*time.Second)
	if _, err := f.srv.Verify(ctx, f.token); err != nil {
		t.Fatalf("token within skew after expiry rejected: %v", err)
	}
	f.clock.Add(time.Second)
	if _, err := f.srv.Verify(ctx, f.token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token accepted: %v", err)
	}
}

func TestVerifyRevokedClient(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// A second replica sharing the store and the signing key.
	replica, err := NewServer(Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}, f.store, f.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Verify(ctx, f.token); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.RevokeClient(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Verify(ctx, f.token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoking server still accepts the token: %v", err)
	}
	f.clock.Add(4 * time.Second)
	if _, err := replica.Verify(ctx, f.token); err != nil {
		t.Fatalf("replica rejected before its cache bound (documented staleness): %v", err)
	}
	f.clock.Add(time.Second)
	if _, err := replica.Verify(ctx, f.token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("replica accepts a revoked client's token after the cache bound: %v", err)
	}
}

func TestVerifyClientCache(t *testing.T) {
	ctx := context.Background()
	t.Run("cached", func(t *testing.T) {
		f := newFixture(t)
		before := f.store.readCount()
		for range 10 {
			if _, err := f.srv.Verify(ctx, f.token); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.store.readCount() - before; n != 0 {
			t.Fatalf("%d store reads for 10 verifications right after issuance, want 0", n)
		}
		f.clock.Add(5 * time.Second)
		f.srv.Verify(ctx, f.token)
		if n := f.store.readCount() - before; n != 1 {
			t.Fatalf("%d store reads after the TTL, want 1", n)
		}
	})
	t.Run("no cache", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.ClientCacheTTL = -1 })
		before := f.store.readCount()
		for range 3 {
			if _, err := f.srv.Verify(ctx, f.token); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.store.readCount() - before; n != 3 {
			t.Fatalf("%d store reads without a cache, want 3", n)
		}
		f.store.fail = store.ErrUnavailable
		_, err := f.srv.Verify(ctx, f.token)
		if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("store outage: %v, want ErrInvalidToken wrapping ErrUnavailable", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		c := newClientCache(time.Minute, 3)
		now := time.Now()
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
			c.put(id, true, now)
			if len(c.m) > 3 {
				t.Fatalf("cache holds %d entries, bound 3", len(c.m))
			}
		}
		if active, ok := c.get("g", now); !ok || !active {
			t.Fatal("newest entry missing")
		}
		if _, ok := c.get("g", now.Add(time.Minute)); ok {
			t.Fatal("entry served after its TTL")
		}
	})
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.token)
	f.Add("")
	f.Add("a.b.c")
	f.Add(fx.srv.keys.Load().header + ".e30.AA")
	h, p, _ := strings.Cut(fx.token, ".")
	p, _, _ = strings.Cut(p, ".")
	f.Add(h + "." + p + ".")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := fx.srv.Verify(context.Background(), tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("failure not wrapping ErrInvalidToken: %v", err)
			}
			return
		}
		if tok != fx.token || p.ClientID != fx.id {
			t.Fatalf("accepted a token the server did not issue: %q", tok)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.srv.Verify(ctx, f.token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBaseline is the floor BenchmarkVerify is judged against:
// the Ed25519 signature check alone over the same token.
func BenchmarkVerifyBaseline(b *testing.B) {
	f := newFixture(b)
	i := strings.LastIndexByte(f.token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(f.token[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	msg, pub := []byte(f.token[:i]), f.key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
