package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// A7: a practitioner's token never receives a social security number,
// through any route; the service's token and the patient's own do; and a
// practitioner's read-modify-write keeps it.
func TestMaskedFields(t *testing.T) {
	const ssn, mrn = "912-34-5678", "MRN-API-A7"
	s := newStack(t)
	ctx := context.Background()
	org := must(t, s.do("POST", "/fhir/Organization", map[string]any{"resourceType": "Organization", "name": "Clinic"}), http.StatusCreated).json(t)["id"].(string)
	pat := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true,
		"managingOrganization": map[string]any{"reference": "Organization/" + org},
		"identifier": []any{
			map[string]any{"system": "urn:example:mrn", "value": mrn},
			map[string]any{"system": policy.SSN, "value": ssn},
		}}), http.StatusCreated).json(t)["id"].(string)
	must(t, s.do("PUT", "/fhir/Patient/"+pat, map[string]any{"resourceType": "Patient", "id": pat, "active": false,
		"managingOrganization": map[string]any{"reference": "Organization/" + org},
		"identifier": []any{
			map[string]any{"system": "urn:example:mrn", "value": mrn},
			map[string]any{"system": policy.SSN, "value": ssn},
		}}), http.StatusOK)
	obs := must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + pat}}), http.StatusCreated).json(t)["id"].(string)
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + pat},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)

	if _, err := s.users.Create(ctx, auth.NewUser{Username: "dr.mask", Role: policy.RolePractitioner, FHIRUser: "Practitioner/" + pr, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.users.Create(ctx, auth.NewUser{Username: "pat.mask", Role: policy.RolePatient, FHIRUser: "Patient/" + pat, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	token := func(user, scope string) []string {
		app := s.newApp(false, "openid", scope)
		rp := s.relyingParty(app, "openid", scope)
		return []string{"Authorization", "Bearer " + rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("st"), user, testPassword)).AccessToken}
	}
	practitioner := token("dr.mask", "user/*.cruds")
	patient := token("pat.mask", "user/*.rs")
	service := []string{}

	bundle := func(typ string, urls ...string) map[string]any {
		var entries []any
		for _, u := range urls {
			entries = append(entries, map[string]any{"request": map[string]any{"method": "GET", "url": u}})
		}
		return map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries}
	}
	routes := []struct {
		name, method, path string
		body               any
		everything         bool // needs every interaction on Patient: not the patient's role
	}{
		{"read", "GET", "/fhir/Patient/" + pat, nil, false},
		{"read _elements", "GET", "/fhir/Patient/" + pat + "?_elements=identifier", nil, false},
		{"read _summary", "GET", "/fhir/Patient/" + pat + "?_summary=true", nil, false},
		{"vread 1", "GET", "/fhir/Patient/" + pat + "/_history/1", nil, false},
		{"vread 2", "GET", "/fhir/Patient/" + pat + "/_history/2", nil, false},
		{"instance history", "GET", "/fhir/Patient/" + pat + "/_history", nil, false},
		{"search", "GET", "/fhir/Patient?_id=" + pat, nil, false},
		{"search _elements", "GET", "/fhir/Patient?_id=" + pat + "&_elements=identifier", nil, false},
		{"search _summary", "GET", "/fhir/Patient?_id=" + pat + "&_summary=true", nil, false},
		{"POST _search", "POST", "/fhir/Patient/_search?_id=" + pat, nil, false},
		{"_include", "GET", "/fhir/Observation?_id=" + obs + "&_include=Observation:subject", nil, false},
		{"_revinclude", "GET", "/fhir/Organization?_id=" + org + "&_revinclude=Patient:organization", nil, false},
		{"$everything", "GET", "/fhir/Patient/" + pat + "/$everything", nil, true},
		{"batch", "POST", "/fhir", bundle("batch", "Patient/"+pat, "Patient?_id="+pat, "Observation?_id="+obs+"&_include=Observation:subject"), false},
		{"transaction", "POST", "/fhir", bundle("transaction", "Patient/"+pat, "Patient?_id="+pat), false},
	}
	get := func(auth []string, rt struct {
		name, method, path string
		body               any
		everything         bool
	}) response {
		t.Helper()
		if rt.name == "POST _search" {
			r := s.do("POST", rt.path, "", append([]string{"Content-Type", "application/x-www-form-urlencoded"}, auth...)...)
			return must(t, r, http.StatusOK)
		}
		return must(t, s.do(rt.method, rt.path, rt.body, auth...), http.StatusOK)
	}
	for _, rt := range routes {
		r := get(practitioner, rt)
		if bytes.Contains(r.body, []byte(ssn)) || bytes.Contains(r.body, []byte("5678")) {
			t.Errorf("practitioner: %s served the SSN", rt.name)
		}
		if !bytes.Contains(r.body, []byte(mrn)) || !bytes.Contains(r.body, []byte(`"code":"REDACTED"`)) {
			t.Errorf("practitioner: %s served no MRN or no REDACTED label", rt.name)
		}
		for who, auth := range map[string][]string{"service": service, "patient": patient} {
			if who == "patient" && rt.everything {
				continue
			}
			if r := get(auth, rt); !bytes.Contains(r.body, []byte(ssn)) || bytes.Contains(r.body, []byte("REDACTED")) {
				t.Errorf("%s: %s did not serve the SSN", who, rt.name)
			}
		}
	}

	// The masked view is the stored version: same ETag.
	masked := must(t, s.do("GET", "/fhir/Patient/"+pat, nil, practitioner...), http.StatusOK)
	full := must(t, s.do("GET", "/fhir/Patient/"+pat, nil), http.StatusOK)
	if masked.header.Get("ETag") != full.header.Get("ETag") || masked.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag masked %q, unmasked %q", masked.header.Get("ETag"), full.header.Get("ETag"))
	}

	// Read-modify-write by the practitioner, answered with a representation.
	body := strings.Replace(string(masked.body), `"active":false`, `"active":true`, 1)
	r := must(t, s.do("PUT", "/fhir/Patient/"+pat, body, append([]string{"Prefer", "return=representation", "If-Match", `W/"2"`}, practitioner...)...), http.StatusOK)
	if bytes.Contains(r.body, []byte(ssn)) || !bytes.Contains(r.body, []byte(`"active":true`)) || r.header.Get("ETag") != `W/"3"` {
		t.Errorf("update answered %s with ETag %s", r.body, r.header.Get("ETag"))
	}
	stored := must(t, s.do("GET", "/fhir/Patient/"+pat, nil), http.StatusOK).body
	if !bytes.Contains(stored, []byte(ssn)) || !bytes.Contains(stored, []byte(mrn)) || !bytes.Contains(stored, []byte(`"active":true`)) || bytes.Contains(stored, []byte("REDACTED")) {
		t.Errorf("after the practitioner's update the service reads %s", stored)
	}
	// Writing the SSN itself is refused.
	r = s.do("PUT", "/fhir/Patient/"+pat, strings.Replace(string(stored), `"active":true`, `"active":false`, 1), practitioner...)
	if r.status != http.StatusForbidden {
		t.Errorf("practitioner writing the SSN: %d, want 403", r.status)
	}

	// A FHIRPath Patch works on the masked view too: the practitioner's
	// patch keeps the SSN stored, and a path aimed at it selects nothing,
	// so it can be neither replaced (400, nothing written) nor deleted.
	fp := append([]string{"Content-Type", "application/fhir+json", "Prefer", "return=representation"}, practitioner...)
	patchSSN := func(typ, value string) response {
		return s.do("PATCH", "/fhir/Patient/"+pat, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[`+
			`{"name":"type","valueCode":"`+typ+`"},{"name":"path","valueString":"Patient.identifier.where(system='`+policy.SSN+`')"}`+value+`]}]}`, fp...)
	}
	r = must(t, s.do("PATCH", "/fhir/Patient/"+pat, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[`+
		`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":false}]}]}`, fp...), http.StatusOK)
	if bytes.Contains(r.body, []byte(ssn)) || !bytes.Contains(r.body, []byte(`"active":false`)) {
		t.Errorf("FHIRPath Patch answered %s", r.body)
	}
	if r := patchSSN("replace", `,{"name":"value","valueIdentifier":{"system":"urn:x","value":"1"}}`); r.status != http.StatusBadRequest || bytes.Contains(r.body, []byte(ssn)) {
		t.Errorf("practitioner replacing the SSN: %d %s, want 400", r.status, r.body)
	}
	must(t, patchSSN("delete", ""), http.StatusOK)
	stored = must(t, s.do("GET", "/fhir/Patient/"+pat, nil), http.StatusOK).body
	if !bytes.Contains(stored, []byte(ssn)) || !bytes.Contains(stored, []byte(`"active":false`)) || bytes.Contains(stored, []byte("REDACTED")) {
		t.Errorf("after the practitioner's FHIRPath Patches the service reads %s", stored)
	}
}
