package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A read-only server (ward serve --read-only-investigation, E7) refuses
// everything that could write with 403 and an OperationOutcome that says
// why, before any route runs, and audits the refusal; reads, searches,
// the ledger and the token endpoint still answer.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	s := newStackWith(t, stackOptions{readOnly: true, directLedger: true})
	patient := map[string]any{"resourceType": "Patient", "id": "ro1", "name": []any{map[string]any{"family": "Readonly"}}}
	bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"resource": patient, "request": map[string]any{"method": "PUT", "url": "Patient/ro1"}}}}
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/fhir/Patient", patient},
		{"PUT", "/fhir/Patient/ro1", patient},
		{"PUT", "/fhir/Patient?identifier=x", patient},
		{"DELETE", "/fhir/Patient/ro1", nil},
		{"PATCH", "/fhir/Patient/ro1", "[]"},
		{"POST", "/fhir", bundle},
		{"POST", "/fhir/AuditEvent", map[string]any{"resourceType": "AuditEvent"}},
		{"POST", "/emergency", map[string]any{"patient": "ro1", "reason": "x", "purposeOfUse": "BTG"}},
		{"POST", "/admin/users", map[string]any{"username": "x", "role": "admin"}},
		{"POST", "/admin/emergency/x/review", map[string]any{"outcome": "justified"}},
		{"POST", "/fhir/Patient/_history", nil},
		{"POST", "/oauth2/revoke", "token=x"},
	} {
		// A window of its own: a refusal before authentication is
		// recorded once per window and counted after that (E6).
		if err := s.api.FlushFailures(t.Context()); err != nil {
			t.Fatal(err)
		}
		size := s.ledgerSize()
		r := s.do(tt.method, tt.path, tt.body)
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "read-only for an investigation") {
			t.Errorf("%s %s: status %d, want 403 read-only: %s", tt.method, tt.path, r.status, r.body)
		}
		if s.ledgerSize() != size+1 {
			t.Errorf("%s %s: the refusal was not audited", tt.method, tt.path)
		}
	}
	must(t, s.do("GET", "/fhir/Patient/ro1", nil), http.StatusNotFound)
	must(t, s.do("GET", "/fhir/Patient?family=readonly", nil), http.StatusOK)
	must(t, s.do("POST", "/fhir/Patient/_search", "family=readonly", "Content-Type", "application/x-www-form-urlencoded"), http.StatusOK)
	must(t, s.do("GET", "/ledger/entries?start=0&end=1", nil, "Authorization", "Bearer "+s.newToken("system/AuditEvent.rs")), http.StatusOK)
}

func (s *stack) ledgerSize() int64 {
	s.t.Helper()
	n, err := s.db.LedgerSize(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}
