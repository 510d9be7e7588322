package search

import (
	"slices"
	"strings"
	"testing"
)

// TestExtractReferenceIdentifier: a reference parameter's elements give
// their Reference.identifier as blind tokens under "code:identifier",
// whether the reference is literal, logical (identifier only) or both;
// a reference without one, with an empty value, or given as a canonical
// gives none; and every such row is blind, on every resource type, as
// the identifier parameter is.
func TestExtractReferenceIdentifier(t *testing.T) {
	r := newRegistry(t)
	const mrn = "http://hospital.example/mrn"
	obs := func(subject, performer map[string]any) map[string]any {
		o := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}}
		if subject != nil {
			o["subject"] = subject
		}
		if performer != nil {
			o["performer"] = []any{performer}
		}
		return o
	}
	ident := func(param, system, value string) Value {
		return Value{Param: param + ":identifier", Type: TypeToken, Blind: true, System: system, Code: value}
	}
	tests := []struct {
		name string
		typ  string
		res  map[string]any
		want []Value // the values of every ":identifier" parameter, in order
	}{
		{"identifier only", "Observation", obs(map[string]any{"identifier": map[string]any{"system": mrn, "value": "12345"}}, nil),
			[]Value{ident("subject", mrn, "12345")}},
		{"literal and identifier", "Observation", obs(map[string]any{"reference": "Patient/p1", "identifier": map[string]any{"system": mrn, "value": "12345"}}, nil),
			// patient is subject where it resolves to a Patient: the
			// identifier comes with it.
			[]Value{ident("patient", mrn, "12345"), ident("subject", mrn, "12345")}},
		{"identifier and type", "Observation", obs(map[string]any{"type": "Patient", "identifier": map[string]any{"system": mrn, "value": "12345"}}, nil),
			[]Value{ident("patient", mrn, "12345"), ident("subject", mrn, "12345")}},
		{"identifier without system", "Observation", obs(map[string]any{"identifier": map[string]any{"value": "12345"}}, nil),
			[]Value{ident("subject", "", "12345")}},
		{"identifier without value", "Observation", obs(map[string]any{"identifier": map[string]any{"system": mrn}, "display": "x"}, nil), nil},
		{"literal only", "Observation", obs(map[string]any{"reference": "Patient/p1"}, nil), nil},
		{"two parameters", "Observation", obs(map[string]any{"identifier": map[string]any{"system": mrn, "value": "1"}},
			map[string]any{"identifier": map[string]any{"system": "urn:npi", "value": "2"}}),
			[]Value{ident("performer", "urn:npi", "2"), ident("subject", mrn, "1")}},
		{"on a shared type too", "Organization", map[string]any{"resourceType": "Organization", "name": "x",
			"partOf": map[string]any{"identifier": map[string]any{"system": "urn:org", "value": "o1"}}},
			[]Value{ident("partof", "urn:org", "o1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := r.Extract(tc.typ, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			var got []Value
			for i, v := range vs {
				if !strings.HasSuffix(v.Param, identifierSuffix) {
					continue
				}
				got = append(got, v)
				// It follows its reference parameter's own values.
				ref := strings.TrimSuffix(v.Param, identifierSuffix)
				if j := slices.IndexFunc(vs, func(w Value) bool { return w.Param == ref }); j > i {
					t.Errorf("%s comes before %s's own values", v.Param, ref)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("identifier values %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestReferenceIdentifierParams: every supported reference parameter of
// every type has its identifier parameter, blind, under a code no real
// parameter has; none is listed among the type's parameters.
func TestReferenceIdentifierParams(t *testing.T) {
	r := newRegistry(t)
	n := 0
	for typ, list := range r.ordered {
		for _, p := range list {
			if strings.Contains(p.Code, ":") {
				t.Errorf("%s.%s: a parameter code with a ':' could collide with an identifier parameter", typ, p.Code)
			}
			if p.Supported && p.Type == TypeReference {
				n++
				ip := p.ident
				if ip == nil || ip.Code != p.Code+":identifier" || ip.Type != TypeToken || !ip.Blind || !ip.Supported || ip.Expression != p.Expression {
					t.Errorf("%s.%s: identifier parameter %+v", typ, p.Code, ip)
				}
			} else if p.ident != nil {
				t.Errorf("%s.%s (%s, supported %v) has an identifier parameter", typ, p.Code, p.Type, p.Supported)
			}
		}
	}
	if n == 0 {
		t.Fatal("no reference parameter seen")
	}
	if _, ok := r.Param("Observation", "subject:identifier"); ok {
		t.Error("subject:identifier is a parameter a query can name")
	}
}

// TestParseReferenceIdentifier: ref:identifier reads its values as
// tokens (system|value, |value, value, system|) into a clause on the
// identifier parameter, with no modifier left; inside a chain or _has
// it is the inner search's.
func TestParseReferenceIdentifier(t *testing.T) {
	r := newRegistry(t)
	subject, _ := r.Param("Observation", "subject")
	tests := []struct {
		q    string
		want []Cond
	}{
		{"subject:identifier=http://hospital.example/mrn|12345", []Cond{{System: "http://hospital.example/mrn", HasSystem: true, Code: "12345"}}},
		{"subject:identifier=12345", []Cond{{Code: "12345"}}},
		{"subject:identifier=|12345", []Cond{{HasSystem: true, Code: "12345"}}},
		{"subject:identifier=http://hospital.example/mrn|", []Cond{{System: "http://hospital.example/mrn", HasSystem: true}}},
		{"subject:identifier=a\\|b|c\\,d,e", []Cond{{System: "a|b", HasSystem: true, Code: "c,d"}, {Code: "e"}}},
	}
	for _, tc := range tests {
		q, err := r.ParseQuery("Observation", mustQuery(t, tc.q), Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if len(q.Clauses) != 1 {
			t.Errorf("%s: clauses %+v", tc.q, q.Clauses)
			continue
		}
		cl := q.Clauses[0]
		if cl.Param != subject.ident || cl.Modifier != "" || !slices.Equal(cl.Any, tc.want) {
			t.Errorf("%s: clause on %s modifier %q values %+v, want on %s values %+v", tc.q, cl.Param.Code, cl.Modifier, cl.Any, subject.ident.Code, tc.want)
		}
	}
	// At the end of a chain and of _has, the inner search carries it.
	q, err := r.ParseQuery("Observation", mustQuery(t, "subject:Patient.general-practitioner:identifier=urn:npi|1&_has:Provenance:target:agent:identifier=urn:npi|2"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Chains) != 1 || q.Chains[0].Key != "general-practitioner:identifier" || len(q.Has) != 1 || q.Has[0].Key != "agent:identifier" {
		t.Fatalf("chain %+v, has %+v", q.Chains, q.Has)
	}
	inner, err := r.ParseQuery("Patient", mustQuery(t, q.Chains[0].Key+"="+q.Chains[0].Value), Limits{})
	if err != nil || len(inner.Clauses) != 1 || inner.Clauses[0].Param.Code != "general-practitioner:identifier" {
		t.Fatalf("the chain's inner search: %+v, %v", inner, err)
	}
}
