package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// TestReferenceIdentifierSearch: ref:identifier finds resources whose
// reference is given by Reference.identifier, with or without a literal
// reference, by system|value and by value alone, on SQLite and
// PostgreSQL; at the end of a chain too. Its index is blind: system|
// alone is refused as on identifier. It is narrowed as any search: a
// token bound to another patient finds nothing of this one.
func TestReferenceIdentifierSearch(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			const mrn, npi = "http://hospital.example/mrn", "http://hl7.org/fhir/sid/us-npi"
			create := func(res map[string]any) string {
				return must(t, s.do("POST", "/fhir/"+res["resourceType"].(string), res), http.StatusCreated).json(t)["id"].(string)
			}
			ident := func(system, value string) map[string]any {
				return map[string]any{"system": system, "value": value}
			}
			a := create(map[string]any{"resourceType": "Patient", "active": true,
				"generalPractitioner": []any{map[string]any{"identifier": ident(npi, "1234567893")}}})
			b := create(map[string]any{"resourceType": "Patient", "active": true})
			obs := func(subject map[string]any) string {
				return create(map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "pulse"}, "subject": subject})
			}
			// A patient named by identifier only is refused: Ward could
			// place it in no compartment (TestPatientByIdentifierOnlyRefused).
			refused := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
				"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"identifier": ident(mrn, "12345")}})
			if refused.status/100 != 4 || !strings.Contains(string(refused.body), "names its patient by identifier only") {
				t.Errorf("a subject by identifier only: %d %.300s, want a 4xx saying why", refused.status, refused.body)
			}
			tx := s.do("POST", "/fhir", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"request": map[string]any{"method": "POST", "url": "Observation"}, "resource": map[string]any{
					"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "pulse"},
					"subject": map[string]any{"identifier": ident(mrn, "12345")}}}}})
			if tx.status/100 != 4 || !strings.Contains(string(tx.body), "names its patient by identifier only") {
				t.Errorf("a transaction entry with a subject by identifier only: %d %.300s, want a 4xx saying why", tx.status, tx.body)
			}
			onlyIdent := obs(map[string]any{"type": "Device", "identifier": ident(mrn, "12345")})
			both := obs(map[string]any{"reference": "Patient/" + a, "identifier": ident(mrn, "12345")})
			other := obs(map[string]any{"reference": "Patient/" + b, "identifier": ident(mrn, "99999")})
			sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
			none := []string(nil)
			for _, c := range []struct {
				query string
				want  []string
			}{
				{"Observation?subject:identifier=" + mrn + "|12345", sorted(onlyIdent, both)},
				{"Observation?subject:identifier=12345", sorted(onlyIdent, both)},
				{"Observation?subject:identifier=" + mrn + "|54321", none},
				{"Observation?subject:identifier=54321", none},
				{"Observation?subject:identifier=urn:other|12345", none},
				{"Observation?subject:identifier=" + mrn + "|12345," + mrn + "|99999", sorted(onlyIdent, both, other)},
				{"Observation?subject:identifier=12345&subject=Patient/" + a, []string{both}},
				{"Observation?patient:identifier=" + mrn + "|12345", []string{both}},
				{"Patient/" + a + "/Observation?subject:identifier=12345", []string{both}},
				{"Observation?subject:Patient.general-practitioner:identifier=" + npi + "|1234567893", []string{both}},
				{"Patient?general-practitioner:identifier=1234567893", []string{a}},
			} {
				got, total := matchIDs(t, must(t, s.do("GET", "/fhir/"+c.query+"&_total=accurate", nil), http.StatusOK))
				if !slices.Equal(got, c.want) || total != float64(len(c.want)) {
					t.Errorf("%s: matches %v total %v, want %v", c.query, got, total, c.want)
				}
			}
			// Refused with a 400 that says why: by system alone (blind, as
			// on identifier), a chain after it, and on a token.
			for q, why := range map[string]string{
				"Observation?subject:identifier=" + mrn + "|": "system alone",
				"Observation?identifier=" + mrn + "|":         "system alone",
				"Observation?subject:identifier.name=x":       ":identifier ends a parameter",
				"Observation?code:identifier=x":               "modifier not supported",
			} {
				r := s.do("GET", "/fhir/"+q, nil)
				if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "OperationOutcome") || !strings.Contains(string(r.body), why) {
					t.Errorf("%s: %d %.300s, want a 400 OperationOutcome saying %q", q, r.status, r.body, why)
				}
			}
			// Narrowed as any search, to what the caller may read: tokens
			// bound to patient a and to patient b each find their own
			// patient's Observations, never the other's. onlyIdent is about
			// a Device named by identifier, in no patient's compartment:
			// shared data that every patient-role token reads, and the
			// search shows it exactly as a read does.
			boundTo := func(user, patient string) string {
				if _, err := s.users.Create(context.Background(), auth.NewUser{Username: user, Role: policy.RolePatient, FHIRUser: "Patient/" + patient, Password: testPassword}); err != nil {
					t.Fatal(err)
				}
				app := s.newApp(false, "openid", "user/*.rs")
				rp := s.relyingParty(app, "openid", "user/*.rs")
				return rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("st"), user, testPassword)).AccessToken
			}
			tokA, tokB := boundTo("pat.a", a), boundTo("pat.b", b)
			for _, c := range []struct {
				who, token, value string
				want              []string
			}{
				{"a", tokA, mrn + "|12345", sorted(onlyIdent, both)},
				{"b", tokB, mrn + "|12345", []string{onlyIdent}},
				{"a", tokA, mrn + "|99999", none},
				{"b", tokB, mrn + "|99999", []string{other}},
			} {
				auth := []string{"Authorization", "Bearer " + c.token}
				r := must(t, s.do("GET", "/fhir/Observation?subject:identifier="+c.value+"&_total=accurate", nil, auth...), http.StatusOK)
				if got, total := matchIDs(t, r); !slices.Equal(got, c.want) || total != float64(len(c.want)) {
					t.Errorf("patient %s's token, %s: matches %v total %v, want %v", c.who, c.value, got, total, c.want)
				}
				// Of the Observations holding the value, it finds exactly
				// those it may read.
				for x, v := range map[string]string{onlyIdent: mrn + "|12345", both: mrn + "|12345", other: mrn + "|99999"} {
					if v != c.value {
						continue
					}
					read := s.do("GET", "/fhir/Observation/"+x, nil, auth...).status == http.StatusOK
					if found := slices.Contains(c.want, x); read != found {
						t.Errorf("patient %s's token: reads Observation %s %v, finds it %v", c.who, x, read, found)
					}
				}
			}
		})
	}
}
