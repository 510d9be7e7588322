// Package searchtest builds test resources from the R4 search parameter
// definitions: for every string-typed search parameter of every resource
// type that can belong to a patient compartment or describes a person, a
// resource that carries a distinct canary value in each element the
// parameter indexes. Tests write them through the API and then look for
// the canaries on disk (catalogue D3), so the list of what is checked
// follows the specification instead of a hand-picked sample.
//
// It is test support: nothing in Ward's server imports it.
package searchtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
)

// Canary is one test resource: Resource carries Value in the element Path
// selects, which search parameter Param of Type indexes.
type Canary struct {
	Type, Param, Path string
	Value             string
	Resource          map[string]any
}

// Skipped is a branch of a parameter's expression that no resource could
// be built for, and why.
type Skipped struct {
	Type, Param, Path, Reason string
}

// PersonTypes are the resource types that describe a person.
var PersonTypes = []string{"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"}

// ProtectedTypes returns the resource types held to Ward's deny-by-default
// index rule: the patient compartment's types and the person types, sorted.
func ProtectedTypes() []string {
	out := fhir.PatientCompartmentTypes()
	for _, t := range PersonTypes {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// CanaryValue returns the canary of one (type, parameter, path): a word of
// mixed-case letters that occurs nowhere else, so that any plaintext copy
// of it, in any case, is found.
func CanaryValue(typ, param, path string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", typ, param, path)
	v := h.Sum64()
	const letters = "bcdfghjkmnpqrstvwxzBCDFGHJKMNPQRSTVWXZ"
	var b strings.Builder
	b.WriteString("Qz")
	for range 12 {
		b.WriteByte(letters[v%uint64(len(letters))])
		v /= uint64(len(letters))
	}
	return b.String()
}

// StringCanaries returns a resource for every branch of every supported
// string-typed search parameter of the protected types, and the branches
// it could not build a resource for.
func StringCanaries(reg *search.Registry, v *fhir.Validator) ([]Canary, []Skipped) {
	var out []Canary
	var skipped []Skipped
	for _, typ := range ProtectedTypes() {
		for _, p := range reg.Params(typ) {
			if p.Type != search.TypeString {
				continue
			}
			if !p.Supported {
				skipped = append(skipped, Skipped{typ, p.Code, p.Expression, "unsupported: " + p.Reason})
				continue
			}
			for _, branch := range strings.Split(p.Expression, "|") {
				branch = strings.TrimSpace(branch)
				value := CanaryValue(typ, p.Code, branch)
				res, err := build(v, typ, branch, value)
				if err != nil {
					skipped = append(skipped, Skipped{typ, p.Code, branch, err.Error()})
					continue
				}
				out = append(out, Canary{Type: typ, Param: p.Code, Path: branch, Value: value, Resource: res})
			}
		}
	}
	return out, skipped
}

// build makes a resource of typ whose element at the FHIRPath branch holds
// value. It follows the shapes string parameters use: a member path,
// optionally ending in "as T" / ".as(T)" / ".ofType(T)", with where()
// filters that do not constrain a string.
func build(v *fhir.Validator, typ, branch, value string) (map[string]any, error) {
	expr := strings.TrimSpace(branch)
	for strings.HasPrefix(expr, "(") && strings.HasSuffix(expr, ")") {
		expr = strings.TrimSpace(expr[1 : len(expr)-1])
	}
	// (A.b as T).c: b is of type T, and c an element of it.
	inner, innerAs, tail := "", "", ""
	if strings.HasPrefix(expr, "(") {
		if i := strings.Index(expr, ")."); i > 0 && strings.Contains(expr[:i], " as ") {
			k := strings.Index(expr[:i], " as ")
			inner, innerAs, tail = expr[1:k], strings.TrimSpace(expr[k+4:i]), expr[i+2:]
			expr = inner + "." + tail
		}
	}
	asType := ""
	if i := strings.Index(expr, " as "); i > 0 {
		expr, asType = strings.TrimSpace(expr[:i]), strings.TrimSpace(expr[i+4:])
	}
	for _, fn := range []string{".as(", ".ofType("} {
		if i := strings.LastIndex(expr, fn); i > 0 && strings.HasSuffix(expr, ")") {
			expr, asType = expr[:i], expr[i+len(fn):len(expr)-1]
		}
	}
	expr, err := dropWhere(expr)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(expr, "()[]'") {
		return nil, fmt.Errorf("expression shape not followed")
	}
	segs := strings.Split(expr, ".")
	if segs[0] != typ && segs[0] != "Resource" && segs[0] != "DomainResource" {
		return nil, fmt.Errorf("expression is rooted at %s", segs[0])
	}
	root := map[string]any{"resourceType": typ}
	obj, def := root, typ
	for i, seg := range segs[1:] {
		last := i == len(segs)-2
		name, as := seg, ""
		switch {
		case last && asType != "":
			as = asType
		case innerAs != "" && i == strings.Count(inner, ".")-1:
			as = innerAs
		}
		if as != "" {
			name = seg + strings.ToUpper(as[:1]) + as[1:]
		}
		el, repeats, ok := v.Element(def, name)
		if !ok {
			return nil, fmt.Errorf("no element %s.%s", def, name)
		}
		if as != "" {
			el = as
		}
		if last {
			leaf, ok := leafValue(el, value)
			if !ok {
				return nil, fmt.Errorf("element type %q not filled", el)
			}
			put(obj, name, leaf, repeats)
			return root, nil
		}
		if el == "" || el == "Reference" || el == "Extension" || el == "ResourceList" {
			return nil, fmt.Errorf("path goes through %s.%s (%q)", def, name, el)
		}
		child := map[string]any{}
		put(obj, name, child, repeats)
		obj, def = child, el
	}
	return nil, fmt.Errorf("empty path")
}

func put(obj map[string]any, name string, v any, repeats bool) {
	if repeats {
		obj[name] = []any{v}
		return
	}
	obj[name] = v
}

// leafValue is value in the shape of an element of type typ.
func leafValue(typ, value string) (any, bool) {
	switch typ {
	case "string", "markdown":
		return value, true
	case "HumanName":
		return map[string]any{"family": value, "given": []any{value}, "prefix": []any{value}, "suffix": []any{value}, "text": value}, true
	case "Address":
		return map[string]any{"line": []any{value}, "city": value, "district": value, "state": value,
			"postalCode": value, "country": value, "text": value}, true
	case "CodeableConcept", "Annotation":
		return map[string]any{"text": value}, true
	case "Coding", "Reference":
		return map[string]any{"display": value}, true
	}
	return nil, false
}

// dropWhere removes where(...) filters from a member path.
func dropWhere(expr string) (string, error) {
	for {
		i := strings.Index(expr, ".where(")
		if i < 0 {
			return expr, nil
		}
		depth, j := 0, i+len(".where")
		for ; j < len(expr); j++ {
			switch expr[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if j == len(expr) {
			return "", fmt.Errorf("unbalanced where()")
		}
		expr = expr[:i] + expr[j+1:]
	}
}

// FillRequired adds to res a minimal value for the element at expression
// ("ExplanationOfBenefit.insurance[0].coverage"), as named by a validation
// error for a missing required element: a reference by display, a concept
// by text, an attachment with a content type, a primitive with a value
// of its type (a code from its value set), or an empty element whose own
// required elements a later call fills.
func FillRequired(v *fhir.Validator, res map[string]any, expression string) error {
	segs := strings.Split(expression, ".")
	def, _ := res["resourceType"].(string)
	if len(segs) < 2 || segs[0] != def {
		return fmt.Errorf("searchtest: %q is not an element of a %s", expression, def)
	}
	obj := res
	for i, seg := range segs[1:] {
		name, index := seg, -1
		if choice, ok := strings.CutSuffix(seg, "[x]"); ok && i == len(segs)-2 {
			// A required choice: give it as a dateTime or a string.
			for _, typ := range []string{"DateTime", "String"} {
				if _, _, ok := v.Element(def, choice+typ); ok {
					val := map[string]any{"DateTime": "2020-01-01", "String": "required"}[typ]
					obj[choice+typ] = val
					return nil
				}
			}
			return fmt.Errorf("searchtest: required choice %s.%s not filled", def, choice)
		}
		if k := strings.IndexByte(seg, '['); k > 0 {
			name = seg[:k]
			if _, err := fmt.Sscanf(seg[k:], "[%d]", &index); err != nil {
				return fmt.Errorf("searchtest: %q: bad index", expression)
			}
		}
		el, repeats, ok := v.Element(def, name)
		if !ok {
			return fmt.Errorf("searchtest: no element %s.%s", def, name)
		}
		if i == len(segs)-2 {
			var val any
			switch el {
			case "Reference":
				val = map[string]any{"display": "required"}
			case "CodeableConcept":
				val = map[string]any{"text": "required"}
			case "Coding":
				val = map[string]any{"system": "urn:x", "code": "required"}
			case "Attachment":
				val = map[string]any{"contentType": "text/plain"}
			case "", "code":
				codes := v.Codes(def, name)
				if el == "code" && len(codes) == 0 {
					codes = []string{"required"}
				}
				if len(codes) == 0 {
					return fmt.Errorf("searchtest: required primitive %s.%s not filled", def, name)
				}
				val = codes[0]
			case "string", "markdown":
				val = "required"
			case "uri", "url", "canonical":
				val = "urn:x:required"
			case "dateTime", "date":
				val = "2020-01-01"
			case "instant":
				val = "2020-01-01T00:00:00Z"
			case "boolean":
				val = true
			case "decimal", "integer", "positiveInt", "unsignedInt":
				val = json.Number("1")
			default:
				val = map[string]any{}
			}
			put(obj, name, val, repeats)
			return nil
		}
		next, ok := obj[name]
		if !ok {
			return fmt.Errorf("searchtest: %s.%s is absent", def, name)
		}
		if index >= 0 {
			list, _ := next.([]any)
			if index >= len(list) {
				return fmt.Errorf("searchtest: %s.%s has no [%d]", def, name, index)
			}
			next = list[index]
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("searchtest: %s.%s is not an element", def, name)
		}
		obj, def = m, el
	}
	return fmt.Errorf("searchtest: empty expression")
}
