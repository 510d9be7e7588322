package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

var updateCompartment = flag.Bool("update-compartment", false, "rewrite compartment_table.go and compartment_types.go from the R4 spec")

// TestCompartmentTableGenerated is the generator of compartment_table.go
// and compartment_types.go: it builds both from the R4 CompartmentDefinition
// "patient" (in the spec's profiles-resources.json) and the R4
// SearchParameter expressions, and fails when the committed files differ.
// Refresh with:
//
//	go test ./internal/fhir -run CompartmentTableGenerated -update-compartment
func TestCompartmentTableGenerated(t *testing.T) {
	spec := fhirtest.Dir(t, "spec")
	table, types := generateCompartment(t, filepath.Join(spec, "profiles-resources.json"), filepath.Join(spec, "search-parameters.json"))
	for name, src := range map[string][]byte{"compartment_table.go": table, "compartment_types.go": types} {
		if *updateCompartment {
			if err := os.WriteFile(name, src, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(old, src) {
			t.Errorf("%s differs from what the R4 spec generates; run: go test ./internal/fhir -run CompartmentTableGenerated -update-compartment", name)
		}
	}
}

func generateCompartment(t *testing.T, profiles, params string) (table, types []byte) {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	readJSON(t, profiles, &bundle)
	type compartmentDef struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Version      string `json:"version"`
		Resource     []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	var defs struct {
		Entry []struct{ Resource compartmentDef }
	}
	for _, e := range bundle.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType != "CompartmentDefinition" {
			continue
		}
		var d compartmentDef
		if err := json.Unmarshal(e.Resource, &d); err != nil {
			t.Fatal(err)
		}
		defs.Entry = append(defs.Entry, struct{ Resource compartmentDef }{d})
	}
	var sps struct {
		Entry []struct {
			Resource struct {
				Code       string   `json:"code"`
				Base       []string `json:"base"`
				Expression string   `json:"expression"`
			} `json:"resource"`
		} `json:"entry"`
	}
	readJSON(t, params, &sps)
	expr := map[string]string{} // "Type.code" -> expression
	for _, e := range sps.Entry {
		for _, b := range e.Resource.Base {
			expr[b+"."+e.Resource.Code] = e.Resource.Expression
		}
	}
	var tb, ty bytes.Buffer
	found := false
	for _, e := range defs.Entry {
		d := e.Resource
		if d.ResourceType != "CompartmentDefinition" || d.ID != "patient" {
			continue
		}
		found = true
		fmt.Fprintf(&tb, "// Code generated from the R4 CompartmentDefinition \"patient\" (%s) and the\n", d.Version)
		tb.WriteString("// R4 SearchParameter expressions (spec/search-parameters.json). DO NOT EDIT.\n\npackage fhir\n\n")
		tb.WriteString("// patientCompartmentParams returns, for a resource type, the search parameters\n")
		tb.WriteString("// of the R4 patient compartment in the order the CompartmentDefinition lists\n")
		tb.WriteString("// them, each with the element paths (below the resource) its R4 expression\n")
		tb.WriteString("// selects. A \".where(resolve() is Patient)\" filter in the expression is\n")
		tb.WriteString("// implied: only references of the form \"Patient/<id>\" are considered.\n")
		tb.WriteString("func patientCompartmentParams(typ string) []compartmentParam {\n\tswitch typ {\n")
		var listed []string
		for _, r := range d.Resource {
			if len(r.Param) == 0 {
				continue
			}
			fmt.Fprintf(&tb, "\tcase %q:\n\t\treturn []compartmentParam{\n", r.Code)
			for _, p := range r.Param {
				x, ok := expr[r.Code+"."+p]
				if !ok {
					if p == "{def}" {
						continue
					}
					t.Fatalf("no search parameter %s.%s", r.Code, p)
				}
				var paths []string
				for _, branch := range strings.Split(x, "|") {
					path, ok := compartmentPath(r.Code, branch)
					if !ok {
						continue
					}
					paths = append(paths, "{"+path+"}")
				}
				if len(paths) == 0 {
					t.Fatalf("%s.%s: no path in %q", r.Code, p, x)
				}
				fmt.Fprintf(&tb, "\t\t\t{%q, [][]string{%s}},\n", p, strings.Join(paths, ", "))
			}
			tb.WriteString("\t\t}\n")
			if r.Code != "Patient" {
				listed = append(listed, r.Code)
			}
		}
		tb.WriteString("\t}\n\treturn nil\n}\n")
		slices.Sort(listed)
		fmt.Fprintf(&ty, "// Code generated from the R4 CompartmentDefinition \"patient\" (%s). DO NOT EDIT.\n\npackage fhir\n\n", d.Version)
		ty.WriteString("// patientCompartmentTypes lists the resource types that can belong to a\n")
		ty.WriteString("// patient compartment, sorted; patientCompartmentParams has an entry for\n// each.\n")
		ty.WriteString("var patientCompartmentTypes = [...]string{\n")
		for _, typ := range listed {
			fmt.Fprintf(&ty, "\t%q,\n", typ)
		}
		ty.WriteString("}\n\n// PatientCompartmentTypes returns the resource types that can belong to a\n")
		ty.WriteString("// patient compartment (Patient first, then the\n// others sorted).\n")
		ty.WriteString("func PatientCompartmentTypes() []string {\n\treturn append([]string{\"Patient\"}, patientCompartmentTypes[:]...)\n}\n")
	}
	if !found {
		t.Fatal("no CompartmentDefinition \"patient\" in the spec")
	}
	table, err := format.Source(tb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	types, err = format.Source(ty.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return table, types
}

// compartmentPath turns one branch of a reference parameter's expression
// on typ ("Appointment.participant.actor.where(resolve() is Patient)")
// into the quoted element names below the resource; ok is false for a
// branch on another type.
func compartmentPath(typ, branch string) (string, bool) {
	b := strings.TrimSpace(branch)
	if strings.HasPrefix(b, "(") && strings.HasSuffix(b, ")") {
		b = b[1 : len(b)-1]
	}
	b = strings.ReplaceAll(b, ".where(resolve() is Patient)", "")
	rest, ok := strings.CutPrefix(b, typ+".")
	if !ok {
		return "", false
	}
	var quoted []string
	for _, seg := range strings.Split(rest, ".") {
		quoted = append(quoted, fmt.Sprintf("%q", seg))
	}
	return strings.Join(quoted, ", "), true
}
