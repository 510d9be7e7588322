package records

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
)

// conditionalRef splits a conditional reference, "Type?criteria" (R4
// http.html#trules), such as the "Practitioner?identifier=http://hl7.org/
// fhir/sid/us-npi|9999999999" with which Synthea and most EHR feeds point
// at practitioners and organisations.
func conditionalRef(v string) (typ, criteria string, ok bool) {
	typ, criteria, ok = strings.Cut(v, "?")
	return typ, criteria, ok && criteria != "" && fhir.IsResourceType(typ)
}

// resolveConditionalRefs replaces each conditional reference in res with
// the literal reference of the one resource its criteria match, as R4
// says: a reference that matches nothing, or more than one resource,
// fails the write (ErrPrecondition), and so the whole transaction it is
// in. The match is a search by the caller: a caller who may not search
// the type is refused (ErrForbidden), and the match sees only what the
// caller's search would (compartment, labels, consent). Errors name the
// element, never the criteria's values.
func (s *Service) resolveConditionalRefs(ctx context.Context, c Caller, res *fhir.Resource) error {
	for _, r := range res.References() {
		typ, criteria, ok := conditionalRef(r.Value())
		if !ok {
			continue
		}
		d, err := s.decide(c.Subject, policy.ActionSearch, typ)
		if err != nil {
			return fmt.Errorf("%w: %s: resolving a conditional reference to %s needs search on it", ErrForbidden, r.Path(), typ)
		}
		found, err := s.match(ctx, c, d, typ, criteria, 1)
		if err != nil {
			return fmt.Errorf("%s: conditional reference: %w", r.Path(), err)
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("%w: %s: the conditional reference to %s matches no resource", ErrPrecondition, r.Path(), typ)
		case 1:
			r.Set(typ + "/" + found[0].ID)
		default:
			return fmt.Errorf("%w: %s: the conditional reference to %s matches more than one resource", ErrPrecondition, r.Path(), typ)
		}
	}
	return nil
}
