package fhir

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// A Mask names elements of resources that a reader may never see, and
// removes them from resource JSON. Each entry is written
//
//	Type.element             the element, wherever Type appears
//	Type.a.b                 element b of every a (through arrays)
//	Type.element:system      the items of element whose system is system:
//	                         an Identifier, Coding or ContactPoint with that
//	                         system, or the codings with that system of a
//	                         CodeableConcept (a CodeableConcept left without
//	                         a coding goes too, text and all, since its text
//	                         names what the codings said)
//	Reference.identifier:system
//	                         the identifier of that system of every
//	                         reference, in every resource type (maskref.go)
//
// for example "Patient.identifier:http://hl7.org/fhir/sid/us-ssn". A mask
// applies to every resource of its type in a body: the resource itself and
// any resource embedded in it (contained resources, Bundle entries,
// Parameters). An element whose last item or member is removed is removed
// too, so a masked resource stays valid FHIR. The id, meta and resourceType
// cannot be masked.
//
// A masked resource is labelled: when Redact or Apply removes anything, the
// root resource's meta.security gets the REDACTED code of
// http://terminology.hl7.org/CodeSystem/v3-ObservationValue, as FHIR's
// security labels convention has it. The label says that something was
// removed, never what.
//
// The zero Mask hides nothing.
type Mask struct {
	types []maskedType
	// refSystems are the systems of "Reference.identifier:system" entries
	// (maskref.go); refQuoted, how each is encoded.
	refSystems []string
	refQuoted  [][]byte
}

type maskedType struct {
	name   string
	quoted []byte // `"Patient"`: how the type's name is encoded
	rules  []maskRule
}

type maskRule struct {
	path         []string // element names from the resource's root
	system       string   // "": the whole element
	quotedSystem []byte
}

// The security label of a redacted resource.
const (
	RedactedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	RedactedCode   = "REDACTED"
)

// ErrMasked is a write that would add, change or remove an element that a
// mask hides from the writer.
var ErrMasked = errors.New("fhir: the write touches elements hidden from the writer")

// ParseMask compiles mask entries (see Mask). An entry that is not of the
// form Type.element[.element...][:system] with a known resource type and
// element names is an error, not ignored: a mask that cannot be applied
// must not let its element through.
func ParseMask(entries []string) (Mask, error) {
	var m Mask
	for _, e := range entries {
		if elem, system, ok := strings.Cut(e, ":"); ok && elem == refIdentifier {
			if system == "" {
				return Mask{}, fmt.Errorf("fhir: mask %q: empty system", e)
			}
			if !slices.Contains(m.refSystems, system) {
				m.refSystems = append(m.refSystems, system)
				m.refQuoted = append(m.refQuoted, appendString(nil, system))
			}
			continue
		}
		typ, rest, ok := strings.Cut(e, ".")
		if !ok || !IsResourceType(typ) {
			return Mask{}, fmt.Errorf("fhir: mask %q: want Type.element[:system] with an R4 resource type", e)
		}
		elem, system, hasSystem := strings.Cut(rest, ":")
		if hasSystem && system == "" {
			return Mask{}, fmt.Errorf("fhir: mask %q: empty system", e)
		}
		path := strings.Split(elem, ".")
		for _, p := range path {
			if !elementName(p) {
				return Mask{}, fmt.Errorf("fhir: mask %q: %q is not an element name", e, p)
			}
		}
		switch path[0] {
		case "resourceType", "id", "meta":
			return Mask{}, fmt.Errorf("fhir: mask %q: %s cannot be masked", e, path[0])
		}
		r := maskRule{path: path, system: system}
		if hasSystem {
			r.quotedSystem = appendString(nil, system)
		}
		mt := m.lookup(typ)
		if mt == nil {
			m.types = append(m.types, maskedType{name: typ, quoted: appendString(nil, typ)})
			mt = &m.types[len(m.types)-1]
		}
		mt.rules = append(mt.rules, r)
	}
	return m, nil
}

