package search

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseQuery(t *testing.T) {
	r := newRegistry(t)
	tru := true
	tests := []struct {
		name, rt, q string
		check       func(*Query) bool
	}{
		{"defaults", "Patient", "", func(q *Query) bool { return q.Count == 50 && q.Offset == 0 && len(q.Clauses) == 0 }},
		{"count capped", "Patient", "_count=5000", func(q *Query) bool { return q.Count == 1000 }},
		{"count offset total", "Patient", "_count=0&_offset=20&_total=accurate", func(q *Query) bool { return q.Count == 0 && q.Offset == 20 && q.Total == "accurate" }},
		{"format pretty ignored", "Patient", "_format=json&_pretty=true", func(q *Query) bool { return len(q.Clauses) == 0 }},
		{"empty value ignored", "Patient", "name=", func(q *Query) bool { return len(q.Clauses) == 0 }},
		{"token code", "Observation", "code=8302-2", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.Code == "8302-2" && !c.HasSystem
		}},
		{"token system code", "Observation", "code=http://loinc.org|8302-2", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.System == "http://loinc.org" && c.HasSystem && c.Code == "8302-2"
		}},
		{"token no system", "Observation", "code=|8302-2", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.System == "" && c.HasSystem && c.Code == "8302-2"
		}},
		{"token system only", "Observation", "code=http://loinc.org|", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.System == "http://loinc.org" && c.HasSystem && c.Code == ""
		}},
		{"token or and not", "Observation", "status:not=final,amended", func(q *Query) bool {
			cl := q.Clauses[0]
			return cl.Modifier == "not" && len(cl.Any) == 2 && cl.Any[0].Not && cl.Any[1].Code == "amended"
		}},
		{"escaped comma pipe dollar backslash", "Observation", `code=a\,b\|c\$d\\e`, func(q *Query) bool {
			return len(q.Clauses[0].Any) == 1 && q.Clauses[0].Any[0].Code == `a,b|c$d\e` && !q.Clauses[0].Any[0].HasSystem
		}},
		{"escaped pipe system", "Observation", `code=s\|x|c`, func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.System == "s|x" && c.Code == "c"
		}},
		{"string normalised", "Patient", "family=%C3%89lise%20%20Dupont", func(q *Query) bool { return q.Clauses[0].Any[0].Text == "elise dupont" }},
		{"string exact", "Patient", "family:exact=Élise", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return q.Clauses[0].Modifier == "exact" && c.Exact == "Élise" && c.Text == "elise"
		}},
		{"string contains", "Organization", "name:contains=health", func(q *Query) bool { return q.Clauses[0].Modifier == "contains" }},
		{"missing", "Patient", "birthdate:missing=true", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return q.Clauses[0].Modifier == "missing" && c.Missing != nil && *c.Missing == tru
		}},
		{"and of two clauses", "Observation", "date=ge2020&date=lt2021", func(q *Query) bool {
			return len(q.Clauses) == 2 && q.Clauses[0].Any[0].Prefix == "ge" && q.Clauses[1].Any[0].Prefix == "lt"
		}},
		{"date range", "Observation", "date=2020-02", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.Prefix == "" && c.Lo == unix("2020-02-01T00:00:00Z") && c.Hi == unix("2020-02-29T23:59:59.999999Z")
		}},
		{"date minutes", "Observation", "date=2020-02-01T10:00Z", func(q *Query) bool { return q.Clauses[0].Any[0].Hi == unix("2020-02-01T10:00:59.999999Z") }},
		{"number", "RiskAssessment", "probability=gt0.5", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.Prefix == "gt" && c.Value == 0.5 && c.Lo > 0.449 && c.Hi < 0.551
		}},
		{"quantity full", "Observation", "value-quantity=le5.4|http://unitsofmeasure.org|mg", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.Prefix == "le" && c.Value == 5.4 && c.System == "http://unitsofmeasure.org" && c.HasSystem && c.Code == "mg"
		}},
		{"quantity any system", "Observation", "value-quantity=5.4||mg", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return !c.HasSystem && c.Code == "mg"
		}},
		{"reference typed", "Observation", "subject=Patient/123", func(q *Query) bool {
			c := q.Clauses[0].Any[0]
			return c.Text == "Patient/123" && c.RefType == "Patient"
		}},
		{"reference single target", "Observation", "specimen=s1", func(q *Query) bool {
			return q.Clauses[0].Any[0].Text == "Specimen/s1" && q.Clauses[0].Any[0].RefType == "Specimen"
		}},
		{"reference bare id", "Observation", "subject=123", func(q *Query) bool { return q.Clauses[0].Any[0].Text == "123" && q.Clauses[0].Any[0].RefType == "" }},
		{"reference type modifier", "Observation", "subject:Patient=123", func(q *Query) bool { return q.Clauses[0].Any[0].Text == "Patient/123" }},
		{"reference absolute", "Observation", "subject=https://x.example/fhir/Patient/9", func(q *Query) bool {
			return q.Clauses[0].Any[0].Text == "https://x.example/fhir/Patient/9" && q.Clauses[0].Any[0].RefType == "Patient"
		}},
		{"uri below", "ValueSet", "url:below=http://acme.org/fhir", func(q *Query) bool { return q.Clauses[0].Modifier == "below" }},
		{"ids intersect", "Patient", "_id=a,b,c&_id=b,c,d", func(q *Query) bool { return q.HasIDs && strings.Join(q.IDs, ",") == "b,c" }},
		{"ids disjoint", "Patient", "_id=a&_id=b", func(q *Query) bool { return q.HasIDs && len(q.IDs) == 0 }},
		{"last updated", "Patient", "_lastUpdated=gt2024-01-01&_lastUpdated=lt2025", func(q *Query) bool { return len(q.LastUpdated) == 2 && q.LastUpdated[0].Prefix == "gt" }},
		{"sort", "Observation", "_sort=-date,code,_id", func(q *Query) bool {
			return len(q.Sort) == 3 && q.Sort[0] == Sort{"date", true} && q.Sort[2] == Sort{"_id", false}
		}},
		{"include", "Observation", "_include=Observation:subject:Patient&_revinclude=Provenance:target&_include:iterate=Patient:general-practitioner", func(q *Query) bool {
			return len(q.Include) == 2 && q.Include[0] == Include{"Observation", "subject", "Patient", false} &&
				q.Include[1].Iterate && q.RevInclude[0] == Include{"Provenance", "target", "", false}
		}},
		{"summary elements", "Patient", "_summary=count&_elements=id,name", func(q *Query) bool { return q.Summary == "count" && q.Elements == "id,name" }},
		{"lenient ignores unknown", "Patient", "foo=bar&_text=x", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := Limits{Lenient: tc.check == nil}
			q, err := r.ParseQuery(tc.rt, mustQuery(t, tc.q), lim)
			if err != nil {
				t.Fatal(err)
			}
			if q.Type != tc.rt {
				t.Errorf("Type = %q", q.Type)
			}
			if tc.check == nil {
				if len(q.Clauses) != 0 {
					t.Errorf("lenient query has clauses: %+v", q.Clauses)
				}
				return
			}
			if !tc.check(q) {
				t.Errorf("unexpected query: %+v", q)
			}
		})
	}
}

