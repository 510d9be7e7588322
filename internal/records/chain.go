package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Chained parameters, _has, composite parameters and :of-type (catalogue A3). A chain must not be an
// oracle: a chain through a resource the caller may not see (another
// patient's compartment, a label the caller lacks, a Consent denial, a
// masked element) must match nothing, as if that resource did not exist,
// and no count or total may tell it apart. So each hop is a search of
// its own, run as the caller, with the caller's policy decision on its
// type, compartments, labels, Consents and masks (searchIDs): the inner
// search finds at most Config.MaxChainMatches resources the caller sees, and
// the outer search then matches references to exactly those (a chain)
// or the ids they refer to (_has). A hop that would find more is
// ErrInvalid ("too broad"), never a partial answer; the limit counts
// only what the caller sees, so it tells nothing of the rest. A hop on a
// type the caller may not search is ErrForbidden, as a search of that
// type is; a hop on a masked element is refused as guardQuery refuses
// it. Hops nest (search.Limits.MaxChain bounds them), each searched the
// same way.
//
// The search's one ledger entry names the patients of what the inner
// searches matched, besides those of the answer: a chain through a
// patient's record tells something of it.

// MaxChainMatches is the default of Config.MaxChainMatches: what one hop
// of a chained parameter or _has may match.
const MaxChainMatches = 1000

// chainBatch is the page size of an inner search.
const chainBatch = 500

// chainFilter is what a query's chains and _has add to its storage
// query.
type chainFilter struct {
	clauses []store.Clause
	ids     []string // _has: the searched type's ids, intersected; with hasIDs
	hasIDs  bool
	none    bool     // some chain matched nothing: the query matches nothing
	reached []string // compartments of what the inner searches matched
}

// resolveChains runs the inner searches of q's chains and _has as c.
// d is c's decision on q.Type; within, when not nil, is the patient
// compartment a compartment search is limited to, which also limits
// the candidates of its composites.
func (s *Service) resolveChains(ctx context.Context, c Caller, d policy.Decision, q *search.Query, depth int, within *string) (chainFilter, error) {
	var f chainFilter
	for _, ch := range q.Chains {
		if !s.paramClear(d, q.Type, ch.Param.Code) {
			return f, fmt.Errorf("%w: %s: search parameter %s reaches masked elements", ErrForbidden, q.Type, ch.Param.Code)
		}
		cl := store.Clause{Param: ch.Param.Code}
		for _, t := range ch.Targets {
			found, err := s.searchIDs(ctx, c, t, url.Values{ch.Key: {ch.Value}}, depth+1, false)
			if errors.Is(err, errTooBroad) {
				return f, s.tooBroad(ch.Param.Code + "." + ch.Key)
			}
			if err != nil {
				return f, err
			}
			for _, e := range found {
				cl.Any = append(cl.Any, store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: e.Type + "/" + e.ID})
				f.reached = append(f.reached, e.Compartment)
			}
			if len(cl.Any) > s.cfg.MaxChainMatches {
				return f, s.tooBroad(ch.Param.Code + "." + ch.Key)
			}
		}
		if len(cl.Any) == 0 {
			f.none = true
			continue
		}
		f.clauses = append(f.clauses, cl)
	}
	for _, h := range q.Has {
		dh, err := s.decide(c.Subject, policy.ActionSearch, h.Type)
		if err != nil {
			return f, err
		}
		if !s.paramClear(dh, h.Type, h.Param.Code) {
			return f, fmt.Errorf("%w: %s: search parameter %s reaches masked elements", ErrForbidden, h.Type, h.Param.Code)
		}
		found, err := s.searchIDs(ctx, c, h.Type, url.Values{h.Key: {h.Value}}, depth+1, true)
		if errors.Is(err, errTooBroad) {
			return f, s.tooBroad("_has:" + h.Type + ":" + h.Param.Code + ":" + h.Key)
		}
		if err != nil {
			return f, err
		}
		var ids []string
		for _, e := range found {
			refs, err := s.referencesOf(e, h.Param.Code)
			if err != nil {
				return f, err
			}
			for _, ref := range refs {
				if typ, id, ok := splitTypeID(ref); ok && typ == q.Type && !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			f.reached = append(f.reached, e.Compartment)
		}
		if f.hasIDs {
			ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(f.ids, id) })
		}
		f.ids, f.hasIDs = ids, true
	}
	for _, cp := range q.Composites {
		ids, reached, err := s.resolveComposite(ctx, c, d, q, cp, depth, within)
		if err != nil {
			return f, err
		}
		f.reached = append(f.reached, reached...)
		if f.hasIDs {
			ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(f.ids, id) })
		}
		f.ids, f.hasIDs = ids, true
	}
	if f.hasIDs && len(f.ids) == 0 {
		f.none = true
	}
	return f, nil
}

