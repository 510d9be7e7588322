package federation

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// serveSignInDiscovery makes p's discovery document name its sign-in
// endpoints, changed by mut.
func serveSignInDiscovery(p *idp, mut func(map[string]any)) {
	p.serveDiscovery(func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{"issuer": p.url, "jwks_uri": p.url + "/jwks",
			"authorization_endpoint": p.url + "/authorize", "token_endpoint": p.url + "/token"}
		if mut != nil {
			mut(doc)
		}
		writeJSON(w, doc)
	})
}

// TestSignInEndpoints: the endpoints come from the discovery document
// the keys are found through (one fetch serves both), the HTTP client is
// the fetcher's, and issuers without a client id offer no sign-ins.
func TestSignInEndpoints(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Issuers[1].ClientID = "" // B takes access tokens only
		c.Issuers[0].ClientSecret = NewSecret("s3cret")
	})
	serveSignInDiscovery(f.a, nil)
	ctx := context.Background()

	got := f.v.SignInIssuers()
	if len(got) != 1 || got[0].URL != f.a.url || got[0].Name != "idp-a" || got[0].ClientID != testClientID ||
		got[0].ClientSecret.Reveal() != "s3cret" || !slices.Equal(got[0].Scopes, []string{"openid"}) {
		t.Fatalf("SignInIssuers = %+v", got)
	}
	if _, err := f.v.Verify(ctx, f.token(nil)); err != nil {
		t.Fatal(err)
	}
	eps, err := f.v.SignInEndpoints(ctx, f.a.url)
	if err != nil {
		t.Fatal(err)
	}
	if eps.Authorization != f.a.url+"/authorize" || eps.Token != f.a.url+"/token" || eps.Client != f.v.issuers[f.a.url].keys.f.client {
		t.Errorf("endpoints %+v", eps)
	}
	if n := f.a.discoHits.Load(); n != 1 {
		t.Errorf("discovery fetched %d times for keys and endpoints, want 1", n)
	}
	if _, err := f.v.SignInEndpoints(ctx, f.b.url); err == nil {
		t.Error("endpoints of an issuer without a client id")
	}
	if _, err := f.v.SignInEndpoints(ctx, "https://unknown.example"); err == nil {
		t.Error("endpoints of an unknown issuer")
	}
}

// TestSignInEndpointsChecked: endpoints must be https, and the token
// endpoint, which Ward itself calls, on the issuer's origin unless the
// issuer allows otherwise.
func TestSignInEndpointsChecked(t *testing.T) {
	other := newIDP(t)
	for _, c := range []struct {
		name  string
		mut   func(f *fixture, doc map[string]any)
		cross bool
		ok    bool
	}{
		{"as published", nil, false, true},
		{"no token endpoint", func(f *fixture, d map[string]any) { delete(d, "token_endpoint") }, false, false},
		{"no authorization endpoint", func(f *fixture, d map[string]any) { delete(d, "authorization_endpoint") }, false, false},
		{"http authorization endpoint", func(f *fixture, d map[string]any) {
			d["authorization_endpoint"] = "http" + strings.TrimPrefix(f.a.url, "https") + "/authorize"
		}, false, false},
		{"token endpoint not a string", func(f *fixture, d map[string]any) { d["token_endpoint"] = 42 }, false, false},
		{"token endpoint on another origin", func(f *fixture, d map[string]any) { d["token_endpoint"] = other.url + "/token" }, false, false},
		{"token endpoint on another origin, allowed", func(f *fixture, d map[string]any) { d["token_endpoint"] = other.url + "/token" }, true, true},
		{"token endpoint on link-local", func(f *fixture, d map[string]any) { d["token_endpoint"] = "https://169.254.169.254/token" }, true, false},
		{"authorization endpoint elsewhere", func(f *fixture, d map[string]any) { d["authorization_endpoint"] = other.url + "/authorize" }, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.Issuers[0].AllowCrossOriginJWKS = c.cross })
			serveSignInDiscovery(f.a, func(d map[string]any) {
				if c.mut != nil {
					c.mut(f, d)
				}
			})
			_, err := f.v.SignInEndpoints(context.Background(), f.a.url)
			if c.ok != (err == nil) {
				t.Fatalf("SignInEndpoints: %v, want ok=%v", err, c.ok)
			}
			// Malformed sign-in endpoints never cost the issuer its access tokens.
			if _, err := f.v.Verify(context.Background(), f.token(nil)); err != nil {
				t.Errorf("access token after the endpoints check: %v", err)
			}
		})
	}
}

