package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestUnknownKidRefetchIsRateLimited: a flood of tokens with kids the IdP
// never published makes Ward fetch its keys at most once per
// MinRefetchInterval, however many callers ask.
func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	stranger := newES256(t, "stranger")
	unknown := sign(t, stranger, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, nil))
	if _, err := f.v.Verify(ctx, unknown); !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("unknown kid: %v", err)
	}
	if n := f.a.jwksHits.Load(); n != 1 {
		t.Fatalf("unknown kid right after a fetch refetched: %d fetches", n)
	}

	f.clock.Advance(defaultMinRefetch)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Random-looking kids, all unknown.
			k := signingKey{kid: "kid-" + strconv.Itoa(i), alg: jose.ES256, key: stranger.key}
			if _, err := f.v.Verify(ctx, sign(t, k, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, nil))); err == nil {
				t.Error("token with an unknown kid verified")
			}
		}()
	}
	wg.Wait()
	if n := f.a.jwksHits.Load(); n != 2 {
		t.Errorf("100 concurrent unknown kids caused %d fetches, want exactly 1 more", n-1)
	}
	f.clock.Advance(defaultMinRefetch / 2)
	_, _ = f.v.Verify(ctx, unknown)
	if n := f.a.jwksHits.Load(); n != 2 {
		t.Errorf("refetched within the interval: %d fetches", n)
	}
	// Known keys keep working throughout.
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Errorf("valid token after the flood: %v", err)
	}
}

// TestColdStartCoalesces: many first callers share one discovery and one
// key set fetch.
func TestColdStartCoalesces(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.v.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d, j := f.a.discoHits.Load(), f.a.jwksHits.Load(); d != 1 || j != 1 {
		t.Errorf("100 first callers: %d discovery and %d key set fetches, want 1 and 1", d, j)
	}
}

// TestKeyRotation: a key the IdP starts using is picked up by the refetch
// its unknown kid triggers; a key it withdraws stops working once the set
// is refreshed.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	a2 := newES256(t, "a2")
	f.a.publish(a2) // a1 withdrawn, a2 new
	newTok := func() string { return sign(t, a2, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, nil)) }
	if _, err := f.v.Verify(ctx, newTok()); err == nil {
		t.Fatal("a2 accepted before any refetch was allowed")
	}
	f.clock.Advance(defaultMinRefetch)
	if _, err := f.v.Verify(ctx, newTok()); err != nil {
		t.Fatalf("a2 after the refetch: %v", err)
	}
	if _, err := f.v.Verify(ctx, f.token(nil)); err == nil {
		t.Error("withdrawn key a1 still accepted after the refetch")
	}
}

// TestBackgroundRefresh: a set older than RefreshInterval keeps serving
// while one refresh runs behind it.
func TestBackgroundRefresh(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(defaultRefresh + time.Second)
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.a.jwksHits.Load() == 2 })
	if err := f.v.order[0].keys.await(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLastGoodKeysUntilStale: when the IdP goes down after a good fetch,
// its keys keep verifying until MaxStaleness, then its tokens fail closed;
// when it comes back, they work again.
func TestLastGoodKeysUntilStale(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	f.a.serveJWKS(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	for _, step := range []time.Duration{defaultRefresh + time.Second, time.Hour, 20 * time.Hour} {
		f.clock.Advance(step)
		if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
			t.Fatalf("within staleness bound: %v", err)
		}
		waitIdle(f.v.order[0].keys)
	}
	if f.a.jwksHits.Load() < 2 {
		t.Fatal("no refresh was attempted while the IdP was down")
	}
	f.clock.Advance(defaultMaxStaleness) // well past the bound
	_, err := f.v.Verify(ctx, f.token(nil))
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("past the staleness bound: %v, want ErrKeysUnavailable (status 503)", err)
	}
	f.a.serveJWKS(nil)
	f.clock.Advance(defaultMinRefetch)
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Errorf("after the IdP recovered: %v", err)
	}
}

// waitIdle waits until no fetch is in flight.
func waitIdle(s *keySource) {
	for {
		s.mu.Lock()
		w := s.inflight
		s.mu.Unlock()
		if w == nil {
			return
		}
		<-w
	}
}

