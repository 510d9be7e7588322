package records

import (
	"context"
	"errors"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// everythingPage is how many resources $everything reads at a time; memory
// stays bounded whatever the size of the record.
const everythingPage = 200

// Everything streams a patient's record (Patient/{id}/$everything): the
// Patient, then every resource sealed in that patient's compartment, type by
// type. emit is called once per resource; an error from emit stops the walk.
// Resource types the subject may not search are left out. Under a
// compartment obligation only the obligation's own patient has a record;
// any other answers as an unknown patient.
//
// The interaction is recorded, naming the patient, before the first
// resource is emitted; a refusal or a failure before that is recorded
// with its outcome. A failure after it leaves the recorded success: the
// caller may have been sent part of the record.
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
	return nil
}
