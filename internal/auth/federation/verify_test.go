package federation

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/policy"
)

func scopeStrings(sc []policy.Scope) []string {
	var out []string
	for _, s := range sc {
		out = append(out, s.String())
	}
	slices.Sort(out)
	return out
}

func TestVerifyValid(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id, err := f.v.Verify(ctx, f.token(nil))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Issuer != f.a.url || id.IssuerName != "idp-a" || id.Subject != "user-1" || id.AuthorizedParty != "app-1" {
		t.Errorf("identity = %+v", id)
	}
	if !strings.HasPrefix(id.UserID, "ext:") || !strings.HasSuffix(id.UserID, ":user-1") || len(id.UserID) != len("ext:")+16+len(":user-1") {
		t.Errorf("UserID = %q, want ext:<16 hex>:user-1", id.UserID)
	}
	if !strings.HasPrefix(id.ClientID, strings.TrimSuffix(id.UserID, "user-1")) || !strings.HasSuffix(id.ClientID, ":app-1") {
		t.Errorf("ClientID = %q, want the issuer's namespace and app-1", id.ClientID)
	}
	if id.Role != "practitioner" || id.FHIRUser != "Practitioner/p1" || id.MFA || !id.MFATime.IsZero() {
		t.Errorf("role %q fhirUser %q MFA %v", id.Role, id.FHIRUser, id.MFA)
	}
	// Token: patient/*.rs user/Observation.cruds system/Patient.rs (+ non-SMART).
	// Issuer: user/*.rs patient/Observation.r. Intersection, never union:
	want := []string{"patient/Observation.r", "user/Observation.rs"}
	if got := scopeStrings(id.Scopes); !slices.Equal(got, want) {
		t.Errorf("scopes = %v, want %v", got, want)
	}
	now := f.clock.Now()
	if !id.Expiry.Equal(now.Add(300*time.Second)) || !id.IssuedAt.Equal(now) || !id.AuthTime.Equal(now.Add(-time.Minute)) || id.TokenID != "jti-1" {
		t.Errorf("times or jti wrong: %+v", id)
	}

	// The same user at B is another Ward identity.
	// typ JWT and an x5t thumbprint, as Entra ID sends them.
	idB, err := f.v.Verify(ctx, sign(t, f.b1, map[jose.HeaderKey]any{"typ": "JWT", "x5t": "bm90LXVzZWQ"}, f.claims(f.b, nil)))
	if err != nil {
		t.Fatalf("Verify from B: %v", err)
	}
	if idB.UserID == id.UserID || idB.Subject != id.Subject {
		t.Errorf("A and B users collide: %q %q", id.UserID, idB.UserID)
	}

	// Every allowed algorithm, with the key of its type.
	for _, k := range []signingKey{f.aRSA, f.aEd} {
		if _, err := f.v.Verify(ctx, sign(t, k, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.a, nil))); err != nil {
			t.Errorf("%s: %v", k.alg, err)
		}
	}
	// Nested role claim, an array scope claim in a string, aud as array.
	id, err = f.v.Verify(ctx, f.token(func(c map[string]any) {
		c["groups"] = []string{"staff"}
		c["realm_access"] = map[string]any{"roles": []string{"nurse"}}
		c["aud"] = []string{"someone-else", testAudience}
	}))
	if err != nil || id.Role != "nurse" {
		t.Errorf("nested role: %q, %v", id.Role, err)
	}
	if got := f.a.jwksHits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times, want 1", got)
	}
}

