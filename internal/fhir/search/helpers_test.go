package search

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dataDir returns the shared FHIR test data directory, found relative to the
// module root, or skips the test when it is absent.
func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found; FHIR test data unavailable")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data", "fhir")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("FHIR test data not found at %s (see shared/data/fhir/README.md)", data)
	}
	return data
}

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

func syntheaFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir(t), "synthea", "*.json"))
	if err != nil || len(files) == 0 {
		t.Skip("no Synthea bundles found")
	}
	return files
}

func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir(t), "examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Skip("no HL7 examples found")
	}
	return files
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