func TestParseQueryPrefixes(t *testing.T) {
	r := newRegistry(t)
	for _, p := range []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} {
		for _, tc := range []struct{ rt, param, v string }{
			{"Observation", "date", "2020-01-01"},
			{"RiskAssessment", "probability", "0.5"},
			{"Observation", "value-quantity", "5|http://unitsofmeasure.org|mg"},
		} {
			q, err := r.ParseQuery(tc.rt, url.Values{tc.param: {p + tc.v}}, Limits{})
			if err != nil {
				t.Errorf("%s=%s%s: %v", tc.param, p, tc.v, err)
				continue
			}
			if got := q.Clauses[0].Any[0].Prefix; got != p {
				t.Errorf("%s=%s%s: prefix %q", tc.param, p, tc.v, got)
			}
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	r := newRegistry(t)
	many := strings.Repeat("x,", 100) + "x"
	tests := []struct {
		name, rt, q string
		lim         Limits
		param       string
	}{
		{"unknown type", "Nope", "", Limits{}, ""},
		{"unknown param", "Patient", "foo=bar", Limits{}, "foo"},
		{"unsupported param", "Patient", "_text=x", Limits{}, "_text"},
		{"chain on a token", "Observation", "code.name=peter", Limits{}, "code.name"},
		{"chain to nothing", "Observation", "subject.=peter", Limits{}, "subject."},
		{"chain bad type", "Observation", "subject:Medication.name=peter", Limits{}, "subject:Medication.name"},
		{"chain unknown inner", "Observation", "subject:Patient.shoe-size=9", Limits{Lenient: false}, "subject:Patient.shoe-size"},
		{"chain to a result parameter", "Observation", "subject:Patient._count=1", Limits{}, "subject:Patient._count"},
		{"chain too deep", "Observation", "subject:Patient.organization.partof.partof.name=x", Limits{}, "subject:Patient.organization.partof.partof.name"},
		{"has too short", "Patient", "_has:Observation:patient=1", Limits{}, "_has:Observation:patient"},
		{"has unknown type", "Patient", "_has:Nope:patient:code=1", Limits{}, "_has:Nope:patient:code"},
		{"has not a reference", "Patient", "_has:Observation:code:status=final", Limits{}, "_has:Observation:code:status"},
		{"has wrong target", "Patient", "_has:Observation:encounter:status=final", Limits{}, "_has:Observation:encounter:status"},
		{"has unknown inner", "Patient", "_has:Observation:patient:shoe-size=9", Limits{}, "_has:Observation:patient:shoe-size"},
		{"has to a result parameter", "Patient", "_has:Observation:patient:_sort=date", Limits{}, "_has:Observation:patient:_sort"},
		{"bad modifier", "Patient", "gender:exact=male", Limits{}, "gender:exact"},
		{"identifier modifier on a token", "Observation", "code:identifier=urn:mrn|1", Limits{}, "code:identifier"},
		{"identifier modifier on a uri", "Observation", "_profile:identifier=urn:mrn|1", Limits{}, "_profile:identifier"},
		{"identifier modifier, bad token", "Observation", "subject:identifier=a|b|c", Limits{}, "subject:identifier"},
		{"identifier modifier, empty token", "Observation", "subject:identifier=|", Limits{}, "subject:identifier"},
		{"identifier modifier, then missing", "Observation", "subject:identifier:missing=true", Limits{}, "subject:identifier:missing"},
		{"chain after identifier modifier", "Observation", "subject:identifier.name=x", Limits{}, "subject:identifier.name"},
		{"token text modifier", "Observation", "code:text=x", Limits{}, "code:text"},
		{"contains identifying", "Patient", "name:contains=ab", Limits{}, "name:contains"},
		{"bad ref type modifier", "Observation", "encounter:Patient=1", Limits{}, "encounter:Patient"},
		{"bad prefix", "Observation", "date=xx2020", Limits{}, "date"},
		{"prefix on string", "Patient", "birthdate=2020-01-01T25:00Z", Limits{}, "birthdate"},
		{"bad date", "Observation", "date=2020-13-01", Limits{}, "date"},
		{"bad number", "RiskAssessment", "probability=1.2.3", Limits{}, "probability"},
		{"bad quantity", "Observation", "value-quantity=5|mg", Limits{}, "value-quantity"},
		{"bad token", "Observation", "code=a|b|c", Limits{}, "code"},
		{"bad missing", "Patient", "gender:missing=maybe", Limits{}, "gender:missing"},
		{"bad ref target", "Observation", "encounter=Patient/1", Limits{}, "encounter"},
		{"bad ref id", "Observation", "subject=Patient/a$b", Limits{}, "subject"},
		{"bare id, any target", "RequestGroup", "instantiates-canonical=x", Limits{}, "instantiates-canonical"},
		{"count not int", "Patient", "_count=ten", Limits{}, "_count"},
		{"count negative", "Patient", "_count=-1", Limits{}, "_count"},
		{"offset negative", "Patient", "_offset=-1", Limits{}, "_offset"},
		{"count twice", "Patient", "_count=1&_count=2", Limits{}, "_count"},
		{"bad total", "Patient", "_total=some", Limits{}, "_total"},
		{"bad summary", "Patient", "_summary=maybe", Limits{}, "_summary"},
		{"unknown sort", "Patient", "_sort=shoe-size", Limits{}, "_sort"},
		{"repeated sort", "Patient", "_sort=name,-name", Limits{}, "_sort"},
		{"bad id", "Patient", "_id=a/b", Limits{}, "_id"},
		{"too many values", "Patient", "gender=" + many, Limits{}, "gender"},
		{"too many ids", "Patient", "_id=" + many, Limits{}, "_id"},
		{"too many clauses", "Patient", "gender=a&gender=b&gender=c", Limits{MaxClauses: 2}, "gender"},
		{"too many includes", "Observation", "_include=Observation:subject&_include=Observation:encounter", Limits{MaxIncludes: 1}, "_include"},
		{"include wrong source", "Observation", "_include=Encounter:subject", Limits{}, "_include"},
		{"include not reference", "Observation", "_include=Observation:code", Limits{}, "_include"},
		{"include wildcard", "Observation", "_include=*", Limits{}, "_include"},
		{"include bad target", "Observation", "_include=Observation:encounter:Patient", Limits{}, "_include"},
		{"revinclude not a target", "Patient", "_revinclude=Observation:encounter", Limits{}, "_revinclude"},
		{"include bad modifier", "Observation", "_include:deep=Observation:subject", Limits{}, "_include:deep"},
		{"lastUpdated two values", "Patient", "_lastUpdated=2020,2021", Limits{}, "_lastUpdated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.ParseQuery(tc.rt, mustQuery(t, tc.q), tc.lim)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("err = %v, want *QueryError", err)
			}
			if qe.Param != tc.param {
				t.Errorf("Param = %q, want %q (%v)", qe.Param, tc.param, err)
			}
			if !strings.HasPrefix(err.Error(), "search: ") {
				t.Errorf("error %q lacks package prefix", err)
			}
		})
	}
}