// TestVerifyRejects is catalogue case B1 for external tokens: every token
// that its issuer did not sign as configured, or that is no longer valid,
// fails with ErrInvalidToken, and none makes Ward fetch a URL it names.
func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	attacker := newIDP(t)
	f.pool.AddCert(attacker.srv.Certificate()) // reachable, were it ever asked
	evil := newES256(t, "evil")
	attacker.publish(evil)
	at := map[jose.HeaderKey]any{"typ": "at+jwt"}
	with := func(extra map[jose.HeaderKey]any) map[jose.HeaderKey]any {
		out := map[jose.HeaderKey]any{"typ": "at+jwt"}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	valid := f.claims(f.a, nil)
	now := f.clock.Now().Unix()
	pubDER, _ := x509.MarshalPKIXPublicKey(f.aRSA.key.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	aRSAJWK, _ := json.Marshal(f.aRSA.public())
	aEvil := signingKey{kid: "a1", alg: jose.ES256, key: evil.key} // A's kid, the attacker's key

	cases := []struct {
		name  string
		token string
	}{
		{"alg none, empty signature", unsigned(`{"alg":"none","kid":"a1"}`, valid, "")},
		{"alg none with a signature", unsigned(`{"alg":"none","kid":"a1"}`, valid, "AAAA")},
		{"HS256 with the RSA public key (PEM) as secret", hs256(`{"alg":"HS256","kid":"a-rsa","typ":"at+jwt"}`, valid, pubPEM)},
		{"HS256 with the RSA public key (JWK) as secret", hs256(`{"alg":"HS256","kid":"a-rsa","typ":"at+jwt"}`, valid, aRSAJWK)},
		{"unknown kid", sign(t, evil, at, valid)},
		{"A's kid, another key", sign(t, aEvil, at, valid)},
		{"jku elsewhere", sign(t, evil, with(map[jose.HeaderKey]any{"jku": attacker.url + "/jwks"}), valid)},
		{"jku elsewhere with A's kid", sign(t, aEvil, with(map[jose.HeaderKey]any{"jku": attacker.url + "/jwks"}), valid)},
		{"x5u elsewhere", sign(t, aEvil, with(map[jose.HeaderKey]any{"x5u": attacker.url + "/cert.pem"}), valid)},
		{"embedded jwk", sign(t, aEvil, with(map[jose.HeaderKey]any{"jwk": evil.public()}), valid)},
		{"kid is a URL", sign(t, signingKey{kid: attacker.url + "/jwks", alg: jose.ES256, key: evil.key}, at, valid)},
		{"crit header", sign(t, f.a1, with(map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), valid)},
		{"cty JWT (nested)", sign(t, f.a1, with(map[jose.HeaderKey]any{"cty": "JWT"}), valid)},
		{"typ of something else", sign(t, f.a1, map[jose.HeaderKey]any{"typ": "secevent+jwt"}, valid)},
		{"no typ", sign(t, f.a1, nil, valid)},
		{"expired", f.token(func(c map[string]any) { c["iat"], c["nbf"], c["exp"] = now-400, now-400, now-100 })},
		{"expired within lifetime, beyond skew", f.token(func(c map[string]any) { c["iat"], c["nbf"], c["exp"] = now-330, now-330, now-30 })},
		{"nbf in the future", f.token(func(c map[string]any) { c["nbf"] = now + 120 })},
		{"iat in the future", f.token(func(c map[string]any) { c["iat"], c["exp"] = now+120, now+300 })},
		{"auth_time in the future", f.token(func(c map[string]any) { c["auth_time"] = now + 120 })},
		{"no exp", f.token(func(c map[string]any) { delete(c, "exp") })},
		{"no iat", f.token(func(c map[string]any) { delete(c, "iat") })},
		{"exp as a string", f.token(func(c map[string]any) { c["exp"] = "9999999999" })},
		{"overlong lifetime", f.token(func(c map[string]any) { c["exp"] = now + int64(2*time.Hour/time.Second) })},
		{"exp before iat", f.token(func(c map[string]any) { c["exp"] = now - 1; c["iat"] = now })},
		{"wrong iss", f.token(func(c map[string]any) { c["iss"] = "https://idp.evil.example" })},
		{"iss with a trailing slash", f.token(func(c map[string]any) { c["iss"] = f.a.url + "/" })},
		{"iss of B, signed by A", f.token(func(c map[string]any) { c["iss"] = f.b.url })},
		{"iss of A, signed by B", sign(t, f.b1, at, valid)},
		{"iss of A, signed by B under A's kid", sign(t, signingKey{kid: "a1", alg: jose.ES256, key: f.b1.key}, at, valid)},
		{"wrong aud", f.token(func(c map[string]any) { c["aud"] = "https://other.example/fhir" })},
		{"no aud", f.token(func(c map[string]any) { delete(c, "aud") })},
		{"id_token as access token", f.token(func(c map[string]any) { c["aud"], c["nonce"] = testClientID, "n-1" })},
		{"no sub", f.token(func(c map[string]any) { delete(c, "sub") })},
		{"sub with a space", f.token(func(c map[string]any) { c["sub"] = "a b" })},
		{"sub with a control character", f.token(func(c map[string]any) { c["sub"] = "a\nb" })},
		{"no client id", f.token(func(c map[string]any) { delete(c, "client_id") })},
		{"no matching role", f.token(func(c map[string]any) { c["groups"] = []string{"staff"} })},
		{"groups of the wrong type", f.token(func(c map[string]any) { c["groups"] = map[string]any{"x": 1} })},
		{"privileged role without MFA", f.token(func(c map[string]any) { c["groups"] = []string{"ward-admins"} })},
		{"privileged role, amr pwd only", f.token(func(c map[string]any) { c["groups"], c["amr"] = []string{"ward-admins"}, []string{"pwd"} })},
		{"privileged role, other acr", f.token(func(c map[string]any) { c["groups"], c["acr"] = []string{"ward-admins"}, "urn:example:loa:low" })},
		{"amr as a string", f.token(func(c map[string]any) { c["amr"] = "mfa" })},
		{"fhirUser of another server", f.token(func(c map[string]any) { c["fhirUser"] = "https://evil.example/fhir/Patient/1" })},
		{"fhirUser of a non-person", f.token(func(c map[string]any) { c["fhirUser"] = "Organization/1" })},
		{"not a JWS", "not-a-token"},
		{"JWE shape", f.token(nil) + ".x.y"},
		{"oversized", strings.Repeat("a", maxTokenLen+1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := f.v.Verify(context.Background(), c.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", id, err)
			}
			if strings.Contains(err.Error(), c.token) && len(c.token) > 10 {
				t.Errorf("error repeats the token")
			}
		})
	}
	if n := attacker.jwksHits.Load() + attacker.discoHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests", n)
	}
	if n := f.a.jwksHits.Load(); n != 1 {
		t.Errorf("A's keys fetched %d times, want 1 (the unknown kids come within the refetch interval)", n)
	}

	// A duplicate claim is refused, not interpreted.
	dup := sign(t, f.a1, at, json.RawMessage(`{"iss":"`+f.a.url+`","aud":"`+testAudience+`","sub":"user-1","sub":"admin","client_id":"x","iat":`+itoa(now)+`,"exp":`+itoa(now+60)+`,"groups":["clinicians"]}`))
	if _, err := f.v.Verify(context.Background(), dup); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("duplicate sub: %v", err)
	}
	// An unknown issuer says so, for the caller to try Ward's own verifier.
	_, err := f.v.Verify(context.Background(), f.token(func(c map[string]any) { c["iss"] = "https://ward.test" }))
	if !errors.Is(err, ErrUnknownIssuer) || !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown issuer: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unsigned(header string, claims any, sig string) string {
	body, _ := json.Marshal(claims)
	return b64([]byte(header)) + "." + b64(body) + "." + sig
}

