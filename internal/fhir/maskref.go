package fhir

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
)

// Reference identifiers. A mask entry "Reference.identifier:system" hides
// the identifier with that system of every Reference, in every resource
// type: "subject": {"reference": "Patient/1", "identifier": {"system":
// "http://hl7.org/fhir/sid/us-ssn", ...}} names the patient by their social
// security number, as much as Patient.identifier does. Structurally the rule
// reaches every single-valued identifier element below a resource's root:
// a Reference's, and a backbone element's (Claim.insurance.identifier). A
// reference left with nothing else goes whole.

// refIdentifier is the entry's element: "Reference.identifier".
const refIdentifier = "Reference.identifier"

// ReferenceSystems lists the systems whose reference identifiers the mask
// hides; nil when it hides none.
func (m Mask) ReferenceSystems() []string { return m.refSystems }

// mentionsRefSystem reports whether body may hold a reference identifier
// the mask hides: whether it names one of the systems, quoted, or escapes
// characters (and might spell one otherwise).
func (m Mask) mentionsRefSystem(body []byte) bool {
	if len(m.refSystems) == 0 {
		return false
	}
	if bytes.Contains(body, backslashU) || bytes.Contains(body, escapedSlash) {
		return true // a system may be spelled with escapes
	}
	for _, q := range m.refQuoted {
		if bytes.Contains(body, q) {
			return true
		}
	}
	return false
}

// Mentions reports whether a stored body of typ (nil: none) may hold
// anything the mask hides, without decoding it: an update by a masked
// writer need not parse the stored version, nor carry anything over, when
// it does not.
func (m Mask) Mentions(typ string, body []byte) bool {
	return m.lookup(typ) != nil || m.mentionsRefSystem(body)
}

// hiddenRefIdentifier reports whether obj, an object below a resource's
// root, holds a single identifier with a hidden system.
func (m Mask) hiddenRefIdentifier(obj map[string]any) bool {
	id, ok := obj["identifier"].(map[string]any)
	if !ok {
		return false
	}
	s, _ := id["system"].(string)
	return slices.Contains(m.refSystems, s)
}

// redactRefs removes hidden reference identifiers from v, a value below a
// resource's root (root: v is a resource, which is never removed), without
// changing v: what changes is copied. nil means nothing is left of v.
func (m Mask) redactRefs(v any, root bool) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		_, isResource := x["resourceType"]
		below := !isResource && !root
		var out map[string]any
		dropID := below && m.hiddenRefIdentifier(x)
		if dropID {
			out = maps.Clone(x)
			delete(out, "identifier")
		}
		for k, c := range x {
			if dropID && k == "identifier" {
				continue
			}
			nc, changed := m.redactRefs(c, false)
			if !changed {
				continue
			}
			if out == nil {
				out = maps.Clone(x)
			}
			if nc == nil {
				delete(out, k)
			} else {
				out[k] = nc
			}
		}
		if out == nil {
			return v, false
		}
		if below && (len(out) == 0 || len(out) == 1 && out["id"] != nil) {
			return nil, true
		}
		return out, true
	case []any:
		return redactItems(x, func(it any) (any, bool) { return m.redactRefs(it, false) })
	}
	return v, false
}

// redactRefsIn removes hidden reference identifiers from the resource obj
// in place (its members are replaced, never changed) and reports whether
// it removed any.
func (m Mask) redactRefsIn(obj map[string]any) bool {
	if len(m.refSystems) == 0 {
		return false
	}
	nv, changed := m.redactRefs(obj, true)
	if !changed {
		return false
	}
	clear(obj)
	for k, v := range nv.(map[string]any) {
		obj[k] = v
	}
	return true
}

// carryRefs returns dst, a masked writer's value, with the hidden
// reference identifiers of src, the stored value at the same place, put
// back: a reference the writer left as they saw it gets its identifier
// again. A reference with a hidden identifier that the writer changed or
// removed cannot be carried without guessing: ErrMasked.
func (m Mask) carryRefs(dst, src any, root bool) (any, error) {
	seen, hidden := m.redactRefs(src, root)
	if !hidden {
		return dst, nil
	}
	if reflect.DeepEqual(dst, seen) {
		return cloneValue(src), nil
	}
	switch s := src.(type) {
	case map[string]any:
		d, ok := dst.(map[string]any)
		if !ok || !root && m.hiddenRefIdentifier(s) {
			return nil, ErrMasked
		}
		out := maps.Clone(d)
		for k, sv := range s {
			dv, has := d[k]
			if !has {
				if seenV, h := m.redactRefs(sv, false); h {
					if seenV != nil {
						return nil, ErrMasked // the writer removed what holds hidden parts
					}
					out[k] = cloneValue(sv) // wholly hidden: the writer never saw it
				}
				continue
			}
			nv, err := m.carryRefs(dv, sv, false)
			if err != nil {
				return nil, err
			}
			out[k] = nv
		}
		return out, nil
	case []any:
		d, ok := dst.([]any)
		if !ok {
			return nil, ErrMasked
		}
		out := append([]any(nil), d...)
		used := make([]bool, len(d))
		for _, it := range s {
			seenIt, h := m.redactRefs(it, false)
			if !h {
				continue
			}
			if seenIt == nil {
				out = append(out, cloneValue(it)) // a wholly hidden item follows the writer's
				continue
			}
			j := 0
			for j < len(d) && (used[j] || !reflect.DeepEqual(d[j], seenIt)) {
				j++
			}
			if j == len(d) {
				return nil, ErrMasked // the writer changed or removed an item with hidden parts
			}
			used[j] = true
			out[j] = cloneValue(it)
		}
		return out, nil
	}
	return nil, ErrMasked
}

var (
	quotedIdentifier = []byte(`"identifier"`)
	escapedSlash     = []byte(`\/`)
)

// objectIdentifier reports whether body may have an identifier member whose
// value is an object (a Reference's), rather than an array (a resource's
// identifiers): Apply then redacts the decoded tree. A body that escapes
// characters is reported as may.
func objectIdentifier(body []byte) bool {
	if bytes.Contains(body, backslashU) {
		return true
	}
	for i := 0; ; {
		j := bytes.Index(body[i:], quotedIdentifier)
		if j < 0 {
			return false
		}
		k := skipSpace(body, i+j+len(quotedIdentifier))
		if k < len(body) && body[k] == ':' {
			if k = skipSpace(body, k+1); k < len(body) && body[k] == '{' {
				return true
			}
		}
		i += j + 1
	}
}