// TestMisbehavingKeySet: whatever the key set endpoint answers that is not
// a good key set, tokens fail with ErrKeysUnavailable, and Ward reads no
// more than the size cap.
func TestMisbehavingKeySet(t *testing.T) {
	big := strings.Repeat(" ", 10<<20)
	cases := []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }, "status 500"},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("\x00\xffnot json at all"))
		}, "UTF-8"},
		{"JSON but no keys", jsonBody(`{"kys":[]}`), "no keys"},
		{"keys not an array", jsonBody(`{"keys":"x"}`), "no keys"},
		{"empty key set", jsonBody(`{"keys":[]}`), "no usable"},
		{"HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`{"keys":[]}`))
		}, "content type"},
		{"10 MB with Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)+2))
			w.Write([]byte("{" + big + "}"))
		}, "larger than"},
		{"10 MB streamed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{"))
			w.(http.Flusher).Flush()
			w.Write([]byte(big + "}"))
		}, "larger than"},
		{"duplicate keys member", jsonBody(`{"keys":[],"keys":[]}`), "duplicate"},
		{"deeply nested", jsonBody(`{"keys":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`), "deep"},
		{"private key material", func(w http.ResponseWriter, r *http.Request) {
			k := newES256(t, "a1")
			writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.key, KeyID: "a1", Algorithm: "ES256"}}})
		}, "private"},
		{"too many keys", func(w http.ResponseWriter, r *http.Request) {
			k := newES256(t, "a1").public()
			set := jose.JSONWebKeySet{}
			for range 51 {
				set.Keys = append(set.Keys, k)
			}
			writeJSON(w, set)
		}, "more than 50"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.a.serveJWKS(c.h)
			_, err := f.v.Verify(context.Background(), f.token(nil))
			if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify: %v, want ErrKeysUnavailable mentioning %q", err, c.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonBody(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write([]byte(s))
	}
}

// TestKeySetFiltersKeys: keys of other types, uses or sizes are skipped,
// not trusted.
func TestKeySetFiltersKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	enc := f.a1.public()
	enc.Use = "enc"
	f.a.serveJWKS(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"keys": []any{
			enc,
			map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
			map[string]any{"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
			map[string]any{"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
			f.aEd.public(),
		}})
	})
	if _, err := f.v.Verify(ctx, f.token(nil)); err == nil {
		t.Error("a token signed with a key published for encryption verified")
	}
	if _, err := f.v.Verify(ctx, sign(t, f.aEd, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, nil))); err != nil {
		t.Errorf("the one usable key: %v", err)
	}
	// A key whose alg member names another algorithm than the token's.
	wrongAlg := f.aRSA.public()
	wrongAlg.Algorithm = "PS256"
	set := []any{wrongAlg}
	ks, err := parseKeySet(mustJSON(t, map[string]any{"keys": set}), []string{"RS256", "PS256"}, 50)
	if err != nil || len(ks.lookup("a-rsa", "RS256")) != 0 || len(ks.lookup("a-rsa", "PS256")) != 1 {
		t.Errorf("alg member not honoured: %v", err)
	}
}

// TestRedirects: a key set endpoint may redirect within its origin, never
// to another.
func TestRedirects(t *testing.T) {
	f := newFixture(t)
	other := newIDP(t, f.a1) // would serve A's real keys
	f.pool.AddCert(other.srv.Certificate())
	f.a.serveJWKS(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.url+"/jwks", http.StatusFound)
	})
	_, err := f.v.Verify(context.Background(), f.token(nil))
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "another origin") {
		t.Errorf("cross-origin redirect: %v", err)
	}
	if n := other.jwksHits.Load(); n != 0 {
		t.Errorf("the other host was asked %d times", n)
	}

	g := newFixture(t)
	g.a.serveJWKS(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("moved") == "" {
			http.Redirect(w, r, "/jwks?moved=1", http.StatusMovedPermanently)
			return
		}
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{g.a1.public()}})
	})
	if _, err := g.v.Verify(context.Background(), g.token(nil)); err != nil {
		t.Errorf("same-origin redirect: %v", err)
	}
}

// TestDiscoveryChecks: the discovery document must name the issuer, and
// point to keys on its origin unless allowed otherwise.
func TestDiscoveryChecks(t *testing.T) {
	other := newIDP(t)
	for _, c := range []struct {
		name  string
		doc   func(f *fixture) map[string]any
		cross bool
		ok    bool
		want  string
	}{
		{"another issuer", func(f *fixture) map[string]any {
			return map[string]any{"issuer": f.b.url, "jwks_uri": f.a.url + "/jwks"}
		}, false, false, "another issuer"},
		{"jwks_uri on another origin", func(f *fixture) map[string]any {
			return map[string]any{"issuer": f.a.url, "jwks_uri": f.b.url + "/jwks"}
		}, false, false, "another origin"},
		{"jwks_uri over http", func(f *fixture) map[string]any {
			return map[string]any{"issuer": f.a.url, "jwks_uri": "http" + strings.TrimPrefix(f.a.url, "https") + "/jwks"}
		}, false, false, "https"},
		{"jwks_uri on another origin, allowed", func(f *fixture) map[string]any {
			other.publish(f.a1)
			return map[string]any{"issuer": f.a.url, "jwks_uri": other.url + "/jwks"}
		}, true, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.Issuers[0].AllowCrossOriginJWKS = c.cross })
			f.pool.AddCert(other.srv.Certificate())
			doc := c.doc(f)
			f.a.serveDiscovery(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, doc) })
			_, err := f.v.Verify(context.Background(), f.token(nil))
			if c.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Verify: %v; want ok=%v or an error mentioning %q", err, c.ok, c.want)
			}
			if !c.ok && f.a.jwksHits.Load()+f.b.jwksHits.Load() != 0 {
				t.Error("keys fetched despite a refused discovery document")
			}
		})
	}
}

