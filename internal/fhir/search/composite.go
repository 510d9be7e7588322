package search

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Composite parameters (R4 search.html#composite) and :of-type on
// identifiers (#modifiers). The index holds each component's values, but
// not which element they came from: an Observation with a systolic
// component of 90 and a diastolic one of 140 has rows for both codes and
// both values. So a composite is answered in two steps:
//
//   - Candidates: the query on the components alone, each component's
//     values ORed as the composite's are ("code=a,c&value-quantity=b,d"
//     for "code-value-quantity=a$b,c$d"), which the index answers and
//     which selects every resource that could match;
//   - Matches: on each candidate's body, one element the composite
//     selects must hold every component of one value: the pairing holds
//     within one element, never across two.
//
// :of-type (identifier:of-type=typesystem|typecode|value) is read the
// same way: candidates by the identifier's value (identifier=value), then
// one Identifier must have both the type coding and the value.
//
// Matches compares values as the index does: tokens by code and system,
// strings of a blind-indexed parameter by whole word or whole value, plain
// strings by prefix, dates, numbers and quantities by the prefix's range
// rule (store.Cmp), so a component never matches in the body what its
// index row would not.

// Composite is one occurrence of a composite parameter, or of a token
// parameter with :of-type; its values (Any) are ORed.
type Composite struct {
	Param  *Param
	OfType bool
	Key    string // the parameter as given, with its modifier
	Any    []CompositeValue
}

// CompositeValue is one value of a composite: Parts as given (escapes
// kept), one per component, and their parsed Conds. Of :of-type, Parts are
// the type's system, the type's code and the identifier's value,
// unescaped, and Conds is empty.
type CompositeValue struct {
	Parts []string
	Conds []Cond
}

// parseComposite reads one occurrence of a composite parameter, or of
// identifier:of-type.
func parseComposite(q *Query, key string, p *Param, mod, raw string, lim Limits) error {
	values := splitEscaped(raw, ',')
	if len(values) > lim.MaxValues {
		return qerr(key, "too many values")
	}
	c := Composite{Param: p, OfType: mod == "of-type", Key: key}
	for _, v := range values {
		if c.OfType {
			parts := splitEscaped(v, '|')
			if len(parts) != 3 {
				return qerr(key, ":of-type takes typesystem|typecode|value")
			}
			for i := range parts {
				if parts[i] = unescape(parts[i]); parts[i] == "" {
					return qerr(key, ":of-type takes typesystem|typecode|value, none of them empty")
				}
			}
			c.Any = append(c.Any, CompositeValue{Parts: parts})
			continue
		}
		parts := splitEscaped(v, '$')
		if len(parts) != len(p.Components) {
			return qerr(key, "a value of this composite has "+strconv.Itoa(len(p.Components))+" components separated by '$'")
		}
		cv := CompositeValue{Parts: parts}
		for i, part := range parts {
			cond, reason := parseCond(p.Components[i].Param, "", part)
			if reason != "" {
				return qerr(key, "component "+strconv.Itoa(i+1)+" ("+p.Components[i].Param.Code+"): "+reason)
			}
			cv.Conds = append(cv.Conds, cond)
		}
		c.Any = append(c.Any, cv)
	}
	q.Composites = append(q.Composites, c)
	return nil
}

// Candidates is the query on the searched type that selects every
// resource c could match, and more: each component's parameter with the
// component's values ORed, or for :of-type the identifier's values.
func (c Composite) Candidates() url.Values {
	out := url.Values{}
	if c.OfType {
		vs := make([]string, len(c.Any))
		for i, v := range c.Any {
			vs[i] = Escape(v.Parts[2])
		}
		out.Set(c.Param.Code, strings.Join(vs, ","))
		return out
	}
	for i, comp := range c.Param.Components {
		vs := make([]string, len(c.Any))
		for j, v := range c.Any {
			vs[j] = v.Parts[i]
		}
		out.Set(comp.Param.Code, strings.Join(vs, ","))
	}
	return out
}

// Matches reports whether the decoded resource obj, of resourceType,
// matches c: one element that c's parameter selects holds every part of
// one of c's values.
func (c Composite) Matches(resourceType string, obj map[string]any) bool {
	root := []node{{v: obj, typ: resourceType}}
	for _, b := range c.Param.branches {
		for _, el := range b.x.eval(root) {
			for _, v := range c.Any {
				if c.OfType && identifierOfType(el, v.Parts) || !c.OfType && c.elementMatches(el, v) {
					return true
				}
			}
		}
	}
	return false
}

// elementMatches reports whether one element holds every component of v.
func (c Composite) elementMatches(el node, v CompositeValue) bool {
	for i, comp := range c.Param.Components {
		var values []Value
		for _, b := range comp.branches {
			for _, n := range b.x.eval([]node{el}) {
				var err error
				if values, err = appendValues(values, comp.Param, n); err != nil {
					return false // a malformed value matches nothing, as it is not indexed
				}
			}
		}
		if !slices.ContainsFunc(values, func(x Value) bool { return valueMatches(comp.Param, v.Conds[i], x) }) {
			return false
		}
	}
	return true
}

// identifierOfType reports whether el is an Identifier of the type
// parts[0]|parts[1] whose value is parts[2].
func identifierOfType(el node, parts []string) bool {
	m, ok := el.v.(map[string]any)
	if !ok || str(m, "value") != parts[2] {
		return false
	}
	typ, _ := m["type"].(map[string]any)
	codings, _ := typ["coding"].([]any)
	for _, x := range codings {
		if cm, ok := x.(map[string]any); ok && str(cm, "system") == parts[0] && str(cm, "code") == parts[1] {
			return true
		}
	}
	return false
}

// valueMatches reports whether the index value x of p meets c, as the
// index row of x would meet the storage predicate of c.
func valueMatches(p *Param, c Cond, x Value) bool {
	switch p.Type {
	case TypeToken:
		if c.HasSystem && x.System != c.System {
			return false
		}
		return c.Code == "" && c.HasSystem || x.Code == c.Code
	case TypeString:
		if !p.Blind {
			return strings.HasPrefix(x.Text, c.Text)
		}
		if strings.ContainsRune(c.Text, ' ') {
			return x.Text == c.Text
		}
		return slices.Contains(strings.Fields(x.Text), c.Text)
	case TypeURI:
		return x.Text == c.Text
	case TypeReference:
		if strings.Contains(c.Text, "/") || c.RefType != "" {
			want := c.Text
			if c.RefType != "" && !strings.Contains(want, "/") {
				want = c.RefType + "/" + want
			}
			return x.Text == want
		}
		for _, t := range p.IDTargets() {
			if x.Text == t+"/"+c.Text {
				return true
			}
		}
		return false
	case TypeDate:
		if p.Blind {
			// Blind dates match by their written form, that is their range.
			return (c.Prefix == "" || c.Prefix == "eq") && near(x.Lo, c.Lo) && near(x.Hi, c.Hi)
		}
		return inRange(c, x.Lo, x.Hi, true)
	case TypeNumber:
		return inRange(c, x.Lo, x.Hi, false)
	case TypeQuantity:
		if c.Code != "" && (x.Code != c.Code || c.HasSystem && x.System != c.System) {
			return false
		}
		return inRange(c, x.Lo, x.Hi, false)
	}
	return false
}

// near compares two date bounds to well within a microsecond.
func near(a, b float64) bool { return a == b || math.Abs(a-b) < 1e-7 }

// inRange compares a value's range [lo, hi] with c's, by c's prefix, as
// the store does (store.Cmp): ap widens c's range by a tenth of its
// magnitude (of its width, for dates).
func inRange(c Cond, lo, hi float64, date bool) bool {
	clo, chi := c.Lo, c.Hi
	switch c.Prefix {
	case "", "eq":
		return lo >= clo && hi <= chi
	case "ne":
		return !(lo >= clo && hi <= chi)
	case "gt":
		return hi > chi
	case "lt":
		return lo < clo
	case "ge":
		return hi >= clo
	case "le":
		return lo <= chi
	case "sa":
		return lo > chi
	case "eb":
		return hi < clo
	case "ap":
		w := 0.1 * max(math.Abs(clo), math.Abs(chi))
		if date {
			w = 0.1 * (chi - clo)
		}
		return lo <= chi+w && hi >= clo-w
	}
	return false
}
