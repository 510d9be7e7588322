package store

import (
	"context"
	"time"
)

// SignatureRow records that a Provenance holds an electronic signature of
// one version of a resource, and the ledger entry of the signing: ids and
// a position only, no PHI. It lets a resource's signatures be listed
// without decrypting every Provenance, and an update of a signed resource
// be told apart from one of an unsigned resource.
type SignatureRow struct {
	Type, ID    string // the signed resource
	Version     int64  // the signed version
	Provenance  string // the id of the Provenance that holds the signature
	Signer      string // the user id of the signer
	LedgerIndex int64  // the index of the signing's ledger entry
	Signed      time.Time
}

// SignChallenge is one signing ceremony in progress: the single-use nonce
// (a hash of it: the nonce itself is never stored) that the signer must
// send back, bound to the user, the exact version and the meaning.
type SignChallenge struct {
	Nonce   string // hash of the nonce
	UserID  string
	Target  string // "Type/id/_history/N"
	Meaning string
	Expires time.Time
}

// Signatures reads signature rows and runs signing ceremonies' nonces.
type Signatures interface {
	// Signatures returns the signature rows of a resource, every version,
	// oldest first (by version, then signing time).
	Signatures(ctx context.Context, typ, id string) ([]SignatureRow, error)
	// CreateSignChallenge stores a ceremony's nonce; ErrConflict on a
	// duplicate nonce.
	CreateSignChallenge(ctx context.Context, c SignChallenge) error
	// UseSignChallenge consumes the nonce whose hash is c.Nonce if it is
	// stored for exactly c's user, target and meaning and has not expired
	// at now: once, whichever process asks (ErrNotFound for any other
	// case, a second use included). Expired nonces are deleted too.
	UseSignChallenge(ctx context.Context, c SignChallenge, now time.Time) error
}

// SignatureWriter records a signature in the transaction that writes its
// Provenance and its ledger entry.
type SignatureWriter interface {
	// PutSignature stores a signature row; ErrConflict when the
	// Provenance already has one.
	PutSignature(ctx context.Context, s SignatureRow) error
}
