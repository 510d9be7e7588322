package api_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/browsertest"
	"github.com/wardhealth/ward/internal/policy"
)

// TestSignInPasskeyBrowser is WebAuthn end to end in a real headless
// Chromium with a virtual authenticator: an admin signs in with a
// password, is made to enrol a second factor and picks a passkey; the app
// gets a code whose token names the key in amr. The admin signs out, signs
// in again and uses the passkey as the second factor.
func TestSignInPasskeyBrowser(t *testing.T) {
	b := browsertest.Start(t)
	key := b.AddVirtualAuthenticator()
	s := newStackWith(t, stackOptions{localhost: true})
	ctx := context.Background()
	u, err := s.users.Create(ctx, auth.NewUser{Username: "ada", Role: policy.RoleAdmin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	a := s.newApp(true, "openid", "fhirUser", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	rp.conf.ClientSecret = ""
	from := ledgerSize(t, s)

	signIn := func(state string) {
		t.Helper()
		b.Go(rp.authURL(state))
		b.Find("#username").Type("ada")
		b.Find("#password").Type(testPassword)
		b.Find("#submit").Click()
	}
	finish := func(state string) map[string]any {
		t.Helper()
		if got := b.Find("#scopes").Text(); !strings.Contains(got, "Read and search all of the patient's records") {
			t.Fatalf("authorisation page scopes: %q", got)
		}
		b.Find("#allow").Click()
		landed := b.WaitURL(a.cb.URL+"/cb", 15*time.Second)
		got, err := url.Parse(landed)
		if err != nil || got.Query().Get("state") != state {
			t.Fatalf("app redirect %q", landed)
		}
		return jwtClaims(t, rp.exchange(t, got.Query()).AccessToken)
	}
	keyMethod := func(claims map[string]any) string {
		t.Helper()
		amr, _ := claims["amr"].([]any)
		if claims["acr"] != "urn:ward:acr:mfa" || claims["ward_mfa_time"] == nil || len(amr) != 2 || amr[0] != "pwd" {
			t.Fatalf("token does not record a second factor: acr %v amr %v mfa_time %v", claims["acr"], amr, claims["ward_mfa_time"])
		}
		m, _ := amr[1].(string)
		if m != auth.AMRHardwareKey && m != auth.AMRSoftwareKey {
			t.Fatalf("token amr %v: second method is not a WebAuthn key", amr)
		}
		return m
	}

	// Enrolment: the page offers the key (the script unhid the button).
	signIn("pk1")
	b.Find("#qr") // the authenticator app is offered too
	if hidden := b.Find("#webauthn-key").Property("hidden"); hidden != false {
		t.Fatalf("the key button is hidden (%v): the script did not run under the page's CSP", hidden)
	}
	b.Find("#webauthn-key").Click()
	if n := len(b.Find("#codes").Text()); n < 50 {
		t.Fatalf("recovery codes page shows %d characters", n)
	}
	creds := key.Credentials()
	if len(creds) != 1 || creds[0].RPID != "localhost" {
		t.Fatalf("virtual authenticator holds %+v, want one credential for localhost", creds)
	}
	b.Find("#submit").Click()
	first := keyMethod(finish("pk1"))
	stored, err := s.users.User(ctx, u.ID)
	if err != nil || !auth.HasWebAuthn(stored) || auth.HasTOTP(stored) {
		t.Fatalf("after enrolment: key %v, app %v (%v)", auth.HasWebAuthn(stored), auth.HasTOTP(stored), err)
	}

	// Sign out, sign in again: the second factor page offers the key.
	b.Go(s.base + "/oauth2/logout")
	signIn("pk2")
	b.Find("#code") // recovery codes stay possible
	before := key.Credentials()[0].SignCount
	b.Find("#webauthn-key").Click()
	second := keyMethod(finish("pk2"))
	if second != first {
		t.Errorf("sign-in used %q, enrolment %q", second, first)
	}
	if after := key.Credentials()[0].SignCount; after <= before {
		t.Errorf("the authenticator did not sign: sign count %d, was %d", after, before)
	}

	var details []string
	for _, e := range signInEntries(t, s, from) {
		if e.Action == "mfa" || e.Action == "mfa-enrol" {
			details = append(details, e.Action+":"+e.Detail)
		}
	}
	if want := []string{"mfa-enrol:ok-" + first, "mfa:ok-" + first}; !slices.Equal(details, want) {
		t.Errorf("second-factor ledger entries %v, want %v", details, want)
	}
}

// TestSignInWebAuthnPages checks the pages that offer a key without a
// browser: the script is allowed by its exact URL on those pages only, a
// forged key response is refused and audited, and the authenticator app
// still works without JavaScript.
func TestSignInWebAuthnPages(t *testing.T) {
	s := newStackWith(t, stackOptions{localhost: true})
	ctx := context.Background()
	u, err := s.users.Create(ctx, auth.NewUser{Username: "ada", Role: policy.RoleAdmin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	a := s.newApp(true, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	from := ledgerSize(t, s)
	br := s.newBrowser()
	br.get(rp.authURL("w1"))
	br.submit("/signin", "username", "ada", "password", testPassword)
	br.onPage("/signin/enrol")
	if !strings.Contains(br.page, `data-webauthn-create="{&#34;publicKey&#34;:`) || strings.Count(br.page, "<script") != 1 ||
		!strings.Contains(br.page, `<script src="/signin/webauthn.js"></script>`) {
		t.Fatalf("enrolment page does not offer the key through the one script:\n%s", br.page)
	}

	get := func(path string) *http.Response {
		t.Helper()
		resp, err := br.http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	enrolURL, _ := url.Parse(br.url)
	csp := get(enrolURL.RequestURI()).Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src "+s.base+"/signin/webauthn.js;") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src 'self'") {
		t.Errorf("enrolment page CSP %q, want script-src naming only the WebAuthn script", csp)
	}
	if csp := get("/signin?id=x").Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
		t.Errorf("a page without the key allows scripts: %q", csp)
	}
	js := get("/signin/webauthn.js")
	if js.StatusCode != http.StatusOK || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") || js.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("webauthn.js: status %d, type %q, nosniff %q", js.StatusCode, js.Header.Get("Content-Type"), js.Header.Get("X-Content-Type-Options"))
	}

	// A forged response is refused, audited, and changes nothing.
	br.get(enrolURL.String())
	forged := `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`
	br.submit("/signin/enrol", "webauthn", forged)
	if br.code != http.StatusUnauthorized || !strings.Contains(br.page, "could not be registered") {
		t.Fatalf("forged registration: status %d", br.code)
	}
	if got, _ := s.users.User(ctx, u.ID); auth.HasMFA(got) {
		t.Fatal("a forged registration enrolled a second factor")
	}

	// Without JavaScript the authenticator app works on the same page (the
	// key form's empty field goes along and is ignored).
	secret := between(br.page, `<code id="secret">`, "</code>")
	code, err := totp.GenerateCode(secret, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	br.submit("/signin/enrol", "code", code)
	if !strings.Contains(br.page, `id="codes"`) {
		t.Fatalf("TOTP enrolment on a page that offers keys failed: status %d", br.code)
	}
	if got, _ := s.users.User(ctx, u.ID); !auth.HasTOTP(got) || auth.HasWebAuthn(got) {
		t.Fatal("after TOTP enrolment: want an authenticator app and no key")
	}
	var details []string
	for _, e := range signInEntries(t, s, from) {
		if e.Action == "mfa-enrol" {
			details = append(details, e.Detail)
		}
	}
	if want := []string{"key-refused", "ok"}; !slices.Equal(details, want) {
		t.Errorf("enrolment ledger details %v, want %v", details, want)
	}

	// On a server named by an IP address WebAuthn cannot work: the pages
	// offer no key and no script.
	s2 := newStack(t)
	if _, err := s2.users.Create(ctx, auth.NewUser{Username: "bob", Role: policy.RoleAdmin, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	a2 := s2.newApp(true, "openid", "patient/*.rs")
	br2 := s2.newBrowser()
	br2.get(s2.relyingParty(a2, "openid", "patient/*.rs").authURL("w2"))
	br2.submit("/signin", "username", "bob", "password", testPassword)
	br2.onPage("/signin/enrol")
	if strings.Contains(br2.page, "<script") || strings.Contains(br2.page, "webauthn") {
		t.Error("a server without a domain name offers WebAuthn")
	}
}
