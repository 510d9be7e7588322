package records_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/wardhealth/ward/internal/records"
)

// TestChainTooBroad: a hop that matches more than MaxChainMatches
// resources the caller sees is ErrInvalid, never a partial answer; what
// the caller may not see does not count towards the limit, so the
// limit is no oracle for it (A3).
func TestChainTooBroad(t *testing.T) {
	f := newFixture(t)
	svc, db := newService(t, records.Config{MaxChainMatches: 1})
	f.svc, f.db = svc, db
	for _, id := range []string{patA, patB} {
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true}`)
	}
	f.create(observation(patA, "a-1", ""))
	f.create(observation(patB, "b-1", ""))
	ctx := context.Background()
	q := url.Values{"subject:Patient.active": {"true"}}
	// The service sees both patients: two matches in one hop.
	if _, err := f.svc.Search(ctx, f.sys, "Observation", q); !errors.Is(err, records.ErrInvalid) {
		t.Fatalf("a hop over the limit: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Search(ctx, f.sys, "Patient", url.Values{"_has:Observation:subject:status": {"final"}}); !errors.Is(err, records.ErrInvalid) {
		t.Fatalf("a _has hop over the limit: %v, want ErrInvalid", err)
	}
	// A practitioner related to A alone: B is not there, so the hop finds
	// one Patient and the search answers A's Observation.
	x := practitioner(t, "x", patA)
	res, err := f.svc.Search(ctx, x, "Observation", q)
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Compartment != patA {
		t.Fatalf("the related practitioner's chained search: %v, %+v", err, res.Matches)
	}
}

// BenchmarkSearchChained measures what a chained search costs against
// the plain search it stands for, both answering one patient's 30
// Observations among 20 patients' 600: subject=Patient/x; the chain
// by the Patient's id (subject:Patient._id=x: one hop that reads no
// body); the chain by a blind-indexed family name (subject:Patient.
// family=...); and _has (Patient?_has:Observation:subject:code=...,
// which opens the 30 Observations it finds to read their subjects). As a
// service (no narrowing) and as a practitioner related to all 20
// patients.
func BenchmarkSearchChained(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t)
	if t.Failed() {
		b.Fatal("fixture setup failed")
	}
	const patients, perPatient = 20, 30
	var related []string
	for p := range patients {
		id := fmt.Sprintf("bench-%02d", p)
		related = append(related, id)
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true,"name":[{"family":"Fam`+id[6:]+`"}]}`)
		for o := range perPatient {
			code := "c-" + id
			f.create(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:bench","code":"` + code + `"}]},` +
				`"identifier":[{"system":"urn:test","value":"` + fmt.Sprint(o) + `"}],"subject":{"reference":"Patient/` + id + `"}}`)
		}
	}
	if t.Failed() {
		b.Fatal("seeding failed")
	}
	x := practitioner(b, "x", related...)
	ctx := context.Background()
	for _, bc := range []struct {
		name, typ string
		q         url.Values
		want      int
	}{
		{"plain", "Observation", url.Values{"subject": {"Patient/bench-07"}}, perPatient},
		{"chain-id", "Observation", url.Values{"subject:Patient._id": {"bench-07"}}, perPatient},
		{"chain-family", "Observation", url.Values{"subject:Patient.family": {"fam07"}}, perPatient},
		{"plain-patient", "Patient", url.Values{"_id": {"bench-07"}}, 1},
		{"has", "Patient", url.Values{"_has:Observation:subject:code": {"urn:bench|c-bench-07"}}, 1},
	} {
		for _, who := range []struct {
			name string
			c    records.Caller
		}{{"service", f.sys}, {"practitioner", x}} {
			b.Run(bc.name+"/"+who.name, func(b *testing.B) {
				b.ReportAllocs()
				bc.q.Set("_total", "accurate")
				for b.Loop() {
					res, err := f.svc.Search(ctx, who.c, bc.typ, bc.q)
					if err != nil || res.Total != bc.want {
						b.Fatalf("search: total %d, want %d, %v", res.Total, bc.want, err)
					}
				}
			})
		}
	}
}