func elementName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Empty reports whether the mask hides nothing.
func (m Mask) Empty() bool { return len(m.types) == 0 && len(m.refSystems) == 0 }

// Covers reports whether the mask may hide elements of resources of typ:
// it has entries for the type, or hides reference identifiers, which any
// type may hold.
func (m Mask) Covers(typ string) bool { return m.lookup(typ) != nil || len(m.refSystems) > 0 }

func (m Mask) lookup(typ string) *maskedType {
	for i := range m.types {
		if m.types[i].name == typ {
			return &m.types[i]
		}
	}
	return nil
}

// Reaches reports whether the mask hides anything at, inside or around
// the element at path (element names from the root of a resource of typ;
// a choice element may be named by its stem, "value" for valueQuantity).
// When all it hides there are the items of that element with certain
// systems, systems lists them; otherwise systems is nil. A caller that
// matches on the element (a search parameter) can thus tell whether a
// value naming another system is safe to match.
func (m Mask) Reaches(typ string, path []string) (hidden bool, systems []string) {
	mt := m.lookup(typ)
	if mt == nil {
		return false, nil
	}
	whole := false
	for _, r := range mt.rules {
		if !overlaps(r.path, path) {
			continue
		}
		hidden = true
		if r.system != "" && len(r.path) == len(path) && r.path[len(r.path)-1] == path[len(path)-1] {
			systems = append(systems, r.system)
		} else {
			whole = true
		}
	}
	if whole {
		systems = nil
	}
	return hidden, systems
}

// overlaps reports whether one element path lies within the other.
func overlaps(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] && !choiceOf(a[i], b[i]) && !choiceOf(b[i], a[i]) {
			return false
		}
	}
	return true
}

// choiceOf reports whether name is a typed form of the choice element stem
// ("valueQuantity" of "value").
func choiceOf(name, stem string) bool {
	return len(name) > len(stem) && strings.HasPrefix(name, stem) && name[len(stem)] >= 'A' && name[len(stem)] <= 'Z'
}

// Redact removes masked elements from r, and from every resource embedded
// in it, and labels r REDACTED when it removed anything. It reports
// whether it did.
func (m Mask) Redact(r *Resource) bool {
	changed := m.walkEmbedded(r.Object)
	changed = m.redactRefsIn(r.Object) || changed
	if changed {
		meta, ok := r.Object["meta"].(map[string]any)
		if !ok {
			meta = map[string]any{}
			r.Object["meta"] = meta
		}
		label(meta)
	}
	return changed
}

// Hides reports whether r holds anything the mask hides: whether Redact
// would remove anything from it. r is not changed.
func (m Mask) Hides(r *Resource) bool {
	if m.Empty() {
		return false
	}
	c := cloneMap(r.Object)
	return m.walkEmbedded(c) || m.redactRefsIn(c)
}

// walkEmbedded redacts every resource in v (v itself included) whose type
// the mask covers.
func (m Mask) walkEmbedded(v any) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		if rt, ok := v["resourceType"].(string); ok {
			if mt := m.lookup(rt); mt != nil {
				changed = applyRules(v, mt.rules)
			}
		}
		for _, c := range v {
			changed = m.walkEmbedded(c) || changed
		}
	case []any:
		for _, c := range v {
			changed = m.walkEmbedded(c) || changed
		}
	}
	return changed
}

// applyRules applies rules to obj's members in place. Values below obj are
// replaced, never changed in place.
func applyRules(obj map[string]any, rules []maskRule) bool {
	changed := false
	for i := range rules {
		changed = applyRule(obj, rules[i].path, rules[i].system) || changed
	}
	return changed
}

func applyRule(obj map[string]any, path []string, system string) bool {
	k := path[0]
	if len(path) == 1 && system == "" {
		_, a := obj[k]
		_, b := obj["_"+k]
		delete(obj, k)
		delete(obj, "_"+k)
		return a || b
	}
	v, ok := obj[k]
	if !ok {
		return false
	}
	nv, changed := redactValue(v, path[1:], system)
	if !changed {
		return false
	}
	if nv == nil {
		delete(obj, k)
	} else {
		obj[k] = nv
	}
	return true
}

