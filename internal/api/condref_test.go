package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestConditionalReferencesOverHTTPS: a Synthea-style transaction that
// points at its practitioner with "Practitioner?identifier=system|value"
// is stored with the literal reference; one whose reference matches
// nothing fails as a whole with an OperationOutcome naming the element,
// on SQLite and on PostgreSQL.
func TestConditionalReferencesOverHTTPS(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			doc := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner",
				"identifier": []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999999"}}}), http.StatusCreated).json(t)["id"].(string)
			tx := func(npi string) map[string]any {
				return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
					map[string]any{"fullUrl": "urn:uuid:2a1e0f4e-0b35-4d5e-9f5e-3a1d2c3b4a59", "request": map[string]any{"method": "POST", "url": "Patient"},
						"resource": map[string]any{"resourceType": "Patient", "active": true}},
					map[string]any{"request": map[string]any{"method": "POST", "url": "Encounter"}, "resource": map[string]any{
						"resourceType": "Encounter", "status": "finished", "class": map[string]any{"code": "AMB"},
						"subject":     map[string]any{"reference": "urn:uuid:2a1e0f4e-0b35-4d5e-9f5e-3a1d2c3b4a59"},
						"participant": []any{map[string]any{"individual": map[string]any{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|" + npi}}},
					}},
				}}
			}
			resp := must(t, s.do("POST", "/fhir", tx("9999999999")), http.StatusOK).json(t)
			loc := resp["entry"].([]any)[1].(map[string]any)["response"].(map[string]any)["location"].(string)
			enc := string(must(t, s.do("GET", "/fhir/"+strings.SplitN(loc, "/_history", 2)[0], nil), http.StatusOK).body)
			if !strings.Contains(enc, `"reference":"Practitioner/`+doc+`"`) {
				t.Errorf("the Encounter's participant: %s", enc)
			}
			r := s.do("POST", "/fhir", tx("0000000000"))
			if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "Encounter.participant[0].individual") {
				t.Errorf("an unresolvable conditional reference: %d %s", r.status, r.body)
			}
		})
	}
}

// TestConditionalDeleteOverHTTPS: DELETE /fhir/{type}?criteria answers 204
// and the match is gone; without criteria it is 405; several matches 412.
func TestConditionalDeleteOverHTTPS(t *testing.T) {
	s := newStack(t)
	obs := func(value string) string {
		return must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "pulse"}, "identifier": []any{map[string]any{"system": "urn:lab", "value": value}}}), http.StatusCreated).json(t)["id"].(string)
	}
	one := obs("a")
	obs("b")
	obs("b")
	must(t, s.do("DELETE", "/fhir/Observation?identifier=urn:lab|a", nil), http.StatusNoContent)
	must(t, s.do("GET", "/fhir/Observation/"+one, nil), http.StatusGone)
	must(t, s.do("DELETE", "/fhir/Observation?identifier=urn:lab|zzz", nil), http.StatusNoContent)
	if st := s.do("DELETE", "/fhir/Observation?identifier=urn:lab|b", nil).status; st != http.StatusPreconditionFailed {
		t.Errorf("two matches: %d, want 412", st)
	}
	if st := s.do("DELETE", "/fhir/Observation", nil).status; st != http.StatusMethodNotAllowed {
		t.Errorf("DELETE of a whole type: %d, want 405", st)
	}
}
