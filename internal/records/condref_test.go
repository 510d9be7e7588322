package records_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/records"
)

const npi = "http://hl7.org/fhir/sid/us-npi"

// npiPractitioner is a Practitioner with an NPI.
func npiPractitioner(number string) string {
	return `{"resourceType":"Practitioner","identifier":[{"system":"` + npi + `","value":"` + number + `"}],"active":true}`
}

// observationBy is an Observation about subject performed by performer (a
// reference as given).
func observationBy(subject, performer string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/` + subject +
		`"},"performer":[{"reference":"` + performer + `"}]}`
}

// TestConditionalReferences is issue 12's first part: a conditional
// reference ("Practitioner?identifier=system|value") resolves to the one
// resource it matches, in single writes, transactions and batches; no
// match or several fail the write (the whole transaction), nothing
// dangling is stored; and the match sees only what the caller may search.
func TestConditionalReferences(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	doc := f.create(npiPractitioner("1234567890"))
	f.create(npiPractitioner("5555555555"))
	f.create(npiPractitioner("5555555555")) // two with one number
	performer := func(id string) string {
		e, err := f.svc.Read(ctx, f.sys, "Observation", id)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(e.Body), `"performer":[{"reference":"`)
		ref, _, _ := strings.Cut(rest, `"`)
		return ref
	}

	// A single write, with and without the system.
	for _, crit := range []string{"identifier=" + npi + "|1234567890", "identifier=1234567890"} {
		e, err := f.svc.Create(ctx, f.sys, parse(t, observationBy(patA, "Practitioner?"+crit)))
		if err != nil {
			t.Fatalf("create with %s: %v", crit, err)
		}
		if got := performer(e.ID); got != "Practitioner/"+doc {
			t.Errorf("create with %s: performer %q, want Practitioner/%s", crit, got, doc)
		}
	}
	// No match and several matches refuse the write.
	for crit, want := range map[string]string{
		"identifier=" + npi + "|0000000000": "matches no resource",
		"identifier=" + npi + "|5555555555": "more than one",
	} {
		_, err := f.svc.Create(ctx, f.sys, parse(t, observationBy(patA, "Practitioner?"+crit)))
		if !errors.Is(err, records.ErrPrecondition) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Observation.performer[0]") {
			t.Errorf("create with %s: %v, want ErrPrecondition naming the element (%s)", crit, err, want)
		}
		if strings.Contains(err.Error(), "5555555555") || strings.Contains(err.Error(), "0000000000") {
			t.Errorf("the error repeats the criteria's values: %v", err)
		}
	}
	if _, err := f.svc.Create(ctx, f.sys, parse(t, observationBy(patA, "Practitioner?nosuchparam=1"))); !errors.Is(err, records.ErrInvalid) {
		t.Errorf("criteria with an unknown parameter: %v, want ErrInvalid", err)
	}

	// A transaction: resolved, or refused as a whole.
	before := f.state()
	_, err := f.svc.Transaction(ctx, f.sys, bundle(t, "transaction",
		entry("POST", "Observation", observationBy(patA, "Practitioner?identifier="+npi+"|1234567890")),
		entry("POST", "Observation", observationBy(patA, "Practitioner?identifier="+npi+"|0000000000")),
	))
	if !errors.Is(err, records.ErrPrecondition) {
		t.Fatalf("a transaction with an unresolvable reference: %v, want ErrPrecondition", err)
	}
	if after := f.state(); after != before {
		t.Fatalf("a refused transaction wrote:\n%s\n---\n%s", before, after)
	}
	res, err := f.svc.Transaction(ctx, f.sys, bundle(t, "transaction",
		entry("POST", "Observation", observationBy(patA, "Practitioner?identifier="+npi+"|1234567890")),
	))
	if err != nil {
		t.Fatal(err)
	}
	if got := performer(res[0].Entry.ID); got != "Practitioner/"+doc {
		t.Errorf("transaction entry: performer %q", got)
	}
	// A batch: each entry on its own.
	res, err = f.svc.Batch(ctx, f.sys, bundle(t, "batch",
		entry("POST", "Observation", observationBy(patA, "Practitioner?identifier="+npi+"|1234567890")),
		entry("POST", "Observation", observationBy(patA, "Practitioner?identifier="+npi+"|5555555555")),
	))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || performer(res[0].Entry.ID) != "Practitioner/"+doc || !errors.Is(res[1].Err, records.ErrPrecondition) {
		t.Errorf("batch: %v, %v", res[0].Err, res[1].Err)
	}

	// The match is a search by the caller: without search on the type,
	// refused; within a patient compartment, shared practitioners are not
	// seen, so nothing matches.
	narrow := service(t, "system/Observation.cruds")
	if _, err := f.svc.Create(ctx, narrow, parse(t, observationBy(patA, "Practitioner?identifier="+npi+"|1234567890"))); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("a caller who may not search Practitioner: %v, want ErrForbidden", err)
	}
	onlyA := serviceFor(t, patA, "patient/*.cruds")
	if _, err := f.svc.Create(ctx, onlyA, parse(t, observationBy(patA, "Patient?_id="+patB))); !errors.Is(err, records.ErrPrecondition) {
		t.Errorf("a compartment-bound caller's reference to another patient: %v, want ErrPrecondition (not seen)", err)
	}
}

