package search

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParseQuery: any query string parses or fails with a *QueryError, and
// never panics.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"code=http://loinc.org|8302-2,1234&date=ge2020-01&_count=10",
		`name:exact=a\,b&_sort=-_lastUpdated&_include=Observation:subject:Patient`,
		"value-quantity=ap5.4|http://unitsofmeasure.org|mg&subject:Patient=1",
		"_id=a,b&_id=b&_lastUpdated=lt2020-01-01T10:00Z&_total=accurate",
		"subject.name=x&_has:Observation:patient:code=1",
		"status:missing=true&_revinclude:iterate=Provenance:target",
		`component-code-value-quantity=http://loinc.org|8480-6$ge140,a$lt5||mm[Hg]&code-value-string=x$a\$b`,
		"code-value-date=a$ge2020-01&identifier:of-type=http://t|MR|1,http://t|SS|2",
		`subject:identifier=http://h/mrn|1,\|x,2&performer:identifier=urn:npi|&subject:Patient.general-practitioner:identifier=3`,
	} {
		f.Add("Observation", s, false)
	}
	r := newRegistry(f)
	f.Fuzz(func(t *testing.T, rt, raw string, lenient bool) {
		params, err := ParseParams(raw)
		if err != nil {
			return
		}
		q, err := r.ParseQuery(rt, params, Limits{Lenient: lenient})
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %T %v is not a *QueryError", err, err)
			}
			return
		}
		if q.Count < 0 || q.Count > 1000 || q.Offset < 0 || len(q.Include)+len(q.RevInclude) > 16 || len(q.Clauses) > 64 {
			t.Fatalf("limits not enforced: %+v", q)
		}
		for _, c := range q.Clauses {
			if c.Param == nil || !c.Param.Supported || len(c.Any) == 0 || c.Param.Type == TypeComposite {
				t.Fatalf("bad clause %+v", c)
			}
			// A reference's identifier is searched through its blind
			// token rows only.
			if strings.HasSuffix(c.Param.Code, identifierSuffix) && (c.Param.Type != TypeToken || !c.Param.Blind || c.Modifier != "") {
				t.Fatalf("bad identifier clause %+v", c)
			}
		}
		// A composite's candidate query parses on the same type, one
		// clause per component (the identifier's, for :of-type), so it
		// selects no less than the composite.
		for _, c := range q.Composites {
			want := len(c.Param.Components)
			if c.OfType {
				want = 1
			}
			cand, err := r.ParseQuery(q.Type, c.Candidates(), Limits{})
			if err != nil || len(cand.Clauses) != want || len(cand.Composites)+len(cand.Chains)+len(cand.Has) != 0 {
				t.Fatalf("%s: candidates %v parse to %+v, %v", c.Key, c.Candidates(), cand, err)
			}
		}
	})
}

// FuzzExtract mutates the HL7 examples: extraction never panics.
func FuzzExtract(f *testing.F) {
	for _, file := range exampleFiles(f) {
		if b, err := os.ReadFile(file); err == nil && len(b) < 16<<10 {
			f.Add(b)
		}
	}
	r := newRegistry(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		var obj map[string]any
		if dec.Decode(&obj) != nil {
			return
		}
		rt, _ := obj["resourceType"].(string)
		vs, err := r.Extract(rt, obj)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Lo > v.Hi {
				t.Fatalf("%s: Lo %v > Hi %v", v.Param, v.Lo, v.Hi)
			}
		}
	})
}