// resolveComposite answers one composite parameter, or :of-type, of q
// the way a chain's hop is answered (catalogue A3): its candidates are
// a search of q's type as c on the indexed components (search.Composite.
// Candidates) and q's own parameters, with c's decision, compartments,
// labels, Consents and masks, at most Config.MaxChainMatches of them
// (more is ErrInvalid, "too broad"); then the candidates in which one
// element pairs the components (search.Composite.Matches, on the bodies
// as c may see them) are the ids the outer search is limited to. A composite over
// masked elements is refused as guardQuery refuses its components.
// reached are the compartments of every candidate opened.
func (s *Service) resolveComposite(ctx context.Context, c Caller, d policy.Decision, q *search.Query, cp search.Composite, depth int, within *string) (ids, reached []string, err error) {
	if !s.paramClear(d, q.Type, cp.Param.Code) {
		return nil, nil, fmt.Errorf("%w: %s: search parameter %s reaches masked elements", ErrForbidden, q.Type, cp.Param.Code)
	}
	if depth+1 > maxChainDepth {
		return nil, nil, invalid("chained searches nest too deep")
	}
	// The candidates are the components' query narrowed by the outer
	// query's own parameters (subject, date, _id...) and compartment, so
	// that a composite within one record opens that record only.
	lim := s.cfg.Search
	lim.Lenient = false
	cand, err := s.params.ParseQuery(q.Type, cp.Candidates(), lim)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cand.Clauses = append(cand.Clauses, q.Clauses...)
	cand.LastUpdated = append(cand.LastUpdated, q.LastUpdated...)
	cand.IDs, cand.HasIDs = q.IDs, q.HasIDs
	found, err := s.queryIDs(ctx, c, d, cand, depth+1, true, within)
	if errors.Is(err, errTooBroad) {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, &search.QueryError{Param: cp.Key,
			Reason: fmt.Sprintf("composite too broad: its components select more than %d resources; narrow the search (subject, date)", s.cfg.MaxChainMatches)})
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range found {
		reached = append(reached, e.Compartment)
		res, err := fhir.Parse(e.Body, fhir.Limits{})
		if err != nil {
			return nil, nil, err
		}
		if cp.Matches(e.Type, res.Object) { // one current version per id: no duplicates
			ids = append(ids, e.ID)
		}
	}
	return ids, reached, nil
}

// apply adds the filter to a storage query. Call it after narrow, which
// it may narrow further (to nothing).
func (f chainFilter) apply(sq *store.Query) {
	sq.Clauses = append(sq.Clauses, f.clauses...)
	if f.hasIDs {
		if len(sq.IDs) > 0 {
			sq.IDs = slices.DeleteFunc(slices.Clone(sq.IDs), func(id string) bool { return !slices.Contains(f.ids, id) })
		} else {
			sq.IDs = slices.Clone(f.ids)
		}
		if len(sq.IDs) == 0 {
			f.none = true
		}
	}
	if f.none {
		sq.Compartments = []string{} // an empty list matches nothing
	}
}

// errTooBroad is searchIDs finding more than Config.MaxChainMatches; the
// caller names the chain (tooBroad).
var errTooBroad = errors.New("records: chain too broad")

// maxChainDepth backs search.Limits.MaxChain up: ParseQuery counts the
// hops of a whole key, so nesting never reaches it.
const maxChainDepth = 8

func (s *Service) tooBroad(what string) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &search.QueryError{Param: what,
		Reason: fmt.Sprintf("chain too broad: it matches more than %d resources; narrow it", s.cfg.MaxChainMatches)})
}

// searchIDs is one hop: the current resources of typ that params select
// and c sees, as a search by c would find them, at most
// Config.MaxChainMatches (more is errTooBroad). Bodies are opened only when the
// caller needs them (withBodies, for _has) or the labels of some may
// have to be read (versions stored before their class was kept).
func (s *Service) searchIDs(ctx context.Context, c Caller, typ string, params url.Values, depth int, withBodies bool) ([]Entry, error) {
	if depth > maxChainDepth {
		return nil, invalid("chained searches nest too deep")
	}
	d, err := s.decide(c.Subject, policy.ActionSearch, typ)
	if err != nil {
		return nil, err
	}
	lim := s.cfg.Search
	lim.Lenient = false // a dropped filter would widen the hop
	q, err := s.params.ParseQuery(typ, params, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return s.queryIDs(ctx, c, d, q, depth, withBodies, nil)
}

// queryIDs is searchIDs of a parsed query q, d being c's decision on
// its type, limited to the compartment within when it is not nil.
func (s *Service) queryIDs(ctx context.Context, c Caller, d policy.Decision, q *search.Query, depth int, withBodies bool, within *string) ([]Entry, error) {
	if err := s.guardQuery(d, q); err != nil {
		return nil, err
	}
	inner, err := s.resolveChains(ctx, c, d, q, depth, within)
	if err != nil {
		return nil, err
	}
	sq, err := s.storeQuery(q)
	if err != nil {
		return nil, err
	}
	sq.Offset, sq.Total, sq.Count = 0, false, chainBatch
	sq.Sort = []store.SortKey{{Param: "_id"}}
	narrow(d, &sq)
	if within != nil {
		sq.Compartment = within
	}
	inner.apply(&sq)
	labels, err := s.narrowLabels(ctx, c, d, &sq)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for {
		page, err := s.store.Search(ctx, sq)
		if err != nil {
			return nil, storeErr(err)
		}
		for _, row := range page.Resources {
			e := Entry{Type: row.Type, ID: row.ID, Version: row.Version, Compartment: row.Compartment}
			if withBodies || !labels.all {
				if e, err = s.open(ctx, d, row); err != nil {
					return nil, err
				}
				if !labels.admits(e) {
					continue
				}
			}
			if len(out) == s.cfg.MaxChainMatches {
				return nil, errTooBroad
			}
			out = append(out, e)
		}
		if !page.More || len(page.Resources) == 0 {
			return out, nil
		}
		sq.AfterID = page.Resources[len(page.Resources)-1].ID
	}
}
