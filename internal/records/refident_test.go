package records_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestSearchReferenceIdentifier: subject:identifier finds an
// Observation whose subject (a Device here: a patient named by identifier
// only is refused, TestPatientByIdentifierOnlyRefused) is given by its identifier, with or without
// a literal reference, by system|value and by value alone; its rows are
// blind (no plaintext token row holds the value); system| alone is
// refused as on identifier, with the same reason; and a patient/ grant
// for another patient finds nothing.
func TestSearchReferenceIdentifier(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const mrn = "http://hospital.example/mrn"
	onlyIdent := f.create(`{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
		`"subject":{"type":"Device","identifier":{"system":"` + mrn + `","value":"12345"}}}`)
	both := f.create(`{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
		`"subject":{"reference":"Patient/` + patA + `","identifier":{"system":"` + mrn + `","value":"12345"}}}`)
	ids := func(c records.Caller, params url.Values) []string {
		t.Helper()
		res, err := f.svc.Search(ctx, c, "Observation", params)
		if err != nil {
			t.Fatalf("%v: %v", params, err)
		}
		var out []string
		for _, e := range res.Matches {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	all := []string{onlyIdent, both}
	slices.Sort(all)
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{mrn + "|12345", all},
		{"12345", all},
		{"|12345", nil}, // an identifier without a system: none here
		{mrn + "|54321", nil},
		{"54321", nil},
		{"urn:other|12345", nil},
	} {
		if got := ids(f.sys, url.Values{"subject:identifier": {tc.value}}); !slices.Equal(got, tc.want) {
			t.Errorf("subject:identifier=%s: %v, want %v", tc.value, got, tc.want)
		}
	}
	// patient resolves subject to a Patient: only the literal one.
	if got := ids(f.sys, url.Values{"patient:identifier": {mrn + "|12345"}}); !slices.Equal(got, []string{both}) {
		t.Errorf("patient:identifier: %v, want %v", got, []string{both})
	}
	// The value is in no plaintext row.
	page, err := f.db.Search(ctx, store.Query{Type: "Observation", Count: 10, Clauses: []store.Clause{{Param: "subject:identifier",
		Any: []store.Predicate{{Kind: store.KindToken, Op: store.OpEq, Value: "12345"}}}}})
	if err != nil || len(page.Resources) != 0 {
		t.Errorf("a plaintext token row holds the identifier: %d rows, %v", len(page.Resources), err)
	}
	// By system alone: refused, as on the identifier parameter.
	_, errRef := f.svc.Search(ctx, f.sys, "Observation", url.Values{"subject:identifier": {mrn + "|"}})
	_, errID := f.svc.Search(ctx, f.sys, "Observation", url.Values{"identifier": {mrn + "|"}})
	if !errors.Is(errRef, records.ErrInvalid) || !errors.Is(errID, records.ErrInvalid) {
		t.Fatalf("by system alone: %v; on identifier: %v; want ErrInvalid", errRef, errID)
	}
	_, reasonRef, _ := strings.Cut(errRef.Error(), "subject:identifier: ")
	_, reasonID, _ := strings.Cut(errID.Error(), "identifier: ")
	if reasonRef == "" || reasonRef != reasonID {
		t.Errorf("by system alone: %q, on identifier: %q", errRef, errID)
	}
	// Narrowed as any search: A's grant sees A's Observation only; B's
	// grant sees nothing.
	scope := "patient/Observation.rs"
	if got := ids(serviceFor(t, patA, scope), url.Values{"subject:identifier": {mrn + "|12345"}}); !slices.Equal(got, []string{both}) {
		t.Errorf("patient A's grant: %v, want %v", got, []string{both})
	}
	if got := ids(serviceFor(t, patB, scope), url.Values{"subject:identifier": {mrn + "|12345"}}); len(got) != 0 {
		t.Errorf("patient B's grant: %v, want nothing", got)
	}
}

// TestPatientByIdentifierOnlyRefused: a resource that names its patient by
// identifier only (no literal reference, no type but Patient) in a patient
// compartment element is refused, by create and by update, with a reason
// that says what to send: stored, it would belong to no compartment and be
// read as shared data by every patient's token. Nothing is stored. A
// literal reference, a conditional one, or another type is accepted.
func TestPatientByIdentifierOnlyRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const ident = `"identifier":{"system":"http://hospital.example/mrn","value":"12345"}`
	obs := func(subject string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":` + subject + `}`
	}
	for _, subject := range []string{`{` + ident + `}`, `{"type":"Patient",` + ident + `}`} {
		_, err := f.svc.Create(ctx, f.sys, parse(t, obs(subject)))
		if !errors.Is(err, records.ErrInvalid) || !strings.Contains(err.Error(), "Observation.subject names its patient by identifier only") ||
			!strings.Contains(err.Error(), "Patient?identifier=system|value") {
			t.Errorf("create with subject %s: %v, want ErrInvalid naming Observation.subject and the conditional reference", subject, err)
		}
	}
	placed := f.create(obs(`{"reference":"Patient/` + patA + `",` + ident + `}`))
	if _, _, err := f.svc.Update(ctx, f.sys, "Observation", placed, parse(t, obs(`{`+ident+`}`)), 0); !errors.Is(err, records.ErrInvalid) {
		t.Errorf("update to a subject by identifier only: %v, want ErrInvalid", err)
	}
	if e, err := f.svc.Read(ctx, f.sys, "Observation", placed); err != nil || e.Version != 1 {
		t.Errorf("after the refused update: version %d, %v; want version 1 kept", e.Version, err)
	}
	f.create(obs(`{"type":"Device",` + ident + `}`))
	f.put("Patient", "pat-mrn", `{"resourceType":"Patient","id":"pat-mrn","identifier":[{"system":"http://hospital.example/mrn","value":"777"}]}`)
	conditional := f.create(obs(`{"reference":"Patient?identifier=http://hospital.example/mrn|777"}`))
	if e, err := f.svc.Read(ctx, f.sys, "Observation", conditional); err != nil || e.Compartment != "pat-mrn" {
		t.Errorf("by a conditional reference: compartment %q, %v; want pat-mrn", e.Compartment, err)
	}
	res, err := f.svc.Search(ctx, f.sys, "Observation", url.Values{"subject:identifier": {"12345"}})
	if err != nil || res.Total != 2 {
		t.Errorf("stored by identifier: %d, %v; want the placed one and the Device's", res.Total, err)
	}
}
