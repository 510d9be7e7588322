package fhir

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/wardhealth/ward/internal/fhir/fhirpath"
)

// specWalker applies the rules that come from the R4 StructureDefinitions
// rather than the JSON schema: the cardinality of every element (a missing
// Observation.status, two value[x] members), the formats of primitives the
// schema leaves open (base64Binary, the integer types), required bindings
// of CodeableConcept elements, Attachment.size against its data, and the
// spec's FHIRPath constraints on every element. It does not descend into
// nested resources: validateResource visits each.
type specWalker struct {
	m      *specModel
	cs     *constraintSet
	env    *fhirpath.Env
	root   string    // the path of the resource walked
	segs   []pathSeg // the path below root of the value being checked
	issues []Issue
	// evalErrors name the constraints whose evaluation failed (key and
	// path); such a constraint does not reject the resource.
	evalErrors []string
	// exhausted is set once the resource's constraint budget is spent.
	exhausted bool
}

// where renders the current path, plus a member name when name is set.
func (w *specWalker) where(name string) string {
	if name == "" {
		return pathString(w.root, w.segs)
	}
	return pathString(w.root, append(w.segs, pathSeg{key: name}))
}

func (w *specWalker) add(code, path, diag string) {
	w.issues = append(w.issues, newIssue(code, path, diag))
}

// object checks one object of type typ whose children type key is tk;
// own are the constraints its element adds to those of its type.
func (w *specWalker) object(obj map[string]any, typ, tk string, own []int) {
	t := w.m.Types[tk]
	if t == nil {
		return
	}
	w.check(fhirpath.NewNode(obj, typ, tk, ""), own, t.Constraints)
	for i := range t.Elements {
		w.cardinality(obj, &t.Elements[i])
	}
	for k, val := range obj {
		name, ext := k, false
		if len(k) > 1 && k[0] == '_' {
			name, ext = k[1:], true
		}
		ref, ok := t.byKey[name]
		if !ok {
			continue // unknown members are reported by the schema
		}
		w.segs = append(w.segs, pathSeg{key: k})
		if arr, ok := val.([]any); ok {
			for i, e := range arr {
				w.segs = append(w.segs, pathSeg{idx: i})
				w.value(e, ref, ext, obj[name])
				w.segs = w.segs[:len(w.segs)-1]
			}
		} else {
			w.value(val, ref, ext, obj[name])
		}
		w.segs = w.segs[:len(w.segs)-1]
	}
	if tk == "Attachment" {
		w.attachmentSize(obj)
	}
}

// cardinality checks that obj holds between el.Min and el.Max values of el.
// A primitive counts when either its value or its "_name" extension
// object is present.
func (w *specWalker) cardinality(obj map[string]any, el *specElement) {
	n, members := 0, 0
	for i, key := range el.keys {
		c := 0
		for _, k := range [2]string{key, el.extKeys[i]} {
			switch v := obj[k].(type) {
			case nil:
			case []any:
				c = max(c, len(v))
			default:
				c = max(c, 1)
			}
		}
		if c > 0 {
			members++
		}
		n += c
	}
	if n >= el.Min && !el.Choice && (el.Max == "*" || el.Max == "1") {
		return // the common case, without building a name
	}
	where := w.where(el.Name)
	if el.Choice {
		where += "[x]"
	}
	if n < el.Min {
		w.add(CodeRequired, where, "missing required element (minimum cardinality "+strconv.Itoa(el.Min)+")")
	}
	if el.Choice && members > 1 {
		w.add(CodeStructure, where, "more than one type given for a choice element")
		return
	}
	if el.Max != "*" && el.Max != "1" { // max 1 is the schema's array/non-array rule
		if limit, err := strconv.Atoi(el.Max); err == nil && n > limit {
			w.add(CodeStructure, where, "too many values (maximum cardinality "+el.Max+")")
		}
	}
}

// value checks one value of an element; ext marks the "_name" object of a
// primitive (an Element: id and extensions), and plain is then the
// primitive's value member, if any.
func (w *specWalker) value(val any, ref elementRef, ext bool, plain any) {
	if val == nil {
		return // null aligning a primitive array with its extensions
	}
	if ext {
		if m, ok := val.(map[string]any); ok {
			w.object(m, "Element", "Element", nil)
			if plain == nil {
				// A primitive given by extensions alone: the one case
				// where ele-1 (hasValue() or children) is not true by
				// its first clause.
				n := fhirpath.NewNode(nil, ref.typ, ref.typ, "")
				n.Ext = m
				w.check(n, ref.el.Constraints, w.m.Types[ref.typ].constraintList())
			}
		}
		return
	}
	switch v := val.(type) {
	case map[string]any:
		if ref.typ == "Resource" {
			return // a nested resource: validateResource visits it
		}
		if ref.typ == "CodeableConcept" && ref.el.Binding != "" {
			w.codeableConcept(v, ref.el.Binding)
		}
		w.object(v, ref.typ, ref.typeKey, ref.el.Constraints)
	case string:
		w.checkPrimitive(v, ref)
		switch ref.typ {
		case "base64Binary":
			if !validBase64(v) {
				w.add(CodeValue, w.where(""), "invalid base64Binary value")
			}
		case "code":
			if ref.el.Binding != "" {
				if vs, ok := w.m.ValueSets[ref.el.Binding]; ok && !codeIn(vs, "", v) {
					w.add(CodeValue, w.where(""), "value is not one of the allowed codes")
				}
			}
		}
	case bool:
		w.checkPrimitive(v, ref)
	case json.Number:
		w.checkPrimitive(v, ref)
		if reason := numberProblem(ref.typ, string(v)); reason != "" {
			w.add(CodeValue, w.where(""), reason)
		}
	}
}

