package api_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
)

const (
	meaningApproval = "1.2.840.10065.1.12.1.5" // Verification Signature
	meaningReview   = "1.2.840.10065.1.12.1.13"
)

// signerPerson is a practitioner in the care team of one patient, signed
// in with an authenticator app, holding the right to sign.
type signerPerson struct {
	id, secret, name string
	headers          []string
}

// signingWorld is a patient with an Observation and two signers.
type signingWorld struct {
	s            *stack
	patient, obs string
	doc, other   signerPerson
}

func newSigningWorld(t *testing.T) *signingWorld {
	return newSigningWorldWith(t, stackOptions{})
}

// newSigningWorldWith is newSigningWorld on a stack made with o (clocked).
func newSigningWorldWith(t *testing.T, o stackOptions) *signingWorld {
	o.clocked = true
	s := newStackWith(t, o)
	w := &signingWorld{s: s}
	w.patient = must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	w.obs = must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "preliminary",
		"code": map[string]any{"text": "potassium"}, "subject": map[string]any{"reference": "Patient/" + w.patient}}), http.StatusCreated).json(t)["id"].(string)
	w.doc = w.person(t, "dr.sign", "Dr Zoë O'Brien", true)
	w.other = w.person(t, "dr.borrow", "Dr Mallory Kent", true)
	return w
}

func (w *signingWorld) person(t *testing.T, username, name string, grant bool) signerPerson {
	s := w.s
	ctx := context.Background()
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + w.patient},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
	u, err := s.users.Create(ctx, auth.NewUser{Username: username, Role: policy.RolePractitioner, FHIRUser: "Practitioner/" + pr, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	secret := s.enrolTOTP(u.ID)
	s.clock.Advance(30 * time.Second)
	a := s.newApp(false, "openid", "user/*.cruds")
	rp := s.relyingParty(a, "openid", "user/*.cruds")
	tok := s.signInTOTP(a, rp, username, secret)
	if grant {
		if _, err := s.users.SetSigning(ctx, u.ID, true, name); err != nil {
			t.Fatal(err)
		}
	}
	return signerPerson{id: u.ID, secret: secret, name: name, headers: []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}}
}

// code returns a TOTP code of a time step no code was taken from yet.
func (w *signingWorld) code(p signerPerson) string {
	w.s.clock.Advance(30 * time.Second)
	c, _ := totp.GenerateCode(p.secret, w.s.clock.Now())
	return c
}

func signPath(typ, id string, v int) string {
	return fmt.Sprintf("/fhir/%s/%s/_history/%d/$sign", typ, id, v)
}

// challenge asks for a nonce and returns it.
func (w *signingWorld) challenge(t *testing.T, p signerPerson, path, meaning string) string {
	t.Helper()
	r := must(t, w.s.do("POST", path, map[string]any{"meaning": meaning}, p.headers...), http.StatusOK)
	n, _ := r.json(t)["nonce"].(string)
	if len(n) < 40 {
		t.Fatalf("challenge: %s", r.body)
	}
	return n
}

// confirm sends the ceremony's second step.
func (w *signingWorld) confirm(p signerPerson, path, meaning, nonce, password, code string) response {
	return w.s.do("POST", path, map[string]any{"meaning": meaning, "nonce": nonce, "password": password, "code": code}, p.headers...)
}

// signV signs version v of the Observation as p and returns the Provenance.
func (w *signingWorld) signV(t *testing.T, p signerPerson, v int, meaning string) map[string]any {
	t.Helper()
	path := signPath("Observation", w.obs, v)
	nonce := w.challenge(t, p, path, meaning)
	return must(t, w.confirm(p, path, meaning, nonce, testPassword, w.code(p)), http.StatusCreated).json(t)
}

func (w *signingWorld) record(t *testing.T, p signerPerson) *esign.Record {
	t.Helper()
	r := must(t, w.s.do("GET", "/fhir/Observation/"+w.obs+"/$signatures", nil, p.headers...), http.StatusOK)
	rec, err := esign.ParseRecord(r.body)
	if err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return rec
}

func (w *signingWorld) keys(t *testing.T) esign.Keys {
	pubs, err := w.s.keyFile.ESignKeys()
	if err != nil {
		t.Fatal(err)
	}
	ks := esign.Keys{}
	for _, p := range pubs {
		ks.Add(p)
	}
	return ks
}

