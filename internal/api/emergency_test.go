package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// enrolTOTP gives a user an authenticator app and returns its secret.
func (s *stack) enrolTOTP(userID string) string {
	s.t.Helper()
	ctx := context.Background()
	uri, _, err := s.users.BeginTOTP(ctx, userID)
	if err != nil {
		s.t.Fatal(err)
	}
	pu, _ := url.Parse(uri)
	secret := pu.Query().Get("secret")
	code, _ := totp.GenerateCode(secret, s.clock.Now().Add(-30*time.Second))
	if _, err := s.users.ConfirmTOTP(ctx, userID, code); err != nil {
		s.t.Fatal(err)
	}
	return secret
}

// signInTOTP signs a person in with password and TOTP code and returns
// the app's access token.
func (s *stack) signInTOTP(a *app, rp *relyingParty, username, secret string) string {
	s.t.Helper()
	b := s.newBrowser()
	b.get(rp.authURL("mfa"))
	b.submit("/signin", "username", username, "password", testPassword)
	b.onPage("/signin/mfa")
	code, _ := totp.GenerateCode(secret, s.clock.Now())
	b.submit("/signin/mfa", "code", code)
	b.submit("/signin/authorize", "decision", "allow")
	return rp.exchange(s.t, a.received()).AccessToken
}

// entriesSince returns the ledger entries appended since from, checking
// that none holds the free text given.
func entriesSince(t *testing.T, s *stack, from int64, secrets ...string) []ledger.Entry {
	t.Helper()
	entries := ledgerEntries(t, s, from)
	for _, e := range entries {
		for _, secret := range secrets {
			if strings.Contains(string(mustEncode(t, e)), secret) {
				t.Fatalf("a ledger entry holds free text: %+v", e)
			}
		}
	}
	return entries
}