// checkPrimitive evaluates the constraints an element adds to a primitive
// with a value (ElementDefinition.max's eld-3). The primitive types' own
// constraint, ele-1, holds for any primitive with a value.
func (w *specWalker) checkPrimitive(v any, ref elementRef) {
	if len(ref.el.Constraints) > 0 {
		w.check(fhirpath.NewNode(v, ref.typ, ref.typ, ""), ref.el.Constraints)
	}
}

// check evaluates constraint lists on node n; a constraint that evaluates
// to false is an issue naming the element and the constraint's key.
func (w *specWalker) check(n *fhirpath.Node, lists ...[]int) {
	if w.exhausted {
		return
	}
	for _, list := range lists {
		for _, i := range list {
			var ok, known bool
			var err error
			if native := w.cs.native[i]; native != nil {
				ok, known = native(n), true
			} else if e := w.cs.compiled[i]; e != nil {
				ok, known, err = e.EvaluateBool(w.env, n)
			} else {
				continue
			}
			c := &w.m.Constraints[i]
			switch {
			case errors.Is(err, fhirpath.ErrTooCostly):
				// Fail closed: a resource built to make its constraints
				// expensive is refused rather than left unchecked, once.
				w.add(CodeTooCostly, w.where(""), "constraint "+c.Key+" is too costly to evaluate on this resource")
				w.exhausted = true
				return
			case err != nil:
				w.evalErrors = append(w.evalErrors, c.Key+" at "+w.where("")+": "+err.Error())
			case known && !ok:
				w.add(CodeInvariant, w.where(""), "constraint "+c.Key+" failed: "+c.Human)
			}
		}
	}
}

// codeableConcept enforces a required binding: when the concept has
// codings that name both a system and a code, at least one of them must
// be in the value set. A concept given as text alone, or with codings the
// binding cannot judge (no system), is left alone.
func (w *specWalker) codeableConcept(cc map[string]any, url string) {
	vs, ok := w.m.ValueSets[url]
	if !ok {
		return
	}
	codings, _ := cc["coding"].([]any)
	judged := false
	for _, c := range codings {
		cm, _ := c.(map[string]any)
		sys, _ := cm["system"].(string)
		code, _ := cm["code"].(string)
		if sys == "" || code == "" {
			continue
		}
		if codeIn(vs, sys, code) {
			return
		}
		judged = true
	}
	if judged {
		w.add(CodeValue, w.where(""), "no coding is from the required value set "+url)
	}
}

// codeIn reports whether code is in vs; an empty system matches any
// system of the value set (a code element carries no system).
func codeIn(vs map[string][]string, system, code string) bool {
	for s, codes := range vs {
		if system != "" && s != system {
			continue
		}
		if containsSorted(codes, code) {
			return true
		}
	}
	return false
}

func containsSorted(list []string, s string) bool {
	lo, hi := 0, len(list)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if list[m] < s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(list) && list[lo] == s
}

// numberProblem checks a JSON number against an R4 numeric type: integer
// is a 32-bit signed integer written without fraction or exponent,
// positiveInt at least 1, unsignedInt at least 0.
func numberProblem(typ, s string) string {
	switch typ {
	case "integer", "positiveInt", "unsignedInt":
	default:
		return ""
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || (len(s) > 1 && s[0] == '0') || (len(s) > 2 && s[:2] == "-0") || s == "-0" {
		return "invalid " + typ + " value (a 32-bit integer without fraction or exponent)"
	}
	switch {
	case typ == "positiveInt" && n < 1:
		return "invalid positiveInt value (must be at least 1)"
	case typ == "unsignedInt" && n < 0:
		return "invalid unsignedInt value (must not be negative)"
	}
	return ""
}

// validBase64 reports whether s is base64 (RFC 4648, standard alphabet,
// padded), allowing whitespace between characters as R4's base64Binary
// does.
func validBase64(s string) bool {
	n, pad := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '=':
			pad++
		case pad > 0:
			return false // data after padding
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
		n++
	}
	return n > 0 && n%4 == 0 && pad <= 2
}

// base64Len is the number of bytes a valid base64 string decodes to.
func base64Len(s string) int {
	n, pad := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		case '=':
			pad++
			n++
		default:
			n++
		}
	}
	return n/4*3 - pad
}

// attachmentSize checks Attachment.size against the length of its data
// when both are given (the size of the data before base64 encoding).
func (w *specWalker) attachmentSize(obj map[string]any) {
	data, ok1 := obj["data"].(string)
	size, ok2 := obj["size"].(json.Number)
	if !ok1 || !ok2 || !validBase64(data) {
		return
	}
	if n, err := strconv.ParseInt(string(size), 10, 64); err == nil && n != int64(base64Len(data)) {
		w.add(CodeValue, w.where("size"), "size does not match the length of the data")
	}
}