// bpObservation is a blood pressure panel of subject with its systolic
// and diastolic components.
func bpObservation(subject string, systolic, diastolic int) string {
	comp := func(code string, v int) string {
		return `{"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},` +
			`"valueQuantity":{"value":` + fmt.Sprint(v) + `,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`
	}
	return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},` +
		`"subject":{"reference":"Patient/` + subject + `"},"component":[` + comp("8480-6", systolic) + `,` + comp("8462-4", diastolic) + `]}`
}

// TestCompositeTooBroad: a composite's candidates count against
// MaxChainMatches as a chain's hop does, only those the caller sees
// counting: over the limit is ErrInvalid, never a partial answer (A3).
// The outer query's own parameters and a compartment search's
// compartment narrow the candidates; within the limit a practitioner
// finds only the pairs it may see.
func TestCompositeTooBroad(t *testing.T) {
	f := newFixture(t)
	svc, db := newService(t, records.Config{MaxChainMatches: 1})
	f.svc, f.db = svc, db
	for _, id := range []string{patA, patB} {
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true}`)
	}
	f.create(bpObservation(patA, 150, 95))
	f.create(bpObservation(patB, 120, 150))
	ctx := context.Background()
	q := url.Values{"component-code-value-quantity": {"http://loinc.org|8480-6$ge140"}}
	// Both panels have a component code 8480-6 and a value of 140 or
	// more: two candidates, over the limit for the service.
	if _, err := f.svc.Search(ctx, f.sys, "Observation", q); !errors.Is(err, records.ErrInvalid) {
		t.Fatalf("candidates over the limit: %v, want ErrInvalid", err)
	}
	// A compartment search, and the search's own subject, narrow the
	// candidates to A's one panel.
	if res, err := f.svc.SearchCompartment(ctx, f.sys, patA, "Observation", q); err != nil || len(res.Matches) != 1 {
		t.Fatalf("candidates in A's compartment: %v, %d matches, want 1", err, len(res.Matches))
	}
	q.Set("subject", "Patient/"+patA)
	if res, err := f.svc.Search(ctx, f.sys, "Observation", q); err != nil || len(res.Matches) != 1 {
		t.Fatalf("candidates narrowed by subject: %v, %d matches, want 1", err, len(res.Matches))
	}
	for _, tc := range []struct {
		who  string
		c    records.Caller
		q    string
		want []string // compartments of the matches
	}{
		{"practitioner of A", practitioner(t, "x", patA), "http://loinc.org|8480-6$ge140", []string{patA}},
		{"practitioner of B", practitioner(t, "y", patB), "http://loinc.org|8480-6$ge140", nil},
		{"practitioner of B", practitioner(t, "y", patB), "http://loinc.org|8462-4$ge140", []string{patB}},
	} {
		res, err := f.svc.Search(ctx, tc.c, "Observation", url.Values{"component-code-value-quantity": {tc.q}})
		if err != nil {
			t.Fatalf("%s, %s: %v", tc.who, tc.q, err)
		}
		var got []string
		for _, m := range res.Matches {
			got = append(got, m.Compartment)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s, %s: matches in %v, want %v", tc.who, tc.q, got, tc.want)
		}
	}
}

// BenchmarkSearchComposite measures what a composite search costs
// against the plain search on its components, which the index answers
// alone but without the pairing: one patient's 30 blood pressure panels
// among 20 patients' 600, 10 of each patient's with a systolic value of
// 140 or more. The composite opens each candidate to pair code and
// value; across all patients (no subject) it opens 200. As a service and
// as a practitioner related to all 20 patients.
func BenchmarkSearchComposite(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t)
	if t.Failed() {
		b.Fatal("fixture setup failed")
	}
	const patients, perPatient = 20, 30
	var related []string
	for p := range patients {
		id := fmt.Sprintf("bench-%02d", p)
		related = append(related, id)
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true}`)
		for o := range perPatient {
			f.create(bpObservation(id, 100+2*o, 60+o))
		}
	}
	if t.Failed() {
		b.Fatal("seeding failed")
	}
	x := practitioner(b, "x", related...)
	ctx := context.Background()
	const sys = "http://loinc.org|8480-6"
	for _, bc := range []struct {
		name string
		q    url.Values
		want int
	}{
		{"plain", url.Values{"subject": {"Patient/bench-07"}, "component-code": {sys}, "component-value-quantity": {"ge140"}}, 10},
		{"composite", url.Values{"subject": {"Patient/bench-07"}, "component-code-value-quantity": {sys + "$ge140"}}, 10},
		{"plain-all", url.Values{"component-code": {sys}, "component-value-quantity": {"ge140"}}, 200},
		{"composite-all", url.Values{"component-code-value-quantity": {sys + "$ge140"}}, 200},
	} {
		for _, who := range []struct {
			name string
			c    records.Caller
		}{{"service", f.sys}, {"practitioner", x}} {
			b.Run(bc.name+"/"+who.name, func(b *testing.B) {
				b.ReportAllocs()
				bc.q.Set("_total", "accurate")
				for b.Loop() {
					res, err := f.svc.Search(ctx, who.c, "Observation", bc.q)
					if err != nil || res.Total != bc.want {
						b.Fatalf("search: total %d, want %d, %v", res.Total, bc.want, err)
					}
				}
			})
		}
	}
}
