package fhir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addExampleSeeds(f *testing.F, pattern string) {
	files, _ := filepath.Glob(filepath.Join(dataDir(f, "examples"), pattern))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":["a",null]}]}`))
	f.Add([]byte(`{"resourceType":"Patient","active":true,"active":true}`))
}

// FuzzParse checks that Parse never panics, returns only *Error, and that
// whatever it accepts survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	addExampleSeeds(f, "*.json")
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data, Limits{})
		if err != nil {
			if !errors.As(err, new(*Error)) {
				t.Fatalf("error %T is not *Error", err)
			}
			return
		}
		out := r.Marshal()
		r2, err := Parse(out, Limits{})
		if err != nil {
			t.Fatalf("re-parse of Marshal output failed: %v", err)
		}
		if string(r2.Marshal()) != string(out) {
			t.Fatal("Marshal is not stable")
		}
		if err := v.Validate(r); err != nil && !errors.As(err, new(*Error)) {
			t.Fatalf("Validate error %T is not *Error", err)
		}
		_ = r.References()
		_ = PatientReferences(r)
	})
}

// FuzzParseBundle checks that ParseBundle never panics and returns only
// *Error.
func FuzzParseBundle(f *testing.F) {
	addExampleSeeds(f, "Bundle-*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data, Limits{})
		if err != nil || r.Type != "Bundle" {
			return
		}
		b, err := ParseBundle(r)
		if err != nil {
			if !errors.As(err, new(*Error)) {
				t.Fatalf("error %T is not *Error", err)
			}
			return
		}
		for _, e := range b.Entries {
			if e.Resource != nil && e.Resource.Object == nil {
				t.Fatal("entry resource without a tree")
			}
		}
	})
}
