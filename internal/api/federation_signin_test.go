package api_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/browsertest"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
)

// idpLogin is the sign-in side of a test IdP. /authorize approves every
// request at once, as if the person had signed in there, and redirects
// back with a code; /token checks the client, the redirect URI and PKCE,
// and answers with an id_token carrying the nonce /authorize received and
// the claims the test set.
type idpLogin struct {
	p        *idp
	clientID string
	secret   string

	mu        sync.Mutex
	codes     map[string]idpCode
	claims    map[string]any     // added to (and overriding) each id_token's claims
	signer    *idp               // signs the id_tokens; nil: p
	redirect  func(q url.Values) // changes the redirect back to Ward
	tokenDown bool               // /token answers 503
	// interactive makes /authorize a page whose link (#idp-continue) goes
	// back to Ward, as after a person signed in there: the navigation back
	// is then the IdP's, cross-site for Ward's cookies.
	interactive bool
	requests    []url.Values        // authorization requests received
	exchanges   []map[string]string // what each token request carried
}

type idpCode struct{ redirectURI, challenge, nonce string }

const (
	idpClientID = "ward-at-hospital"
	idpSecret   = "hospital-client-secret-0123456789"
)

func (p *idp) enableLogin() *idpLogin {
	p.login = &idpLogin{p: p, clientID: idpClientID, secret: idpSecret, codes: map[string]idpCode{}}
	return p.login
}

func (l *idpLogin) set(fn func(l *idpLogin)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l)
}

