package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestKeysRotateIndexWhileServing: ward keys rotate --kind index, run
// while a server serves (and re-indexes in the background too), ends with
// a new index key alone in the key file, and searches on identifying
// values answer the same before and after, also with :not; a resource
// written after the rotation is found.
func TestKeysRotateIndexWhileServing(t *testing.T) {
	dir := t.TempDir()
	startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	for i, fam := range []string{"Okafor", "Lindqvist", "Okafor"} {
		code, _ := c.do("PUT", fmt.Sprintf("/Patient/r%d", i), map[string]any{
			"resourceType": "Patient", "id": fmt.Sprintf("r%d", i),
			"identifier": []any{map[string]any{"system": "urn:mrn", "value": fmt.Sprintf("m%d", i)}},
			"name":       []any{map[string]any{"family": fam}},
		})
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("put patient %d: %d", i, code)
		}
	}
	queries := []string{"identifier=urn:mrn|m1", "identifier:not=urn:mrn|m1", "family=okafor"}
	find := func() []string {
		t.Helper()
		var out []string
		for _, q := range queries {
			code, b := c.do("GET", "/Patient?"+q, nil)
			if code != http.StatusOK {
				t.Fatalf("search %s: %d", q, code)
			}
			var ids []string
			entries, _ := b["entry"].([]any)
			for _, e := range entries {
				r, _ := e.(map[string]any)["resource"].(map[string]any)
				ids = append(ids, fmt.Sprint(r["id"]))
			}
			slices.Sort(ids)
			out = append(out, fmt.Sprint(ids))
		}
		return out
	}
	before := find()
	if want := []string{"[r1]", "[r0 r2]", "[r0 r2]"}; !slices.Equal(before, want) {
		t.Fatalf("before the rotation: %v, want %v", before, want)
	}
	code, stdout, stderr := ward(t, "keys", "rotate", "--kind", "index", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("keys rotate --kind index: exit %d: %s %s", code, stdout, stderr)
	}
	var out indexRotation
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.ID != "index-2" {
		t.Fatalf("keys rotate --kind index --json: %q, %v", stdout, err)
	}
	if after := find(); !slices.Equal(after, before) {
		t.Fatalf("after the rotation: %v, want %v", after, before)
	}
	for _, k := range status(t, dir).Keys {
		if k.Kind == "index" && (k.ID != "index-2" || k.Generations != 1) {
			t.Errorf("status after the rotation: %+v", k)
		}
	}
	if code, _ := c.do("PUT", "/Patient/r9", map[string]any{"resourceType": "Patient", "id": "r9",
		"identifier": []any{map[string]any{"system": "urn:mrn", "value": "m1"}}}); code != http.StatusCreated {
		t.Fatalf("put after the rotation: %d", code)
	}
	if got := find(); got[0] != "[r1 r9]" {
		t.Fatalf("a patient written after the rotation is not found: %v", got)
	}
}
