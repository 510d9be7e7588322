package api_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

const testPassword = "correct horse battery staple 42"

// app is a registered app with a redirect endpoint that records what it
// receives, as a real app's callback would.
type app struct {
	client store.Client
	secret string
	cb     *httptest.Server
	mu     sync.Mutex
	got    url.Values
}

func (s *stack) newApp(public bool, scopes ...string) *app {
	s.t.Helper()
	a := &app{}
	a.cb = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.got = r.URL.Query()
		a.mu.Unlock()
		_, _ = io.WriteString(w, "app received the redirect")
	}))
	s.t.Cleanup(a.cb.Close)
	c, secret, err := s.auth.CreateApp(context.Background(), auth.AppSpec{Name: "Test App", Scopes: scopes, RedirectURIs: []string{a.cb.URL + "/cb"}, Public: public})
	if err != nil {
		s.t.Fatal(err)
	}
	a.client, a.secret = c, secret.Reveal()
	return a
}

func (a *app) received() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

// browser is a person's browser without JavaScript (the pages need none):
// it keeps cookies, follows redirects and submits forms as they are.
type browser struct {
	t    *testing.T
	s    *stack
	http *http.Client
	page string // the last page's HTML
	url  string // the last page's URL
	code int
}

func (s *stack) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: s.t, s: s, http: &http.Client{Transport: s.http.Transport, Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) get(u string) {
	b.t.Helper()
	resp, err := b.http.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	b.read(resp)
}

func (b *browser) read(resp *http.Response) {
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	b.page, b.url, b.code = string(data), resp.Request.URL.String(), resp.StatusCode
}

var inputRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// submit posts the page's form with its hidden fields plus fields.
func (b *browser) submit(action string, fields ...string) {
	b.t.Helper()
	form := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(b.page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	req, _ := http.NewRequest(http.MethodPost, b.s.base+action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.base)
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	b.read(resp)
}

func (b *browser) onPage(path string) {
	b.t.Helper()
	u, err := url.Parse(b.url)
	if err != nil || u.Path != path {
		b.t.Fatalf("browser at %s (status %d), want path %s", b.url, b.code, path)
	}
}

// relyingParty is an app built from libraries nobody here wrote:
// golang.org/x/oauth2 and github.com/coreos/go-oidc/v3.
type relyingParty struct {
	ctx      context.Context
	provider *oidc.Provider
	conf     oauth2.Config
	verifier string
}

func (s *stack) relyingParty(a *app, scopes ...string) *relyingParty {
	s.t.Helper()
	ctx := oidc.ClientContext(context.Background(), s.http)
	p, err := oidc.NewProvider(ctx, s.base)
	if err != nil {
		s.t.Fatalf("discovery: %v", err)
	}
	return &relyingParty{ctx: ctx, provider: p, verifier: oauth2.GenerateVerifier(), conf: oauth2.Config{
		ClientID: a.client.ID, ClientSecret: a.secret, Endpoint: p.Endpoint(), RedirectURL: a.cb.URL + "/cb", Scopes: scopes,
	}}
}

func (rp *relyingParty) authURL(state string, opts ...oauth2.AuthCodeOption) string {
	return rp.conf.AuthCodeURL(state, append(opts, oauth2.S256ChallengeOption(rp.verifier), oauth2.SetAuthURLParam("nonce", "n-"+state))...)
}

// signIn takes a person through the pages, from the app's authorization
// URL to the app's redirect, and returns what the app received.
func (s *stack) signIn(b *browser, a *app, authURL, username, password string) url.Values {
	s.t.Helper()
	b.get(authURL)
	b.onPage("/signin")
	b.submit("/signin", "username", username, "password", password)
	b.onPage("/signin/authorize")
	if !strings.Contains(b.page, "Test App") {
		s.t.Fatal("authorisation page does not name the app")
	}
	b.submit("/signin/authorize", "decision", "allow")
	got := a.received()
	if got == nil || got.Get("code") == "" {
		s.t.Fatalf("app received no code; browser at %s (status %d)", b.url, b.code)
	}
	return got
}

func (s *stack) newPatientUser(username string) (store.User, string) {
	s.t.Helper()
	r := must(s.t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated)
	pid := r.json(s.t)["id"].(string)
	u, err := s.users.Create(context.Background(), auth.NewUser{Username: username, Role: policy.RolePatient, FHIRUser: "Patient/" + pid, Password: testPassword})
	if err != nil {
		s.t.Fatal(err)
	}
	return u, pid
}

// TestSignInInteroperability runs the authorization code flow with PKCE
// from golang.org/x/oauth2 and go-oidc as the relying party: discovery,
// sign-in, code exchange, id_token verification, userinfo, the SMART
// launch context, a FHIR request with the token, refresh and revocation.
func TestSignInInteroperability(t *testing.T) {
	s := newStackWith(t, stackOptions{noAuthCache: true})
	user, pid := s.newPatientUser("pat.one")
	a := s.newApp(false, "openid", "fhirUser", "offline_access", "launch/patient", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "fhirUser", "offline_access", "launch/patient", "patient/*.rs")

	var smart struct {
		Authorize  string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		PKCE       []string `json:"code_challenge_methods_supported"`
		Capability []string `json:"capabilities"`
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/fhir/.well-known/smart-configuration", nil), 200).body, &smart); err != nil {
		t.Fatal(err)
	}
	if smart.Authorize != rp.conf.Endpoint.AuthURL || smart.Token != rp.conf.Endpoint.TokenURL || !slices.Equal(smart.PKCE, []string{"S256"}) ||
		!slices.Contains(smart.Capability, "launch-standalone") || !slices.Contains(smart.Capability, "context-standalone-patient") {
		t.Fatalf("smart-configuration %+v does not match OpenID discovery %+v", smart, rp.conf.Endpoint)
	}
	if meta := string(s.do("GET", "/fhir/metadata", nil).body); !strings.Contains(meta, `"url":"authorize","valueUri":"`+smart.Authorize+`"`) {
		t.Fatal("CapabilityStatement lacks the authorize endpoint")
	}

	got := s.signIn(s.newBrowser(), a, rp.authURL("st1"), "pat.one", testPassword)
	if got.Get("state") != "st1" {
		t.Fatalf("state %q", got.Get("state"))
	}
	tok, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if p, _ := tok.Extra("patient").(string); p != pid {
		t.Fatalf("token response patient %q, want %q", p, pid)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: a.client.ID}).Verify(rp.ctx, rawID)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var idc struct {
		FHIRUser string `json:"fhirUser"`
		Nonce    string `json:"nonce"`
	}
	if err := idt.Claims(&idc); err != nil || idt.Subject != user.ID || idc.Nonce != "n-st1" || idc.FHIRUser != s.base+"/fhir/Patient/"+pid {
		t.Fatalf("id_token sub %q claims %+v err %v", idt.Subject, idc, err)
	}
	info, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != user.ID {
		t.Fatalf("userinfo: %v %+v", err, info)
	}

	// The token reads the launch patient's record, and only that patient's
	// (an id_token is not an access token).
	bearer := func(tk string) int {
		return s.do("GET", "/fhir/Patient/"+pid, nil, "Authorization", "Bearer "+tk).status
	}
	if st := bearer(tok.AccessToken); st != http.StatusOK {
		t.Fatalf("person's access token reading their own record: %d", st)
	}
	_, otherPid := s.newPatientUser("pat.someone.else")
	before := ledgerSize(t, s)
	other := s.do("GET", "/fhir/Patient/"+otherPid, nil, "Authorization", "Bearer "+tok.AccessToken)
	unknown := s.do("GET", "/fhir/Patient/no-such-patient", nil, "Authorization", "Bearer "+tok.AccessToken)
	if other.status != http.StatusNotFound || unknown.status != http.StatusNotFound || string(other.body) != string(unknown.body) {
		t.Fatalf("another patient's record: %d %s; an unknown id: %d %s", other.status, other.body, unknown.status, unknown.body)
	}
	if es := ledgerEntries(t, s, before); len(es) != 2 || es[0].Outcome != "denied" || es[0].Actor != user.ID || es[1].Outcome != "not-found" {
		t.Fatalf("entries for the hidden and the unknown read: %+v", es)
	}
	if st := bearer(rawID); st != http.StatusUnauthorized {
		t.Fatalf("id_token used as access token: %d, want 401", st)
	}

	// The code works once.
	if _, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier)); err == nil {
		t.Fatal("code exchanged twice")
	}

	// Refresh rotates; reusing the old refresh token revokes the grant.
	refreshed, err := rp.conf.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	if st := bearer(refreshed.AccessToken); st != http.StatusOK {
		t.Fatalf("refreshed token refused: %d", st)
	}
	if _, err := rp.conf.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a used refresh token worked again")
	}
	if _, err := rp.conf.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil {
		t.Fatal("after reuse the grant's newest refresh token still works")
	}
	if st := bearer(refreshed.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("after reuse the grant's access token answers %d, want 401", st)
	}
}

// TestRevocationAndIntrospection: RFC 7009 revocation of an access token
// stops it at once (no cache here) and introspection then says inactive.
func TestRevocationAndIntrospection(t *testing.T) {
	s := newStackWith(t, stackOptions{noAuthCache: true})
	s.newPatientUser("pat.two")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	got := s.signIn(s.newBrowser(), a, rp.authURL("x"), "pat.two", testPassword)
	tok, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatal(err)
	}
	introspect := func() bool {
		form := url.Values{"token": {tok.AccessToken}}
		req, _ := http.NewRequest("POST", s.base+"/oauth2/introspect", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(a.client.ID, a.secret)
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Active bool `json:"active"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("introspection: status %d: %v", resp.StatusCode, err)
		}
		return out.Active
	}
	if !introspect() {
		t.Fatal("fresh token introspects inactive")
	}
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest("POST", s.base+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.client.ID, a.secret)
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if st := s.do("GET", "/fhir/Patient", nil, "Authorization", "Bearer "+tok.AccessToken).status; st != http.StatusUnauthorized {
		t.Fatalf("revoked token answers %d, want 401", st)
	}
	if introspect() {
		t.Fatal("revoked token introspects active")
	}
}
