package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

type requestBundle struct {
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
	} `json:"entry"`
}

// Synthea transaction Bundles load atomically; urn:uuid references become
// server ids; every resource lands in its patient's compartment, and
// $everything returns exactly those.
func TestTransactionSynthea(t *testing.T) {
	s := newStack(t)
	files := syntheaFiles(t)[:3]
	total, shared := 0, 0
	var patients []string
	sharedIDs := map[string]bool{} // Type/id of each shared resource loaded
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var req requestBundle
		if err := json.Unmarshal(data, &req); err != nil {
			t.Fatal(err)
		}
		resp := must(t, s.do("POST", "/fhir", data), http.StatusOK).json(t)
		if resp["type"] != "transaction-response" {
			t.Fatalf("response type %v", resp["type"])
		}
		entries := resp["entry"].([]any)
		if len(entries) != len(req.Entry) {
			t.Fatalf("%d response entries for %d requests", len(entries), len(req.Entry))
		}
		for i, e := range entries {
			r := e.(map[string]any)["response"].(map[string]any)
			loc, _ := r["location"].(string)
			typ := req.Entry[i].Resource["resourceType"].(string)
			if r["status"] != "201 Created" || !strings.HasPrefix(loc, typ+"/") {
				t.Fatalf("entry %d (%s): status %v location %q", i, typ, r["status"], loc)
			}
			if typ == "Patient" {
				patients = append(patients, strings.Split(loc, "/")[1])
			}
			if typ == "Organization" || typ == "Practitioner" || typ == "Medication" || typ == "Location" {
				shared++
				sharedIDs[strings.Join(strings.Split(loc, "/")[:2], "/")] = true
			}
		}
		total += len(req.Entry)
	}
	everything := 0
	referenced := map[string]bool{}
	for _, id := range patients {
		b := must(t, s.do("GET", "/fhir/Patient/"+id+"/$everything", nil), http.StatusOK).json(t)
		entries := b["entry"].([]any)
		if b["total"] != float64(len(entries)) {
			t.Fatalf("$everything total %v for %d entries", b["total"], len(entries))
		}
		first := entries[0].(map[string]any)["resource"].(map[string]any)
		if first["resourceType"] != "Patient" || first["id"] != id {
			t.Fatalf("$everything does not start with the patient")
		}
		for _, e := range entries[1:] {
			res := e.(map[string]any)["resource"].(map[string]any)
			raw, _ := json.Marshal(res)
			if strings.Contains(string(raw), "urn:uuid:") {
				t.Fatal("a urn:uuid reference survived the transaction")
			}
			// The shared resources the record refers to come last, each once.
			if ref := res["resourceType"].(string) + "/" + res["id"].(string); sharedIDs[ref] {
				if referenced[id+" "+ref] {
					t.Fatalf("$everything of %s returned %s twice", id, ref)
				}
				referenced[id+" "+ref] = true
				referenced[ref] = true
				continue
			}
			if !strings.Contains(string(raw), `"Patient/`+id+`"`) {
				t.Fatalf("$everything of %s returned a resource that does not refer to the patient", id)
			}
			everything++
		}
		everything++ // the Patient
		obs := must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+id+"&_count=0", nil), http.StatusOK).json(t)
		if obs["total"].(float64) == 0 {
			t.Errorf("no Observations found for patient %s", id)
		}
	}
	if everything+shared != total {
		t.Fatalf("$everything returned %d resources of the records and %d are shared, but %d were loaded", everything, shared, total)
	}
	for _, typ := range []string{"Organization", "Practitioner"} {
		found := false
		for ref := range referenced {
			found = found || strings.HasPrefix(ref, typ+"/")
		}
		if !found {
			t.Errorf("$everything added no %s the records refer to", typ)
		}
	}
	must(t, s.do("GET", "/fhir/Patient/unknown/$everything", nil), http.StatusNotFound)
}

func countAll(t *testing.T, s *stack) float64 {
	t.Helper()
	return must(t, s.do("GET", "/fhir/_history?_count=0", nil), http.StatusOK).json(t)["total"].(float64)
}

func tx(typ string, entries ...map[string]any) map[string]any {
	list := make([]any, len(entries))
	for i, e := range entries {
		list[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": list}
}

func post(fullURL string, res map[string]any) map[string]any {
	e := map[string]any{"resource": res, "request": map[string]any{"method": "POST", "url": res["resourceType"]}}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	return e
}

// A failed transaction leaves no partial state.
func TestTransactionAtomic(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Keep", "Me")), http.StatusCreated))
	before := countAll(t, s)
	pu := "urn:uuid:6f1c2a52-8f7e-4a8e-9d0c-5d3b6f3c1a01"
	bad := observation(pu, "1-8", 1)
	bad["status"] = "not-a-status"
	stale := patient("Keep", "Changed")
	stale["id"] = id
	cases := map[string]map[string]any{
		"invalid entry": tx("transaction", post(pu, patient("New", "One")), post("", bad)),
		"unknown urn":   tx("transaction", post("", observation("urn:uuid:00000000-0000-0000-0000-000000000000", "1-8", 1))),
		"stale if-match": tx("transaction", post(pu, patient("New", "One")), map[string]any{
			"resource": stale, "request": map[string]any{"method": "PUT", "url": "Patient/" + id, "ifMatch": `W/"7"`},
		}),
		"duplicate fullUrl": tx("transaction", post(pu, patient("A", "B")), post(pu, patient("C", "D"))),
		"no request":        tx("transaction", map[string]any{"resource": patient("A", "B")}),
		"collection":        tx("collection", post(pu, patient("A", "B"))),
	}
	want := map[string]int{"stale if-match": http.StatusPreconditionFailed}
	for name, b := range cases {
		code := http.StatusBadRequest
		if c, ok := want[name]; ok {
			code = c
		}
		checkOutcome(t, name, s.do("POST", "/fhir", b), code)
		if after := countAll(t, s); after != before {
			t.Fatalf("%s: %v versions before, %v after", name, before, after)
		}
	}
	// The good version of the same transaction commits, with the
	// reference resolved.
	good := tx("transaction", post(pu, patient("New", "One")), post("", observation(pu, "1-8", 1)))
	resp := must(t, s.do("POST", "/fhir", good), http.StatusOK).json(t)
	entries := resp["entry"].([]any)
	pLoc := entries[0].(map[string]any)["response"].(map[string]any)["location"].(string)
	pid := strings.Split(pLoc, "/")[1]
	found := must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+pid, nil), http.StatusOK).json(t)
	if found["total"] != float64(1) {
		t.Fatalf("the Observation does not refer to the new Patient (%v found)", found["total"])
	}
}

// A batch runs each entry on its own.
func TestBatch(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Batch", "One")), http.StatusCreated))
	bad := patient("Bad", "Entry")
	bad["gender"] = "robot"
	b := tx("batch",
		post("", patient("Batch", "Two")),
		post("", bad),
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + id}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/unknown"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient?family=batch"}},
		map[string]any{"request": map[string]any{"method": "DELETE", "url": "Patient/" + id}},
	)
	resp := must(t, s.do("POST", "/fhir", b), http.StatusOK).json(t)
	if resp["type"] != "batch-response" {
		t.Fatalf("type %v", resp["type"])
	}
	var statuses []string
	for _, e := range resp["entry"].([]any) {
		statuses = append(statuses, e.(map[string]any)["response"].(map[string]any)["status"].(string))
	}
	want := []string{"201 Created", "400 Bad Request", "200 OK", "404 Not Found", "200 OK", "204 No Content"}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("batch statuses %v, want %v", statuses, want)
	}
}
