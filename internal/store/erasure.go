package store

import (
	"context"
	"time"
)

// Erasure is a request to erase a patient's data (GDPR Art. 17): asked by
// one person and carried out when a second approves it. Reason and
// LegalBasis are codes, never free text.
type Erasure struct {
	ID         string
	Patient    string // the patient compartment to erase
	Requester  string // the user id who asked
	Reason     string
	LegalBasis string
	Requested  time.Time
	// Approved is when a second person approved the request and the
	// erasure was carried out; zero while it waits. Versions and
	// IndexRows say what it destroyed.
	Approved  time.Time
	Approver  string
	Versions  int64
	IndexRows int64
}

// LegalHold keeps a patient's data from erasure while it holds (a
// litigation hold, a regulator's order). Reason is a code.
type LegalHold struct {
	Patient string
	Reason  string
	SetBy   string
	Set     time.Time
}

// Erasures reads erasure requests and legal holds.
type Erasures interface {
	// Erasure returns one request, or ErrNotFound.
	Erasure(ctx context.Context, id string) (Erasure, error)
	// LegalHold returns the hold on a patient, or ErrNotFound.
	LegalHold(ctx context.Context, patient string) (LegalHold, error)
}

// ErasureWriter changes erasure requests, legal holds and the data an
// erasure destroys inside a transaction, so that each commits with its
// ledger entry or not at all.
type ErasureWriter interface {
	// CreateErasure stores a new, unapproved request; ErrConflict on a
	// duplicate id. Approved, Approver, Versions and IndexRows are ignored.
	CreateErasure(ctx context.Context, e Erasure) error
	// ApproveErasure closes a request once: it sets Approved, Approver,
	// Versions and IndexRows if the request is still open, and returns it
	// as stored afterwards. ErrNotFound for an unknown id, ErrConflict
	// when it was approved already, by anyone in any process.
	ApproveErasure(ctx context.Context, id, approver string, approved time.Time, versions, indexRows int64) (Erasure, error)
	// EraseCompartment destroys what is sealed in a compartment: every
	// version stored in it, the index rows of each resource whose current
	// version is in it, and its wrapped data key. Each such resource is
	// left a deletion, with no body, as its current version, one version
	// after the last (LastUpdated at), so that its id answers "gone"; a
	// current deletion is kept as it is. It returns how many versions and
	// index rows it deleted: erasing again deletes nothing. Other
	// compartments, and versions of a resource stored in them, are left
	// alone.
	EraseCompartment(ctx context.Context, compartment string, at time.Time) (versions, indexRows int64, err error)
	// SetLegalHold places or replaces the hold on a patient.
	SetLegalHold(ctx context.Context, h LegalHold) error
	// ReleaseLegalHold lifts the hold on a patient; ErrNotFound when none.
	ReleaseLegalHold(ctx context.Context, patient string) error
}

// Activity is what a retention rule looks at in one patient compartment.
type Activity struct {
	Compartment string
	// LastEncounter is the latest end of an Encounter's period in the
	// compartment (its date index); zero when it has none, and far in
	// the future for an Encounter still open.
	LastEncounter time.Time
	LastUpdated   time.Time // the newest current version stored in it
	Resources     int64     // current versions that are not deletions
}

// Retention reads what retention rules need.
type Retention interface {
	// CompartmentActivity calls fn for every patient compartment holding
	// a current version that is not a deletion, in compartment order.
	CompartmentActivity(ctx context.Context, fn func(Activity) error) error
}
