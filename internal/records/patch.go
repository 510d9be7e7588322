package records

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
)

// Patcher changes a resource as a PATCH asks (fhir.JSONPatch is one). It
// returns a changed copy and leaves its argument alone.
type Patcher interface {
	Apply(r *fhir.Resource) (*fhir.Resource, error)
}

// Patch applies p to the current version of typ/id as the caller reads it
// and stores the result as an update of that version: it is validated,
// its server-controlled elements (meta.versionId, meta.lastUpdated) are
// set by Ward, its security labels change only for a caller who may
// relabel, elements masked from the caller are kept as stored, and a
// compartment obligation is kept exactly as for an update (a patch that
// points the resource at another patient is ErrForbidden, nothing
// written). A patch cannot change the resource's type or id (ErrInvalid)
// and cannot create: an unknown id, or one the caller may not read, is
// ErrNotFound, a deleted one ErrGone.
//
// ifMatch, when non-zero, is the version the caller expects to patch
// (ErrPrecondition otherwise); without it a patch that loses a race to
// another writer is applied again to the newer version. A JSON Patch test
// operation that fails is ErrPrecondition too.
//
// The caller needs both read (a patch reads what it changes, and its test
// operations can tell values apart) and update. Its entry, action
// "patch", commits with the write; a patch that fails is recorded with
// its outcome.
func (s *Service) Patch(ctx context.Context, c Caller, typ, id string, p Patcher, ifMatch int64) (Entry, error) {
	e, err := s.patch(ctx, c, typ, id, p, ifMatch)
	return answer(e, s.failed(ctx, c, err, access{action: "patch", typ: typ, id: id}))
}

func (s *Service) patch(ctx context.Context, c Caller, typ, id string, p Patcher, ifMatch int64) (Entry, error) {
	d, err := s.decide(c.Subject, policy.ActionUpdate, typ)
	if err != nil {
		return Entry{}, err
	}
	for attempt := 0; ; attempt++ {
		op, err := s.patchOp(ctx, c, d, typ, id, p, ifMatch)
		if err != nil {
			return Entry{}, err
		}
		err = s.commit(ctx, c, []*writeOp{op})
		if errors.Is(err, ErrPrecondition) && ifMatch == 0 && attempt < s.cfg.WriteRetries {
			continue // another writer came in between: patch its version
		}
		if err != nil {
			return Entry{}, err
		}
		return op.entry, nil
	}
}

// patchOp reads the current version as the caller sees it, applies p and
// returns the update of exactly that version.
func (s *Service) patchOp(ctx context.Context, c Caller, d policy.Decision, typ, id string, p Patcher, ifMatch int64) (*writeOp, error) {
	cur, err := s.read(ctx, c, typ, id)
	if err != nil {
		return nil, err
	}
	if ifMatch != 0 && cur.Version != ifMatch {
		return nil, fmt.Errorf("%w: version %d is not current", ErrPrecondition, ifMatch)
	}
	res, err := fhir.Parse(cur.Body, fhir.Limits{MaxBytes: len(cur.Body) + 1})
	if err != nil {
		return nil, fmt.Errorf("records: patch: reading the current version: %w", err)
	}
	patched, err := p.Apply(res)
	var failed *fhir.PatchTestFailed
	switch {
	case errors.As(err, &failed):
		return nil, fmt.Errorf("%w: %w", ErrPrecondition, err)
	case err != nil:
		return nil, err
	case patched.Type != typ:
		return nil, invalid("a patch cannot change resourceType")
	case patched.ID != id:
		return nil, invalid("a patch cannot change the id")
	}
	return &writeOp{typ: typ, id: id, res: patched, expect: cur.Version, within: d, action: "patch"}, nil
}

// PatchWhere is a conditional patch (PATCH /fhir/{type}?criteria): the
// one resource the criteria match, as the caller's search sees them, is
// patched as Patch would; no match is ErrNotFound, several are
// ErrPrecondition. A caller that may not update typ is refused before
// the criteria are matched. Its entry commits with its write; a failure
// is recorded with its outcome.
func (s *Service) PatchWhere(ctx context.Context, c Caller, typ, criteria string, p Patcher, ifMatch int64) (Entry, error) {
	e, err := s.patchWhere(ctx, c, typ, criteria, p, ifMatch)
	return answer(e, s.failed(ctx, c, err, access{action: "patch", typ: typ}))
}

func (s *Service) patchWhere(ctx context.Context, c Caller, typ, criteria string, p Patcher, ifMatch int64) (Entry, error) {
	if _, err := s.decide(c.Subject, policy.ActionUpdate, typ); err != nil {
		return Entry{}, err
	}
	id, err := s.matchOne(ctx, c, typ, criteria)
	if err != nil {
		return Entry{}, err
	}
	if id == "" {
		return Entry{}, fmt.Errorf("%w: the criteria match no resource", ErrNotFound)
	}
	return s.patch(ctx, c, typ, id, p, ifMatch)
}

// ParseFHIRPathPatch reads a FHIRPath Patch body (a Parameters resource)
// with the spec model the service validates against, bounded by lim and
// to fhir.DefaultMaxPatchOps operations. Errors are *fhir.Error.
func (s *Service) ParseFHIRPathPatch(body []byte, lim fhir.Limits) (*fhir.FHIRPathPatch, error) {
	return s.validator.ParseFHIRPathPatch(body, lim, 0)
}
