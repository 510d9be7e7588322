package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// specModelGz is the part of the R4 StructureDefinitions and value sets
// that validation needs, in a compact form generated from the spec
// (spec/profiles-resources.json, profiles-types.json, valueset-expansions.json;
// CC0) by TestSpecModelGenerated, gzipped. Refresh with:
//
//	go test ./internal/fhir -run SpecModelGenerated -update-spec-model
//
//go:generate go test -run SpecModelGenerated -update-spec-model
//go:embed spec/r4model.json.gz
var specModelGz []byte

// specModel is the decoded form of specModelGz.
type specModel struct {
	// Types maps a type key to its elements: a resource or data type name
	// ("Observation", "Period", "string") or the path of a backbone element
	// ("Observation.component", "Questionnaire.item").
	Types map[string]*specType `json:"types"`
	// Constraints are the spec's FHIRPath invariants, referred to by index.
	Constraints []specConstraint `json:"constraints"`
	// ValueSets holds, for each required binding Ward checks, the allowed
	// codes by code system (from the spec's own expansions).
	ValueSets map[string]map[string][]string `json:"valueSets"`
	// UncheckedValueSets are required bindings Ward does not check, with
	// the reason.
	UncheckedValueSets map[string]string `json:"uncheckedValueSets"`
}

// specType is one type key's definition.
type specType struct {
	Kind        string        `json:"kind"` // resource, complex-type, primitive-type, backbone
	Elements    []specElement `json:"elements,omitempty"`
	Constraints []int         `json:"constraints,omitempty"`

	byKey map[string]elementRef // JSON member name -> element and type (built on load)
}

// specElement is one element of a type, as the snapshot defines it.
type specElement struct {
	Name        string   `json:"n"`           // "value" for value[x]
	Choice      bool     `json:"x,omitempty"` // value[x]: one member per type (valueQuantity)
	Min         int      `json:"min,omitempty"`
	Max         string   `json:"max"`           // "*" or a number
	Types       []string `json:"t,omitempty"`   // type codes; "Resource" for a nested resource
	Ref         string   `json:"ref,omitempty"` // type key of a backbone element's children
	Binding     string   `json:"b,omitempty"`   // value set URL of a required binding
	Constraints []int    `json:"c,omitempty"`   // invariants beyond those of its type
	Modifier    bool     `json:"mod,omitempty"`

	keys, extKeys []string // its JSON member names, and "_" + each (built on load)
}

// specConstraint is one FHIRPath invariant of the spec.
type specConstraint struct {
	Key        string `json:"key"`
	Severity   string `json:"severity"`
	Expression string `json:"expression"`
	Human      string `json:"human"`
	Source     string `json:"source"` // the type and element that define it
}

// elementRef resolves a JSON member name of an object.
type elementRef struct {
	el      *specElement
	typ     string // the element's type for this member (the choice's type)
	typeKey string // the type key of the member's value
}

// loadSpecModel decompresses and indexes the embedded model.
func loadSpecModel() (*specModel, error) {
	zr, err := gzip.NewReader(bytes.NewReader(specModelGz))
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded spec model: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded spec model: %w", err)
	}
	var m specModel
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("fhir: embedded spec model: %w", err)
	}
	m.index()
	return &m, nil
}

// index builds each type's member-name lookup.
func (m *specModel) index() {
	for _, t := range m.Types {
		t.byKey = make(map[string]elementRef, len(t.Elements)*2)
		for i := range t.Elements {
			el := &t.Elements[i]
			for _, typ := range el.Types {
				key := el.Name
				if el.Choice {
					key += upperFirst(typ)
				}
				tk := typ
				if el.Ref != "" {
					tk = el.Ref
				}
				t.byKey[key] = elementRef{el: el, typ: typ, typeKey: tk}
				el.keys = append(el.keys, key)
				el.extKeys = append(el.extKeys, "_"+key)
				if !el.Choice {
					break
				}
			}
		}
	}
}

// member returns the element behind the JSON member name key of an object
// of type key tk. A primitive's "_name" member resolves to name's element.
func (m *specModel) member(tk, key string) (elementRef, bool) {
	t := m.Types[tk]
	if t == nil {
		return elementRef{}, false
	}
	r, ok := t.byKey[key]
	return r, ok
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// constraintList returns t's constraints; nil for a nil type.
func (t *specType) constraintList() []int {
	if t == nil {
		return nil
	}
	return t.Constraints
}