func (l *idpLogin) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.URL.Path == "/authorize" {
		q := r.URL.Query()
		l.requests = append(l.requests, q)
		if q.Get("response_type") != "code" || q.Get("client_id") != l.clientID || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("nonce") == "" || !slices.Contains(strings.Fields(q.Get("scope")), "openid") {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		code := rand.Text()
		l.codes[code] = idpCode{redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
		back := url.Values{"code": {code}, "state": {q.Get("state")}}
		if l.redirect != nil {
			l.redirect(back)
		}
		if l.interactive {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = fmt.Fprintf(w, `<!doctype html><title>Hospital</title><a id="idp-continue" href="%s">Continue to Ward</a>`,
				html.EscapeString(q.Get("redirect_uri")+"?"+back.Encode()))
			return
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
		return
	}
	if l.tokenDown {
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	_ = r.ParseForm()
	id, secret, _ := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	l.exchanges = append(l.exchanges, map[string]string{"client_id": id, "secret": secret, "verifier": r.PostForm.Get("code_verifier")})
	c, ok := l.codes[r.PostForm.Get("code")]
	delete(l.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if id != l.clientID || secret != l.secret || r.PostForm.Get("grant_type") != "authorization_code" || !ok ||
		c.redirectURI != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	now := time.Now().Unix()
	claims := map[string]any{"iss": l.p.srv.URL, "aud": l.clientID, "sub": "alice", "iat": now, "exp": now + 300, "auth_time": now - 5, "nonce": c.nonce}
	for k, v := range l.claims {
		claims[k] = v
	}
	signer := l.signer
	if signer == nil {
		signer = l.p
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "idp-access-token", "token_type": "Bearer", "expires_in": 300, "id_token": signer.idToken(claims)})
}

// idToken signs claims as an id_token (typ JWT) with the IdP's key.
func (p *idp) idToken(claims map[string]any) string {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	body, _ := json.Marshal(claims)
	obj, err := sg.Sign(body)
	if err != nil {
		panic(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}

// extID is the Ward user id of a person of issuer p.
func extID(p *idp, sub string) string {
	sum := sha256.Sum256([]byte(p.srv.URL))
	return "ext:" + hex.EncodeToString(sum[:8]) + ":" + sub
}

// fedFixture is a Ward stack that offers sign-ins through the test IdP
// "Hospital" (with a client secret), whose people map to Ward roles by
// their groups.
type fedFixture struct {
	t     *testing.T
	s     *stack
	p     *idp
	login *idpLogin
	roots *x509.CertPool // Ward's CA and the IdP's certificate
}

func hospitalIssuer(p *idp) federation.Issuer {
	return federation.Issuer{
		Name: "Hospital", URL: p.srv.URL, ClientID: idpClientID, ClientSecret: federation.NewSecret(idpSecret),
		Audiences: []string{"https://ward.test/fhir"}, AllowedScopes: []string{"user/*.rs"},
		FHIRUserClaim: "fhirUser", AllowLoopback: true,
		Roles: []federation.RoleRule{
			{Claim: "groups", Value: "patients", Role: policy.RolePatient},
			{Claim: "groups", Value: "clinicians", Role: policy.RolePractitioner},
			{Claim: "groups", Value: "it", Role: policy.RoleAdmin},
			{Claim: "groups", Value: "privacy", Role: policy.RolePrivacyOfficer},
		},
	}
}

func newFedFixture(t *testing.T) *fedFixture { return newFedFixtureWith(t, stackOptions{}) }

func newFedFixtureWith(t *testing.T, o stackOptions) *fedFixture {
	t.Helper()
	o.noAuthCache = true
	fx := &fedFixture{t: t, s: newStackWith(t, o), p: newIDP(t)}
	fx.login = fx.p.enableLogin()
	fx.roots = fx.s.http.Transport.(*http.Transport).TLSClientConfig.RootCAs.Clone()
	fx.roots.AddCert(fx.p.srv.Certificate())
	fx.trust(hospitalIssuer(fx.p))
	return fx
}

// trust makes Ward trust exactly these issuers, with fresh key and
// endpoint caches.
func (fx *fedFixture) trust(issuers ...federation.Issuer) {
	fx.t.Helper()
	v, err := federation.New(federation.Config{RootCAs: fx.roots, FHIRBase: fx.s.base + "/fhir", Issuers: issuers})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.s.auth.WithFederation(v)
}

// browser is a person's browser that trusts Ward and the IdP.
func (fx *fedFixture) browser() *browser {
	tr := fx.s.http.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.RootCAs = fx.roots
	jar, _ := cookiejar.New(nil)
	return &browser{t: fx.t, s: fx.s, http: &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}}
}

// claims sets the id_token claims of the IdP's next sign-ins.
func (fx *fedFixture) claims(c map[string]any) { fx.login.set(func(l *idpLogin) { l.claims = c }) }

// start opens the app's authorization URL and clicks "Sign in with
// Hospital"; the browser then follows the IdP back to Ward.
func (fx *fedFixture) start(b *browser, authURL string) {
	b.t.Helper()
	b.get(authURL)
	b.onPage("/signin")
	if !strings.Contains(b.page, "Sign in with Hospital") {
		b.t.Fatalf("sign-in page offers no provider:\n%.2000s", b.page)
	}
	b.submit("/signin/federated", "issuer", fx.p.srv.URL)
}

// TestFederatedSignIn: a patient signs in to Ward's pages through their
// organisation's IdP (code flow with PKCE, Ward as a confidential client),
// allows the app, and the app's Ward token reads the patient's own record
// through the fhirUser the IdP mapped, and nobody else's. Ward keeps a
// shadow user with no password; the password form cannot use it; the
// IdP's mapping is applied again at the next sign-in, cutting off the old
// tokens; every step is audited without tokens or codes.
func TestFederatedSignIn(t *testing.T) {
	fx := newFedFixture(t)
	s := fx.s
	mine := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	other := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	fx.claims(map[string]any{"groups": []string{"patients"}, "fhirUser": "Patient/" + mine, "amr": []string{"pwd"}})
	a := s.newApp(false, "openid", "fhirUser", "launch/patient", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "fhirUser", "launch/patient", "patient/*.rs")
	before := ledgerSize(t, s)

	b := fx.browser()
	fx.start(b, rp.authURL("fed1"))
	b.onPage("/signin/authorize")
	want := extID(fx.p, "alice")
	if !strings.Contains(b.page, "Test App") || !strings.Contains(b.page, want) {
		t.Fatalf("authorisation page does not name the app and the person:\n%.2000s", b.page)
	}
	b.submit("/signin/authorize", "decision", "allow")
	got := a.received()
	if got == nil || got.Get("code") == "" || got.Get("state") != "fed1" {
		t.Fatalf("app received %v; browser at %s (%d)", got, b.url, b.code)
	}

	// What the IdP saw: Ward's client id, PKCE S256, a nonce, the callback,
	// and on the back channel the client secret and the PKCE verifier.
	fx.login.mu.Lock()
	req, ex := fx.login.requests[0], fx.login.exchanges[0]
	fx.login.mu.Unlock()
	if req.Get("redirect_uri") != s.base+"/signin/federated/callback" || req.Get("code_challenge_method") != "S256" || len(req.Get("nonce")) < 32 {
		t.Errorf("authorization request to the IdP: %v", req)
	}
	if st := req.Get("state"); len(st) < 40 || strings.Contains(st, "fed1") {
		t.Errorf("state sent to the IdP %q: want Ward's own, unguessable", st)
	}
	if ex["client_id"] != idpClientID || ex["secret"] != idpSecret || len(ex["verifier"]) < 43 {
		t.Errorf("token request at the IdP: client %q, secret sent %v, verifier length %d", ex["client_id"], ex["secret"] == idpSecret, len(ex["verifier"]))
	}

	tok, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: a.client.ID}).Verify(rp.ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Subject != want || idt.Nonce != "n-fed1" {
		t.Fatalf("Ward's id_token: %v, subject %q", err, idt.Subject)
	}
	if p, _ := tok.Extra("patient").(string); p != mine {
		t.Fatalf("launch patient %q, want the person's own %q", p, mine)
	}
	if st := s.do("GET", "/fhir/Patient/"+mine, nil, "Authorization", "Bearer "+tok.AccessToken).status; st != http.StatusOK {
		t.Fatalf("own record with the Ward token: %d", st)
	}
	if st := s.do("GET", "/fhir/Patient/"+other, nil, "Authorization", "Bearer "+tok.AccessToken).status; st != http.StatusNotFound {
		t.Fatalf("another patient's record: %d, want 404", st)
	}

	// The shadow user: the IdP's mapping, no password, no second factor.
	usr, err := s.users.User(context.Background(), want)
	if err != nil || usr.Username != want || usr.Role != policy.RolePatient || usr.FHIRUser != "Patient/"+mine ||
		len(usr.PasswordHash) != 0 || auth.HasMFA(usr) || !auth.IsFederated(usr) {
		t.Fatalf("shadow user %+v: %v", usr, err)
	}
	pb := fx.browser()
	pb.get(rp.authURL("pw"))
	pb.submit("/signin", "username", want, "password", testPassword)
	if pb.code != http.StatusUnauthorized {
		t.Fatalf("password form with the shadow user's name: %d, want 401", pb.code)
	}

	// The audit trail names each step, and carries no token, code or state.
	es := ledgerEntries(t, s, before)
	var details []string
	for _, e := range es {
		if e.Action == "signin-federated" {
			details = append(details, e.Detail)
		}
		raw, _ := json.Marshal(e)
		for _, secret := range []string{got.Get("code"), req.Get("state"), req.Get("nonce"), tok.AccessToken, idpSecret, ex["verifier"]} {
			if strings.Contains(string(raw), secret) {
				t.Fatalf("ledger entry %+v carries a secret", e)
			}
		}
	}
	if !slices.Equal(details, []string{"redirect", "ok"}) {
		t.Errorf("signin-federated entries %v, want redirect and ok", details)
	}
	if !slices.ContainsFunc(es, func(e ledger.Entry) bool {
		return e.Action == "signin-federated" && e.Detail == "ok" && e.Actor == want && e.Client == a.client.ID
	}) {
		t.Error("no entry names the person and the app of the federated sign-in")
	}

	// The IdP now says the person is a clinician: the next sign-in makes
	// the shadow user a practitioner, and the patient token stops working.
	fx.claims(map[string]any{"groups": []string{"clinicians"}})
	a2 := s.newApp(false, "openid", "user/*.rs")
	rp2 := s.relyingParty(a2, "openid", "user/*.rs")
	b2 := fx.browser()
	fx.start(b2, rp2.authURL("fed2"))
	b2.onPage("/signin/authorize")
	if usr, err := s.users.User(context.Background(), want); err != nil || usr.Role != policy.RolePractitioner || usr.FHIRUser != "" {
		t.Fatalf("after the IdP's new mapping: %+v %v", usr, err)
	}
	if st := s.do("GET", "/fhir/Patient/"+mine, nil, "Authorization", "Bearer "+tok.AccessToken).status; st != http.StatusUnauthorized {
		t.Fatalf("token of the old mapping: %d, want 401", st)
	}
}

// TestFederatedSignInRefusals: a redirect that matches no sign-in of the
// browser, and id_tokens with the wrong nonce, for another audience or
// from another (trusted) issuer are refused, and the app gets no code.
func TestFederatedSignInRefusals(t *testing.T) {
	fx := newFedFixture(t)
	s := fx.s
	other := newIDP(t)
	other.enableLogin()
	fx.roots.AddCert(other.srv.Certificate())
	otherIssuer := hospitalIssuer(other)
	otherIssuer.Name, otherIssuer.Audiences = "Clinic", nil
	fx.trust(hospitalIssuer(fx.p), otherIssuer)
	a := s.newApp(true, "openid", "user/*.rs")
	rp := s.relyingParty(a, "openid", "user/*.rs")
	clinician := map[string]any{"groups": []string{"clinicians"}}

	for _, c := range []struct {
		name     string
		redirect func(url.Values)
		claims   map[string]any
		signer   *idp
		opts     []oauth2.AuthCodeOption
		status   int
		detail   string
	}{
		{name: "response names another issuer", redirect: func(q url.Values) { q.Set("iss", other.srv.URL) }, status: http.StatusUnauthorized, detail: "wrong-issuer"},
		{name: "sign-in older than max_age", claims: map[string]any{"groups": []string{"clinicians"}, "auth_time": time.Now().Unix() - 600},
			opts: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}, status: http.StatusUnauthorized, detail: "stale-auth"},
		{name: "max_age without auth_time", claims: map[string]any{"groups": []string{"clinicians"}, "auth_time": nil},
			opts: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}, status: http.StatusUnauthorized, detail: "stale-auth"},
		{name: "state tampered", redirect: func(q url.Values) { q.Set("state", q.Get("state")+"x") }, status: http.StatusBadRequest, detail: "state-mismatch"},
		{name: "state of an unknown request", redirect: func(q url.Values) { q.Set("state", "nosuchrequest.abc") }, status: http.StatusBadRequest, detail: "state-mismatch"},
		{name: "no state", redirect: func(q url.Values) { q.Del("state") }, status: http.StatusBadRequest, detail: "state-mismatch"},
		{name: "IdP says no", redirect: func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") }, status: http.StatusUnauthorized, detail: "idp-error"},
		{name: "code not the IdP's", redirect: func(q url.Values) { q.Set("code", "forged") }, status: http.StatusUnauthorized, detail: "exchange-refused"},
		{name: "wrong nonce", claims: map[string]any{"groups": []string{"clinicians"}, "nonce": "another-nonce"}, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "wrong audience", claims: map[string]any{"groups": []string{"clinicians"}, "aud": "another-client"}, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "access token audience", claims: map[string]any{"groups": []string{"clinicians"}, "aud": "https://ward.test/fhir"}, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "another trusted issuer", claims: map[string]any{"groups": []string{"clinicians"}, "iss": other.srv.URL}, signer: other, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "signed by another issuer", claims: map[string]any{"groups": []string{"clinicians"}}, signer: other, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "no role", claims: map[string]any{"groups": []string{"visitors"}}, status: http.StatusUnauthorized, detail: "token-invalid"},
		{name: "expired", claims: map[string]any{"groups": []string{"clinicians"}, "exp": time.Now().Unix() - 120}, status: http.StatusUnauthorized, detail: "token-invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			claims := c.claims
			if claims == nil {
				claims = clinician
			}
			fx.login.set(func(l *idpLogin) { l.redirect, l.claims, l.signer = c.redirect, claims, c.signer })
			a.mu.Lock()
			a.got = nil
			a.mu.Unlock()
			// A window of its own: a refusal that proves no one is
			// counted, not recorded, after its window's first (E6).
			if err := s.api.FlushFailures(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := ledgerSize(t, s)
			b := fx.browser()
			b.t = t
			fx.start(b, rp.authURL("r", c.opts...))
			b.onPage("/signin/federated/callback")
			if b.code != c.status {
				t.Fatalf("status %d, want %d:\n%.1500s", b.code, c.status, b.page)
			}
			if a.received() != nil {
				t.Fatal("the app received a redirect")
			}
			es := ledgerEntries(t, s, before)
			if last := es[len(es)-1]; last.Action != "signin-federated" || last.Detail != c.detail {
				t.Errorf("last entry %s/%s, want signin-federated/%s", last.Action, last.Detail, c.detail)
			}
			if _, err := s.users.User(context.Background(), extID(fx.p, "alice")); err == nil {
				t.Error("a shadow user was created")
			}
		})
	}
	fx.login.set(func(l *idpLogin) {
		l.redirect, l.claims, l.signer = nil, clinician, nil
		if !slices.ContainsFunc(l.requests, func(q url.Values) bool { return q.Get("max_age") == "60" }) {
			t.Error("the app's max_age was not passed on to the IdP")
		}
	})

	// A provider the page does not offer.
	b0 := fx.browser()
	b0.get(rp.authURL("u"))
	b0.submit("/signin/federated", "issuer", "https://idp.elsewhere.example")
	if b0.code != http.StatusBadRequest {
		t.Fatalf("sign-in through an unconfigured provider: %d, want 400", b0.code)
	}

	// The IdP's redirect carried to another browser (login CSRF) finds no
	// sign-in there; the browser that started it can still finish, once.
	var back string
	fx.login.set(func(l *idpLogin) {
		l.redirect = func(q url.Values) { back = q.Encode() }
	})
	b := fx.browser()
	b.http.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/signin/federated/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	fx.start(b, rp.authURL("csrf"))
	var query string
	fx.login.set(func(l *idpLogin) { query, l.redirect = back, nil })
	if b.code != http.StatusFound || query == "" {
		t.Fatalf("IdP redirect not captured: %d", b.code)
	}
	b.http.CheckRedirect = nil
	callback := s.base + "/signin/federated/callback?" + query
	victim := fx.browser()
	victim.get(callback)
	if victim.code != http.StatusBadRequest {
		t.Fatalf("the IdP's redirect in another browser: %d, want 400", victim.code)
	}
	b.get(callback)
	b.onPage("/signin/authorize")
	b.get(callback)
	if b.code != http.StatusBadRequest {
		t.Fatalf("the IdP's redirect replayed: %d, want 400", b.code)
	}
}

// TestFederatedSignInPrivileged: an administrator whose IdP reports a
// second factor goes straight to the authorisation page (Ward offers a
// shadow user no enrolment of its own) and the token records the factor;
// without the IdP's evidence, or with evidence too old for the app, a
// privileged role gets no token and is never offered enrolment.
func TestFederatedSignInPrivileged(t *testing.T) {
	fx := newFedFixture(t)
	s := fx.s
	a := s.newApp(true, "openid", "user/*.rs")
	rp := s.relyingParty(a, "openid", "user/*.rs")
	rp.conf.ClientSecret = ""

	for _, c := range []struct {
		name   string
		claims map[string]any
		opts   []oauth2.AuthCodeOption
		status int
	}{
		{"admin without MFA", map[string]any{"sub": "it-1", "groups": []string{"it"}, "amr": []string{"pwd"}}, nil, http.StatusUnauthorized},
		{"privacy officer without MFA", map[string]any{"sub": "po-1", "groups": []string{"privacy"}, "amr": []string{"pwd"}}, nil, http.StatusUnauthorized},
		// Signed in at the IdP with a second factor 90 s ago, within the
		// slack of the app's max_age for the sign-in but not for the
		// factor: refused, and never offered Ward's enrolment.
		{"admin whose MFA is older than max_age", map[string]any{"sub": "it-3", "groups": []string{"it"}, "amr": []string{"mfa"}, "auth_time": time.Now().Unix() - 90},
			[]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx.claims(c.claims)
			b := fx.browser()
			b.t = t
			fx.start(b, rp.authURL("p", c.opts...))
			if b.code != c.status || strings.Contains(b.page, "Set up a second factor") || a.received() != nil {
				t.Fatalf("status %d, want %d; page:\n%.1500s", b.code, c.status, b.page)
			}
			if c.status == http.StatusForbidden && !strings.Contains(b.page, "second factor") {
				t.Error("the refusal does not say why")
			}
			if c.status == http.StatusForbidden {
				return // refused after the session began: the flow stops here
			}
			for _, ck := range b.http.Jar.Cookies(mustURL(t, s.base)) {
				if ck.Name == "__Host-ward-session" {
					t.Fatal("a session cookie was set")
				}
			}
			if _, err := s.users.User(context.Background(), extID(fx.p, c.claims["sub"].(string))); err == nil {
				t.Error("a shadow user was created")
			}
		})
	}

	fx.claims(map[string]any{"sub": "it-2", "groups": []string{"it"}, "amr": []string{"pwd", "mfa"}})
	b := fx.browser()
	fx.start(b, rp.authURL("adm"))
	b.onPage("/signin/authorize")
	id := b.page[strings.Index(b.page, `name="id" value="`)+len(`name="id" value="`):]
	id = id[:strings.IndexByte(id, '"')]
	for _, page := range []string{"/signin/enrol", "/signin/mfa"} {
		b.get(s.base + page + "?id=" + url.QueryEscape(id))
		b.onPage("/signin/authorize")
	}
	b.submit("/signin/authorize", "decision", "allow")
	got := a.received()
	if got.Get("code") == "" {
		t.Fatalf("no code; browser at %s (%d)", b.url, b.code)
	}
	tok, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["acr"] != "urn:ward:acr:mfa" || claims["ward_role"] != policy.RoleAdmin || claims["ward_mfa_time"] == nil ||
		!slices.Contains(claims["amr"].([]any), any("mfa")) {
		t.Fatalf("administrator's token: acr %v role %v amr %v mfa_time %v", claims["acr"], claims["ward_role"], claims["amr"], claims["ward_mfa_time"])
	}
	if usr, err := s.users.User(context.Background(), extID(fx.p, "it-2")); err != nil || auth.HasMFA(usr) {
		t.Fatalf("shadow administrator: %+v %v", usr, err)
	}
}

// TestFederatedSignInDisabled: a shadow user disabled in Ward loses its
// Ward tokens and its IdP's access tokens, and cannot sign in again.
func TestFederatedSignInDisabled(t *testing.T) {
	fx := newFedFixture(t)
	s := fx.s
	fx.claims(map[string]any{"groups": []string{"clinicians"}})
	a := s.newApp(true, "openid", "user/*.rs")
	rp := s.relyingParty(a, "openid", "user/*.rs")
	rp.conf.ClientSecret = ""
	b := fx.browser()
	fx.start(b, rp.authURL("d1"))
	b.submit("/signin/authorize", "decision", "allow")
	tok, err := rp.conf.Exchange(rp.ctx, a.received().Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatal(err)
	}
	external := fx.p.token(t, map[string]any{"sub": "alice", "groups": []string{"clinicians"}, "scope": "user/*.rs"})
	for name, tk := range map[string]string{"Ward's token": tok.AccessToken, "the IdP's access token": external} {
		if st := s.do("GET", "/fhir/Patient", nil, "Authorization", "Bearer "+tk).status; st != http.StatusOK {
			t.Fatalf("%s before disabling: %d", name, st)
		}
	}

	if err := s.users.SetDisabled(context.Background(), extID(fx.p, "alice"), true); err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]string{"Ward's token": tok.AccessToken, "the IdP's access token": external} {
		if st := s.do("GET", "/fhir/Patient", nil, "Authorization", "Bearer "+tk).status; st != http.StatusUnauthorized {
			t.Errorf("%s after disabling: %d, want 401", name, st)
		}
	}
	before := ledgerSize(t, s)
	b2 := fx.browser()
	fx.start(b2, rp.authURL("d2"))
	if b2.code != http.StatusForbidden || a.received().Get("state") != "d1" {
		t.Fatalf("disabled person signing in again: %d", b2.code)
	}
	if es := ledgerEntries(t, s, before); es[len(es)-1].Detail != "disabled" {
		t.Errorf("last entry %+v, want detail disabled", es[len(es)-1])
	}
	if err := s.users.SetPassword(context.Background(), extID(fx.p, "alice"), testPassword); err == nil {
		t.Error("a shadow user was given a password")
	}
}

