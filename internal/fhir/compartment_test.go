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