// TestESignKeyRotation: after ward keys rotate --kind esign (the key
// file's RotateSigning, as the command does, while the server runs), a
// new signature is made under the new key and names it; the signature
// made before names the old key and still verifies, both online
// ($signatures) and offline with the listed keys. With the old key alone
// the new signature does not verify, and with the new key alone the old
// one does not: each is checked under the key it names.
func TestESignKeyRotation(t *testing.T) {
	w := newSigningWorld(t)
	s := w.s
	kidOf := func(prov map[string]any) string {
		sig := prov["signature"].([]any)[0].(map[string]any)
		var env esign.Envelope
		data, _ := base64.StdEncoding.DecodeString(sig["data"].(string))
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("signature data: %v", err)
		}
		return env.KeyID
	}
	oldSigner, err := s.keyFile.ESignSigner()
	if err != nil {
		t.Fatal(err)
	}
	oldPub := oldSigner.Public().(ed25519.PublicKey)
	first := kidOf(w.signV(t, w.doc, 1, meaningApproval))
	g, err := s.keyFile.RotateSigning(context.Background(), keys.KindESign, keys.SigningKey{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	second := kidOf(w.signV(t, w.other, 1, meaningReview))
	if first != esign.KeyID(oldPub) || second != esign.KeyID(g.Public) || first == second {
		t.Fatalf("key ids: before %s, after %s; want %s then %s", first, second, esign.KeyID(oldPub), esign.KeyID(g.Public))
	}
	rec := w.record(t, w.doc)
	if len(rec.Versions) != 1 || len(rec.Versions[0].Signatures) != 2 {
		t.Fatalf("record versions: %+v", rec.Versions)
	}
	for _, sg := range rec.Versions[0].Signatures {
		if sg.Status != esign.StatusValid {
			t.Fatalf("online, after rotation: %+v", sg)
		}
	}
	_, ledgerSigner := s.checkpoint(t)
	rec = w.record(t, w.doc)
	check := func(ks esign.Keys) (ok []bool) {
		fs, err := esign.VerifyRecord(rec, ks, ledgerSigner.Verifier(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			ok = append(ok, f.OK)
		}
		return ok
	}
	if got := check(w.keys(t)); len(got) != 2 || !got[0] || !got[1] {
		t.Fatalf("offline with every listed key: %v", got)
	}
	only := func(p ed25519.PublicKey) esign.Keys { ks := esign.Keys{}; ks.Add(p); return ks }
	if got := check(only(oldPub)); len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("offline with the old key only: %v, want the first signature only", got)
	}
	if got := check(only(g.Public)); len(got) != 2 || got[0] || !got[1] {
		t.Fatalf("offline with the new key only: %v, want the second signature only", got)
	}
}

// TestESignCeremony is catalogue case I1: a signature needs the signer's
// password and a second factor at that moment; a token alone, a wrong
// password or code, a replayed code, a replayed, expired or borrowed
// nonce, a nonce for another version or meaning, a service token, a
// person without the right: each fails, and each is in the ledger.
func TestESignCeremony(t *testing.T) {
	w := newSigningWorld(t)
	s := w.s
	path := signPath("Observation", w.obs, 1)

	// A token alone never signs: no nonce, no password, no code.
	if st := s.do("POST", path, map[string]any{"meaning": meaningApproval, "nonce": "x"}, w.doc.headers...).status; st != http.StatusUnauthorized {
		t.Fatalf("a made-up nonce without credentials: %d", st)
	}
	bad := s.do("POST", path, map[string]any{"meaning": meaningApproval, "password": testPassword}, w.doc.headers...)
	if bad.status != http.StatusBadRequest {
		t.Fatalf("credentials without a nonce: %d", bad.status)
	}

	steps := []struct {
		name string
		run  func() response
		want int
	}{
		{"wrong password", func() response {
			n := w.challenge(t, w.doc, path, meaningApproval)
			return w.confirm(w.doc, path, meaningApproval, n, testPassword+"x", w.code(w.doc))
		}, http.StatusUnauthorized},
		{"wrong code", func() response {
			n := w.challenge(t, w.doc, path, meaningApproval)
			return w.confirm(w.doc, path, meaningApproval, n, testPassword, "000000")
		}, http.StatusUnauthorized},
		{"nonce for another meaning", func() response {
			n := w.challenge(t, w.doc, path, meaningReview)
			return w.confirm(w.doc, path, meaningApproval, n, testPassword, w.code(w.doc))
		}, http.StatusUnauthorized},
		{"expired nonce", func() response {
			n := w.challenge(t, w.doc, path, meaningApproval)
			s.clock.Advance(6 * time.Minute)
			return w.confirm(w.doc, path, meaningApproval, n, testPassword, w.code(w.doc))
		}, http.StatusUnauthorized},
		{"borrowed nonce: another person's token, that person's own password and code", func() response {
			n := w.challenge(t, w.doc, path, meaningApproval)
			return w.confirm(w.other, path, meaningApproval, n, testPassword, w.code(w.other))
		}, http.StatusUnauthorized},
	}
	for _, st := range steps {
		if r := st.run(); r.status != st.want || strings.Contains(string(r.body), testPassword) {
			t.Fatalf("%s: %d %s", st.name, r.status, r.body)
		}
	}

	// The real ceremony signs; its nonce, replayed, does not sign again,
	// nor does its TOTP code with a new nonce.
	n := w.challenge(t, w.doc, path, meaningApproval)
	code := w.code(w.doc)
	prov := must(t, w.confirm(w.doc, path, meaningApproval, n, testPassword, code), http.StatusCreated).json(t)
	if prov["resourceType"] != "Provenance" {
		t.Fatalf("signing answered %v", prov)
	}
	if r := w.confirm(w.doc, path, meaningApproval, n, testPassword, w.code(w.doc)); r.status != http.StatusUnauthorized {
		t.Fatalf("a replayed nonce: %d", r.status)
	}
	n2 := w.challenge(t, w.doc, path, meaningApproval)
	if r := w.confirm(w.doc, path, meaningApproval, n2, testPassword, code); r.status != http.StatusUnauthorized {
		t.Fatalf("a replayed TOTP code: %d", r.status)
	}
	// A nonce for another version does not sign this one.
	must(t, s.do("PUT", "/fhir/Observation/"+w.obs, map[string]any{"resourceType": "Observation", "id": w.obs, "status": "final",
		"code": map[string]any{"text": "potassium"}, "subject": map[string]any{"reference": "Patient/" + w.patient}},
		"X-Provenance", `{"resourceType":"Provenance","reason":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HTEST"}]}],"agent":[{"who":{"display":"lab"}}]}`), http.StatusOK)
	n3 := w.challenge(t, w.doc, signPath("Observation", w.obs, 2), meaningApproval)
	if r := w.confirm(w.doc, path, meaningApproval, n3, testPassword, w.code(w.doc)); r.status != http.StatusUnauthorized {
		t.Fatalf("a nonce of version 2 signed version 1: %d", r.status)
	}

	// Who may not sign: a service, a person without the right (withdrawn),
	// and nobody can sign what is not there (404 as an unknown id).
	if st := s.do("POST", path, map[string]any{"meaning": meaningApproval}, "Content-Type", "application/json").status; st != http.StatusForbidden {
		t.Fatalf("a service token asks to sign: %d", st)
	}
	if _, err := s.users.SetSigning(context.Background(), w.other.id, false, ""); err != nil {
		t.Fatal(err)
	}
	if st := s.do("POST", path, map[string]any{"meaning": meaningApproval}, w.other.headers...).status; st != http.StatusForbidden {
		t.Fatalf("a person whose right was withdrawn asks to sign: %d", st)
	}
	for _, p := range []string{signPath("Observation", w.obs, 9), signPath("Observation", "nope", 1), signPath("Observation", w.obs, 0)} {
		if st := s.do("POST", p, map[string]any{"meaning": meaningApproval}, w.doc.headers...).status; st != http.StatusNotFound {
			t.Fatalf("%s: %d, want 404", p, st)
		}
	}
	if st := s.do("POST", path, map[string]any{"meaning": "1.2.3"}, w.doc.headers...).status; st != http.StatusBadRequest {
		t.Fatalf("an unknown meaning: %d", st)
	}

	// Everything is in the ledger: one signing, and each failure with the
	// part that failed, never a password.
	var signs, fails []ledger.Entry
	for _, e := range entriesSince(t, s, 0, testPassword) {
		switch {
		case e.Action == "sign" && e.Outcome == "success":
			signs = append(signs, e)
		case e.Action == "sign":
			fails = append(fails, e)
		}
	}
	if len(signs) != 1 || signs[0].Actor != w.doc.id || signs[0].Version != "1" || !strings.Contains(signs[0].Detail, "sig=") {
		t.Fatalf("signing entries: %+v", signs)
	}
	reasons := map[string]int{}
	for _, e := range fails {
		reasons[e.Detail]++
	}
	for _, want := range []string{"ceremony=wrong-password", "ceremony=wrong-code", "ceremony=nonce"} {
		if reasons[want] == 0 {
			t.Errorf("no failed signing recorded with %s: %v", want, reasons)
		}
	}
}

// TestESignThrottle: repeated failed ceremonies throttle the person (429
// with Retry-After, even with the right password and code), raise
// esign.ceremony.throttled, and a success after the delay resets it.
func TestESignThrottle(t *testing.T) {
	w := newSigningWorld(t)
	s := w.s
	s.clock.Freeze()
	path := signPath("Observation", w.obs, 1)
	good := w.code(w.doc) // a code of the current step, not used yet
	var last response
	for range 5 {
		n := w.challenge(t, w.doc, path, meaningApproval)
		last = w.confirm(w.doc, path, meaningApproval, n, "wrong password, quite long", "000000")
	}
	if last.status != http.StatusUnauthorized {
		t.Fatalf("fifth failure: %d", last.status)
	}
	n := w.challenge(t, w.doc, path, meaningApproval)
	r := w.confirm(w.doc, path, meaningApproval, n, testPassword, good)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("the right credentials while throttled: %d %v", r.status, r.header)
	}
	if len(s.events.since(0, secevent.SigningThrottled)) == 0 || len(s.events.since(0, secevent.SigningFailed)) == 0 {
		t.Fatal("no esign.ceremony.throttled or .failed event")
	}
	for _, e := range s.events.since(0, secevent.SigningFailed) {
		if err := e.Validate(); err != nil {
			t.Fatalf("event %+v: %v", e, err)
		}
	}
	s.clock.Advance(20 * time.Minute)
	n = w.challenge(t, w.doc, path, meaningApproval)
	must(t, w.confirm(w.doc, path, meaningApproval, n, testPassword, w.code(w.doc)), http.StatusCreated)
}