// TestFederatedSignInIssuerDown: when the IdP cannot be reached (its
// discovery, or its token endpoint), the person sees a clear 503 page
// that still offers the password form, and nothing else is affected:
// a local person signs in, Ward's tokens work.
func TestFederatedSignInIssuerDown(t *testing.T) {
	fx := newFedFixture(t)
	s := fx.s
	s.newPatientUser("pat.local")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")

	fx.p.down.Store(true)
	b := fx.browser()
	fx.start(b, rp.authURL("down"))
	b.onPage("/signin/federated")
	if b.code != http.StatusServiceUnavailable || !strings.Contains(b.page, "cannot reach Hospital") || !strings.Contains(b.page, `name="password"`) {
		t.Fatalf("IdP down: %d\n%.1500s", b.code, b.page)
	}
	b.submit("/signin", "username", "pat.local", "password", testPassword)
	b.onPage("/signin/authorize")
	b.submit("/signin/authorize", "decision", "allow")
	if a.received().Get("code") == "" {
		t.Fatal("local sign-in failed while the IdP is down")
	}
	if st := s.do("GET", "/fhir/Patient", nil).status; st != http.StatusOK {
		t.Fatalf("Ward's own token while the IdP is down: %d", st)
	}

	// Discovery works again, but the token endpoint fails.
	fx.p.down.Store(false)
	fx.trust(hospitalIssuer(fx.p))
	fx.login.set(func(l *idpLogin) { l.tokenDown, l.claims = true, map[string]any{"groups": []string{"clinicians"}} })
	b2 := fx.browser()
	fx.start(b2, rp.authURL("down2"))
	b2.onPage("/signin/federated/callback")
	if b2.code != http.StatusServiceUnavailable || !strings.Contains(b2.page, "cannot reach Hospital") {
		t.Fatalf("token endpoint down: %d\n%.1500s", b2.code, b2.page)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFederatedSignInBrowser is the sign-in through an IdP in a real
// headless Chromium: the provider's button, the cross-site round trip to
// the IdP and back (Ward at localhost, the IdP at 127.0.0.1: another
// site, so the browser applies SameSite as in production; the flow's
// binding cookie must survive the IdP's redirect), the authorisation
// page, and the app's code.
func TestFederatedSignInBrowser(t *testing.T) {
	b := browsertest.Start(t)
	fx := newFedFixtureWith(t, stackOptions{localhost: true})
	s := fx.s
	mine := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	fx.claims(map[string]any{"groups": []string{"patients"}, "fhirUser": "Patient/" + mine})
	fx.login.set(func(l *idpLogin) { l.interactive = true })
	a := s.newApp(true, "openid", "launch/patient", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "launch/patient", "patient/*.rs")
	rp.conf.ClientSecret = ""

	b.Go(rp.authURL("chr1"))
	if label := b.Find("#provider-0").Text(); label != "Sign in with Hospital" {
		t.Fatalf("provider button %q", label)
	}
	b.Find("#provider-0").Click()
	b.Find("#idp-continue").Click()
	if scopes := b.Find("#scopes").Text(); !strings.Contains(scopes, "Read and search all of the patient's records") {
		t.Fatalf("authorisation page scopes: %q", scopes)
	}
	b.Find("#allow").Click()
	landed := b.WaitURL(a.cb.URL+"/cb", 15*time.Second)
	u, err := url.Parse(landed)
	if err != nil || u.Query().Get("state") != "chr1" || u.Query().Get("code") == "" {
		t.Fatalf("app redirect %q", landed)
	}
	tok, err := rp.conf.Exchange(rp.ctx, u.Query().Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if st := s.do("GET", "/fhir/Patient/"+mine, nil, "Authorization", "Bearer "+tok.AccessToken).status; st != http.StatusOK {
		t.Fatalf("own record with the Ward token: %d", st)
	}
	for _, c := range b.Cookies() {
		if c.Name == "__Host-ward-federated" {
			t.Error("the flow's binding cookie outlived the flow")
		}
	}
}
