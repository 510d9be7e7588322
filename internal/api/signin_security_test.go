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
	"golang.org/x/oauth2"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/secevent"
)

// signInEntries returns the ledger entries of sign-in steps since from.
func signInEntries(t *testing.T, s *stack, from int64) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	for _, e := range ledgerEntries(t, s, from) {
		switch e.Action {
		case "signin", "mfa", "mfa-enrol", "authorize", "logout":
			out = append(out, e)
		}
	}
	return out
}

// exchangeCode completes the code flow the browser ended.
func (rp *relyingParty) exchange(t *testing.T, got url.Values) *oauth2.Token {
	t.Helper()
	tok, err := rp.conf.Exchange(rp.ctx, got.Get("code"), oauth2.VerifierOption(rp.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// TestSignInEndsTokens is catalogue case B3: logout, a password change and
// disabling the user stop the person's tokens at once (no cache in this
// stack; with the cache, within auth.Config.ClientCacheTTL), and a session
// idle past its timeout no longer signs anyone in.
func TestSignInEndsTokens(t *testing.T) {
	s := newStackWith(t, stackOptions{noAuthCache: true})
	u, _ := s.newPatientUser("pat.b3")
	a := s.newApp(false, "openid", "offline_access", "patient/*.rs")
	use := func(tok string) int {
		return s.do("GET", "/fhir/Observation", nil, "Authorization", "Bearer "+tok).status
	}
	signedIn := func(b *browser) (*relyingParty, *oauth2.Token) {
		rp := s.relyingParty(a, "openid", "offline_access", "patient/*.rs")
		tok := rp.exchange(t, s.signIn(b, a, rp.authURL("s"), "pat.b3", testPassword))
		if st := use(tok.AccessToken); st == http.StatusUnauthorized {
			t.Fatalf("fresh token refused")
		}
		return rp, tok
	}

	t.Run("logout", func(t *testing.T) {
		b := s.newBrowser()
		rp, tok := signedIn(b)
		b.get(s.base + "/oauth2/logout")
		if !strings.Contains(b.page, "signed out") {
			t.Fatalf("logout page: %d", b.code)
		}
		if st := use(tok.AccessToken); st != http.StatusUnauthorized {
			t.Fatalf("access token after logout: %d", st)
		}
		if _, err := rp.conf.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("refresh token works after logout")
		}
		// The browser must sign in again.
		b.get(rp.authURL("again"))
		b.onPage("/signin")
		if !strings.Contains(b.page, `name="password"`) {
			t.Fatal("after logout the sign-in form is skipped")
		}
	})
	t.Run("password change", func(t *testing.T) {
		_, tok := signedIn(s.newBrowser())
		time.Sleep(1100 * time.Millisecond) // tokens and the change are timed to the second
		if err := s.users.SetPassword(context.Background(), u.ID, testPassword+"!"); err != nil {
			t.Fatal(err)
		}
		if st := use(tok.AccessToken); st != http.StatusUnauthorized {
			t.Fatalf("access token after password change: %d", st)
		}
		if err := s.users.SetPassword(context.Background(), u.ID, testPassword); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		_, tok := signedIn(s.newBrowser())
		if err := s.users.SetDisabled(context.Background(), u.ID, true); err != nil {
			t.Fatal(err)
		}
		defer s.users.SetDisabled(context.Background(), u.ID, false)
		if st := use(tok.AccessToken); st != http.StatusUnauthorized {
			t.Fatalf("access token of a disabled user: %d", st)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		b := s.newBrowser()
		signedIn(b)
		rp := s.relyingParty(a, "openid", "patient/*.rs")
		b.get(rp.authURL("warm"))
		b.onPage("/signin/authorize") // a live session skips the password
		s.clock.Advance(16 * time.Minute)
		b.get(rp.authURL("idle"))
		b.onPage("/signin")
		if !strings.Contains(b.page, `name="password"`) {
			t.Fatal("an idle session still signs in")
		}
	})
}

// TestSignInThrottling is catalogue case B4: 100 wrong passwords on one
// account, and spread over unknown accounts, are throttled; the answer is
// the same for existing and unknown accounts; the lockout is a security
// event in the ledger; and the right password works again once the
// throttle has passed (no permanent lockout).
func TestSignInThrottling(t *testing.T) {
	// 103 attempts from one address: more than its own budget of failed
	// sign-ins (TestSignInAddressLimit), which is not what this tests.
	// The HTTP layer sees the test's clock too: its security events are
	// counted per 5-minute window, which a run on the real clock could
	// cross between two failures.
	s := newStackWith(t, stackOptions{clocked: true, limits: ratelimit.Config{SignInAttempts: ratelimit.Limit{Rate: 1, Burst: 1000}}})
	// The throttle's lock doubles from 1 s: on the real clock, a slow run
	// could outlast it between the last wrong password and the right one.
	s.clock.Freeze()
	user, _ := s.newPatientUser("pat.b4")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	from := ledgerSize(t, s)
	b := s.newBrowser()
	b.get(rp.authURL("b4"))
	b.onPage("/signin")
	attempt := func(user, pw string) (int, string) {
		b.submit("/signin", "username", user, "password", pw)
		msg := b.page[strings.Index(b.page, "<main>"):]
		return b.code, msg
	}
	knownCode, knownBody := attempt("pat.b4", "wrong password one")
	unknownCode, unknownBody := attempt("nobody.here", "wrong password one")
	if knownCode != unknownCode || knownBody != unknownBody {
		t.Fatalf("known and unknown accounts answer differently: %d vs %d", knownCode, unknownCode)
	}
	for i := range 100 {
		if code, _ := attempt("pat.b4", "wrong password "+strings.Repeat("x", i%7)); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d", i, code)
		}
	}
	// Locked now: even the right password fails, with the same answer.
	if code, body := attempt("pat.b4", testPassword); code != http.StatusUnauthorized || body != knownBody {
		t.Fatalf("right password while throttled: %d", code)
	}
	entries := signInEntries(t, s, from)
	details := map[string]int{}
	for _, e := range entries {
		details[e.Detail]++
		if strings.Contains(string(mustEncode(t, e)), "wrong password") {
			t.Fatal("a password reached the ledger")
		}
	}
	if details["locked"] == 0 || details["throttled"] == 0 || details["unknown"] != 1 {
		t.Fatalf("sign-in entries by detail: %v", details)
	}
	if !strings.Contains(s.logs.String(), "security event: account throttled") {
		t.Fatal("no security event logged for the lockout")
	}
	// The SIEM hears of the lock, naming the account by its id, and of
	// the failures: the first of each kind per account and window at
	// once, the rest counted (G2).
	locks := s.events.since(0, secevent.AccountLocked)
	if len(locks) == 0 || locks[0].Actor != user.ID || locks[0].Source != "127.0.0.1" {
		t.Fatalf("account.locked events: %+v", locks)
	}
	fails := s.events.since(0, secevent.SignInFailed)
	reasons := map[string]int{}
	for _, e := range fails {
		reasons[e.Attrs[secevent.AttrReason]]++
		if strings.Contains(e.Actor, "nobody") {
			t.Fatalf("a user name no account has reached an event: %+v", e)
		}
	}
	if reasons["wrong-password"] != 1 || reasons["throttled"] != 1 || reasons["unknown"] != 1 || len(fails) > 6 {
		t.Fatalf("%d auth.signin.failed events for 103 failures, by reason %v: want the first of each, the rest counted", len(fails), reasons)
	}
	// The throttle is bounded: after its cap, the right password works.
	s.clock.Advance(16 * time.Minute)
	if code, _ := attempt("pat.b4", testPassword); code == http.StatusUnauthorized {
		t.Fatalf("right password after the throttle: %d", code)
	}
}

func mustEncode(t *testing.T, e ledger.Entry) []byte {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignInTOTP is catalogue case B5 with B7: a privileged role cannot get
// a code without a second factor; a replayed TOTP code, one two steps old
// and a malformed one are refused and audited; the current one works.
func TestSignInTOTP(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	u, err := s.users.Create(ctx, auth.NewUser{Username: "ada.admin", Role: policy.RoleAdmin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	a := s.newApp(false, "openid", "user/*.rs")
	rp := s.relyingParty(a, "openid", "user/*.rs")
	from := ledgerSize(t, s)

	// B7: password only, then straight to the authorisation page and the
	// provider's callback: no code reaches the app.
	b := s.newBrowser()
	b.get(rp.authURL("b7"))
	b.submit("/signin", "username", "ada.admin", "password", testPassword)
	b.onPage("/signin/enrol")
	id := b.url[strings.Index(b.url, "id=")+3:]
	b.get(s.base + "/signin/authorize?id=" + id)
	b.onPage("/signin/enrol")
	b.get(s.base + "/oauth2/authorize/callback?id=" + id)
	if got := a.received(); got != nil && got.Get("code") != "" {
		t.Fatal("an admin without a second factor got a code")
	}

	// Enrol through the page, with the secret it shows.
	b.get(s.base + "/signin/enrol?id=" + id)
	secret := between(b.page, `<code id="secret">`, "</code>")
	now := s.clock.Now()
	code, _ := totp.GenerateCode(secret, now)
	b.submit("/signin/enrol", "code", code)
	if !strings.Contains(b.page, `id="codes"`) {
		t.Fatalf("enrolment did not finish: %d", b.code)
	}

	// A new sign-in asks for a code. The one used to enrol is spent.
	b2 := s.newBrowser()
	b2.get(rp.authURL("b5"))
	b2.submit("/signin", "username", "ada.admin", "password", testPassword)
	b2.onPage("/signin/mfa")
	old, _ := totp.GenerateCode(secret, now.Add(-60*time.Second))
	for _, bad := range []string{code, old, "12345", "abcdef"} {
		b2.submit("/signin/mfa", "code", bad)
		if b2.code != http.StatusUnauthorized {
			t.Fatalf("code %q accepted: %d", bad, b2.code)
		}
	}
	s.clock.Advance(30 * time.Second)
	next, _ := totp.GenerateCode(secret, s.clock.Now())
	b2.submit("/signin/mfa", "code", next)
	b2.onPage("/signin/authorize")
	b2.submit("/signin/authorize", "decision", "allow")
	tok := rp.exchange(t, a.received())
	if claims := jwtClaims(t, tok.AccessToken); claims["acr"] != "urn:ward:acr:mfa" || claims["ward_role"] != "admin" {
		t.Fatalf("admin token claims acr %v role %v", claims["acr"], claims["ward_role"])
	}

	var details []string
	for _, e := range signInEntries(t, s, from) {
		if e.Action == "mfa" || e.Action == "mfa-enrol" {
			if e.Actor != u.ID {
				t.Errorf("mfa entry actor %q, want the user", e.Actor)
			}
			details = append(details, e.Action+":"+e.Detail)
		}
	}
	want := []string{"mfa-enrol:ok", "mfa:replayed", "mfa:wrong-code", "mfa:malformed", "mfa:malformed", "mfa:ok-otp"}
	if !slices.Equal(details, want) {
		t.Fatalf("second-factor entries %v, want %v", details, want)
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	j := strings.Index(s, end)
	if j < 0 {
		return ""
	}
	return s[:j]
}

// adminToken signs in an admin with a TOTP factor and returns a token.
func (s *stack) adminToken(username string) string {
	s.t.Helper()
	return s.mfaToken(username, policy.RoleAdmin)
}

// mfaToken creates a person in role with an authenticator app and returns
// the token of their sign-in with it.
func (s *stack) mfaToken(username, role string) string {
	s.t.Helper()
	ctx := context.Background()
	u, err := s.users.Create(ctx, auth.NewUser{Username: username, Role: role, Password: testPassword})
	if err != nil {
		s.t.Fatal(err)
	}
	uri, _, err := s.users.BeginTOTP(ctx, u.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	secret := pu.Query().Get("secret")
	code, _ := totp.GenerateCode(secret, s.clock.Now().Add(-30*time.Second))
	if _, err := s.users.ConfirmTOTP(ctx, u.ID, code); err != nil {
		s.t.Fatal(err)
	}
	a := s.newApp(false, "openid", "user/*.rs")
	rp := s.relyingParty(a, "openid", "user/*.rs")
	b := s.newBrowser()
	b.get(rp.authURL("adm"))
	b.submit("/signin", "username", username, "password", testPassword)
	b.onPage("/signin/mfa")
	code, _ = totp.GenerateCode(secret, s.clock.Now())
	b.submit("/signin/mfa", "code", code)
	b.submit("/signin/authorize", "decision", "allow")
	return rp.exchange(s.t, a.received()).AccessToken
}

// TestAdminAPI: only an admin signed in with a second factor manages
// accounts; services and other roles get 403 whatever their scopes, and
// the password policy holds through the API (B6, A8).
func TestAdminAPI(t *testing.T) {
	s := newStack(t)
	s.newPatientUser("pat.adm")
	admin := s.adminToken("root.admin")
	as := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}

	if st := s.do("GET", "/admin/users", nil).status; st != http.StatusForbidden {
		t.Fatalf("service token with system/*.cruds lists users: %d", st)
	}
	if st := s.do("GET", "/admin/users", nil, "Authorization", "").status; st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	list := must(t, s.do("GET", "/admin/users", nil, as(admin)...), http.StatusOK)
	if !strings.Contains(string(list.body), `"username":"pat.adm"`) || strings.Contains(string(list.body), "argon2") {
		t.Fatalf("user list: %s", list.body)
	}
	bad := s.do("POST", "/admin/users", `{"username":"new.one","role":"practitioner","password":"short"}`, as(admin)...)
	if bad.status != http.StatusBadRequest || !strings.Contains(string(bad.body), "at least 12") || strings.Contains(string(bad.body), `"short"`) {
		t.Fatalf("short password: %d %s", bad.status, bad.body)
	}
	created := must(t, s.do("POST", "/admin/users", `{"username":"new.one","role":"practitioner","password":"`+testPassword+`"}`, as(admin)...), http.StatusCreated).json(t)
	id, _ := created["id"].(string)
	if dis := must(t, s.do("POST", "/admin/users/"+id+"/disable", nil, as(admin)...), http.StatusOK).json(t); dis["disabled"] != true {
		t.Fatalf("disable: %v", dis)
	}
	if st := s.do("POST", "/admin/users/nosuch/disable", nil, as(admin)...).status; st != http.StatusNotFound {
		t.Fatalf("unknown user: %d", st)
	}
	if st := s.do("DELETE", "/admin/users/"+id, nil, as(admin)...).status; st != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE user: %d", st)
	}
}

// OpenID Connect Core 3.1.2.1: max_age=0, and prompt=login (which the
// provider reads as max_age=0), make a person who is signed in already
// sign in again before the app gets a code, and check a second factor
// again, once, not in a loop. No later step can be reached with the
// older session, and the token says when the new sign-in was. A max_age
// the session meets, or none, still uses it.
func TestSignInMaxAge(t *testing.T) {
	s := newStack(t)
	s.newPatientUser("pat.maxage")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	b := s.newBrowser()
	first := jwtClaims(t, rp.exchange(t, s.signIn(b, a, rp.authURL("first"), "pat.maxage", testPassword)).AccessToken)["auth_time"].(float64)
	param := oauth2.SetAuthURLParam
	for name, opts := range map[string][]oauth2.AuthCodeOption{"no max_age": nil, "max_age=3600": {param("max_age", "3600")}} {
		b.get(rp.authURL("reuse", opts...))
		if u, _ := url.Parse(b.url); u.Path != "/signin/authorize" {
			t.Errorf("%s: a live session was not used: browser at %s", name, b.url)
		}
	}

	fresh := func(name, username string, opt oauth2.AuthCodeOption, secondFactor func(b *browser)) {
		t.Helper()
		s.clock.Advance(2 * time.Second) // so that a new sign-in has a later auth_time
		b.get(rp.authURL("fresh", opt))
		b.onPage("/signin")
		if !strings.Contains(b.page, `name="password"`) {
			t.Fatalf("%s: no password form", name)
		}
		id := b.url[strings.Index(b.url, "id=")+3:]
		for _, step := range []string{"/signin/authorize", "/signin/mfa", "/signin/patient", "/signin/enrol"} {
			b.get(s.base + step + "?id=" + id)
			if u, _ := url.Parse(b.url); u.Path != "/signin" {
				t.Errorf("%s: %s with the older session reached %s", name, step, b.url)
			}
		}
		a.mu.Lock()
		a.got = nil
		a.mu.Unlock()
		b.get(s.base + "/oauth2/authorize/callback?id=" + id)
		if got := a.received(); got != nil && got.Get("code") != "" {
			t.Fatalf("%s: a code without signing in again", name)
		}
		b.get(s.base + "/signin?id=" + id)
		b.submit("/signin", "username", username, "password", testPassword)
		if secondFactor != nil {
			secondFactor(b)
		}
		b.onPage("/signin/authorize")
		b.submit("/signin/authorize", "decision", "allow")
		claims := jwtClaims(t, rp.exchange(t, a.received()).AccessToken)
		if at, _ := claims["auth_time"].(float64); at <= first {
			t.Errorf("%s: auth_time %v is not the new sign-in's (the first was %v)", name, claims["auth_time"], first)
		}
		first = claims["auth_time"].(float64)
	}
	fresh("max_age=0", "pat.maxage", param("max_age", "0"), nil)
	fresh("prompt=login", "pat.maxage", param("prompt", "login"), nil)

	// A person with a second factor checks it again too, and once only.
	u, err := s.users.Create(context.Background(), auth.NewUser{Username: "adm.maxage", Role: policy.RoleAdmin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	secret := s.enrolTOTP(u.ID)
	a = s.newApp(false, "openid", "user/*.rs")
	rp = s.relyingParty(a, "openid", "user/*.rs")
	b = s.newBrowser()
	b.get(rp.authURL("mfa"))
	b.submit("/signin", "username", "adm.maxage", "password", testPassword)
	b.onPage("/signin/mfa")
	code, _ := totp.GenerateCode(secret, s.clock.Now())
	b.submit("/signin/mfa", "code", code)
	b.submit("/signin/authorize", "decision", "allow")
	first = jwtClaims(t, rp.exchange(t, a.received()).AccessToken)["auth_time"].(float64)
	fresh("max_age=0 with a second factor", "adm.maxage", param("max_age", "0"), func(b *browser) {
		b.onPage("/signin/mfa")
		s.clock.Advance(30 * time.Second) // a code for a new time step: each is used once
		code, _ := totp.GenerateCode(secret, s.clock.Now())
		b.submit("/signin/mfa", "code", code)
	})
}