// TestConditionalDelete: DELETE {type}?criteria deletes the one match,
// deletes nothing for none, and refuses several; in a transaction it must
// match one; a caller who may not delete is refused before anything is
// matched.
func TestConditionalDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	one := f.create(observation(patA, "del-1", ""))
	f.create(observation(patA, "del-2", ""))
	f.create(observation(patB, "del-2", ""))
	crit := func(ident string) string { return "identifier=urn:test|" + ident }

	if _, _, err := f.svc.DeleteWhere(ctx, service(t, "system/Observation.rs"), "Observation", crit("del-1")); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("a caller who may not delete: %v, want ErrForbidden", err)
	}
	if _, deleted, err := f.svc.DeleteWhere(ctx, f.sys, "Observation", crit("del-2")); !errors.Is(err, records.ErrPrecondition) || deleted {
		t.Errorf("two matches: %v, deleted %v; want ErrPrecondition", err, deleted)
	}
	c := f.sys
	c.Trail = new(records.Trail)
	if _, deleted, err := f.svc.DeleteWhere(ctx, c, "Observation", crit("none")); err != nil || deleted || !c.Trail.Recorded() {
		t.Errorf("no match: %v, deleted %v, recorded %v; want a recorded delete of nothing", err, deleted, c.Trail.Recorded())
	}
	if e, deleted, err := f.svc.DeleteWhere(ctx, f.sys, "Observation", crit("del-1")); err != nil || !deleted || e.ID != one {
		t.Fatalf("one match: %v, deleted %v, id %s", err, deleted, e.ID)
	}
	if _, err := f.svc.Read(ctx, f.sys, "Observation", one); !errors.Is(err, records.ErrGone) {
		t.Errorf("the deleted resource: %v, want ErrGone", err)
	}
	// Within a patient's compartment only that patient's match counts.
	onlyB := serviceFor(t, patB, "patient/*.cruds")
	if _, deleted, err := f.svc.DeleteWhere(ctx, onlyB, "Observation", crit("del-2")); err != nil || !deleted {
		t.Errorf("a compartment-bound delete of its own match: %v, deleted %v", err, deleted)
	}

	before := f.state()
	_, err := f.svc.Transaction(ctx, f.sys, bundle(t, "transaction",
		entry("POST", "Observation", observation(patA, "tx-new", "")),
		entry("DELETE", "Observation?"+crit("none"), ""),
	))
	if !errors.Is(err, records.ErrPrecondition) {
		t.Errorf("a transaction's conditional delete of nothing: %v, want ErrPrecondition", err)
	}
	if after := f.state(); after != before {
		t.Errorf("a refused transaction wrote")
	}
	res, err := f.svc.Batch(ctx, f.sys, bundle(t, "batch", entry("DELETE", "Observation?"+crit("none"), "")))
	if err != nil || res[0].Err != nil || res[0].Status != 204 {
		t.Errorf("a batch's conditional delete of nothing: %v, %+v", err, res)
	}
}