// redactValue applies the rest of a rule to an element's value: to each
// item of an array, or to the value itself. nil means nothing is left.
func redactValue(v any, rest []string, system string) (any, bool) {
	arr, ok := v.([]any)
	if !ok {
		return redactItem(v, rest, system)
	}
	return redactItems(arr, func(it any) (any, bool) { return redactItem(it, rest, system) })
}

// redactItems applies redact to each item of arr without changing arr:
// what changes is copied, items redact leaves nothing of go, and nil means
// none is left.
func redactItems(arr []any, redact func(any) (any, bool)) (any, bool) {
	var out []any
	changed := false
	for i, it := range arr {
		ni, ch := redact(it)
		if ch && !changed {
			out = append(make([]any, 0, len(arr)), arr[:i]...)
			changed = true
		}
		if changed && ni != nil {
			out = append(out, ni)
		}
	}
	if !changed {
		return arr, false
	}
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}

// redactItem applies the rest of a rule to one item, without changing it:
// what changes is copied. nil means the whole item goes.
func redactItem(v any, rest []string, system string) (any, bool) {
	obj, ok := v.(map[string]any)
	if len(rest) == 0 {
		if system == "" {
			return nil, true
		}
		if !ok {
			return v, false
		}
		if s, _ := obj["system"].(string); s == system {
			return nil, true
		}
		codings, ok := obj["coding"].([]any)
		if !ok {
			return v, false
		}
		kept, changed := redactValue(codings, nil, system)
		if !changed {
			return v, false
		}
		if kept == nil {
			return nil, true // a concept without codings would keep only its text
		}
		cp := make(map[string]any, len(obj))
		for k, x := range obj {
			cp[k] = x
		}
		cp["coding"] = kept
		return cp, true
	}
	if !ok {
		return v, false
	}
	cp := make(map[string]any, len(obj))
	for k, x := range obj {
		cp[k] = x
	}
	if !applyRule(cp, rest, system) {
		return v, false
	}
	if len(cp) == 0 || len(cp) == 1 && cp["id"] != nil {
		return nil, true
	}
	return cp, true
}

// label adds the REDACTED security label to meta, once.
func label(meta map[string]any) {
	sec, _ := meta["security"].([]any)
	for _, c := range sec {
		if isRedactedLabel(c) {
			return
		}
	}
	meta["security"] = append(sec[:len(sec):len(sec)], map[string]any{
		"system": RedactedSystem, "code": RedactedCode, "display": "redacted",
	})
}

func isRedactedLabel(c any) bool {
	m, ok := c.(map[string]any)
	return ok && m["system"] == RedactedSystem && m["code"] == RedactedCode
}

