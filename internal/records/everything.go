package records

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// everythingPage is how many resources $everything reads at a time; memory
// stays bounded whatever the size of the record.
const everythingPage = 200

// everythingReferenced are the types outside the patient compartment that
// $everything adds when the record points at them.
var everythingReferenced = map[string]bool{"Practitioner": true, "Organization": true, "Location": true, "Medication": true}

// Everything streams a patient's record (Patient/{id}/$everything): the
// Patient, then every resource sealed in that patient's compartment, type by
// type, then the Practitioners, Organizations, Locations and Medications
// that record refers to (by relative reference), at most MaxIncludes of
// them. emit is called once per resource; an error from emit stops the
// walk. Resource types the subject may not search are left out. Under a
// compartment obligation only the obligation's own patient has a record;
// any other answers as an unknown patient. A referenced resource is read
// as a read would be, with the same decision and masks; one the caller may
// not read, or that is not there, is left out silently, as _include does.
//
// The interaction is recorded, naming the patient, before the first
// resource is emitted; a refusal or a failure before that is recorded
// with its outcome. A failure after it leaves the recorded success: the
// caller may have been sent part of the record. The referenced resources
// are each recorded as a read ("$everything"), in one group, before the
// first of them is emitted.
func (s *Service) Everything(ctx context.Context, c Caller, id string, emit func(Entry) error) error {
	a := access{action: "everything", typ: "Patient", id: id, patient: id, asked: id}
	started := false
	err := s.everything(ctx, c, id, func(e Entry) error {
		if !started {
			if err := s.account(ctx, c, nil, a); err != nil {
				return err
			}
			started = true
		}
		return emit(e)
	})
	if started {
		return err
	}
	return s.account(ctx, c, err, a)
}

func (s *Service) everything(ctx context.Context, c Caller, id string, emit func(Entry) error) error {
	// $everything only reads: it needs read on the Patient and search on
	// each type it returns, not every interaction.
	d, err := s.decide(c.Subject, policy.ActionRead, "Patient")
	if err != nil {
		return err
	}
	if !within(d, id) {
		// Looked up as a read would be, so that the answer takes as long
		// as for an unknown patient; one that exists is named in the
		// audit entry (HiddenError).
		row, err := s.store.Current(ctx, "Patient", id)
		switch {
		case err == nil:
			return hiddenIn(row.Compartment)
		case errors.Is(err, store.ErrNotFound):
			return hidden()
		}
		return storeErr(err)
	}
	patient, err := s.read(ctx, c, "Patient", id)
	if err != nil {
		return err
	}
	refs := &referenced{limit: s.cfg.MaxIncludes, seen: make(map[string]bool)}
	record := emit
	emit = func(e Entry) error {
		if err := record(e); err != nil {
			return err
		}
		refs.note(e)
		return nil
	}
	if err := emit(patient); err != nil {
		return err
	}
	for _, typ := range fhir.PatientCompartmentTypes() {
		if typ == "Patient" {
			continue
		}
		dt, err := s.decide(c.Subject, policy.ActionSearch, typ)
		if err != nil || !within(dt, id) {
			continue
		}
		q := store.Query{Type: typ, Compartment: &id, Count: everythingPage}
		if err := s.walk(ctx, c, dt, q, nil, emit); err != nil {
			return err
		}
	}
	return s.emitReferenced(ctx, c, refs.list, record)
}

// referenced collects, in order of first mention, the references of a
// record to everythingReferenced types, at most limit of them.
type referenced struct {
	limit int
	seen  map[string]bool
	list  [][2]string // type, id
}

func (r *referenced) note(e Entry) {
	if len(r.list) >= r.limit || e.Body == nil || !mentionsReferenced(e.Body) {
		return
	}
	res, err := fhir.Parse(e.Body, fhir.Limits{MaxBytes: len(e.Body) + 1})
	if err != nil {
		return // a stored body Ward wrote always parses; nothing to add otherwise
	}
	for _, ref := range res.References() {
		v := ref.Value()
		if strings.Contains(v, "://") {
			continue // another server's resource, never followed
		}
		typ, id, _, ok := fhir.ParseReference(v)
		if !ok || !everythingReferenced[typ] || r.seen[typ+"/"+id] {
			continue
		}
		r.seen[typ+"/"+id] = true
		r.list = append(r.list, [2]string{typ, id})
		if len(r.list) >= r.limit {
			return
		}
	}
}

// mentionsReferenced reports whether body may refer to an
// everythingReferenced type, so that a body that cannot is not parsed.
func mentionsReferenced(body []byte) bool {
	for typ := range everythingReferenced {
		if bytes.Contains(body, []byte(typ+"/")) {
			return true
		}
	}
	return false
}

// emitReferenced reads the referenced resources as the caller may, records
// each disclosed one as a read, then emits them.
func (s *Service) emitReferenced(ctx context.Context, c Caller, refs [][2]string, emit func(Entry) error) error {
	var got []Entry
	for _, ref := range refs {
		e, err := s.read(ctx, c, ref[0], ref[1])
		switch {
		case err == nil:
			got = append(got, e)
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrGone), errors.Is(err, ErrForbidden):
		default:
			return err
		}
	}
	if len(got) == 0 {
		return nil
	}
	as := make([]access, len(got))
	for i, e := range got {
		as[i] = access{action: "read", typ: e.Type, id: e.ID, version: versionOf(e), patient: e.Compartment, detail: "$everything"}
	}
	if err := s.record(ctx, c, as...); err != nil {
		return err
	}
	for _, e := range got {
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}
