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