func hs256(header string, claims any, secret []byte) string {
	body, _ := json.Marshal(claims)
	in := b64([]byte(header)) + "." + b64(body)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64(m.Sum(nil))
}

// TestVerifyFlippedBits flips every bit of a valid token: no variant may
// verify.
func TestVerifyFlippedBits(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	for i := range len(tok) {
		for bit := range 8 {
			b := []byte(tok)
			b[i] ^= 1 << bit
			if _, err := f.v.Verify(context.Background(), string(b)); err == nil {
				t.Fatalf("token with byte %d bit %d flipped verified", i, bit)
			}
		}
	}
}

func TestPrivilegedRoleNeedsMFA(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.PrivilegedRoles = []string{"nurse"} })
	ctx := context.Background()
	now := f.clock.Now().Unix()
	for _, c := range []struct {
		name   string
		claims func(map[string]any)
		ok     bool
	}{
		{"admin, amr mfa", func(c map[string]any) { c["groups"], c["amr"] = []string{"ward-admins"}, []string{"pwd", "mfa"} }, true},
		{"admin, amr otp", func(c map[string]any) { c["groups"], c["amr"] = []string{"ward-admins"}, []string{"otp"} }, true},
		{"admin, acr configured", func(c map[string]any) { c["groups"], c["acr"] = []string{"ward-admins"}, "urn:example:loa:high" }, true},
		{"admin, no evidence", func(c map[string]any) { c["groups"] = []string{"ward-admins", "clinicians"} }, false},
		{"privileged in Config, no evidence", func(c map[string]any) {
			c["groups"], c["realm_access"] = []string{}, map[string]any{"roles": []string{"nurse"}}
		}, false},
		{"unprivileged, no evidence", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := f.v.Verify(ctx, f.token(c.claims))
			if c.ok != (err == nil) {
				t.Fatalf("Verify = %+v, %v; want ok=%v", id, err, c.ok)
			}
			if err == nil && id.Role == "admin" && (!id.MFA || id.MFATime.Unix() != now-60) {
				t.Errorf("MFA %v at %v, want true at auth_time", id.MFA, id.MFATime)
			}
		})
	}
}

func TestVerifyIDToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	idClaims := func(mut func(map[string]any)) map[string]any {
		return f.claims(f.a, func(c map[string]any) {
			c["aud"], c["nonce"], c["azp"] = testClientID, "n-123", testClientID
			delete(c, "client_id")
			delete(c, "scope")
			if mut != nil {
				mut(c)
			}
		})
	}
	jwt := map[jose.HeaderKey]any{"typ": "JWT"}
	id, err := f.v.VerifyIDToken(ctx, sign(t, f.a1, jwt, idClaims(nil)), "n-123")
	if err != nil {
		t.Fatalf("VerifyIDToken: %v", err)
	}
	if id.Role != "practitioner" || id.Scopes != nil || id.AuthorizedParty != testClientID {
		t.Errorf("identity = %+v", id)
	}
	if _, err := f.v.VerifyIDToken(ctx, sign(t, f.a1, nil, idClaims(nil)), "n-123"); err != nil {
		t.Errorf("id_token without typ: %v", err)
	}
	for _, c := range []struct {
		name, token, nonce string
	}{
		{"wrong nonce", sign(t, f.a1, jwt, idClaims(nil)), "n-124"},
		{"no nonce given", sign(t, f.a1, jwt, idClaims(nil)), ""},
		{"no nonce in token", sign(t, f.a1, jwt, idClaims(func(c map[string]any) { delete(c, "nonce") })), "n-123"},
		{"several audiences, azp another", sign(t, f.a1, jwt, idClaims(func(c map[string]any) { c["aud"], c["azp"] = []string{testClientID, "x"}, "x" })), "n-123"},
		{"several audiences, no azp", sign(t, f.a1, jwt, idClaims(func(c map[string]any) { c["aud"] = []string{testClientID, "x"}; delete(c, "azp") })), "n-123"},
		{"access token as id_token", f.token(func(c map[string]any) { c["nonce"] = "n-123" }), "n-123"},
		{"typ at+jwt", sign(t, f.a1, map[jose.HeaderKey]any{"typ": "at+jwt"}, idClaims(nil)), "n-123"},
		{"expired", sign(t, f.a1, jwt, idClaims(func(c map[string]any) { c["exp"] = f.clock.Now().Unix() - 60 })), "n-123"},
	} {
		if _, err := f.v.VerifyIDToken(ctx, c.token, c.nonce); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", c.name, err)
		}
	}
}

// TestVerifyWaitsNoLongerThanTimeout: an IdP that never answers costs a
// caller at most the fetch timeout, and ties up one fetch, not one per
// caller.
func TestVerifyWaitsNoLongerThanTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FetchTimeout = 300 * time.Millisecond })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	f.a.serveJWKS(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	tok := f.token(nil)
	start := time.Now()
	errs := make(chan error, 20)
	for range 20 {
		go func() {
			_, err := f.v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify against a hanging IdP: %v", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Verify took %v with a 300ms fetch timeout", d)
	}
	if n := f.a.jwksHits.Load(); n != 1 {
		t.Errorf("%d fetches in flight for 20 callers, want 1", n)
	}
	// The caller's own deadline is honoured too.
	f.clock.Advance(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify with a short deadline: %v", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("Verify ignored the caller's 50ms deadline: %v", d)
	}
	// Tokens of the other issuer are unaffected.
	if _, err := f.v.Verify(context.Background(), sign(t, f.b1, map[jose.HeaderKey]any{"typ": "at+jwt"}, f.claims(f.b, nil))); err != nil {
		t.Errorf("B's token while A hangs: %v", err)
	}
}