// TestESignBindingAndManifestation covers I2 and I3 over HTTPS: the
// Provenance targets the exact version and shows the printed name, the
// time with its zone and the meaning; $signatures lists every version
// with its signatures verified; a signed resource is corrected only with
// a reason and not deleted; the record verifies offline with the public
// keys and fails when the content, the version or any shown field is
// changed.
func TestESignBindingAndManifestation(t *testing.T) {
	w := newSigningWorld(t)
	s := w.s
	prov := w.signV(t, w.doc, 1, meaningApproval)
	target := prov["target"].([]any)[0].(map[string]any)["reference"]
	if target != "Observation/"+w.obs+"/_history/1" {
		t.Fatalf("Provenance.target = %v", target)
	}
	sig := prov["signature"].([]any)[0].(map[string]any)
	who := sig["who"].(map[string]any)
	typ := sig["type"].([]any)[0].(map[string]any)
	when, _ := time.Parse(time.RFC3339, sig["when"].(string))
	if who["display"] != w.doc.name || typ["code"] != meaningApproval || typ["display"] != "Verification Signature" || when.IsZero() ||
		!strings.HasSuffix(sig["when"].(string), "Z") && !strings.Contains(sig["when"].(string), "+") {
		t.Fatalf("the Provenance does not show name, meaning and time with zone: %v", sig)
	}
	// The Provenance is sealed with the patient's data: the patient's
	// compartment search finds it.
	must(t, s.do("GET", "/fhir/Provenance/"+prov["id"].(string), nil, w.doc.headers...), http.StatusOK)

	// Correcting a signed resource needs a reason; deleting it is refused.
	upd := map[string]any{"resourceType": "Observation", "id": w.obs, "status": "final", "code": map[string]any{"text": "potassium"},
		"subject": map[string]any{"reference": "Patient/" + w.patient}}
	r := s.do("PUT", "/fhir/Observation/"+w.obs, upd, w.doc.headers...)
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "X-Provenance") {
		t.Fatalf("an update of a signed resource without a reason: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/fhir/Observation/"+w.obs, nil); r.status != http.StatusConflict {
		t.Fatalf("a deletion of a signed resource: %d %s", r.status, r.body)
	}
	must(t, s.do("PUT", "/fhir/Observation/"+w.obs, upd, append(w.doc.headers[:len(w.doc.headers):len(w.doc.headers)],
		"X-Provenance", `{"resourceType":"Provenance","reason":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HTEST"}]}],"agent":[{"who":{"display":"Dr"}}]}`)...), http.StatusOK)
	w.signV(t, w.doc, 2, meaningReview)

	// $signatures: every version, which signature on which, each valid
	// and shown with name, time with zone and meaning.
	rec := w.record(t, w.doc)
	if len(rec.Versions) != 2 || len(rec.Versions[0].Signatures) != 1 || len(rec.Versions[1].Signatures) != 1 {
		t.Fatalf("record versions: %+v", rec.Versions)
	}
	for i, v := range rec.Versions {
		sg := v.Signatures[0]
		if sg.Status != esign.StatusValid || !strings.Contains(sg.Manifestation, w.doc.name) || !strings.Contains(sg.Manifestation, "UTC") ||
			!strings.Contains(sg.Manifestation, sg.Meaning.Display) || sg.Ledger == nil {
			t.Fatalf("version %d signature: %+v", i+1, sg)
		}
	}
	if rec.Versions[0].Signatures[0].Meaning.Code != meaningApproval || rec.Versions[1].Signatures[0].Meaning.Code != meaningReview {
		t.Fatal("the versions' signatures are swapped")
	}

	// Offline: with the public keys and the checkpoint only, once a
	// checkpoint covers the signings.
	cp, ledgerSigner := s.checkpoint(t)
	_ = cp
	rec = w.record(t, w.doc)
	fs, err := esign.VerifyRecord(rec, w.keys(t), ledgerSigner.Verifier(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if !f.OK {
			t.Fatalf("offline verification: %+v", f)
		}
	}
	raw, _ := json.Marshal(rec)
	tamper := map[string]func(r *esign.Record){
		"content of v1": func(r *esign.Record) {
			r.Versions[0].Resource = []byte(strings.Replace(string(r.Versions[0].Resource), "preliminary", "final", 1))
		},
		"v1 signature moved to v2": func(r *esign.Record) { r.Versions[1].Signatures = r.Versions[0].Signatures },
		"copied to another id":     func(r *esign.Record) { r.Resource = "Observation/other" },
		"printed name":             func(r *esign.Record) { r.Versions[0].Signatures[0].Name = "Dr Mallory Kent" },
		"signature data bit": func(r *esign.Record) {
			d := r.Versions[0].Signatures[0].Data
			d[len(d)/2] ^= 1
		},
	}
	for name, change := range tamper {
		r, _ := esign.ParseRecord(raw)
		change(r)
		fs, err := esign.VerifyRecord(r, w.keys(t), ledgerSigner.Verifier(), nil, nil)
		bad := err != nil
		for _, f := range fs {
			bad = bad || !f.OK
		}
		if !bad {
			t.Errorf("%s: the tampered record verifies", name)
		}
	}

	// A Provenance whose shown fields are changed in the database shows
	// as invalid in $signatures: the Provenance body is rewritten through
	// the API by a writer who may (the service), as an insider would.
	pid := rec.Versions[0].Signatures[0].Provenance
	pr := must(t, s.do("GET", "/fhir/"+pid, nil), http.StatusOK).json(t)
	pr["signature"].([]any)[0].(map[string]any)["who"].(map[string]any)["display"] = "Dr Mallory Kent"
	delete(pr, "meta")
	must(t, s.do("PUT", "/fhir/"+pid, pr), http.StatusOK)
	rec = w.record(t, w.doc)
	if sg := rec.Versions[0].Signatures[0]; sg.Status != esign.StatusInvalid || sg.Problem == "" {
		t.Fatalf("a rewritten Provenance still shows valid: %+v", sg)
	}
	_ = base64.StdEncoding
}

// BenchmarkESign is one signing over HTTPS: the challenge and the
// confirmation (argon2id password check, TOTP, the Provenance sealed and
// committed with its ledger entry), and one $signatures of the record.
func BenchmarkESign(b *testing.B) {
	t := &testing.T{}
	w := newSigningWorld(t)
	if t.Failed() {
		b.Fatal("setup failed")
	}
	path := signPath("Observation", w.obs, 1)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			r := w.s.do("POST", path, map[string]any{"meaning": meaningApproval}, w.doc.headers...)
			var ch struct{ Nonce string }
			_ = json.Unmarshal(r.body, &ch)
			if r := w.confirm(w.doc, path, meaningApproval, ch.Nonce, testPassword, w.code(w.doc)); r.status != http.StatusCreated {
				b.Fatalf("sign: %d %s", r.status, r.body)
			}
		}
	})
	b.Run("signatures", func(b *testing.B) {
		for b.Loop() {
			if r := w.s.do("GET", "/fhir/Observation/"+w.obs+"/$signatures", nil, w.doc.headers...); r.status != http.StatusOK {
				b.Fatalf("$signatures: %d", r.status)
			}
		}
	})
}
