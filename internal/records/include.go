package records

import (
	"context"
	"errors"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// maxIterate bounds the rounds of _include:iterate and
// _revinclude:iterate after the first: each round follows the
// iterating includes from what the round before added.
const maxIterate = 3

// includes resolves _include and _revinclude for a page of matches. Each
// included resource passes the same policy decision, and the same
// compartment obligation, as a direct read or search would; what the
// caller may not see is left out silently, as if it did not exist. At most
// MaxIncludes resources are added. An :iterate include is followed from
// the matches and then from what each round added, for at most
// maxIterate more rounds, each resource once.
func (s *Service) includes(ctx context.Context, c Caller, q *search.Query, matches []Entry) ([]Entry, error) {
	seen := make(map[string]bool, len(matches))
	for _, m := range matches {
		seen[m.Type+"/"+m.ID] = true
	}
	var out []Entry
	sources := matches
	for round := 0; round <= maxIterate && len(sources) > 0 && len(out) < s.cfg.MaxIncludes; round++ {
		before := len(out)
		var err error
		if out, err = s.includeRound(ctx, c, q, sources, round == 0, seen, out); err != nil {
			return nil, err
		}
		sources = out[before:]
	}
	return out, nil
}

// includeRound adds to out what q's includes reach from sources: all of
// them in the first round, the iterating ones after.
func (s *Service) includeRound(ctx context.Context, c Caller, q *search.Query, sources []Entry, first bool, seen map[string]bool, out []Entry) ([]Entry, error) {
	full := func() bool { return len(out) >= s.cfg.MaxIncludes }

	for _, inc := range q.Include {
		if !inc.Iterate && (!first || inc.SourceType != q.Type) {
			continue
		}
		for _, m := range sources {
			if m.Type != inc.SourceType || m.Body == nil {
				continue
			}
			refs, err := s.referencesOf(m, inc.Param)
			if err != nil {
				return nil, err
			}
			for _, ref := range refs {
				typ, id, ok := splitTypeID(ref)
				if !ok || seen[ref] || (inc.TargetType != "" && typ != inc.TargetType) {
					continue
				}
				if full() {
					return out, nil
				}
				seen[ref] = true
				e, err := s.read(ctx, c, typ, id)
				switch {
				case err == nil:
					out = append(out, e)
				case errors.Is(err, ErrNotFound), errors.Is(err, ErrGone), errors.Is(err, ErrForbidden):
				default:
					return nil, err
				}
			}
		}
	}

	for _, inc := range q.RevInclude {
		if !inc.Iterate && !first {
			continue
		}
		d, err := s.decide(c.Subject, policy.ActionSearch, inc.SourceType)
		if err != nil || !s.paramClear(d, inc.SourceType, inc.Param) {
			continue
		}
		cl := store.Clause{Param: inc.Param}
		for _, m := range sources {
			if inc.TargetType != "" && inc.TargetType != m.Type {
				continue
			}
			cl.Any = append(cl.Any, store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: m.Type + "/" + m.ID})
		}
		if len(cl.Any) == 0 || full() {
			continue
		}
		sq := store.Query{Type: inc.SourceType, Clauses: []store.Clause{cl}, Count: s.cfg.MaxIncludes - len(out)}
		narrow(d, &sq)
		labels, err := s.narrowLabels(ctx, c, d, &sq)
		if err != nil {
			return nil, err
		}
		page, err := s.store.Search(ctx, sq)
		if err != nil {
			return nil, storeErr(err)
		}
		for _, row := range page.Resources {
			key := row.Type + "/" + row.ID
			if seen[key] {
				continue
			}
			seen[key] = true
			e, err := s.open(ctx, d, row)
			if err != nil {
				return nil, err
			}
			if !labels.admits(e) {
				continue
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// referencesOf lists the "Type/id" references a resource holds through one
// reference search parameter.
func (s *Service) referencesOf(e Entry, param string) ([]string, error) {
	res, err := fhir.Parse(e.Body, fhir.Limits{})
	if err != nil {
		return nil, err
	}
	values, err := s.params.Extract(e.Type, res.Object)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, v := range values {
		if v.Param == param && v.Type == search.TypeReference {
			refs = append(refs, v.Text)
		}
	}
	return refs, nil
}
