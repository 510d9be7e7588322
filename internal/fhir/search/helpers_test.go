package search

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func readJSON(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, b)
}

// syntheaResources returns the resources of one Synthea transaction bundle
// with urn:uuid references rewritten to Type/id, as processing the
// transaction would.
func syntheaResources(t testing.TB, path string) []map[string]any {
	t.Helper()
	bundle := readJSON(t, path)
	entries, _ := bundle["entry"].([]any)
	ids := make(map[string]string)
	var out []map[string]any
	for _, e := range entries {
		em := e.(map[string]any)
		res := em["resource"].(map[string]any)
		full, _ := em["fullUrl"].(string)
		id, _ := res["id"].(string)
		if id == "" {
			id = strings.TrimPrefix(full, "urn:uuid:")
			res["id"] = id
		}
		ids[full] = res["resourceType"].(string) + "/" + id
		out = append(out, res)
	}
	var rewrite func(v any)
	rewrite = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && k == "reference" {
					if r, ok := ids[s]; ok {
						x[k] = r
					}
					continue
				}
				rewrite(c)
			}
		case []any:
			for _, c := range x {
				rewrite(c)
			}
		}
	}
	for _, r := range out {
		rewrite(r)
	}
	return out
}

func syntheaFiles(t testing.TB) []string { return fhirtest.Files(t, "synthea", "*.json") }

func exampleFiles(t testing.TB) []string { return fhirtest.Files(t, "examples", "*.json") }

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
