package fhir

import "testing"

func TestPatientCompartmentTypesMatchTable(t *testing.T) {
	listed := map[string]bool{}
	for _, typ := range PatientCompartmentTypes() {
		listed[typ] = true
		if typ != "Patient" && len(patientCompartmentParams(typ)) == 0 {
			t.Errorf("%s is listed but has no compartment parameters", typ)
		}
	}
	for _, typ := range ResourceTypes() {
		if len(patientCompartmentParams(typ)) > 0 && !listed[typ] {
			t.Errorf("%s has compartment parameters but is not listed", typ)
		}
	}
}

// TestBinaryCompartment: a Binary is in the compartment of the patient
// its securityContext names, and otherwise in none.
func TestBinaryCompartment(t *testing.T) {
	for body, want := range map[string]string{
		`{"resourceType":"Binary","contentType":"text/plain","securityContext":{"reference":"Patient/p1"}}`:            "p1",
		`{"resourceType":"Binary","contentType":"text/plain","securityContext":{"reference":"Patient/p1/_history/2"}}`: "p1",
		`{"resourceType":"Binary","contentType":"text/plain","securityContext":{"reference":"DocumentReference/d1"}}`:  "",
		`{"resourceType":"Binary","contentType":"text/plain"}`:                                                         "",
	} {
		r, err := Parse([]byte(body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := PatientCompartment(r); got != want {
			t.Errorf("%s: compartment %q, want %q", body, got, want)
		}
		refs := PatientReferences(r)
		if (want == "") != (len(refs) == 0) || (want != "" && refs[0] != want) {
			t.Errorf("%s: patient references %v", body, refs)
		}
	}
}

func TestUnplacedPatientReference(t *testing.T) {
	const ident = `"identifier":{"system":"http://hospital.example/mrn","value":"12345"}`
	for _, tc := range []struct {
		body, want string
	}{
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{` + ident + `}}`, "Observation.subject"},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"type":"Patient",` + ident + `}}`, "Observation.subject"},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"display":"x"},{` + ident + `}]}`, "Observation.performer"},
		{`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{` + ident + `}}`, "Encounter.subject"},
		// A type that is not a Patient, a literal reference, or nothing
		// but a display: nothing names a patient by identifier.
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"type":"Device",` + ident + `}}`, ""},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Group/g",` + ident + `}}`, ""},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"display":"someone"}}`, ""},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, ""},
		// Not in the patient compartment at all, or a Patient itself.
		{`{"resourceType":"Organization","partOf":{` + ident + `}}`, ""},
		{`{"resourceType":"Patient","link":[{"type":"seealso","other":{` + ident + `}}]}`, ""},
	} {
		if got := UnplacedPatientReference(mustParse(t, []byte(tc.body))); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.body, got, tc.want)
		}
	}
}
