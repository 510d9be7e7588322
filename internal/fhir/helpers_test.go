package fhir

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

// dataDir returns the shared FHIR test data directory joined with sub.
func dataDir(t testing.TB, sub ...string) string { return fhirtest.Dir(t, sub...) }

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
