package search

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
)

const loinc = "http://loinc.org"

func TestParseComposite(t *testing.T) {
	r := newRegistry(t)
	q, err := r.ParseQuery("Observation", mustQuery(t,
		`component-code-value-quantity=`+loinc+`|8480-6$gt100,`+loinc+`|8462-4$le80.5|http://unitsofmeasure.org|mm[Hg]`+
			`&code-value-string=`+loinc+`|x$a\$b\,c`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Composites) != 2 || len(q.Clauses) != 0 {
		t.Fatalf("composites %d, clauses %d, want 2 and 0", len(q.Composites), len(q.Clauses))
	}
	byCode := map[string]Composite{}
	for _, c := range q.Composites {
		byCode[c.Param.Code] = c
	}
	bp := byCode["component-code-value-quantity"]
	if len(bp.Any) != 2 {
		t.Fatalf("component-code-value-quantity: %d values, want 2", len(bp.Any))
	}
	if c := bp.Any[0].Conds; c[0].System != loinc || c[0].Code != "8480-6" || c[1].Prefix != "gt" || c[1].Value != 100 {
		t.Errorf("first value parsed as %+v", c)
	}
	if c := bp.Any[1].Conds[1]; c.Prefix != "le" || c.Value != 80.5 || c.Code != "mm[Hg]" || c.System != "http://unitsofmeasure.org" {
		t.Errorf("second value's quantity parsed as %+v", c)
	}
	cand := bp.Candidates()
	if got := cand.Get("component-code"); got != loinc+"|8480-6,"+loinc+"|8462-4" {
		t.Errorf("candidate component-code = %q", got)
	}
	if got := cand.Get("component-value-quantity"); got != "gt100,le80.5|http://unitsofmeasure.org|mm[Hg]" {
		t.Errorf("candidate component-value-quantity = %q", got)
	}
	// An escaped '$' and ',' stay in the component's value.
	str := byCode["code-value-string"]
	if len(str.Any) != 1 || str.Any[0].Conds[1].Text != NormalizeString("a$b,c") {
		t.Errorf("code-value-string parsed as %+v", str.Any)
	}
	if got := str.Candidates().Get("value-string"); got != `a\$b\,c` {
		t.Errorf("candidate value-string = %q, want the escapes kept", got)
	}

	q, err = r.ParseQuery("Patient", mustQuery(t, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12\\|3"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Composites) != 1 || !q.Composites[0].OfType || q.Composites[0].Any[0].Parts[2] != "12|3" {
		t.Fatalf(":of-type parsed as %+v", q.Composites)
	}
	if got := q.Composites[0].Candidates().Get("identifier"); got != `12\|3` {
		t.Errorf(":of-type candidates = %q", got)
	}
}

func TestParseCompositeErrors(t *testing.T) {
	r := newRegistry(t)
	for _, tc := range []struct{ name, rt, q, param string }{
		{"one component", "Observation", "code-value-quantity=" + loinc + "|8480-6", "code-value-quantity"},
		{"three components", "Observation", "code-value-quantity=a$5$6", "code-value-quantity"},
		{"bad quantity component", "Observation", "code-value-quantity=a$xx5", "code-value-quantity"},
		{"bad token component", "Observation", "code-value-quantity=a|b|c$5", "code-value-quantity"},
		{"empty component", "Observation", "code-value-concept=a$", "code-value-concept"},
		{"modifier", "Observation", "code-value-quantity:exact=a$5", "code-value-quantity:exact"},
		{"missing", "Observation", "code-value-quantity:missing=true", "code-value-quantity:missing"},
		{"sort", "Observation", "_sort=code-value-quantity", "_sort"},
		{"component needs %resource", "MolecularSequence", "chromosome-variant-coordinate=1$2$3", "chromosome-variant-coordinate"},
		{"of-type two parts", "Patient", "identifier:of-type=MR|123", "identifier:of-type"},
		{"of-type empty part", "Patient", "identifier:of-type=|MR|123", "identifier:of-type"},
		{"of-type on a code", "Observation", "code:of-type=a|b|c", "code:of-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.ParseQuery(tc.rt, mustQuery(t, tc.q), Limits{})
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("err = %v, want *QueryError", err)
			}
			if qe.Param != tc.param {
				t.Errorf("Param = %q, want %q (%v)", qe.Param, tc.param, err)
			}
		})
	}
}

