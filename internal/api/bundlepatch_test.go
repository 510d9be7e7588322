package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// patchEntry is a PATCH entry of a transaction or batch whose resource
// (a Binary or a Parameters) carries the patch.
func patchEntry(url string, res map[string]any, ifMatch string) map[string]any {
	req := map[string]any{"method": "PATCH", "url": url}
	if ifMatch != "" {
		req["ifMatch"] = ifMatch
	}
	return map[string]any{"resource": res, "request": req}
}

// binaryJSONPatch is a JSON Patch as a Bundle carries it: a Binary.
func binaryJSONPatch(patch string) map[string]any {
	return map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
		"data": base64.StdEncoding.EncodeToString([]byte(patch))}
}

// parametersPatch is a FHIRPath Patch as a Bundle carries it.
func parametersPatch(ops ...string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(fhirPathPatch(ops...)), &m); err != nil {
		panic(err)
	}
	return m
}

func entryStatuses(t *testing.T, r response) []string {
	t.Helper()
	var out []string
	for _, e := range r.json(t)["entry"].([]any) {
		out = append(out, e.(map[string]any)["response"].(map[string]any)["status"].(string))
	}
	return out
}

func TestBundlePatch(t *testing.T) { testBundlePatch(t, newStack(t)) }

func TestBundlePatchPostgres(t *testing.T) {
	testBundlePatch(t, newStackWith(t, stackOptions{openStore: postgresStore}))
}

// testBundlePatch: PATCH entries, with a JSON Patch in a Binary or a
// FHIRPath Patch in a Parameters, are applied atomically in a transaction
// (one that fails leaves nothing written) and each on its own in a batch,
// every one audited as a patch.
func testBundlePatch(t *testing.T, s *stack) {
	pa := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Mensah", "Kofi")), http.StatusCreated))
	obs := "Observation/" + idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pa, "29463-7", 70)), http.StatusCreated))
	pu := "urn:uuid:6f1c2a52-8f7e-4a8e-9d0c-5d3b6f3c1a77"
	moveObs := `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.subject.reference"},{"name":"value","valueString":"` + pu + `"}`
	lang := binaryJSONPatch(`[{"op":"add","path":"/language","value":"en"}]`)

	// Refused transactions, each with nothing written.
	before := countAll(t, s)
	for _, tc := range []struct {
		name   string
		b      map[string]any
		status int
	}{
		{"an operation fails", tx("transaction", post(pu, patient("New", "One")), patchEntry(obs, parametersPatch(moveObs,
			`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.issued"},{"name":"value","valueInstant":"2020-01-01T00:00:00Z"}`), "")), 400},
		{"a test fails", tx("transaction", post(pu, patient("New", "One")), patchEntry("Patient/"+pa, binaryJSONPatch(`[{"op":"test","path":"/name/0/family","value":"Other"}]`), "")), 412},
		{"stale ifMatch", tx("transaction", post(pu, patient("New", "One")), patchEntry("Patient/"+pa, lang, `W/"7"`)), 412},
		{"invalid result", tx("transaction", patchEntry(obs, binaryJSONPatch(`[{"op":"remove","path":"/code"}]`), "")), 400},
		{"Binary of another type", tx("transaction", patchEntry(obs, map[string]any{"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="}, "")), 400},
		{"neither Binary nor Parameters", tx("transaction", patchEntry(obs, patient("A", "B"), "")), 400},
		{"no resource", tx("transaction", map[string]any{"request": map[string]any{"method": "PATCH", "url": obs}}), 400},
		{"unknown id", tx("transaction", patchEntry("Observation/unknown-id", lang, "")), 404},
		{"conditional, no match", tx("transaction", patchEntry("Observation?_id=unknown-id", lang, "")), 404},
		{"written twice", tx("transaction", patchEntry("Patient/"+pa, lang, ""), patchEntry("Patient/"+pa, lang, "")), 400},
	} {
		r := s.do("POST", "/fhir", tc.b)
		checkOutcome(t, tc.name, r, tc.status)
		if tc.name == "an operation fails" && !strings.Contains(string(r.body), `"diagnostics":"Bundle.entry[1]: replace: the path selects no element","expression":["Parameters.parameter[1]"]`) {
			t.Errorf("%s: the outcome does not name the entry and its operation: %s", tc.name, r.body)
		}
		if after := countAll(t, s); after != before {
			t.Fatalf("%s: %v versions before, %v after", tc.name, before, after)
		}
	}

	// The good transaction: a new Patient, the Observation moved to it
	// through its urn:uuid, and a JSON Patch of the old Patient.
	from := ledgerSize(t, s)
	r := must(t, s.do("POST", "/fhir", tx("transaction", post(pu, patient("New", "One")), patchEntry(obs, parametersPatch(moveObs), `W/"1"`),
		patchEntry("Patient?_id="+pa, lang, ""))), http.StatusOK)
	if got := entryStatuses(t, r); fmt.Sprint(got) != "[201 Created 200 OK 200 OK]" {
		t.Fatalf("transaction statuses %v", got)
	}
	pLoc := r.json(t)["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["location"].(string)
	newID := strings.Split(pLoc, "/")[1]
	if got := must(t, s.do("GET", "/fhir/"+obs, nil), http.StatusOK).json(t); got["subject"].(map[string]any)["reference"] != "Patient/"+newID || got["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("the patched Observation: %v", got)
	}
	if got := must(t, s.do("GET", "/fhir/Patient/"+pa, nil), http.StatusOK).json(t); got["language"] != "en" {
		t.Errorf("the patched Patient: %v", got)
	}
	var patches int
	for _, e := range ledgerEntries(t, s, from) {
		if e.Action == "patch" && e.Outcome == "success" {
			patches++
		}
	}
	if patches != 2 {
		t.Errorf("E1: %d patch entries committed with the transaction, want 2", patches)
	}

	// A batch: each entry on its own, failures recorded with their outcome.
	from = ledgerSize(t, s)
	r = must(t, s.do("POST", "/fhir", tx("batch",
		patchEntry(obs, parametersPatch(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation"},{"name":"name","valueString":"note"},{"name":"value","valueAnnotation":{"text":"n"}}`), ""),
		patchEntry(obs, binaryJSONPatch(`[{"op":"remove","path":"/nothing"}]`), ""),
		patchEntry("Observation/unknown-id", lang, ""),
		patchEntry("Patient?_id="+pa, binaryJSONPatch(`[{"op":"replace","path":"/language","value":"fr"}]`), `W/"1"`),
		patchEntry("Patient?_id="+pa, binaryJSONPatch(`[{"op":"replace","path":"/language","value":"fr"}]`), ""),
	)), http.StatusOK)
	if got := entryStatuses(t, r); fmt.Sprint(got) != "[200 OK 400 Bad Request 404 Not Found 412 Precondition Failed 200 OK]" {
		t.Fatalf("batch statuses %v", got)
	}
	outcomes := map[string]int{}
	for _, e := range ledgerEntries(t, s, from) {
		outcomes[e.Action+" "+e.Outcome]++
	}
	if outcomes["patch success"] != 2 || outcomes["patch invalid"] != 2 || outcomes["patch not-found"] != 1 || outcomes["batch success"] != 1 {
		t.Errorf("E1: the batch's entries %v", outcomes)
	}
	if got := must(t, s.do("GET", "/fhir/Patient/"+pa, nil), http.StatusOK).json(t); got["language"] != "fr" {
		t.Errorf("the batch's patch of the Patient: %v", got["language"])
	}
}
