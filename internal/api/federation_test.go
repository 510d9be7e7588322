package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/auth/federation"
)

// idp is an external OpenID provider for tests: discovery, JWKS and
// RS256 tokens it signs on request, and the sign-in flow (signin:
// /authorize approves at once, /token answers with an id_token).
type idp struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	fetch atomic.Int64
	down  atomic.Bool
	login *idpLogin
}

func newIDP(t *testing.T) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks",
				"authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token"})
		case "/jwks":
			p.fetch.Add(1)
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
		case "/authorize", "/token":
			if p.login == nil {
				http.NotFound(w, r)
				return
			}
			p.login.serve(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	c := map[string]any{"iss": p.srv.URL, "aud": "https://ward.test/fhir", "iat": now, "exp": now + 300, "client_id": "hospital-app"}
	for k, v := range claims {
		c[k] = v
	}
	body, _ := json.Marshal(c)
	obj, err := sg.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}

// TestFederatedAccessTokens: an external provider's access token, mapped to
// a Ward role, reaches what that role and the token's scopes allow (here a
// patient's own record), through the same policy as Ward's own tokens;
// unmapped, privileged-without-MFA, foreign and forged tokens are 401; and
// Ward's own tokens keep working while the provider is down.
func TestFederatedAccessTokens(t *testing.T) {
	s := newStack(t)
	p := newIDP(t)
	pool := x509.NewCertPool()
	pool.AddCert(p.srv.Certificate())
	v, err := federation.New(federation.Config{RootCAs: pool, FHIRBase: s.base + "/fhir", Issuers: []federation.Issuer{{
		URL: p.srv.URL, Audiences: []string{"https://ward.test/fhir"}, AllowedScopes: []string{"user/*.rs"},
		FHIRUserClaim: "fhirUser", AllowLoopback: true,
		Roles: []federation.RoleRule{{Claim: "groups", Value: "patients", Role: "patient"}, {Claim: "groups", Value: "it", Role: "admin"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	s.auth.WithFederation(v)
	mine := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	other := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)

	tok := p.token(t, map[string]any{"sub": "alice", "groups": []string{"patients"}, "scope": "user/*.rs user/*.cruds", "fhirUser": "Patient/" + mine})
	as := func(tk string) []string { return []string{"Authorization", "Bearer " + tk} }
	if st := s.do("GET", "/fhir/Patient/"+mine, nil, as(tok)...).status; st != http.StatusOK {
		t.Fatalf("federated patient reading own record: %d", st)
	}
	if st := s.do("GET", "/fhir/Patient/"+other, nil, as(tok)...).status; st != http.StatusNotFound {
		t.Fatalf("federated patient reading another's record: %d, want 404", st)
	}
	if st := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
		"subject": map[string]any{"reference": "Patient/" + mine}}, as(tok)...).status; st != http.StatusForbidden {
		t.Fatalf("write beyond the issuer's allowed scopes: %d, want 403", st)
	}
	for name, bad := range map[string]string{
		"no role":                p.token(t, map[string]any{"sub": "bob", "groups": []string{"visitors"}, "scope": "user/*.rs"}),
		"admin without MFA":      p.token(t, map[string]any{"sub": "carol", "groups": []string{"it"}, "scope": "user/*.rs"}),
		"wrong audience":         p.token(t, map[string]any{"sub": "alice", "groups": []string{"patients"}, "aud": "https://elsewhere"}),
		"expired":                p.token(t, map[string]any{"sub": "alice", "groups": []string{"patients"}, "exp": time.Now().Unix() - 600}),
		"signature of other key": tok[:len(tok)-8] + "AAAAAAAA",
	} {
		if st := s.do("GET", "/fhir/Patient/"+mine, nil, as(bad)...).status; st != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, st)
		}
	}
	// The provider goes down: Ward's own tokens are unaffected, and the
	// provider's keys already fetched keep working within their bounds.
	p.down.Store(true)
	if st := s.do("GET", "/fhir/Patient/"+mine, nil).status; st != http.StatusOK {
		t.Fatalf("Ward's own token while the provider is down: %d", st)
	}
	if st := s.do("GET", "/fhir/Patient/"+mine, nil, as(tok)...).status; st != http.StatusOK {
		t.Fatalf("federated token with cached keys while the provider is down: %d", st)
	}
	if n := p.fetch.Load(); n != 1 {
		t.Errorf("the provider's keys were fetched %d times, want 1", n)
	}
}
