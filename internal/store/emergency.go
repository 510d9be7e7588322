package store

import (
	"context"
	"time"
)

// EmergencyGrant is one break-the-glass grant: a person's time-limited
// access to one patient outside their care relationships, kept until a
// reviewer closes it. Reason and Note are free text that may name
// clinical facts: the caller seals them (package keys) and the store keeps
// the ciphertext as given.
type EmergencyGrant struct {
	ID      string
	UserID  string
	Patient string // the patient compartment the grant reaches
	Purpose string // purpose of use, "BTG"
	Reason  []byte // sealed
	Created time.Time
	Expires time.Time // the grant reaches the patient while Created <= t < Expires
	// Reviewed is when a reviewer closed the grant; zero while it waits
	// in the review queue.
	Reviewed time.Time
	Reviewer string // the reviewer's user id
	Outcome  string // the review's outcome code
	Note     []byte // sealed; nil without a note
}

// EmergencyQuery selects grants for the review queue, oldest first (by
// Created, then ID).
type EmergencyQuery struct {
	// Unreviewed keeps only the grants that no reviewer closed yet.
	Unreviewed bool
	Offset     int
	Count      int // grants to return; 0 means none
}

// Emergency reads break-the-glass grants.
type Emergency interface {
	// EmergencyGrant returns one grant, or ErrNotFound.
	EmergencyGrant(ctx context.Context, id string) (EmergencyGrant, error)
	// ActiveEmergencyGrants returns a user's grants with Created <= at <
	// Expires, reviewed or not, by Created then ID.
	ActiveEmergencyGrants(ctx context.Context, userID string, at time.Time) ([]EmergencyGrant, error)
	// CountEmergencyGrants counts a user's grants for one patient with
	// since <= Created < before.
	CountEmergencyGrants(ctx context.Context, userID, patient string, since, before time.Time) (int, error)
	// ListEmergencyGrants returns one page of grants and whether more
	// follow it.
	ListEmergencyGrants(ctx context.Context, q EmergencyQuery) (grants []EmergencyGrant, more bool, err error)
}

// EmergencyWriter creates and closes grants inside a transaction, so that
// each commits with its ledger entry or not at all.
type EmergencyWriter interface {
	// CreateEmergencyGrant stores a new, unreviewed grant; ErrConflict on
	// a duplicate id. Reviewed, Reviewer, Outcome and Note are ignored.
	CreateEmergencyGrant(ctx context.Context, g EmergencyGrant) error
	// ReviewEmergencyGrant closes a grant once: it sets Reviewed, Reviewer,
	// Outcome and Note if the grant is still unreviewed, and returns the
	// grant as stored afterwards. ErrNotFound for an unknown id,
	// ErrConflict when it was reviewed already, by anyone in any process.
	// reviewed must not be zero.
	ReviewEmergencyGrant(ctx context.Context, id string, reviewed time.Time, reviewer, outcome string, note []byte) (EmergencyGrant, error)
}