// TestParseQueryLiteralValues checks that SQL and LIKE metacharacters are
// carried verbatim and that error messages never echo a value (C3).
func TestParseQueryLiteralValues(t *testing.T) {
	r := newRegistry(t)
	for _, v := range []string{`'; DROP TABLE resources; --`, `%_%`, `" OR 1=1 --`, `a\b`, "x\x00y", `$1`} {
		q, err := r.ParseQuery("Observation", url.Values{"code": {"sys|" + strings.ReplaceAll(v, "|", `\|`)}, "identifier": {v}}, Limits{})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := q.Clauses[0].Any[0].Code; got != v && !(v == `a\b` && got == `a\b`) {
			t.Errorf("code %q carried as %q", v, got)
		}
		q, err = r.ParseQuery("Patient", url.Values{"family:exact": {strings.ReplaceAll(v, ",", `\,`)}}, Limits{})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := q.Clauses[0].Any[0].Exact; got != v {
			t.Errorf("exact %q carried as %q", v, got)
		}
		_, err = r.ParseQuery("Observation", url.Values{"date": {"xx" + v}}, Limits{})
		if err == nil || strings.Contains(err.Error(), v) {
			t.Errorf("error %v echoes the value", err)
		}
	}
}

// TestParseChains: chained parameters and _has are read to their first
// hop: the reference parameter, the target types that have the next
// parameter, and the rest carried for the inner search.
func TestParseChains(t *testing.T) {
	r := newRegistry(t)
	q, err := r.ParseQuery("Observation", mustQuery(t, "subject.name=peter&subject:Patient.organization.name=acme&status=final"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Clauses) != 1 || len(q.Chains) != 2 {
		t.Fatalf("clauses %d, chains %+v", len(q.Clauses), q.Chains)
	}
	for _, c := range q.Chains {
		switch c.Key {
		case "name":
			// Of subject's targets, Patient, Practitioner, RelatedPerson,
			// Group... only those with a name parameter.
			if c.Param.Code != "subject" || !slices.Contains(c.Targets, "Patient") || slices.Contains(c.Targets, "Device") || c.Value != "peter" {
				t.Errorf("subject.name: %+v", c)
			}
		case "organization.name":
			if !slices.Equal(c.Targets, []string{"Patient"}) || c.Value != "acme" {
				t.Errorf("subject:Patient.organization.name: %+v", c)
			}
		default:
			t.Errorf("unexpected chain %+v", c)
		}
	}
	q, err = r.ParseQuery("Patient", mustQuery(t, "_has:Observation:patient:code=1234-5&_has:Observation:subject:_has:Provenance:target:agent=Practitioner/p"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Has) != 2 {
		t.Fatalf("has %+v", q.Has)
	}
	for _, h := range q.Has {
		if h.Type != "Observation" || (h.Key != "code" && h.Key != "_has:Provenance:target:agent") {
			t.Errorf("_has: %+v", h)
		}
	}
	// Lenient handling drops a chain it cannot follow, as any unknown
	// parameter, rather than searching without it.
	if q, err := r.ParseQuery("Observation", mustQuery(t, "code.name=x"), Limits{Lenient: true}); err != nil || len(q.Chains) != 0 {
		t.Errorf("lenient: %v %+v", err, q)
	}
}

// TestBareIDTargets holds a bare id's narrowed types to what extraction
// indexes: for every reference parameter whose expression keeps fewer
// types than its targets, a resource pointing at each target through
// each branch's element is indexed under the parameter only when the
// reference's type is one the bare id is tried against.
func TestBareIDTargets(t *testing.T) {
	r := newRegistry(t)
	enc, _ := r.Param("Encounter", "patient")
	if got := enc.IDTargets(); !slices.Equal(got, []string{"Patient"}) || len(enc.Targets) < 2 {
		t.Fatalf("Encounter patient: targets %v, bare id tried against %v; want Patient alone out of several", enc.Targets, got)
	}
	allergy, _ := r.Param("AllergyIntolerance", "patient")
	if got := allergy.IDTargets(); !slices.Equal(got, allergy.Targets) {
		t.Fatalf("AllergyIntolerance patient (no resolve() filter): bare id tried against %v, want all of %v", got, allergy.Targets)
	}
	q, err := r.ParseQuery("Encounter", url.Values{"patient": {"abc"}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c := q.Clauses[0].Any[0]; c.Text != "Patient/abc" || c.RefType != "Patient" {
		t.Fatalf("Encounter?patient=abc: %+v, want Patient/abc", c)
	}

	narrowed := 0
	for typ := range r.byType {
		for _, p := range r.Params(typ) {
			if p.Type != TypeReference || !p.Supported || len(p.IDTargets()) == len(p.Targets) {
				continue
			}
			narrowed++
			for _, branch := range strings.Split(p.Expression, " | ") {
				path, _, ok := strings.Cut(branch, ".where(")
				elem := strings.TrimPrefix(path, typ+".")
				if !ok || strings.Contains(elem, ".") {
					t.Fatalf("%s.%s: branch %q is not Type.element.where(...)", typ, p.Code, branch)
				}
				for _, target := range p.Targets {
					ref := target + "/x1"
					res := map[string]any{"resourceType": typ, elem: map[string]any{"reference": ref}}
					vals, err := r.Extract(typ, res)
					if err != nil {
						t.Fatal(err)
					}
					indexed := false
					for _, v := range vals {
						indexed = indexed || (v.Param == p.Code && v.Text == ref)
					}
					if want := slices.Contains(p.IDTargets(), target); indexed != want {
						t.Errorf("%s.%s via %s: %s indexed %v, bare id tried against %v", typ, p.Code, elem, ref, indexed, p.IDTargets())
					}
				}
			}
		}
	}
	if narrowed < 20 {
		t.Fatalf("%d reference parameters narrowed, want the clinical patient parameter's bases at least", narrowed)
	}
}
