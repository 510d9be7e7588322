package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/ledger"
)

// These tests are catalogue case H4 over HTTP: a correction sent with an
// X-Provenance header (R4 http.html#provenance) records its reason and
// keeps the earlier value in history.

// provenanceCanary is free text of a correction's reason: never in a
// ledger entry, never on disk in the clear.
const provenanceCanary = "Quxbrightwater asked for this fix"

// provenanceHeader is an X-Provenance value: a reason coded in
// v3-ActReason, with text and a display holding the canary.
func provenanceHeader(t *testing.T) string {
	t.Helper()
	p := map[string]any{
		"resourceType": "Provenance",
		"recorded":     "2020-01-01T00:00:00Z",
		"reason": []any{map[string]any{
			"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "PATRQT", "display": provenanceCanary}},
			"text":   provenanceCanary,
		}},
		"agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/p1"}}},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeState is what a refused write must leave as it was: the
// resource's versions, the Provenances about it, and the ledger's
// entries of writes.
func writeState(t *testing.T, s *stack, typ, id string) string {
	t.Helper()
	h := must(t, s.do("GET", "/fhir/"+typ+"/"+id+"/_history", nil), http.StatusOK).json(t)
	p := must(t, s.do("GET", "/fhir/Provenance?target="+typ+"/"+id, nil), http.StatusOK).json(t)
	writes := 0
	for _, e := range ledgerEntries(t, s, 0) {
		if (e.Action == "create" || e.Action == "update" || e.Action == "delete") && e.Outcome == "success" {
			writes++
		}
	}
	return fmt.Sprintf("versions %v provenances %v writes %d", h["total"], p["total"], writes)
}

// TestCorrectionProvenanceOverHTTP: PUT with X-Provenance stores the
// Provenance sealed in the patient's compartment, targeting the new
// version; the update's entry records the coded reason and no text;
// history keeps the earlier value; search and _revinclude find it.
func TestCorrectionProvenanceOverHTTP(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	pid := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	oid := idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pid, "29463-7", 70)), http.StatusCreated))
	before := ledgerSize(t, s)

	fixed := observation("Patient/"+pid, "29463-7", 72)
	fixed["id"] = oid
	r := must(t, s.do("PUT", "/fhir/Observation/"+oid, fixed, "X-Provenance", provenanceHeader(t)), http.StatusOK)
	if v := versionOf(r); v != "2" {
		t.Fatalf("version %s after the correction, want 2", v)
	}

	// Found by its target, targeting the exact new version.
	bundle := must(t, s.do("GET", "/fhir/Provenance?target=Observation/"+oid, nil), http.StatusOK).json(t)
	entries, _ := bundle["entry"].([]any)
	if len(entries) != 1 {
		t.Fatalf("Provenance?target=Observation/%s: %d entries, want 1", oid, len(entries))
	}
	prov := entries[0].(map[string]any)["resource"].(map[string]any)
	provID, _ := prov["id"].(string)
	if got := fmt.Sprint(prov["target"]); got != "[map[reference:Observation/"+oid+"/_history/2]]" {
		t.Errorf("target %s, want the new version", got)
	}

	// Sealed in the patient's compartment: the stored row says so.
	row, err := s.db.Current(ctx, "Provenance", provID)
	if err != nil {
		t.Fatal(err)
	}
	if row.Compartment != pid {
		t.Errorf("Provenance stored in compartment %q, want the patient's %q", row.Compartment, pid)
	}
	if bytes.Contains(row.Body, []byte(provenanceCanary)) || bytes.Contains(row.Body, []byte("PATRQT")) {
		t.Error("the stored Provenance holds its content in the clear")
	}

	// The update's entry names it and its coded reason; the Provenance's
	// create has its own; no entry holds the reason's text.
	var update, create *ledger.Entry
	for _, e := range ledgerEntries(t, s, before) {
		enc := string(mustEncode(t, e))
		if strings.Contains(enc, "Quxbrightwater") {
			t.Errorf("ledger entry %s/%s holds the reason's text", e.Action, e.ResourceType)
		}
		switch {
		case e.Action == "update" && e.ResourceType == "Observation":
			update = &e
		case e.Action == "create" && e.ResourceType == "Provenance":
			create = &e
		}
	}
	want := "provenance=Provenance/" + provID + " reason=http://terminology.hl7.org/CodeSystem/v3-ActReason|PATRQT"
	if update == nil || update.Detail != want || update.Version != "2" || update.Patient != pid {
		t.Errorf("update entry %+v, want version 2, patient %s, detail %q", update, pid, want)
	}
	if create == nil || create.ResourceID != provID || create.Patient != pid || create.Outcome != "success" {
		t.Errorf("Provenance create entry %+v", create)
	}

	// History keeps the earlier value.
	hist := must(t, s.do("GET", "/fhir/Observation/"+oid+"/_history", nil), http.StatusOK).json(t)
	values := map[string]any{}
	for _, e := range hist["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		values[res["meta"].(map[string]any)["versionId"].(string)] = res["valueQuantity"].(map[string]any)["value"]
	}
	if fmt.Sprint(values) != "map[1:70 2:72]" {
		t.Errorf("history values by version %v, want 1:70 and 2:72", values)
	}

	// _revinclude reaches the Provenance from the corrected resource.
	inc := must(t, s.do("GET", "/fhir/Observation?_id="+oid+"&_revinclude=Provenance:target", nil), http.StatusOK).json(t)
	found := false
	for _, e := range inc["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		found = found || res["resourceType"] == "Provenance" && res["id"] == provID
	}
	if !found {
		t.Error("_revinclude=Provenance:target does not include the correction's Provenance")
	}
}

