// Package fhirtest finds the shared FHIR R4 test data (Synthea bundles, HL7
// examples, validator cases) for tests and benchmarks. The data lives beside
// the project, in ../shared/data/fhir from the module root; a test that
// needs it is skipped, saying where it looked, when it is absent.
package fhirtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared FHIR data directory joined with sub, or skips the
// test when it is absent.
func Dir(t testing.TB, sub ...string) string {
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
			t.Skip("module root not found; cannot locate the shared FHIR test data")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared", "data", "fhir"}, sub...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared FHIR test data not found at %s (see shared/data/fhir/README.md)", p)
	}
	return p
}

// Files returns the files matching pattern in the shared data directory
// sub (e.g. "synthea", "*.json"), sorted, or skips the test when there are
// none.
func Files(t testing.TB, sub, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(t, sub), pattern))
	if err != nil || len(files) == 0 {
		t.Skipf("no %s files in the shared FHIR data's %s", pattern, sub)
	}
	return files
}
