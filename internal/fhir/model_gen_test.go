package fhir

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

var updateSpecModel = flag.Bool("update-spec-model", false, "rewrite spec/r4model.json.gz from the R4 spec")

const specModelFile = "spec/r4model.json.gz"

// TestSpecModelGenerated is the generator of spec/r4model.json.gz: it
// builds the model from the R4 StructureDefinitions (profiles-resources.json,
// profiles-types.json) and the spec's value set expansions, and fails when
// the embedded file differs. Refresh with:
//
//	go test ./internal/fhir -run SpecModelGenerated -update-spec-model
func TestSpecModelGenerated(t *testing.T) {
	spec := fhirtest.Dir(t, "spec")
	got := generateSpecModel(t, spec)
	if *updateSpecModel {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(got)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(specModelFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(specModelGz))
	if err != nil {
		t.Fatal(err)
	}
	old, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, got) {
		t.Errorf("%s differs from what the R4 spec generates; run: go test ./internal/fhir -run SpecModelGenerated -update-spec-model", specModelFile)
	}
}

type sdElement struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsModifier       bool   `json:"isModifier"`
	Type             []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
	Binding *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	Constraint []struct {
		Key        string `json:"key"`
		Severity   string `json:"severity"`
		Human      string `json:"human"`
		Expression string `json:"expression"`
		Source     string `json:"source"`
	} `json:"constraint"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	URL          string `json:"url"`
	Kind         string `json:"kind"`
	Derivation   string `json:"derivation"`
	Snapshot     struct {
		Element []sdElement `json:"element"`
	} `json:"snapshot"`
}

func generateSpecModel(t *testing.T, spec string) []byte {
	t.Helper()
	var sds []structureDefinition
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		var b struct {
			Entry []struct {
				Resource structureDefinition `json:"resource"`
			} `json:"entry"`
		}
		readJSON(t, filepath.Join(spec, f), &b)
		for _, e := range b.Entry {
			sd := e.Resource
			if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" || sd.Kind == "logical" {
				continue
			}
			sds = append(sds, sd)
		}
	}
	m := specModel{Types: map[string]*specType{}, ValueSets: map[string]map[string][]string{}, UncheckedValueSets: map[string]string{}}
	type cKey struct{ source, key string }
	cIndex := map[cKey]int{}
	constraintIdx := func(sd structureDefinition, path string, c sdElement, i int) int {
		con := c.Constraint[i]
		src := con.Source
		if src == "" {
			src = sd.URL
		}
		k := cKey{src, con.Key}
		if idx, ok := cIndex[k]; ok {
			return idx
		}
		def := strings.TrimPrefix(src, "http://hl7.org/fhir/StructureDefinition/")
		if def == sd.ID {
			def = path
		}
		m.Constraints = append(m.Constraints, specConstraint{Key: con.Key, Severity: con.Severity, Expression: con.Expression, Human: con.Human, Source: def})
		cIndex[k] = len(m.Constraints) - 1
		return len(m.Constraints) - 1
	}
	// Constraints defined by a constraint source that is a type are that
	// type's root constraints; collect them first so elements can omit them.
	bindings := map[string]bool{}
	for _, sd := range sds {
		els := sd.Snapshot.Element
		if len(els) == 0 {
			continue
		}
		hasChildren := map[string]bool{}
		for _, el := range els {
			if i := strings.LastIndexByte(el.Path, '.'); i > 0 {
				hasChildren[el.Path[:i]] = true
			}
		}
		root := &specType{Kind: sd.Kind}
		for i := range els[0].Constraint {
			root.Constraints = append(root.Constraints, constraintIdx(sd, els[0].Path, els[0], i))
		}
		m.Types[sd.ID] = root
		if sd.Kind == "primitive-type" {
			continue
		}
		for _, el := range els[1:] {
			parent := el.Path[:strings.LastIndexByte(el.Path, '.')]
			pt := m.Types[parent]
			if parent == els[0].Path {
				pt = root
			}
			if pt == nil {
				t.Fatalf("%s: parent %s not seen before", el.Path, parent)
			}
			name := el.Path[len(parent)+1:]
			se := specElement{Name: strings.TrimSuffix(name, "[x]"), Choice: strings.HasSuffix(name, "[x]"), Min: el.Min, Max: el.Max, Modifier: el.IsModifier}
			for _, ty := range el.Type {
				code := ty.Code
				for _, x := range ty.Extension {
					if x.URL == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" {
						code = x.ValueURL
					}
				}
				se.Types = append(se.Types, code)
			}
			var own []int
			switch {
			case el.ContentReference != "":
				se.Ref = strings.TrimPrefix(el.ContentReference, "#")
				se.Types = []string{"BackboneElement"}
			case hasChildren[el.Path]:
				se.Ref = el.Path
				bt := &specType{Kind: "backbone"}
				for i := range el.Constraint {
					bt.Constraints = append(bt.Constraints, constraintIdx(sd, el.Path, el, i))
				}
				m.Types[el.Path] = bt
			default:
				for i := range el.Constraint {
					own = append(own, constraintIdx(sd, el.Path, el, i))
				}
			}
			se.Constraints = own
			if el.Binding != nil && el.Binding.Strength == "required" {
				se.Binding, _, _ = strings.Cut(el.Binding.ValueSet, "|")
				bindings[se.Binding] = true
			}
			pt.Elements = append(pt.Elements, se)
		}
	}
	// Drop from each element the constraints its (single) type already has.
	for _, ty := range m.Types {
		for i := range ty.Elements {
			el := &ty.Elements[i]
			if len(el.Constraints) == 0 {
				continue
			}
			var keep []int
			for _, c := range el.Constraints {
				inherited := len(el.Types) > 0
				for _, typ := range el.Types {
					if tt := m.Types[typ]; tt == nil || !slices.Contains(tt.Constraints, c) {
						inherited = false
					}
				}
				if !inherited {
					keep = append(keep, c)
				}
			}
			el.Constraints = keep
		}
	}
	addValueSets(t, spec, &m, bindings)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// addValueSets takes the codes of each required binding from the spec's
// own expansions (valueset-expansions.json).
func addValueSets(t *testing.T, spec string, m *specModel, bindings map[string]bool) {
	type contains struct {
		System   string     `json:"system"`
		Code     string     `json:"code"`
		Abstract bool       `json:"abstract"`
		Contains []contains `json:"contains"`
	}
	var b struct {
		Entry []struct {
			Resource struct {
				URL       string `json:"url"`
				Expansion struct {
					Extension []struct {
						URL string `json:"url"`
					} `json:"extension"`
					Contains []contains `json:"contains"`
				} `json:"expansion"`
			} `json:"resource"`
		} `json:"entry"`
	}
	readJSON(t, filepath.Join(spec, "valueset-expansions.json"), &b)
	urls := make([]string, 0, len(bindings))
	for u := range bindings {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		found := false
		for _, e := range b.Entry {
			if e.Resource.URL != u {
				continue
			}
			found = true
			incomplete := ""
			for _, x := range e.Resource.Expansion.Extension {
				switch x.URL {
				case "http://hl7.org/fhir/StructureDefinition/valueset-toocostly":
					incomplete = "the code system is a grammar (too large to expand); the spec's expansion is partial"
				case "http://hl7.org/fhir/StructureDefinition/valueset-unclosed":
					incomplete = "the value set is not closed: the spec's expansion lists only some codes"
				}
			}
			if incomplete != "" {
				m.UncheckedValueSets[u] = incomplete
				break
			}
			bySystem := map[string][]string{}
			var walk func([]contains)
			walk = func(cs []contains) {
				for _, c := range cs {
					if c.Code != "" && !c.Abstract {
						bySystem[c.System] = append(bySystem[c.System], c.Code)
					}
					walk(c.Contains)
				}
			}
			walk(e.Resource.Expansion.Contains)
			for s := range bySystem {
				sort.Strings(bySystem[s])
				bySystem[s] = slices.Compact(bySystem[s])
			}
			m.ValueSets[u] = bySystem
			break
		}
		if !found {
			m.UncheckedValueSets[u] = "the spec has no expansion of this value set (an external code system)"
		}
	}
}
