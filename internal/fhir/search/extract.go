package search

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Value is one index value of one search parameter of a resource.
type Value struct {
	Param string
	Type  Type
	Blind bool
	// System and Code: token (Coding and CodeableConcept system|code,
	// Identifier system|value, ContactPoint system|value, code, id, boolean
	// "true"/"false", string) and quantity (system and code, or the unit when
	// the code is missing; Money: ISO 4217 and the currency).
	System, Code string
	// Text: string parameters, NormalizeString of the value; uri parameters,
	// the URI; reference parameters, "Type/id" (version stripped) for
	// relative references or the absolute URL / canonical as written.
	Text string
	// Exact is the original string for string parameters (for :exact).
	Exact string
	// RefType is the target type of a reference, when it can be told.
	RefType string
	// Lo and Hi: date parameters, unix seconds of the first and last
	// microsecond of the value's range (open ends are -Inf and +Inf);
	// number and quantity parameters, the precision range [Lo, Hi) of the
	// decimal (for a Range, low's Lo and high's Hi).
	Lo, Hi float64
}

// Extract evaluates every supported search parameter of resourceType against
// the decoded resource obj and returns its index values, grouped by parameter
// in code order, without duplicates within a parameter. A reference
// parameter's values are followed by the Reference.identifier values of
// the same elements, as tokens under its code and ":identifier"
// ("subject:identifier"), blind as every identifier is. obj is a decoded JSON
// object: map[string]any, []any, string, json.Number, bool.
//
// References are resolved locally: "resolve() is Patient" holds for a
// reference whose type (Reference.type, or the type in "Patient/123" or an
// absolute URL ending in Patient/123) is Patient; urn:uuid and contained
// references do not resolve.
func (r *Registry) Extract(resourceType string, obj map[string]any) ([]Value, error) {
	if rt, _ := obj["resourceType"].(string); rt != resourceType {
		return nil, fmt.Errorf("search: extract: resourceType does not match %q", resourceType)
	}
	params := r.ordered[resourceType]
	if params == nil {
		return nil, fmt.Errorf("search: extract: unknown resource type %q", resourceType)
	}
	root := []node{{v: obj, typ: resourceType}}
	var out []Value
	for _, p := range params {
		if !p.Supported || p.Type == TypeComposite {
			continue // composites have no rows of their own: their components do
		}
		first := len(out)
		var idents []Value
		for _, b := range p.branches {
			for _, n := range b.x.eval(root) {
				var err error
				out, err = appendValues(out, p, n)
				if err != nil {
					return nil, fmt.Errorf("search: extract %s.%s: %w", resourceType, p.Code, err)
				}
				if p.ident != nil {
					idents = appendRefIdentifier(idents, p.ident, n)
				}
			}
		}
		out = dedupe(out, first)
		if len(idents) > 0 {
			first = len(out)
			out = dedupe(append(out, idents...), first)
		}
	}
	return out, nil
}

// dedupe removes repeated values from out[first:], keeping the first.
func dedupe(out []Value, first int) []Value {
	if len(out)-first < 2 {
		return out
	}
	k := first
	for i := first; i < len(out); i++ {
		dup := false
		for j := first; j < k; j++ {
			if out[j] == out[i] {
				dup = true
				break
			}
		}
		if !dup {
			out[k] = out[i]
			k++
		}
	}
	return out[:k]
}

