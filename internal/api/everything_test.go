package api_test

import (
	"net/http"
	"slices"
	"testing"
)

func TestEverythingReferenced(t *testing.T) { testEverythingReferenced(t, newStack(t)) }

func TestEverythingReferencedPostgres(t *testing.T) {
	testEverythingReferenced(t, newStackWith(t, stackOptions{openStore: postgresStore}))
}

// testEverythingReferenced: $everything adds the Practitioners,
// Organizations, Locations and Medications the record refers to, each
// once, each only if the caller may read it (A1, A7), each recorded as a
// read (E1); another server's resources and references to nothing are
// left out.
func testEverythingReferenced(t *testing.T, s *stack) {
	create := func(res map[string]any) string {
		t.Helper()
		return idFrom(t, must(t, s.do("POST", "/fhir/"+res["resourceType"].(string), res), http.StatusCreated))
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	gp := create(map[string]any{"resourceType": "Practitioner", "active": true})
	performer := create(map[string]any{"resourceType": "Practitioner", "active": false})
	unrelated := create(map[string]any{"resourceType": "Practitioner", "active": true})
	org := create(map[string]any{"resourceType": "Organization", "name": "Clinic"})
	loc := create(map[string]any{"resourceType": "Location", "name": "Ward 3"})
	med := create(map[string]any{"resourceType": "Medication", "code": map[string]any{"text": "aspirin"}})
	pat := create(map[string]any{"resourceType": "Patient", "active": true,
		"generalPractitioner":  []any{ref("Practitioner/" + gp), ref("Organization/" + org)},
		"managingOrganization": ref("Organization/" + org)})
	create(map[string]any{"resourceType": "Encounter", "status": "finished", "class": map[string]any{"code": "AMB"},
		"subject": ref("Patient/" + pat), "serviceProvider": ref("Organization/" + org),
		"location":    []any{map[string]any{"location": ref("Location/" + loc)}},
		"participant": []any{map[string]any{"individual": ref("https://other.example/fhir/Practitioner/" + unrelated)}}})
	create(map[string]any{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
		"subject": ref("Patient/" + pat), "medicationReference": ref("Medication/" + med), "requester": ref("Practitioner/" + performer)})
	obs := observation("Patient/"+pat, "29463-7", 70)
	obs["performer"] = []any{ref("Practitioner/" + performer), ref("Practitioner/no-such-id")}
	create(obs)

	everything := func(h ...string) (map[string]int, response) {
		t.Helper()
		r := must(t, s.do("GET", "/fhir/Patient/"+pat+"/$everything", nil, h...), http.StatusOK)
		got := map[string]int{}
		for _, e := range r.json(t)["entry"].([]any) {
			res := e.(map[string]any)["resource"].(map[string]any)
			got[res["resourceType"].(string)+"/"+res["id"].(string)]++
		}
		return got, r
	}
	from := ledgerSize(t, s)
	got, _ := everything()
	want := []string{"Practitioner/" + gp, "Practitioner/" + performer, "Organization/" + org, "Location/" + loc, "Medication/" + med}
	for _, w := range want {
		if got[w] != 1 {
			t.Errorf("$everything holds %s %d times, want once", w, got[w])
		}
	}
	if got["Practitioner/"+unrelated] != 0 || got["Patient/"+pat] != 1 || len(got) != len(want)+4 {
		t.Errorf("$everything served %v", got)
	}
	var reads []string
	for _, e := range ledgerEntries(t, s, from) {
		if e.Action == "read" && e.Detail == "$everything" && e.Outcome == "success" {
			reads = append(reads, e.ResourceType+"/"+e.ResourceID)
		}
	}
	slices.Sort(reads)
	slices.Sort(want)
	if !slices.Equal(reads, want) {
		t.Errorf("E1: reads recorded %v, want %v", reads, want)
	}

	// A caller who may read the record but not Practitioners or
	// Medications gets the rest, and no read of those is recorded.
	narrow := []string{"Authorization", bearer(s.newToken("system/Patient.rs", "system/Observation.rs", "system/Encounter.rs",
		"system/MedicationRequest.rs", "system/Organization.rs", "system/Location.rs"))}
	from = ledgerSize(t, s)
	got, _ = everything(narrow...)
	if got["Practitioner/"+gp] != 0 || got["Practitioner/"+performer] != 0 || got["Medication/"+med] != 0 ||
		got["Organization/"+org] != 1 || got["Location/"+loc] != 1 {
		t.Errorf("A1: a caller without Practitioner or Medication read got %v", got)
	}
	for _, e := range ledgerEntries(t, s, from) {
		if e.ResourceType == "Practitioner" || e.ResourceType == "Medication" {
			t.Errorf("A1: a read the caller could not make was recorded: %+v", e)
		}
	}
}
