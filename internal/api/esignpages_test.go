package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/signin"
)

// signPagePath is the sign page of version v of the world's Observation.
func (w *signingWorld) signPagePath(v string) string {
	return signin.PathSign + "?target=" + url.QueryEscape("Observation/"+w.obs+"/_history/"+v)
}

// session signs username (p's account) in to Ward through an app, in a
// browser of the test's own, and returns the browser with its session.
func (w *signingWorld) session(t *testing.T, username string, p signerPerson) *browser {
	t.Helper()
	s := w.s
	a := s.newApp(false, "openid", "user/*.cruds")
	rp := s.relyingParty(a, "openid", "user/*.cruds")
	b := s.newBrowser()
	b.get(rp.authURL("sign"))
	b.submit("/signin", "username", username, "password", testPassword)
	b.onPage("/signin/mfa")
	b.submit("/signin/mfa", "code", w.code(p))
	b.submit("/signin/authorize", "decision", "allow")
	return b
}

// signEntries returns the signing entries (sign, sign-challenge) since
// from, checking that none holds the password.
func signEntries(t *testing.T, s *stack, from int64) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	for _, e := range entriesSince(t, s, from, testPassword) {
		if e.Action == "sign" || e.Action == "sign-challenge" {
			out = append(out, e)
		}
	}
	return out
}

// TestESignPagesRefuse is the signing pages' own protection, without a
// browser: their security headers; no session, no page (401); a post
// without the form's CSRF token or from another origin is refused (403)
// before anything is done; an unknown version and one outside the
// person's reach answer the same 404; and step 2 without the password
// and code again (the session alone) signs nothing. Nothing is signed,
// and the refused ceremony is in the ledger.
func TestESignPagesRefuse(t *testing.T) {
	for name, o := range map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} { // skips visibly without WARD_TEST_POSTGRES
		t.Run(name, func(t *testing.T) { eSignPagesRefuse(t, o) })
	}
}

func eSignPagesRefuse(t *testing.T, o stackOptions) {
	w := newSigningWorldWith(t, o)
	s := w.s
	from := ledgerSize(t, s)

	anon := s.newBrowser()
	anon.get(s.base + w.signPagePath("1"))
	if anon.code != http.StatusUnauthorized || !strings.Contains(anon.page, "Sign in first") || strings.Contains(anon.page, w.obs) {
		t.Fatalf("without a session: %d %.200s", anon.code, anon.page)
	}

	b := w.session(t, "dr.sign", w.doc)
	resp, err := b.http.Get(s.base + w.signPagePath("1"))
	if err != nil {
		t.Fatal(err)
	}
	b.read(resp)
	if b.code != http.StatusOK || !strings.Contains(b.page, `id="sha256"`) || !strings.Contains(b.page, `name="meaning"`) {
		t.Fatalf("sign page: %d %.300s", b.code, b.page)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "same-origin",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("sign page %s: %q, want %q", k, got, want)
		}
	}
	rec := w.record(t, w.doc)
	if hash := rec.Versions[0].SHA256; len(hash) != 64 || !strings.Contains(b.page, hash) {
		t.Fatalf("the sign page does not show the version's SHA-256 %q", hash)
	}
	signPage := b.page

	// CSRF: no token, a wrong token, another origin.
	post := func(form url.Values, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, s.base+signin.PathSign, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := b.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	target := "Observation/" + w.obs + "/_history/1"
	csrf := inputRE.FindStringSubmatch(signPage[strings.Index(signPage, `name="csrf"`)-30:])
	if csrf == nil {
		t.Fatal("the sign page has no CSRF field")
	}
	for name, c := range map[string]struct {
		form   url.Values
		origin string
	}{
		"no token":       {url.Values{"target": {target}, "meaning": {meaningApproval}}, s.base},
		"a wrong token":  {url.Values{"target": {target}, "meaning": {meaningApproval}, "csrf": {strings.Repeat("a", 43)}}, s.base},
		"another origin": {url.Values{"target": {target}, "meaning": {meaningApproval}, "csrf": {csrf[2]}}, "https://evil.example"},
	} {
		if st := post(c.form, c.origin); st != http.StatusForbidden {
			t.Errorf("a post with %s: %d, want 403", name, st)
		}
	}
	for _, e := range signEntries(t, s, from) {
		t.Errorf("a refused post reached the signing: %+v", e)
	}

	// Not there and not the person's look the same.
	other := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	foreign := must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": "Patient/" + other}}), http.StatusCreated).json(t)["id"].(string)
	var bodies []string
	for _, tg := range []string{"Observation/" + foreign + "/_history/1", "Observation/nope/_history/1", "Observation/" + w.obs + "/_history/7", "Observation/x", "*/" + w.obs + "/_history/1"} {
		b.get(s.base + signin.PathSign + "?target=" + url.QueryEscape(tg))
		if b.code != http.StatusNotFound {
			t.Errorf("sign page of %s: %d, want 404", tg, b.code)
		}
		bodies = append(bodies, strings.ReplaceAll(b.page, csrf[2], ""))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("another patient's version and an unknown one answer differently:\n%s\n%s", bodies[0], bodies[1])
	}

	// The signatures page says "Signed" only of a version the person signed.
	b.get(s.base + signin.PathSignatures + "?signed=1&target=" + url.QueryEscape(target))
	if b.code != http.StatusOK || strings.Contains(b.page, `id="signed"`) || !strings.Contains(b.page, "None yet.") {
		t.Fatalf("signatures page of an unsigned version, signed=1: %d %.300s", b.code, b.page)
	}

	// The session alone: step 1, then step 2 without password and code.
	b.page = signPage
	b.submit(signin.PathSign, "meaning", meaningApproval)
	if b.code != http.StatusOK || !strings.Contains(b.page, `name="nonce"`) {
		t.Fatalf("step 1: %d %.300s", b.code, b.page)
	}
	b.submit(signin.PathSign)
	if b.code != http.StatusUnauthorized || !strings.Contains(b.page, "nothing was signed") {
		t.Fatalf("step 2 without password and code: %d %.300s", b.code, b.page)
	}
	if got := w.record(t, w.doc).Versions[0].Signatures; len(got) != 0 {
		t.Fatalf("signed without the ceremony: %+v", got)
	}
	var challenged, refused bool
	for _, e := range signEntries(t, s, from) {
		switch {
		case e.Action == "sign-challenge" && e.Outcome == "success" && e.Actor == w.doc.id && e.Client == signin.PageClient:
			challenged = true
		case e.Action == "sign" && e.Outcome != "success" && e.Actor == w.doc.id && e.Detail == "ceremony=wrong-password":
			refused = true
		case e.Action == "sign" && e.Outcome == "success":
			t.Errorf("a signing succeeded: %+v", e)
		}
	}
	if !challenged || !refused {
		t.Fatalf("ledger: challenge recorded %v, refused ceremony recorded %v: %+v", challenged, refused, signEntries(t, s, from))
	}
}