// TestSignInEndpointsCaching: a failed discovery is not retried before
// MinRefetchInterval; known endpoints are refreshed after RefreshInterval
// in the background and serve until MaxStaleness while the issuer is down.
func TestSignInEndpointsCaching(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	down := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
	f.a.serveDiscovery(down)
	if _, err := f.v.SignInEndpoints(ctx, f.a.url); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("issuer down: %v", err)
	}
	if _, err := f.v.SignInEndpoints(ctx, f.a.url); err == nil {
		t.Fatal("issuer still down: no error")
	}
	if n := f.a.discoHits.Load(); n != 1 {
		t.Fatalf("discovery asked %d times within the refetch interval, want 1", n)
	}

	f.clock.Advance(defaultMinRefetch)
	serveSignInDiscovery(f.a, nil)
	if _, err := f.v.SignInEndpoints(ctx, f.a.url); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
	f.a.serveDiscovery(down)
	f.clock.Advance(defaultRefresh + time.Second)
	if _, err := f.v.SignInEndpoints(ctx, f.a.url); err != nil {
		t.Fatalf("due for a refresh while down: %v", err)
	}
	f.clock.Advance(defaultMaxStaleness)
	if _, err := f.v.SignInEndpoints(ctx, f.a.url); err == nil {
		t.Fatal("endpoints older than the maximum staleness still served")
	}
}

// TestSignInConfig: client secrets and sign-in scopes need a client id, a
// named secret file must have been read, sign-ins ask for openid, and a
// secret never prints.
func TestSignInConfig(t *testing.T) {
	withClient := func(mut func(*Issuer)) Config {
		is := validIssuer()
		is.ClientID = "ward"
		mut(&is)
		return Config{Issuers: []Issuer{is}}
	}
	for name, cfg := range map[string]Config{
		"secret without client id": {Issuers: []Issuer{func() Issuer { is := validIssuer(); is.ClientSecret = NewSecret("x"); return is }()}},
		"scopes without client id": {Issuers: []Issuer{func() Issuer { is := validIssuer(); is.SignInScopes = []string{"openid"}; return is }()}},
		"secret file not read":     withClient(func(is *Issuer) { is.ClientSecretFile = "secret.txt" }),
		"secret with a space":      withClient(func(is *Issuer) { is.ClientSecret = NewSecret("a b") }),
		"scopes without openid":    withClient(func(is *Issuer) { is.SignInScopes = []string{"profile"} }),
		"empty scope":              withClient(func(is *Issuer) { is.SignInScopes = []string{"openid", ""} }),
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v, err := New(withClient(func(is *Issuer) {
		is.ClientSecretFile, is.ClientSecret, is.SignInScopes = "secret.txt", NewSecret("hunter2-secret"), []string{"openid", "profile"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.SignInIssuers(); len(got) != 1 || !slices.Equal(got[0].Scopes, []string{"openid", "profile"}) {
		t.Errorf("SignInIssuers = %+v", got)
	}
	is := v.order[0].cfg
	for _, s := range []string{fmt.Sprint(is), fmt.Sprintf("%+v %#v %s %q %x", is, is, is.ClientSecret, is.ClientSecret, is.ClientSecret), fmt.Sprintf("%v", v.SignInIssuers())} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, fmt.Sprintf("%x", "hunter2")) {
			t.Fatalf("the secret printed: %s", s)
		}
	}
	if !NewSecret("a").Equal(NewSecret("a")) || NewSecret("a").Equal(NewSecret("b")) || !(Secret{}).IsZero() {
		t.Error("Secret comparison")
	}

	cfg, err := ParseConfig([]byte(`{"issuers": [{"issuer": "https://idp.example", "client_id": "ward",
		"client_secret_file": "hospital.secret", "sign_in_scopes": ["openid", "groups"], "roles": [{"role": "practitioner"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Issuers[0]; got.ClientSecretFile != "hospital.secret" || !got.ClientSecret.IsZero() || !slices.Equal(got.SignInScopes, []string{"openid", "groups"}) {
		t.Errorf("parsed issuer %+v", got)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "not read") {
		t.Errorf("New with an unread secret file: %v", err)
	}
}
