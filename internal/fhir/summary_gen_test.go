package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

var updateSummary = flag.Bool("update-summary", false, "rewrite summary_table.go from the R4 spec")

// TestSummaryTableGenerated is the generator of summary_table.go: it
// builds the table of elements from the R4 StructureDefinitions of the
// resources (the spec's profiles-resources.json: isSummary, min, the
// backbone elements and contentReference), and fails when the committed
// file differs. Refresh with:
//
//	go test ./internal/fhir -run SummaryTableGenerated -update-summary
func TestSummaryTableGenerated(t *testing.T) {
	src := generateSummary(t, filepath.Join(fhirtest.Dir(t, "spec"), "profiles-resources.json"))
	const name = "summary_table.go"
	if *updateSummary {
		if err := os.WriteFile(name, src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, src) {
		t.Errorf("%s differs from what the R4 spec generates; run: go test ./internal/fhir -run SummaryTableGenerated -update-summary", name)
	}
}

func generateSummary(t *testing.T, profiles string) []byte {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	readJSON(t, profiles, &bundle)
	type element struct {
		Path             string `json:"path"`
		Min              int    `json:"min"`
		IsSummary        bool   `json:"isSummary"`
		ContentReference string `json:"contentReference"`
		Type             []struct {
			Code string `json:"code"`
		} `json:"type"`
	}
	type structureDef struct {
		ResourceType string `json:"resourceType"`
		Kind         string `json:"kind"`
		Abstract     bool   `json:"abstract"`
		Type         string `json:"type"`
		Snapshot     struct {
			Element []element `json:"element"`
		} `json:"snapshot"`
	}
	rows := map[string]string{}
	for _, e := range bundle.Entry {
		var sd structureDef
		if err := json.Unmarshal(e.Resource, &sd); err != nil || sd.ResourceType != "StructureDefinition" || sd.Kind != "resource" || sd.Abstract {
			continue
		}
		els := sd.Snapshot.Element
		hasChildren := map[string]bool{}
		for _, el := range els {
			if i := strings.LastIndexByte(el.Path, '.'); i > 0 {
				hasChildren[el.Path[:i]] = true
			}
		}
		var tokens []string
		for _, el := range els {
			path, ok := strings.CutPrefix(el.Path, sd.Type+".")
			if !ok {
				continue // the root
			}
			top := !strings.Contains(path, ".")
			flags := ""
			if el.IsSummary {
				flags += "s"
			}
			if el.Min > 0 {
				flags += "m"
			}
			ref := ""
			if el.ContentReference != "" {
				ref = strings.TrimPrefix(el.ContentReference, "#"+sd.Type+".")
				flags += "b"
			} else if hasChildren[el.Path] && len(el.Type) == 1 && (el.Type[0].Code == "BackboneElement" || el.Type[0].Code == "Element") {
				flags += "b"
			}
			if !top && !strings.ContainsAny(flags, "sm") {
				continue // below the root, only what a summary keeps
			}
			tok := path
			if flags != "" {
				tok += ":" + flags
			}
			if ref != "" {
				tok += "=" + ref
			}
			tokens = append(tokens, tok)
		}
		if len(tokens) > 0 {
			rows[sd.Type] = strings.Join(tokens, " ")
		}
	}
	types := make([]string, 0, len(rows))
	for typ := range rows {
		types = append(types, typ)
	}
	sort.Strings(types)
	var b bytes.Buffer
	b.WriteString(`// Code generated from the R4 StructureDefinitions of the resources
// (spec/profiles-resources.json) by TestSummaryTableGenerated. DO NOT EDIT.

package fhir

// elementTable lists, per resource type, its elements as space-separated
// tokens "path[:flags][=ref]": every element at the root, and below it
// those an R4 summary or a mandatory rule keeps. Flags: s (isSummary),
// m (min > 0), b (a backbone element, whose children are filtered by
// their own flags; ref names the element whose children it reuses, for
// a contentReference). A path ending in [x] is a choice element.
var elementTable = map[string]string{
`)
	for _, typ := range types {
		fmt.Fprintf(&b, "\t%q: %q,\n", typ, rows[typ])
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return src
}
