package records_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/wardhealth/ward/internal/records"
)

// BenchmarkSearchLabels measures what narrowing a search by security label
// and Consent costs: the same search (one page of 50 of 20 patients' 600
// Observations, one in ten labelled HIV, with its total) as a service with
// a system/ scope (unrestricted: no compartment, no label narrowing), and
// as a practitioner related to all 20 patients, whose query is narrowed to
// their compartments and to normal data, with one patient's Consent
// permitting them HIV (a partial view: the query then looks at that
// patient's _security index rows) and another's denying them everything.
func BenchmarkSearchLabels(b *testing.B) {
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
			meta := ""
			if o%10 == 0 {
				meta = hivLabel
			}
			f.create(labelledObservation(id, fmt.Sprintf("%d-%d", p, o), meta))
		}
	}
	if t.Failed() {
		b.Fatal("seeding failed")
	}
	f.t = t
	f.create(privacyConsent(related[0], `{"type":"permit","actor":[`+actorJSON("x")+`],"securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`))
	f.create(privacyConsent(related[1], `{"type":"deny","actor":[`+actorJSON("x")+`]}`))
	x := practitioner(b, "x", related...)
	ctx := context.Background()
	q := url.Values{"status": {"final"}, "_count": {"50"}, "_total": {"accurate"}}
	for _, bc := range []struct {
		name  string
		c     records.Caller
		total int
	}{
		{"unrestricted", f.sys, patients*perPatient + 4}, // and the fixture's 4
		{"practitioner", x, (patients-2)*perPatient*9/10 + perPatient},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := f.svc.Search(ctx, bc.c, "Observation", q)
				if err != nil || len(res.Matches) != 50 {
					b.Fatalf("search: %d matches, %v", len(res.Matches), err)
				}
				if res.Total != bc.total {
					b.Fatalf("total %d, want %d", res.Total, bc.total)
				}
			}
		})
	}
}
