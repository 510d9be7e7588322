package fhir

import (
	"errors"
	"sort"

	"github.com/wardhealth/ward/internal/fhir/fhirpath"
)

// CodeInvariant is the IssueType of a failed FHIRPath constraint.
const CodeInvariant = "invariant"

// constraintSteps bounds the work of all constraint evaluations on one
// resource (each contained resource and Bundle entry has its own). The
// HL7 examples and Synthea resources need at most a few thousand steps;
// a resource over the bound is refused as too costly.
const constraintSteps = 1 << 22

// constraintSet holds the spec's constraints compiled once: compiled[i] is
// nil for a constraint Ward does not evaluate, with the reason in
// skipped[i].
type constraintSet struct {
	compiled []*fhirpath.Expression
	native   []func(*fhirpath.Node) bool
	skipped  []string
}

// compileConstraints compiles every constraint of the model. Constraints
// of severity warning are compiled (so the engine is known to read them)
// but not evaluated: a warning never rejects a write.
func compileConstraints(m *specModel) *constraintSet {
	cs := &constraintSet{
		compiled: make([]*fhirpath.Expression, len(m.Constraints)),
		native:   make([]func(*fhirpath.Node) bool, len(m.Constraints)),
		skipped:  make([]string, len(m.Constraints)),
	}
	for i, c := range m.Constraints {
		if c.Key == "ele-1" && c.Expression == ele1 {
			cs.native[i] = ele1Native
			continue
		}
		if reason, ok := nativeConstraints[c.Key]; ok {
			cs.skipped[i] = reason
			continue
		}
		e, err := fhirpath.Compile(c.Expression, nil)
		var ue *fhirpath.UnsupportedError
		switch {
		case errors.As(err, &ue):
			cs.skipped[i] = "uses " + ue.Function + "(), which the engine does not implement"
		case err != nil:
			cs.skipped[i] = "does not compile: " + err.Error()
		case c.Severity != SeverityError:
			cs.skipped[i] = "severity " + c.Severity + ": compiled, but a warning does not reject a write"
		default:
			cs.compiled[i] = e
		}
	}
	return cs
}

// ele1 is the constraint every element carries. It is evaluated by
// ele1Native, which gives the same answer without the engine (a test
// checks both agree): it applies to every element, so it sets the cost of
// validation.
const ele1 = "hasValue() or (children().count() > id.count())"

// ele1Native evaluates ele-1: a primitive has a value, or the element has
// a child other than its id.
func ele1Native(n *fhirpath.Node) bool {
	switch v := n.Value.(type) {
	case map[string]any:
		for k := range v {
			if k != "id" {
				return true
			}
		}
		return false
	case nil:
		for k := range n.Ext {
			if k != "id" {
				return true
			}
		}
		return false
	}
	return true
}

// nativeConstraints are constraints Go code enforces instead of the
// engine, each with where.
var nativeConstraints = map[string]string{
	"txt-1": "htmlChecks(): enforced by Ward's XHTML check (checkXHTML) on every narrative",
	"txt-2": "htmlChecks(): enforced by Ward's XHTML check (checkXHTML) on every narrative",
}

// ConstraintReport lists the spec's constraints: the ones evaluated on
// every write and the others with the reason. Keys are "key@source".
func (v *Validator) ConstraintReport() (evaluated []string, skipped map[string]string) {
	skipped = map[string]string{}
	for i, c := range v.model.Constraints {
		id := c.Key + "@" + c.Source
		if v.constraints.compiled[i] != nil || v.constraints.native[i] != nil {
			evaluated = append(evaluated, id)
		} else {
			skipped[id] = v.constraints.skipped[i]
		}
	}
	sort.Strings(evaluated)
	return evaluated, skipped
}

// fhirpathModel adapts the spec model to fhirpath.Model.
type fhirpathModel struct {
	m        *specModel
	elements map[string]map[string][]fhirpath.Member
}

func newFHIRPathModel(m *specModel) *fhirpathModel {
	fm := &fhirpathModel{m: m, elements: make(map[string]map[string][]fhirpath.Member, len(m.Types))}
	for tk, t := range m.Types {
		els := make(map[string][]fhirpath.Member, len(t.Elements))
		for _, el := range t.Elements {
			for _, typ := range el.Types {
				key := el.Name
				if el.Choice {
					key += upperFirst(typ)
				}
				sub := typ
				if el.Ref != "" {
					sub = el.Ref
				}
				els[el.Name] = append(els[el.Name], fhirpath.Member{Key: key, Type: typ, TypeKey: sub, ExtKey: "_" + key})
				if !el.Choice {
					break
				}
			}
		}
		fm.elements[tk] = els
	}
	return fm
}

func (fm *fhirpathModel) Element(tk, name string) []fhirpath.Member {
	return fm.elements[tk][name]
}

func (fm *fhirpathModel) Member(tk, key string) (string, fhirpath.Member, bool) {
	r, ok := fm.m.member(tk, key)
	if !ok {
		return "", fhirpath.Member{}, false
	}
	key2 := r.el.Name
	if r.el.Choice {
		key2 += upperFirst(r.typ)
	}
	return r.el.Name, fhirpath.Member{Key: key2, Type: r.typ, TypeKey: r.typeKey}, true
}