// TestProvenanceHeaderRefusals: a malformed X-Provenance, one the caller
// may not write, or one on a request that is not a single write, is
// refused and nothing is written.
func TestProvenanceHeaderRefusals(t *testing.T) {
	s := newStack(t)
	pid := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	oid := idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pid, "29463-7", 70)), http.StatusCreated))
	fixed := observation("Patient/"+pid, "29463-7", 72)
	fixed["id"] = oid
	obsOnly := "Bearer " + s.newToken("system/Observation.cruds")
	good := provenanceHeader(t)
	withTarget := strings.Replace(good, `"agent"`, `"target":[{"reference":"Observation/`+oid+`"}],"agent"`, 1)
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		says               string // in the OperationOutcome
	}{
		{"not JSON", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", "{nope"}, 400, "X-Provenance"},
		{"duplicate keys", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", `{"resourceType":"Provenance","resourceType":"Provenance"}`}, 400, "X-Provenance"},
		{"not a Provenance", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", `{"resourceType":"Basic"}`}, 400, "X-Provenance"},
		{"target set", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", withTarget}, 400, "X-Provenance"},
		{"invalid Provenance", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", `{"resourceType":"Provenance","recorded":"2020-01-01T00:00:00Z"}`}, 400, "Provenance"},
		{"no Provenance create", "PUT", "/fhir/Observation/" + oid, fixed, []string{"X-Provenance", good, "Authorization", obsOnly}, 403, ""},
		{"conditional update, no Provenance create", "PUT", "/fhir/Observation?_id=" + oid, fixed, []string{"X-Provenance", good, "Authorization", obsOnly}, 403, ""},
		{"create, malformed", "POST", "/fhir/Observation", observation("Patient/"+pid, "29463-7", 1), []string{"X-Provenance", "[]"}, 400, "X-Provenance"},
		{"create, no Provenance create", "POST", "/fhir/Observation", observation("Patient/"+pid, "29463-7", 1), []string{"X-Provenance", good, "Authorization", obsOnly}, 403, ""},
		{"delete", "DELETE", "/fhir/Observation/" + oid, nil, []string{"X-Provenance", good}, 400, "X-Provenance"},
		{"transaction", "POST", "/fhir", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"resource": fixed, "request": map[string]any{"method": "PUT", "url": "Observation/" + oid}}}},
			[]string{"X-Provenance", good}, 400, "X-Provenance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := writeState(t, s, "Observation", oid)
			r := s.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			if !strings.Contains(string(r.body), tc.says) || r.json(t)["resourceType"] != "OperationOutcome" {
				t.Errorf("answer does not name %s: %.300s", tc.says, r.body)
			}
			if after := writeState(t, s, "Observation", oid); after != before {
				t.Errorf("a refused write changed something: %s, was %s", after, before)
			}
		})
	}
}
