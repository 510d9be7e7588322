package fhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// dataDir returns the shared FHIR test data directory, found relative to the
// module root, or skips the test when it is absent.
func dataDir(t testing.TB, sub ...string) string {
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
			t.Skip("go.mod not found; cannot locate shared FHIR data")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared", "data", "fhir"}, sub...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared FHIR test data not present at %s", p)
	}
	return p
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func newValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// bigLimits admit the largest Synthea transaction bundles.
var bigLimits = Limits{MaxBytes: 8 << 20}
