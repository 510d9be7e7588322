package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/browsertest"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/signin"
)

// TestESignBrowserCeremony is catalogue cases I1 and I3 in a real headless
// Chromium: a practitioner with the right to sign, signed in to Ward,
// opens the sign page of one version, sees its type, id, version and
// SHA-256, chooses a meaning and is asked for the password and a code
// again. The session alone (nothing entered), a wrong password and a
// used code each sign nothing and are in the ledger as failed signings.
// With the password and a fresh code the version is signed: the page that
// follows shows the printed name, the date and time with zone and the
// meaning together, the Provenance exists and $signatures verifies it.
// A person without the right, signed in the same way, is refused at step
// 1, and that refusal is in the ledger too.
func TestESignBrowserCeremony(t *testing.T) {
	for name, o := range map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} { // skips visibly without WARD_TEST_POSTGRES
		t.Run(name, func(t *testing.T) { eSignBrowserCeremony(t, o) })
	}
}

func eSignBrowserCeremony(t *testing.T, o stackOptions) {
	b := browsertest.Start(t) // a browser of its own: no cookie of another run
	w := newSigningWorldWith(t, o)
	s := w.s
	noRight := w.person(t, "dr.noright", "Dr Nora Wright", false)
	from := ledgerSize(t, s)
	target := "Observation/" + w.obs + "/_history/1"
	var hash string // the version's SHA-256, as $signatures lists it

	// signIn signs a person in to Ward through an app, with a password
	// and a TOTP code, and returns the code.
	signIn := func(username string, p signerPerson) string {
		t.Helper()
		a := s.newApp(true, "openid", "user/*.cruds")
		rp := s.relyingParty(a, "openid", "user/*.cruds")
		rp.conf.ClientSecret = ""
		b.Go(rp.authURL("esign"))
		b.Find("#username").Type(username)
		b.Find("#password").Type(testPassword)
		b.Find("#submit").Click()
		code := w.code(p)
		b.Find("#code").Type(code)
		b.Find("#submit").Click()
		b.Find("#allow").Click()
		b.WaitURL(a.cb.URL+"/cb", 15*time.Second)
		return code
	}
	// ceremony opens the sign page, chooses the approval meaning and
	// fills the ceremony form with password and code.
	ceremony := func(password, code string) {
		t.Helper()
		b.Go(s.base + w.signPagePath("1"))
		if got := b.Find("#target").Text(); got != target {
			t.Fatalf("sign page names %q, want %q", got, target)
		}
		b.Find(`#meaning option[value="` + meaningApproval + `"]`).Click()
		b.Find("#submit").Click()
		if got := b.Find("#meaning-chosen").Text(); !strings.Contains(got, "Verification Signature") {
			t.Fatalf("ceremony form meaning: %q", got)
		}
		if got := b.Find("#sha256").Text(); got != hash {
			t.Fatalf("ceremony form SHA-256 %q, want %q", got, hash)
		}
		b.Find("#password").Type(password)
		b.Find("#code").Type(code)
		b.Find("#submit").Click()
	}
	refused := func(what string) {
		t.Helper()
		if got := b.Find("#error").Text(); !strings.Contains(got, "nothing was signed") {
			t.Fatalf("%s: the page says %q", what, got)
		}
		if sigs := w.record(t, w.doc).Versions[0].Signatures; len(sigs) != 0 {
			t.Fatalf("%s signed: %+v", what, sigs)
		}
	}

	signInCode := signIn("dr.sign", w.doc)
	hash = w.record(t, w.doc).Versions[0].SHA256
	b.Go(s.base + w.signPagePath("1"))
	if got := b.Find("#sha256").Text(); got != hash || len(hash) != 64 {
		t.Fatalf("sign page SHA-256 %q, want %q", got, hash)
	}
	if got := b.Find("#signatures").Text(); got != "None yet." {
		t.Fatalf("signatures before signing: %q", got)
	}

	ceremony("", "")
	refused("the session alone")
	ceremony(testPassword+"x", w.code(w.doc))
	refused("a wrong password")
	ceremony(testPassword, signInCode)
	refused("a code already used (at sign-in)")

	ceremony(testPassword, w.code(w.doc))
	// The form posts, then redirects: wait for the redirect to land.
	b.WaitURL(s.base+signin.PathSignatures+"?", 15*time.Second)
	if got := b.Find("#signed").Text(); !strings.HasPrefix(got, "Signed.") {
		t.Fatalf("signatures page after signing: %q", got)
	}
	rec := w.record(t, w.doc)
	sigs := rec.Versions[0].Signatures
	if len(sigs) != 1 || sigs[0].Status != esign.StatusValid || sigs[0].Signer != w.doc.id || sigs[0].Name != w.doc.name || sigs[0].Meaning.Code != meaningApproval {
		t.Fatalf("$signatures after the browser ceremony: %+v", sigs)
	}
	must(t, s.do("GET", "/fhir/"+sigs[0].Provenance, nil, w.doc.headers...), http.StatusOK)
	when, err := time.Parse(time.RFC3339Nano, sigs[0].When)
	if err != nil {
		t.Fatalf("signature time %q: %v", sigs[0].When, err)
	}
	shown := b.FindAll("li.signature")
	if len(shown) != 1 {
		t.Fatalf("the signatures page shows %d signatures", len(shown))
	}
	name, at, meaning := b.Find("li.signature .name").Text(), b.Find("li.signature .when").Text(), b.Find("li.signature .meaning").Text()
	if name != "Dr Zoë O'Brien" || at != when.UTC().Format("2006-01-02 15:04:05")+" UTC" || meaning != "Verification Signature" {
		t.Fatalf("manifestation shown: name %q, time %q, meaning %q", name, at, meaning)
	}
	if line := b.Find("li.signature .line").Text(); line != sigs[0].Manifestation ||
		!strings.Contains(line, name) || !strings.Contains(line, when.UTC().Format("2006-01-02 15:04:05")+" UTC") || !strings.Contains(line, meaning) {
		t.Fatalf("manifestation line %q, $signatures says %q", line, sigs[0].Manifestation)
	}
	b.Go(s.base + w.signPagePath("1")) // the sign page lists it too
	if got := b.Find("li.signature .line").Text(); got != sigs[0].Manifestation {
		t.Fatalf("sign page signature %q", got)
	}

	// A person without the right to sign is refused at step 1.
	b.Go(s.base + signin.PathLogout)
	signIn("dr.noright", noRight)
	b.Go(s.base + w.signPagePath("1"))
	b.Find(`#meaning option[value="` + meaningApproval + `"]`).Click()
	b.Find("#submit").Click()
	if got := b.Find("#error").Text(); !strings.Contains(got, "You may not sign") {
		t.Fatalf("a person without the right: the page says %q", got)
	}
	if n := len(w.record(t, w.doc).Versions[0].Signatures); n != 1 {
		t.Fatalf("%d signatures after a person without the right tried", n)
	}

	// The ledger has the one signing, through the pages, and each refusal.
	got := map[string]int{}
	for _, e := range signEntries(t, s, from) {
		switch {
		case e.Client != signin.PageClient || e.ResourceType != "Observation" || e.ResourceID != w.obs:
			t.Errorf("a signing entry not of the pages or not of the resource: %+v", e)
		case e.Action == "sign" && e.Outcome == "success" && e.Actor == w.doc.id && e.Version == "1":
			got["signed"]++
		case e.Action == "sign" && e.Actor == w.doc.id:
			got[e.Detail]++
		case e.Action == "sign-challenge" && e.Outcome != "success" && e.Actor == noRight.id:
			got["no-right"]++
		}
	}
	for k, want := range map[string]int{"signed": 1, "ceremony=wrong-password": 2, "ceremony=wrong-code": 1, "no-right": 1} {
		if got[k] != want {
			t.Errorf("ledger: %d entries %s, want %d (%v)", got[k], k, want, got)
		}
	}
}