// TestBreakTheGlass is break-the-glass end to end: a practitioner outside
// the care relationship asks for emergency access to one patient with a
// reason, after an MFA step-up; gets a time-limited grant to that patient
// only; every use is in the ledger with purpose BTG and the grant's id and
// raises a security event; the grant lands in a review queue that a
// privacy officer closes, once.
func TestBreakTheGlass(t *testing.T) {
	s := newStackWith(t, stackOptions{clocked: true})
	ctx := context.Background()
	patient := func() string {
		return must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	}
	related, target, other := patient(), patient(), patient()
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	me := "Practitioner/" + pr
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + related},
		"participant": []any{map[string]any{"member": map[string]any{"reference": me}}}}), http.StatusCreated)
	obs := map[string]string{}
	for _, p := range []string{related, target, other} {
		obs[p] = must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + p}}), http.StatusCreated).json(t)["id"].(string)
	}
	doc, err := s.users.Create(ctx, auth.NewUser{Username: "dr.glass", Role: policy.RolePractitioner, FHIRUser: me, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	a := s.newApp(false, "openid", "user/*.cruds")
	rp := s.relyingParty(a, "openid", "user/*.cruds")
	as := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}
	const reason = "unconscious in the emergency department, no relative reachable"
	btg := func(p string) map[string]any {
		return map[string]any{"patient": p, "reason": reason, "purposeOfUse": "BTG"}
	}

	// Outside the care relationship: not there.
	noMFA := rp.exchange(t, s.signIn(s.newBrowser(), a, rp.authURL("dr"), "dr.glass", testPassword)).AccessToken
	if st := s.do("GET", "/fhir/Observation/"+obs[target], nil, as(noMFA)...).status; st != http.StatusNotFound {
		t.Fatalf("unrelated patient's Observation before the grant: %d, want 404", st)
	}

	// Without a second factor: 401 with the RFC 9470 challenge, audited.
	from := ledgerSize(t, s)
	r := s.do("POST", "/emergency", btg(target), as(noMFA)...)
	if h := r.header.Get("WWW-Authenticate"); r.status != http.StatusUnauthorized ||
		!strings.Contains(h, `error="insufficient_user_authentication"`) || !strings.Contains(h, "max_age=600") {
		t.Fatalf("break-the-glass without MFA: %d, WWW-Authenticate %q", r.status, h)
	}
	es := entriesSince(t, s, from, reason)
	if len(es) != 1 || es[0].Action != "emergency-grant" || es[0].Outcome != "denied" || es[0].Detail != "step-up" ||
		es[0].Patient != target || es[0].Actor != doc.ID || es[0].Purpose != "BTG" {
		t.Fatalf("entries of a refused step-up: %+v", es)
	}
	// A related patient needs no emergency access; malformed requests are
	// refused before anything else.
	if st := s.do("POST", "/emergency", btg(related), as(noMFA)...).status; st != http.StatusConflict {
		t.Errorf("break-the-glass for a related patient: %d, want 409", st)
	}
	for name, body := range map[string]any{
		"purpose not BTG": map[string]any{"patient": target, "reason": reason, "purposeOfUse": "TREAT"},
		"no reason":       map[string]any{"patient": target, "reason": "  ", "purposeOfUse": "BTG"},
		"reason too long": map[string]any{"patient": target, "reason": strings.Repeat("x", 1001), "purposeOfUse": "BTG"},
		"unknown field":   map[string]any{"patient": target, "reason": reason, "purposeOfUse": "BTG", "until": "forever"},
		"not an object":   `"` + target + `"`,
	} {
		if st := s.do("POST", "/emergency", body, as(noMFA)...).status; st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
	if st := s.do("GET", "/emergency", nil, as(noMFA)...).status; st != http.StatusMethodNotAllowed {
		t.Errorf("GET /emergency: %d, want 405", st)
	}
	if st := s.do("POST", "/emergency", btg(target), "Content-Type", "application/json").status; st != http.StatusForbidden {
		t.Errorf("a service breaks the glass: %d, want 403", st)
	}

	// With a fresh second factor: a grant for that patient only.
	secret := s.enrolTOTP(doc.ID)
	mfa := s.signInTOTP(a, rp, "dr.glass", secret)
	if st := s.do("POST", "/emergency", btg("nosuchpatient"), as(mfa)...).status; st != http.StatusNotFound {
		t.Errorf("break-the-glass for an unknown patient: %d, want 404", st)
	}
	logsBefore := s.logs.Len()
	from = ledgerSize(t, s)
	r = must(t, s.do("POST", "/emergency", btg(target), as(mfa)...), http.StatusCreated)
	var g struct {
		ID      string    `json:"id"`
		User    string    `json:"user"`
		Patient string    `json:"patient"`
		Purpose string    `json:"purposeOfUse"`
		Created time.Time `json:"created"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(r.body, &g); err != nil || g.ID == "" || g.User != doc.ID || g.Patient != target || g.Purpose != "BTG" ||
		g.Expires.Sub(g.Created) != time.Hour || strings.Contains(string(r.body), reason) {
		t.Fatalf("grant %s (%v)", r.body, err)
	}
	es = entriesSince(t, s, from, reason)
	if len(es) != 1 || es[0].Action != "emergency-grant" || es[0].Outcome != "success" || es[0].Detail != g.ID ||
		es[0].Patient != target || es[0].Actor != doc.ID || es[0].Purpose != "BTG" {
		t.Fatalf("entries of the grant: %+v", es)
	}
	logs := s.logs.String()[logsBefore:]
	if !strings.Contains(logs, "security event: break-the-glass") || !strings.Contains(logs, g.ID) || strings.Contains(logs, reason) {
		t.Fatalf("grant's security event: %s", logs)
	}
	if es[0].Token == "" || strings.Contains(mfa, es[0].Token) {
		t.Fatalf("the grant's entry names no token identifier, or the token itself: %q", es[0].Token)
	}

	// Reads and writes of the patient work now, each recorded with purpose
	// BTG and the grant; the related patient's are not marked; another
	// unrelated patient is still not there.
	logsBefore = s.logs.Len()
	from = ledgerSize(t, s)
	must(t, s.do("GET", "/fhir/Observation/"+obs[target], nil, as(mfa)...), http.StatusOK)
	must(t, s.do("GET", "/fhir/Patient/"+target, nil, as(noMFA)...), http.StatusOK) // the grant is the person's, whatever the token
	must(t, s.do("GET", "/fhir/Observation/"+obs[related], nil, as(mfa)...), http.StatusOK)
	search := string(must(t, s.do("GET", "/fhir/Observation?_total=accurate", nil, as(mfa)...), http.StatusOK).body)
	if !strings.Contains(search, obs[target]) || !strings.Contains(search, obs[related]) || strings.Contains(search, obs[other]) {
		t.Fatalf("search under the grant: %s", search)
	}
	must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + target}}, as(mfa)...), http.StatusCreated)
	if st := s.do("GET", "/fhir/Observation/"+obs[other], nil, as(mfa)...).status; st != http.StatusNotFound {
		t.Errorf("another unrelated patient under the grant: %d, want 404", st)
	}
	es = entriesSince(t, s, from, reason)
	want := []struct {
		action, resource string
		btg              bool
	}{
		{"read", "Observation", true}, {"read", "Patient", true}, {"read", "Observation", false},
		{"search", "Observation", true}, {"create", "Observation", true}, {"read", "Observation", false},
	}
	if len(es) != len(want) {
		t.Fatalf("%d entries for %d requests: %+v", len(es), len(want), es)
	}
	for i, w := range want {
		e := es[i]
		marked := e.Purpose == "BTG" && strings.Contains(e.Detail, "btg-grant="+g.ID)
		if e.Action != w.action || e.ResourceType != w.resource || marked != w.btg || (!w.btg && e.Purpose != "") {
			t.Errorf("entry %d = %+v; want %s %s marked=%v", i, e, w.action, w.resource, w.btg)
		}
	}
	if es[5].Outcome != "denied" || strings.Contains(es[5].Detail, "btg") {
		t.Errorf("the unrelated read's entry: %+v", es[5])
	}
	logs = s.logs.String()[logsBefore:]
	if n := strings.Count(logs, `"kind":"access.break_glass.used"`); n != 4 || !strings.Contains(logs, `"grant":"`+g.ID+`"`) || strings.Contains(logs, reason) {
		t.Fatalf("%d emergency-use security events, want 4: %s", n, logs)
	}

	// The privacy officer signs in (with a second factor: the role needs
	// one) before the clock moves on, since tokens expire in real time.
	if !s.users.MFARequired(store.User{Role: policy.RolePrivacyOfficer}) {
		t.Fatal("the privacy-officer role does not need a second factor")
	}
	po, err := s.users.Create(ctx, auth.NewUser{Username: "pia.privacy", Role: policy.RolePrivacyOfficer, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	poApp := s.newApp(false, "openid", "user/*.rs")
	poRP := s.relyingParty(poApp, "openid", "user/*.rs")
	officer := s.signInTOTP(poApp, poRP, "pia.privacy", s.enrolTOTP(po.ID))
	if st := s.do("GET", "/fhir/Observation/"+obs[target], nil, as(officer)...).status; st != http.StatusForbidden {
		t.Errorf("privacy officer reads clinical data: %d, want 403", st)
	}
	if st := s.do("POST", "/emergency", btg(other), as(officer)...).status; st != http.StatusForbidden {
		t.Errorf("privacy officer breaks the glass: %d, want 403", st)
	}

	// A second factor older than ten minutes is not fresh.
	s.clock.Advance(11 * time.Minute)
	if r := s.do("POST", "/emergency", btg(other), as(mfa)...); r.status != http.StatusUnauthorized ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
		t.Errorf("break-the-glass with a stale second factor: %d", r.status)
	}

	// After the grant expires, the patient is out of reach again.
	s.clock.Advance(50 * time.Minute)
	for _, path := range []string{"/fhir/Observation/" + obs[target], "/fhir/Patient/" + target} {
		if st := s.do("GET", path, nil, as(mfa)...).status; st != http.StatusNotFound {
			t.Errorf("%s after the grant expired: %d, want 404", path, st)
		}
	}

	// The review queue: only a reviewing role with a second factor.
	open := func(tok string) response { return s.do("GET", "/admin/emergency?reviewed=false", nil, as(tok)...) }
	for name, tok := range map[string]string{"practitioner": mfa, "service": s.token} {
		if st := open(tok).status; st != http.StatusForbidden {
			t.Errorf("%s lists the review queue: %d, want 403", name, st)
		}
		if st := s.do("POST", "/admin/emergency/"+g.ID+"/review", `{"outcome":"justified"}`, as(tok)...).status; st != http.StatusForbidden {
			t.Errorf("%s reviews: %d, want 403", name, st)
		}
	}
	type queue struct {
		Grants []struct {
			ID, User, Patient, Reason, Outcome, Note, Reviewer string
			Reviewed                                           *time.Time
		} `json:"grants"`
		More bool `json:"more"`
	}
	var q queue
	from = ledgerSize(t, s)
	if err := json.Unmarshal(must(t, open(officer), http.StatusOK).body, &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Grants) != 1 || q.Grants[0].ID != g.ID || q.Grants[0].User != doc.ID || q.Grants[0].Patient != target ||
		q.Grants[0].Reason != reason || q.Grants[0].Reviewed != nil || q.More {
		t.Fatalf("review queue: %+v", q)
	}
	es = entriesSince(t, s, from, reason)
	if len(es) != 1 || es[0].Action != "emergency-list" || es[0].Actor != po.ID || es[0].Patient != target {
		t.Fatalf("entries of the listing: %+v", es)
	}
	for name, c := range map[string]struct {
		path, body string
		want       int
	}{
		"bad outcome":     {"/admin/emergency/" + g.ID + "/review", `{"outcome":"fine"}`, http.StatusBadRequest},
		"unknown grant":   {"/admin/emergency/nosuchgrant/review", `{"outcome":"justified"}`, http.StatusNotFound},
		"unknown op":      {"/admin/emergency/" + g.ID + "/delete", `{}`, http.StatusNotFound},
		"unknown field":   {"/admin/emergency/" + g.ID + "/review", `{"outcome":"justified","by":"x"}`, http.StatusBadRequest},
		"list with a bad": {"/admin/emergency?reviewed=maybe", "", http.StatusBadRequest},
	} {
		method := "POST"
		if c.body == "" {
			method = "GET"
		}
		if st := s.do(method, c.path, c.body, as(officer)...).status; st != c.want {
			t.Errorf("%s: %d, want %d", name, st, c.want)
		}
	}
	const note = "confirmed with the ED charge nurse"
	from = ledgerSize(t, s)
	rv := must(t, s.do("POST", "/admin/emergency/"+g.ID+"/review", map[string]any{"outcome": "justified", "note": note}, as(officer)...), http.StatusOK).json(t)
	if rv["outcome"] != "justified" || rv["reviewer"] != po.ID || rv["note"] != note || rv["reviewed"] == nil {
		t.Fatalf("review: %v", rv)
	}
	if st := s.do("POST", "/admin/emergency/"+g.ID+"/review", `{"outcome":"unjustified"}`, as(officer)...).status; st != http.StatusConflict {
		t.Fatalf("second review: %d, want 409", st)
	}
	es = entriesSince(t, s, from, reason, note)
	if len(es) != 2 || es[0].Action != "emergency-review" || es[0].Outcome != "success" || es[0].Detail != g.ID+" justified" ||
		es[0].Patient != target || es[0].Actor != po.ID || es[1].Outcome != "invalid" {
		t.Fatalf("entries of the reviews: %+v", es)
	}
	q = queue{}
	if err := json.Unmarshal(must(t, open(officer), http.StatusOK).body, &q); err != nil || len(q.Grants) != 0 {
		t.Fatalf("open queue after the review: %+v, %v", q, err)
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/admin/emergency", nil, as(officer)...), http.StatusOK).body, &q); err != nil ||
		len(q.Grants) != 1 || q.Grants[0].Outcome != "justified" || q.Grants[0].Note != note || q.Grants[0].Reviewed == nil {
		t.Fatalf("whole queue after the review: %+v, %v", q, err)
	}
}
