package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
)

// TestErasureOverHTTPS is catalogue H3 through the API: one privacy
// officer asks, another approves, each with a fresh second factor; the
// approval returns a signed certificate; the patient's data then answers
// 410 on every path, and another patient's is intact.
func TestErasureOverHTTPS(t *testing.T) {
	s := newStackWith(t, stackOptions{clocked: true})
	ctx := context.Background()
	newPatient := func() string {
		return must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	}
	pat, other := newPatient(), newPatient()
	obs := map[string]string{}
	for _, p := range []string{pat, other} {
		obs[p] = must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + p}}), http.StatusCreated).json(t)["id"].(string)
	}
	as := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}
	officer := func(name string) (string, string) {
		u, err := s.users.Create(ctx, auth.NewUser{Username: name, Role: policy.RolePrivacyOfficer, Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		app := s.newApp(false, "openid", "user/*.rs")
		rp := s.relyingParty(app, "openid", "user/*.rs")
		return u.ID, s.signInTOTP(app, rp, name, s.enrolTOTP(u.ID))
	}
	po1ID, po1 := officer("po.one")
	_, po2 := officer("po.two")
	ask := map[string]any{"reason": "patient-request", "legalBasis": "gdpr-art17-1a"}

	if st := s.do("POST", "/fhir/Patient/"+pat+"/$erase", ask, "Content-Type", "application/json").status; st != http.StatusForbidden {
		t.Errorf("a service asks for an erasure: %d, want 403", st)
	}
	if st := s.do("POST", "/fhir/Patient/"+pat+"/$erase", map[string]any{"reason": "because", "legalBasis": "gdpr-art17-1a"}, as(po1)...).status; st != http.StatusBadRequest {
		t.Errorf("an erasure with a free-text reason: %d, want 400", st)
	}
	if st := s.do("GET", "/fhir/Patient/"+pat+"/$erase", nil, as(po1)...).status; st != http.StatusMethodNotAllowed {
		t.Errorf("GET $erase: %d, want 405", st)
	}
	req := must(t, s.do("POST", "/fhir/Patient/"+pat+"/$erase", ask, as(po1)...), http.StatusCreated).json(t)
	id, _ := req["id"].(string)
	if id == "" || req["requester"] != po1ID || req["status"] != "awaiting-approval" {
		t.Fatalf("erasure request: %v", req)
	}
	approve := map[string]any{"request": id}
	if st := s.do("POST", "/fhir/Patient/"+pat+"/$erase-approve", approve, as(po1)...).status; st != http.StatusForbidden {
		t.Errorf("the requester approves: %d, want 403", st)
	}
	if st := s.do("POST", "/fhir/Patient/"+other+"/$erase-approve", approve, as(po2)...).status; st != http.StatusNotFound {
		t.Errorf("approval through another patient: %d, want 404", st)
	}
	// Still there until approved.
	must(t, s.do("GET", "/fhir/Observation/"+obs[pat], nil), http.StatusOK)

	from := ledgerSize(t, s)
	cert := must(t, s.do("POST", "/fhir/Patient/"+pat+"/$erase-approve", approve, as(po2)...), http.StatusOK).json(t)
	lines, err := ledger.OpenCertificate([]byte(cert["certificate"].(string)), cert["certificateKey"].(string))
	if err != nil || !slices.Contains(lines, "erasure "+id) || strings.Contains(cert["certificate"].(string), pat) || cert["status"] != "erased" {
		t.Fatalf("certificate %v: %v", cert, err)
	}
	es := ledgerEntries(t, s, from)
	if len(es) != 1 || es[0].Action != "erasure" || es[0].Patient != pat || es[0].Outcome != "success" {
		t.Errorf("the approval's entries: %+v", es)
	}

	for _, path := range []string{
		"/fhir/Patient/" + pat, "/fhir/Observation/" + obs[pat], "/fhir/Observation/" + obs[pat] + "/_history/1",
		"/fhir/Observation/" + obs[pat] + "/_history", "/fhir/Patient/" + pat + "/$everything",
	} {
		if st := s.do("GET", path, nil).status; st != http.StatusGone {
			t.Errorf("GET %s after the erasure: %d, want 410", path, st)
		}
	}
	if body := string(must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+pat, nil), http.StatusOK).body); strings.Contains(body, obs[pat]) {
		t.Errorf("search finds the erased patient's Observation")
	}
	if st := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + pat}}).status; st != http.StatusGone {
		t.Errorf("a write into the erased record: %d, want 410", st)
	}
	if st := s.do("POST", "/fhir/Patient/"+pat+"/$erase", ask, as(po1)...).status; st != http.StatusGone {
		t.Errorf("asking to erase an erased patient: %d, want 410", st)
	}
	must(t, s.do("GET", "/fhir/Patient/"+other, nil), http.StatusOK)
	must(t, s.do("GET", "/fhir/Observation/"+obs[other], nil), http.StatusOK)
}