func appendValues(out []Value, p *Param, n node) ([]Value, error) {
	base := Value{Param: p.Code, Type: p.Type, Blind: p.Blind}
	switch p.Type {
	case TypeToken:
		return appendToken(out, base, n), nil
	case TypeString:
		return appendString(out, base, n), nil
	case TypeURI:
		if s, ok := n.v.(string); ok && s != "" {
			base.Text = s
			out = append(out, base)
		}
		return out, nil
	case TypeReference:
		return appendReference(out, base, n), nil
	case TypeDate:
		return appendDate(out, base, n)
	case TypeNumber:
		num, ok := n.v.(json.Number)
		if !ok {
			return out, nil
		}
		_, lo, hi, err := decimalRange(string(num))
		if err != nil {
			return nil, fmt.Errorf("number: %w", err)
		}
		base.Lo, base.Hi = lo, hi
		return append(out, base), nil
	case TypeQuantity:
		return appendQuantity(out, base, n)
	}
	return out, nil
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func appendToken(out []Value, v Value, n node) []Value {
	switch x := n.v.(type) {
	case string:
		if x != "" {
			v.Code = x
			out = append(out, v)
		}
	case bool:
		v.Code = "false"
		if x {
			v.Code = "true"
		}
		out = append(out, v)
	case map[string]any:
		if codings, ok := x["coding"].([]any); ok { // CodeableConcept
			for _, c := range codings {
				if cm, ok := c.(map[string]any); ok {
					out = appendCoding(out, v, cm)
				}
			}
			return out
		}
		if _, ok := x["code"]; ok { // Coding
			return appendCoding(out, v, x)
		}
		if val := str(x, "value"); val != "" { // Identifier, ContactPoint
			v.System, v.Code = str(x, "system"), val
			out = append(out, v)
		}
	}
	return out
}

func appendCoding(out []Value, v Value, c map[string]any) []Value {
	code := str(c, "code")
	if code == "" {
		return out
	}
	v.System, v.Code = str(c, "system"), code
	return append(out, v)
}

func appendString(out []Value, v Value, n node) []Value {
	add := func(s string) {
		if norm := NormalizeString(s); norm != "" {
			w := v
			w.Text, w.Exact = norm, s
			out = append(out, w)
		}
	}
	switch x := n.v.(type) {
	case string:
		add(x)
	case map[string]any:
		if _, isName := x["family"]; isName || x["given"] != nil || x["prefix"] != nil || x["suffix"] != nil || n.typ == "HumanName" {
			var parts []string
			for _, k := range []string{"prefix", "given", "family", "suffix"} {
				for _, s := range strings1(x[k]) {
					add(s)
					parts = append(parts, s)
				}
			}
			add(str(x, "text"))
			if len(parts) > 1 {
				add(strings.Join(parts, " "))
			}
			return out
		}
		for _, k := range []string{"line", "city", "district", "state", "postalCode", "country", "text"} {
			for _, s := range strings1(x[k]) {
				add(s)
			}
		}
	}
	return out
}

// strings1 returns a string or the strings of an array.
func strings1(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func appendReference(out []Value, v Value, n node) []Value {
	switch x := n.v.(type) {
	case string: // canonical or uri
		if x != "" {
			v.Text = x
			out = append(out, v)
		}
	case map[string]any:
		if rt := str(x, "resourceType"); rt != "" { // an inline resource
			if id := str(x, "id"); id != "" {
				v.Text, v.RefType = rt+"/"+id, rt
				out = append(out, v)
			}
			return out
		}
		text, typ := parseReference(str(x, "reference"))
		if text == "" {
			return out
		}
		if t := str(x, "type"); t != "" {
			typ = t
		}
		v.Text, v.RefType = text, typ
		out = append(out, v)
	}
	return out
}

// appendRefIdentifier appends the Reference.identifier of a reference
// element, as the token system|value of ip (identifierParam); an element
// without one, a canonical or uri, or a resource given inline adds
// nothing.
func appendRefIdentifier(out []Value, ip *Param, n node) []Value {
	x, ok := n.v.(map[string]any)
	if !ok || x["resourceType"] != nil {
		return out
	}
	id := mapOf(x["identifier"])
	if val := str(id, "value"); val != "" {
		out = append(out, Value{Param: ip.Code, Type: TypeToken, Blind: ip.Blind, System: str(id, "system"), Code: val})
	}
	return out
}

// parseReference returns the index form of a literal reference and the type
// it names: "Patient/1/_history/2" -> ("Patient/1", "Patient");
// "https://x/fhir/Patient/1" -> (same URL, "Patient"); "urn:uuid:..." ->
// (same, ""). Contained references ("#x") and empty ones return "".
func parseReference(ref string) (text, typ string) {
	if ref == "" || ref[0] == '#' {
		return "", ""
	}
	if k := strings.Index(ref, "/_history/"); k > 0 {
		ref = ref[:k]
	}
	if strings.HasPrefix(ref, "urn:") {
		return ref, ""
	}
	absolute := strings.Contains(ref, "://")
	slash := strings.LastIndexByte(ref, '/')
	if slash <= 0 || slash == len(ref)-1 {
		return ref, ""
	}
	head := ref[:slash]
	t := head[strings.LastIndexByte(head, '/')+1:]
	if t == "" || t[0] < 'A' || t[0] > 'Z' || (!absolute && len(t) != len(head)) {
		return ref, ""
	}
	return ref, t
}

// refTypeOf returns the type a Reference names, or "".
func refTypeOf(m map[string]any) string {
	if t := str(m, "type"); t != "" {
		return t
	}
	_, t := parseReference(str(m, "reference"))
	return t
}

func appendDate(out []Value, v Value, n node) ([]Value, error) {
	switch x := n.v.(type) {
	case string:
		if n.typ != "" && n.typ != "date" && n.typ != "dateTime" && n.typ != "instant" {
			return out, nil // e.g. Immunization.occurrenceString
		}
		lo, hi, err := dateRange(x, false)
		if err != nil {
			return nil, fmt.Errorf("date: %w", err)
		}
		v.Lo, v.Hi = lo, hi
		return append(out, v), nil
	case map[string]any:
		if events, ok := x["event"].([]any); ok { // Timing: span of its events
			v.Lo, v.Hi = math.Inf(1), math.Inf(-1)
			for _, e := range events {
				s, _ := e.(string)
				lo, hi, err := dateRange(s, false)
				if err != nil {
					return nil, fmt.Errorf("timing event: %w", err)
				}
				v.Lo, v.Hi = math.Min(v.Lo, lo), math.Max(v.Hi, hi)
			}
			if len(events) > 0 {
				out = append(out, v)
			}
			return out, nil
		}
		start, end := str(x, "start"), str(x, "end")
		if start == "" && end == "" {
			return out, nil
		}
		v.Lo, v.Hi = math.Inf(-1), math.Inf(1)
		if start != "" {
			lo, _, err := dateRange(start, false)
			if err != nil {
				return nil, fmt.Errorf("period start: %w", err)
			}
			v.Lo = lo
		}
		if end != "" {
			_, hi, err := dateRange(end, false)
			if err != nil {
				return nil, fmt.Errorf("period end: %w", err)
			}
			v.Hi = hi
		}
		return append(out, v), nil
	}
	return out, nil
}

func appendQuantity(out []Value, v Value, n node) ([]Value, error) {
	x, ok := n.v.(map[string]any)
	if !ok {
		return out, nil
	}
	unitOf := func(q map[string]any) (system, code string) {
		if c := str(q, "currency"); c != "" {
			return "urn:iso:std:iso:4217", c
		}
		if c := str(q, "code"); c != "" {
			return str(q, "system"), c
		}
		return "", str(q, "unit")
	}
	if low, high := mapOf(x["low"]), mapOf(x["high"]); low != nil || high != nil { // Range
		v.Lo, v.Hi = math.Inf(-1), math.Inf(1)
		for i, q := range []map[string]any{low, high} {
			num, ok := q["value"].(json.Number)
			if !ok {
				continue
			}
			_, lo, hi, err := decimalRange(string(num))
			if err != nil {
				return nil, fmt.Errorf("range: %w", err)
			}
			if i == 0 {
				v.Lo = lo
			} else {
				v.Hi = hi
			}
			if v.Code == "" {
				v.System, v.Code = unitOf(q)
			}
		}
		return append(out, v), nil
	}
	num, ok := x["value"].(json.Number)
	if !ok { // SampledData and value-less quantities are not indexed
		return out, nil
	}
	_, lo, hi, err := decimalRange(string(num))
	if err != nil {
		return nil, fmt.Errorf("quantity: %w", err)
	}
	v.Lo, v.Hi = lo, hi
	v.System, v.Code = unitOf(x)
	return append(out, v), nil
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