// TestConfiguredJWKSURLSkipsDiscovery: with JWKSURL set, discovery is
// never asked.
func TestConfiguredJWKSURLSkipsDiscovery(t *testing.T) {
	g := newFixture(t, func(c *Config) { c.Issuers[0].JWKSURL = c.Issuers[0].URL + "/jwks" })
	if _, err := g.v.Verify(context.Background(), g.token(nil)); err != nil {
		t.Fatal(err)
	}
	if g.a.discoHits.Load() != 0 || g.a.jwksHits.Load() != 1 {
		t.Errorf("discovery %d, keys %d; want 0 and 1", g.a.discoHits.Load(), g.a.jwksHits.Load())
	}
}

// TestLoopbackRefused: without AllowLoopback, an issuer whose name
// resolves to loopback is never connected to (catalogue C6).
func TestLoopbackRefused(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		is := &c.Issuers[0]
		is.AllowLoopback = false
		is.URL = strings.Replace(is.URL, "127.0.0.1", "localhost", 1)
	})
	tok := f.token(func(c map[string]any) { c["iss"] = f.cfg.Issuers[0].URL })
	_, err := f.v.Verify(context.Background(), tok)
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "loopback address refused") {
		t.Fatalf("Verify: %v, want the dial refused", err)
	}
	if n := f.a.discoHits.Load() + f.a.jwksHits.Load(); n != 0 {
		t.Errorf("the loopback IdP got %d requests", n)
	}
	// An IP literal is refused at configuration time.
	cfg := f.cfg
	cfg.Issuers = []Issuer{f.issuerConfig(f.a, "lit")}
	cfg.Issuers[0].AllowLoopback = false
	if _, err := New(cfg); err == nil {
		t.Error("New accepted a loopback issuer without AllowLoopback")
	}
}

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		ip               string
		none, loop, priv bool // allowed with no allowance, AllowLoopback, AllowPrivateNetworks
	}{
		{"8.8.8.8", true, true, true},
		{"2606:4700::1111", true, true, true},
		{"127.0.0.1", false, true, false},
		{"::1", false, true, false},
		{"::ffff:127.0.0.1", false, true, false},
		{"10.1.2.3", false, false, true},
		{"192.168.1.1", false, false, true},
		{"172.16.0.1", false, false, true},
		{"100.64.0.1", false, false, true},
		{"fd00::1", false, false, true},
		{"169.254.169.254", false, false, false},
		{"fe80::1", false, false, false},
		{"0.0.0.0", false, false, false},
		{"::", false, false, false},
		{"224.0.0.1", false, false, false},
		{"255.255.255.255", false, false, false},
		{"240.0.0.1", false, false, false},
		{"64:ff9b::7f00:1", false, false, false},
		{"2002:7f00:1::", false, false, false},
		{"192.0.2.1", false, false, false},
	} {
		ip := netip.MustParseAddr(c.ip)
		for _, a := range []struct {
			loop, priv, want bool
		}{{false, false, c.none}, {true, false, c.loop}, {false, true, c.priv}} {
			if got := checkAddr(ip, a.loop, a.priv) == nil; got != a.want {
				t.Errorf("checkAddr(%s, loopback=%v, private=%v) allowed=%v, want %v", c.ip, a.loop, a.priv, got, a.want)
			}
		}
	}
}

func TestPrefetch(t *testing.T) {
	f := newFixture(t)
	f.b.serveJWKS(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) })
	err := f.v.Prefetch(context.Background())
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "idp-b") || strings.Contains(err.Error(), "idp-a") {
		t.Fatalf("Prefetch: %v, want only idp-b failing", err)
	}
	if _, err := f.v.Verify(context.Background(), f.token(nil)); err != nil {
		t.Fatal(err)
	}
	if n := f.a.jwksHits.Load(); n != 1 {
		t.Errorf("A fetched %d times, want 1 (the prefetch)", n)
	}
}
