package fhir

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type exampleManifest struct {
	Files []struct {
		File         string `json:"file"`
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		SchemaValid  bool   `json:"r4JsonSchemaValid"`
	} `json:"files"`
}

// schemaRejectedExamples are the official examples that the raw 4.0.0 JSON
// schema rejects (examples.manifest.json) and Ward accepts, with the reason.
// Every example must validate; the test fails if the manifest marks another
// example schema-invalid without an explanation here.
var schemaRejectedExamples = map[string]string{
	"DiagnosticReport-gingival-mass.json":          "a string holds U+00A0; the R4 string pattern [ \\r\\n\\t\\S]+ uses XML Schema \\S, which includes it (the ECMAScript \\S used by the manifest's checker does not)",
	"ImplementationGuide-example.json":             "fhirVersion 4.0.1, missing from the 4.0.0 schema's enum (schema patched)",
	"StructureDefinition-example-composition.json": "fhirVersion 4.0.1 and ElementDefinition.type._profile, both 4.0.0 schema defects (schema patched)",
}

func TestExamplesRoundTrip(t *testing.T) {
	dir := dataDir(t, "examples")
	var m exampleManifest
	readJSON(t, filepath.Join(dir, "..", "examples.manifest.json"), &m)
	if len(m.Files) == 0 {
		t.Fatal("empty manifest")
	}
	for _, f := range m.Files {
		data := readFile(t, filepath.Join(dir, f.File))
		r, err := Parse(data, bigLimits)
		if err != nil {
			t.Errorf("%s: parse: %v", f.File, err)
			continue
		}
		if r.Type != f.ResourceType || r.ID != f.ID {
			t.Errorf("%s: got %s/%s, want %s/%s", f.File, r.Type, r.ID, f.ResourceType, f.ID)
		}
		out := r.Marshal()
		r2, err := Parse(out, bigLimits)
		if err != nil {
			t.Errorf("%s: reparse: %v", f.File, err)
			continue
		}
		if !reflect.DeepEqual(r, r2) {
			t.Errorf("%s: round trip changed the resource", f.File)
		}
		if string(r2.Marshal()) != string(out) {
			t.Errorf("%s: Marshal is not deterministic", f.File)
		}
	}
}

func TestValidateExamples(t *testing.T) {
	dir := dataDir(t, "examples")
	var m exampleManifest
	readJSON(t, filepath.Join(dir, "..", "examples.manifest.json"), &m)
	v := newValidator(t)
	for _, f := range m.Files {
		r, err := Parse(readFile(t, filepath.Join(dir, f.File)), bigLimits)
		if err != nil {
			t.Errorf("%s: parse: %v", f.File, err)
			continue
		}
		if err := v.Validate(r); err != nil {
			t.Errorf("%s (schema-valid per manifest: %v): %s", f.File, f.SchemaValid, describe(err))
		}
		if reason, ok := schemaRejectedExamples[f.File]; ok != !f.SchemaValid {
			t.Errorf("%s: manifest schema-valid=%v but explanation present=%v", f.File, f.SchemaValid, ok)
		} else if ok {
			t.Logf("%s: accepted although the raw schema rejects it: %s", f.File, reason)
		}
	}
}

func TestValidateSynthea(t *testing.T) {
	dir := dataDir(t, "synthea")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Skip("no Synthea bundles")
	}
	v := newValidator(t)
	entries := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(data, bigLimits)
		if err != nil {
			t.Errorf("%s: parse: %v", filepath.Base(file), err)
			continue
		}
		b, err := ParseBundle(r)
		if err != nil {
			t.Errorf("%s: bundle: %v", filepath.Base(file), err)
			continue
		}
		for i, e := range b.Entries {
			entries++
			if err := v.Validate(e.Resource); err != nil {
				t.Errorf("%s entry %d (%s): %s", filepath.Base(file), i, e.Resource.Type, describe(err))
			}
		}
	}
	t.Logf("validated %d Synthea resources from %d bundles", entries, len(files))
}

// describe lists every issue of an *Error.
func describe(err error) string {
	var fe *Error
	if !errors.As(err, &fe) {
		return "not an *Error: " + err.Error()
	}
	var b strings.Builder
	for _, is := range fe.Issues {
		b.WriteString("\n\t" + is.Code + " " + strings.Join(is.Expression, ",") + ": " + is.Diagnostics)
	}
	return b.String()
}