// CarryOver prepares an update of src (the stored version, nil when there
// is none) by dst on behalf of a writer who sees src through the mask: it
// puts the elements the mask hides in src into dst, so that a writer who
// read the resource, changed what they saw and wrote it back erases
// nothing they could not see. dst must hide nothing (see Hides): a masked
// writer neither sets nor replaces hidden elements.
//
// Items of a partly hidden element are matched by their visible content:
// an item the writer kept unchanged gets its hidden parts back, and hidden
// items are appended after the writer's. When the writer changed or
// removed an item that holds hidden parts, or replaced a wholly hidden
// single element, nothing can be carried without guessing: the error is
// ErrMasked. So it is when src embeds resources with hidden parts.
//
// The REDACTED label is Ward's marker of a masked view: dst keeps it only
// when src has it.
func (m Mask) CarryOver(dst, src *Resource) error {
	mt := m.lookup(dst.Type)
	if mt == nil && len(m.refSystems) == 0 {
		return nil
	}
	if m.Hides(dst) {
		return ErrMasked
	}
	unlabel(dst.Object)
	if src == nil {
		return nil
	}
	if meta, ok := src.Object["meta"].(map[string]any); ok {
		if sec, _ := meta["security"].([]any); slices.ContainsFunc(sec, isRedactedLabel) {
			dmeta, ok := dst.Object["meta"].(map[string]any)
			if !ok {
				dmeta = map[string]any{}
				dst.Object["meta"] = dmeta
			}
			label(dmeta)
		}
	}
	for _, v := range src.Object {
		if m.walkEmbedded(cloneValue(v)) {
			return ErrMasked // hidden parts of an embedded resource
		}
	}
	if len(m.refSystems) > 0 {
		obj, err := m.carryRefs(dst.Object, src.Object, true)
		if err != nil {
			return err
		}
		dst.Object = obj.(map[string]any)
	}
	if mt == nil {
		return nil
	}
	done := map[string]bool{}
	for _, r := range mt.rules {
		k := r.path[0]
		if done[k] {
			continue
		}
		done[k] = true
		var rules []maskRule
		for _, r2 := range mt.rules {
			if r2.path[0] == k {
				rules = append(rules, r2)
			}
		}
		if err := carryMember(dst.Object, src.Object, k, rules); err != nil {
			return err
		}
	}
	return nil
}

// unlabel removes the REDACTED label from a resource's meta.
func unlabel(obj map[string]any) {
	meta, ok := obj["meta"].(map[string]any)
	if !ok {
		return
	}
	sec, ok := meta["security"].([]any)
	if !ok {
		return
	}
	var kept []any
	for _, c := range sec {
		if !isRedactedLabel(c) {
			kept = append(kept, c)
		}
	}
	if len(kept) == len(sec) {
		return
	}
	cp := make(map[string]any, len(meta))
	for k, x := range meta {
		cp[k] = x
	}
	if len(kept) == 0 {
		delete(cp, "security")
	} else {
		cp["security"] = kept
	}
	if len(cp) == 0 {
		delete(obj, "meta")
		return
	}
	obj["meta"] = cp
}

// carryMember carries the hidden parts of src's member k into dst's.
func carryMember(dst, src map[string]any, k string, rules []maskRule) error {
	sv, ok := src[k]
	if !ok {
		return nil
	}
	whole := false
	for _, r := range rules {
		whole = whole || len(r.path) == 1 && r.system == ""
	}
	if whole {
		// dst hides nothing, so it has neither k nor _k.
		dst[k] = cloneValue(sv)
		if ext, ok := src["_"+k]; ok {
			dst["_"+k] = cloneValue(ext)
		}
		return nil
	}
	redact := func(it any) any {
		for _, r := range rules {
			if it, _ = redactItem(it, r.path[1:], r.system); it == nil {
				return nil
			}
		}
		return it
	}
	dv, has := dst[k]
	arr, isArr := sv.([]any)
	if !isArr {
		seen := redact(sv)
		switch {
		case reflect.DeepEqual(seen, sv):
			return nil // nothing hidden: the writer's value stands
		case seen == nil && !has, seen != nil && has && reflect.DeepEqual(dv, seen):
			dst[k] = cloneValue(sv)
			return nil
		}
		return ErrMasked
	}
	darr, _ := dv.([]any)
	if has && darr == nil {
		return ErrMasked
	}
	merged := append([]any(nil), darr...)
	used := make([]bool, len(darr))
	var hidden []any
	for _, it := range arr {
		seen := redact(it)
		switch {
		case seen == nil:
			hidden = append(hidden, cloneValue(it))
			continue
		case reflect.DeepEqual(seen, it):
			continue
		}
		j := 0
		for ; j < len(darr); j++ {
			if !used[j] && reflect.DeepEqual(darr[j], seen) {
				break
			}
		}
		if j == len(darr) {
			return ErrMasked // the writer changed or removed an item with hidden parts
		}
		used[j] = true
		merged[j] = cloneValue(it)
	}
	merged = append(merged, hidden...)
	if len(merged) > 0 {
		dst[k] = merged
	}
	return nil
}