// TestCompositeMatchesPairs: on every Synthea blood pressure, a
// component's code pairs with its own value only. Systolic at its value
// matches; diastolic at the systolic value does not, though the resource
// has both that code and that value, in two components.
func TestCompositeMatchesPairs(t *testing.T) {
	r := newRegistry(t)
	parse := func(q string) Composite {
		t.Helper()
		pq, err := r.ParseQuery("Observation", mustQuery(t, q), Limits{})
		if err != nil || len(pq.Composites) != 1 {
			t.Fatalf("%s: %v", q, err)
		}
		return pq.Composites[0]
	}
	checked := 0
	for _, f := range syntheaFiles(t)[:4] {
		for _, res := range syntheaResources(t, f) {
			if res["resourceType"] != "Observation" {
				continue
			}
			sys, dia, ok := bloodPressure(res)
			if !ok || math.Floor(dia) >= math.Floor(sys) {
				continue
			}
			checked++
			at := strconv.FormatFloat(math.Floor(sys), 'f', 0, 64)
			for _, tc := range []struct {
				q    string
				want bool
			}{
				{"component-code-value-quantity=" + loinc + "|8480-6$ge" + at, true},
				{"component-code-value-quantity=" + loinc + "|8462-4$ge" + at, false},
				{"component-code-value-quantity=" + loinc + "|8462-4$ge" + at + "," + loinc + "|8480-6$ge" + at, true},
				{"combo-code-value-quantity=" + loinc + "|8480-6$ge" + at + "|http://unitsofmeasure.org|mm[Hg]", true},
				{"combo-code-value-quantity=" + loinc + "|8480-6$ge" + at + "|http://unitsofmeasure.org|kg", false},
				{"combo-code-value-quantity=" + loinc + "|8462-4$ge" + at, false},
				// The panel's own code has no value of its own.
				{"code-value-quantity=" + loinc + "|55284-4$ge0", false},
				{"component-code-value-quantity=" + loinc + "|55284-4$ge0", false},
			} {
				c := parse(tc.q)
				if got := c.Matches("Observation", res); got != tc.want {
					t.Fatalf("Observation/%v: %s: Matches = %v, want %v", res["id"], tc.q, got, tc.want)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no blood pressure observation in the Synthea sample")
	}
}

// bloodPressure reads the systolic and diastolic values of a Synthea
// blood pressure panel.
func bloodPressure(res map[string]any) (sys, dia float64, ok bool) {
	comps, _ := res["component"].([]any)
	n := 0
	for _, c := range comps {
		cm := c.(map[string]any)
		coding := cm["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)
		vq, _ := cm["valueQuantity"].(map[string]any)
		num, _ := vq["value"].(json.Number)
		v, err := num.Float64()
		if err != nil {
			return 0, 0, false
		}
		switch coding["code"] {
		case "8480-6":
			sys, n = v, n+1
		case "8462-4":
			dia, n = v, n+1
		}
	}
	return sys, dia, n == 2
}

// TestOfTypeMatches: a Synthea patient's medical record number is also
// the value of an identifier without a type, and of no SS identifier: the
// type and the value must be on one Identifier.
func TestOfTypeMatches(t *testing.T) {
	r := newRegistry(t)
	const v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
	for _, res := range syntheaResources(t, syntheaFiles(t)[0]) {
		if res["resourceType"] != "Patient" {
			continue
		}
		var mrn, ssn string
		for _, x := range res["identifier"].([]any) {
			m := x.(map[string]any)
			typ, _ := m["type"].(map[string]any)
			codings, _ := typ["coding"].([]any)
			for _, c := range codings {
				switch c.(map[string]any)["code"] {
				case "MR":
					mrn = m["value"].(string)
				case "SS":
					ssn = m["value"].(string)
				}
			}
		}
		if mrn == "" || ssn == "" {
			t.Fatal("the Synthea patient lacks an MR or SS identifier")
		}
		for _, tc := range []struct {
			value string
			want  bool
		}{
			{v2 + "|MR|" + Escape(mrn), true},
			{v2 + "|SS|" + Escape(ssn), true},
			{v2 + "|SS|" + Escape(mrn), false},
			{v2 + "|MR|" + Escape(ssn), false},
			{"http://other.example|MR|" + Escape(mrn), false},
			{v2 + "|DL|x," + v2 + "|MR|" + Escape(mrn), true},
		} {
			q, err := r.ParseQuery("Patient", map[string][]string{"identifier:of-type": {tc.value}}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Composites[0].Matches("Patient", res); got != tc.want {
				t.Errorf("identifier:of-type=<type %d>: Matches = %v, want %v", len(tc.value), got, tc.want)
			}
		}
		return
	}
	t.Fatal("no Patient in the Synthea bundle")
}

// TestValueMatchesPrefixes: a quantity component keeps the store's
// prefix rules (store.Cmp) on the value's precision range.
func TestValueMatchesPrefixes(t *testing.T) {
	r := newRegistry(t)
	p, _ := r.Param("Observation", "value-quantity")
	_, lo, hi, err := decimalRange("100")
	if err != nil {
		t.Fatal(err)
	}
	x := Value{Type: TypeQuantity, Lo: lo, Hi: hi, System: "http://unitsofmeasure.org", Code: "mm[Hg]"}
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"100", true}, {"eq100", true}, {"ne100", false}, {"100.0", false}, {"gt99", true}, {"gt100", false},
		{"lt101", true}, {"lt100", false}, {"ge100", true}, {"le100", true}, {"sa98", true}, {"sa100", false},
		{"eb102", true}, {"eb100", false}, {"ap95", true}, {"ap80", false},
		{"100|http://unitsofmeasure.org|mm[Hg]", true}, {"100||mm[Hg]", true}, {"100|http://unitsofmeasure.org|kg", false},
	} {
		c, reason := parseCond(p, "", tc.v)
		if reason != "" {
			t.Fatalf("%s: %s", tc.v, reason)
		}
		if got := valueMatches(p, c, x); got != tc.want {
			t.Errorf("value-quantity=%s on 100 mm[Hg]: %v, want %v", tc.v, got, tc.want)
		}
	}
}