// TestESignPagesShareThrottle: failed ceremonies through $sign and
// through the sign page count toward one throttle per person (and
// source): after five, mixed, the right password and code are refused on
// the page (429, "Too many failed attempts") and through $sign alike,
// and nothing is signed.
func TestESignPagesShareThrottle(t *testing.T) {
	for name, o := range map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} { // skips visibly without WARD_TEST_POSTGRES
		t.Run(name, func(t *testing.T) { eSignPagesShareThrottle(t, o) })
	}
}

func eSignPagesShareThrottle(t *testing.T, o stackOptions) {
	w := newSigningWorldWith(t, o)
	s := w.s
	b := w.session(t, "dr.sign", w.doc)
	s.clock.Freeze()
	good := w.code(w.doc) // a code of the current step, not used yet
	path := signPath("Observation", w.obs, 1)
	for range 3 {
		n := w.challenge(t, w.doc, path, meaningApproval)
		if r := w.confirm(w.doc, path, meaningApproval, n, "wrong password, quite long", "000000"); r.status != http.StatusUnauthorized {
			t.Fatalf("a failed ceremony through $sign: %d", r.status)
		}
	}
	page := func(password, code string) {
		t.Helper()
		b.get(s.base + w.signPagePath("1"))
		b.submit(signin.PathSign, "meaning", meaningApproval)
		if b.code != http.StatusOK {
			t.Fatalf("step 1 on the page: %d", b.code)
		}
		b.submit(signin.PathSign, "password", password, "code", code)
	}
	for range 2 {
		if page("wrong password, quite long", "000000"); b.code != http.StatusUnauthorized {
			t.Fatalf("a failed ceremony on the page: %d", b.code)
		}
	}
	if page(testPassword, good); b.code != http.StatusTooManyRequests || !strings.Contains(b.page, "Too many failed attempts") {
		t.Fatalf("the right credentials on the page while throttled: %d %.300s", b.code, b.page)
	}
	n := w.challenge(t, w.doc, path, meaningApproval)
	if r := w.confirm(w.doc, path, meaningApproval, n, testPassword, good); r.status != http.StatusTooManyRequests {
		t.Fatalf("the right credentials through $sign while throttled: %d", r.status)
	}
	if sigs := w.record(t, w.doc).Versions[0].Signatures; len(sigs) != 0 {
		t.Fatalf("signed while throttled: %+v", sigs)
	}
}

// TestSignPageMeanings: the meanings the sign page offers are signature
// type codes of package esign's, with its displays, and the four uses
// (author, review, verification, validation) are there once each.
func TestSignPageMeanings(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range signin.SignMeanings {
		em, ok := esign.LookupMeaning(m.Code)
		if !ok || em.Display != m.Display || seen[m.Code] {
			t.Errorf("sign page meaning %+v: esign has %+v (known %v), repeated %v", m, em, ok, seen[m.Code])
		}
		seen[m.Code] = true
	}
	for _, code := range []string{"1.2.840.10065.1.12.1.1", "1.2.840.10065.1.12.1.13", meaningApproval, "1.2.840.10065.1.12.1.6"} {
		if !seen[code] {
			t.Errorf("the sign page does not offer %s", code)
		}
	}
}
