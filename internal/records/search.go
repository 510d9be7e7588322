package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// SearchResult is one page of a search.
type SearchResult struct {
	Matches  []Entry
	Included []Entry
	Total    int
	HasTotal bool
	Offset   int
	Count    int
	More     bool

	// reached are the compartments of what its chains and _has matched
	// on the way (chain.go): its ledger entry names them too.
	reached []string
}

// Search runs a FHIR search on one resource type. Under a compartment
// obligation the storage query itself is narrowed to the compartment, so
// matches, totals and paging see nothing else.
//
// The search is recorded, naming the patient of everything it answers
// with, whatever its outcome.
func (s *Service) Search(ctx context.Context, c Caller, typ string, params url.Values) (SearchResult, error) {
	res, err := s.search(ctx, c, typ, params)
	return answer(res, s.account(ctx, c, err, access{action: "search", typ: typ, query: c.Query,
		criteria: askedPatients(typ, params), patients: append(compartments(res.Matches, res.Included), res.reached...), listed: true}))
}

// SearchCompartment is a compartment search, GET
// /fhir/Patient/{patient}/{typ}: Search, narrowed to what is sealed in
// the patient's compartment. typ must belong to the Patient compartment
// (ErrInvalid otherwise). Under a compartment obligation for another
// patient it matches nothing, as a search there would. Recorded as the
// search it is, naming the patient asked about when it fails.
func (s *Service) SearchCompartment(ctx context.Context, c Caller, patient, typ string, params url.Values) (SearchResult, error) {
	res, err := s.searchIn(ctx, c, &patient, typ, params)
	return answer(res, s.account(ctx, c, err, access{action: "search", typ: typ, query: c.Query, asked: patient,
		criteria: append(askedPatients(typ, params), patient), patients: append(compartments(res.Matches, res.Included), res.reached...), listed: true}))
}

// patientParams are the search parameters whose values name a patient:
// by id for patient, or by reference.
var patientParams = map[string]bool{"patient": true, "subject": true, "beneficiary": true, "individual": true}

// askedPatients returns the patient ids a search on typ names in its
// criteria (patient=, subject=Patient/x, Patient?_id=), so that its entry
// shows whom it was about even when the caller's reach emptied the answer
// (catalogue G2: snooping by search). Only values that are FHIR ids are
// taken; anything else a caller typed is not an id and is not recorded.
func askedPatients(typ string, params url.Values) []string {
	var out []string
	for name, values := range params {
		base, modifier, _ := strings.Cut(name, ":")
		if modifier != "" && modifier != "Patient" {
			continue
		}
		idOnly := typ == "Patient" && base == "_id"
		if !idOnly && !patientParams[base] {
			continue
		}
		for _, v := range values {
			for _, ref := range strings.Split(v, ",") {
				if !idOnly || strings.Contains(ref, "/") {
					i := strings.LastIndex(ref, "Patient/")
					if i < 0 && (base != "patient" && modifier == "" || strings.Contains(ref, "/")) {
						continue
					}
					if i >= 0 {
						ref = ref[i+len("Patient/"):]
					}
				}
				if fhir.ValidID(ref) {
					out = append(out, ref)
				}
			}
		}
	}
	return out
}

func (s *Service) search(ctx context.Context, c Caller, typ string, params url.Values) (SearchResult, error) {
	return s.searchIn(ctx, c, nil, typ, params)
}

// searchIn is search, limited to one patient's compartment when
// compartment is not nil.
func (s *Service) searchIn(ctx context.Context, c Caller, compartment *string, typ string, params url.Values) (SearchResult, error) {
	d, err := s.decide(c.Subject, policy.ActionSearch, typ)
	if err != nil {
		return SearchResult{}, err
	}
	if compartment != nil && !slices.Contains(fhir.PatientCompartmentTypes(), typ) {
		return SearchResult{}, invalid("%s is not in the Patient compartment", typ)
	}
	q, err := s.params.ParseQuery(typ, ownerParams(c, typ, params), s.cfg.Search)
	if err != nil {
		return SearchResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := s.guardQuery(d, q); err != nil {
		return SearchResult{}, err
	}
	view, err := viewOf(q)
	if err != nil {
		return SearchResult{}, err
	}
	chains, err := s.resolveChains(ctx, c, d, q, 0, compartment)
	if err != nil {
		return SearchResult{}, err
	}
	if q.Summary == "count" {
		// The count only: no resource is read, opened or served.
		q.Count, q.Total = 0, "accurate"
	}
	sq, err := s.storeQuery(q)
	if err != nil {
		return SearchResult{}, err
	}
	narrow(d, &sq)
	if compartment != nil {
		sq.Compartment = compartment
	}
	chains.apply(&sq)
	labels, err := s.narrowLabels(ctx, c, d, &sq)
	if err != nil {
		return SearchResult{}, err
	}
	page, err := s.store.Search(ctx, sq)
	if err != nil {
		return SearchResult{}, storeErr(err)
	}
	res := SearchResult{Total: page.Total, HasTotal: sq.Total, Offset: sq.Offset, Count: sq.Count, More: page.More, reached: chains.reached}
	res.Matches, err = s.openAll(ctx, d, page.Resources)
	if err != nil {
		return SearchResult{}, err
	}
	res.Matches = labels.keep(res.Matches)
	if res.Matches, err = s.subscriptionViews(ctx, c, res.Matches); err != nil {
		return SearchResult{}, err
	}
	if len(q.Include)+len(q.RevInclude) > 0 && len(res.Matches) > 0 {
		res.Included, err = s.includes(ctx, c, q, res.Matches)
		if err != nil {
			return SearchResult{}, err
		}
	}
	if err := view.apply(res.Matches, res.Included); err != nil {
		return SearchResult{}, err
	}
	return res, nil
}

// resultView is what _summary and _elements keep of a search's
// resources: _summary of every resource served, _elements of the
// matches (its names are the searched type's elements).
type resultView struct {
	summary, elements fhir.Subset
}

// viewOf reads a query's _summary and _elements; naming an element the
// type does not have is ErrInvalid, before anything is searched. R4
// gives _summary precedence when both are given.
func viewOf(q *search.Query) (resultView, error) {
	var v resultView
	if q.Summary != "count" {
		sum, ok := fhir.SummaryMode(q.Summary)
		if !ok {
			return v, invalid("_summary: unknown mode")
		}
		v.summary = sum
	}
	if q.Elements != "" && v.summary.Whole() && q.Summary != "count" {
		els, _, ok := fhir.ElementsOf(q.Type, q.Elements)
		if !ok {
			// The name is not echoed: it is the client's text.
			return v, fmt.Errorf("%w: %w", ErrInvalid, &search.QueryError{Param: "_elements", Reason: "names an element that is not at the root of " + q.Type})
		}
		v.elements = els
	}
	return v, nil
}

// apply reduces served entries to the view. It runs on bodies already
// masked (open), so it can only remove more: an element a role never
// sees does not come back through _elements or _summary (A7).
func (v resultView) apply(matches, included []Entry) error {
	for _, set := range []struct {
		entries []Entry
		view    fhir.Subset
	}{{matches, v.summary}, {matches, v.elements}, {included, v.summary}} {
		if set.view.Whole() {
			continue
		}
		for i := range set.entries {
			if set.entries[i].Body == nil {
				continue
			}
			body, err := set.view.Apply(set.entries[i].Body)
			if err != nil {
				return fmt.Errorf("records: subsetting a served body: %v", err) // a 500: the body was stored
			}
			set.entries[i].Body = body
		}
	}
	return nil
}

// openAll opens a page of rows. Each compartment's data key is looked up
// once for the page, so the erasure register is consulted once per
// patient the page holds, before any of that patient's rows is opened,
// not once per row (each check reads the key file's state).
func (s *Service) openAll(ctx context.Context, d policy.Decision, rows []store.Resource) ([]Entry, error) {
	out := make([]Entry, 0, len(rows))
	dks := map[string]*keys.DataKey{}
	dataKey := func(ctx context.Context, compartment string) (*keys.DataKey, error) {
		if dk, ok := dks[compartment]; ok {
			return dk, nil
		}
		dk, err := s.keyring.DataKey(ctx, compartment)
		if err != nil {
			return nil, err
		}
		dks[compartment] = dk
		return dk, nil
	}
	for _, row := range rows {
		e, err := s.openWith(ctx, d, row, dataKey)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// match returns the current resources of typ that a conditional
// interaction's criteria (a query string) select, at most limit+1 of them,
// among those d covers and c may see.
func (s *Service) match(ctx context.Context, c Caller, d policy.Decision, typ, criteria string, limit int) ([]store.Resource, error) {
	params, err := search.ParseParams(strings.TrimPrefix(criteria, "?"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(params) == 0 {
		return nil, invalid("conditional criteria are empty")
	}
	q, err := s.params.ParseQuery(typ, ownerParams(c, typ, params), s.cfg.Search)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := s.guardQuery(d, q); err != nil {
		return nil, err
	}
	if len(q.Chains)+len(q.Has)+len(q.Composites) > 0 {
		return nil, invalid("conditional criteria cannot hold chained parameters, _has, composite parameters or :of-type")
	}
	sq, err := s.storeQuery(q)
	if err != nil {
		return nil, err
	}
	sq.Offset, sq.Count, sq.Total = 0, limit+1, false
	narrow(d, &sq)
	if _, err := s.narrowLabels(ctx, c, d, &sq); err != nil {
		return nil, err
	}
	page, err := s.store.Search(ctx, sq)
	if err != nil {
		return nil, storeErr(err)
	}
	return page.Resources, nil
}

// storeQuery translates a parsed FHIR query into a storage query.
// Blind parameters are matched through their blind indexes, which
// support equality only; anything else on them is refused, not guessed.
func (s *Service) storeQuery(q *search.Query) (store.Query, error) {
	sq := store.Query{Type: q.Type, IDs: q.IDs, Offset: q.Offset, Count: q.Count, Total: q.Total != "none"}
	if q.HasIDs && len(q.IDs) == 0 {
		// Repeated _id parameters with no id in common match nothing; ""
		// is not a valid id, so no resource has it.
		sq.IDs = []string{""}
	}
	for _, c := range q.LastUpdated {
		p, err := rangePred(store.KindDate, c)
		if err != nil {
			return sq, invalid("_lastUpdated: %v", err)
		}
		sq.Updated = append(sq.Updated, p)
	}
	for _, cl := range q.Clauses {
		out := store.Clause{Param: cl.Param.Code}
		for _, c := range cl.Any {
			preds, err := s.predicates(q.Type, cl, c)
			if err != nil {
				return sq, invalid("%s: %v", cl.Param.Code, err)
			}
			out.Any = append(out.Any, preds...)
		}
		sq.Clauses = append(sq.Clauses, out)
	}
	for _, so := range q.Sort {
		key := store.SortKey{Param: so.Param, Desc: so.Desc}
		if p, ok := s.params.Param(q.Type, so.Param); ok && !strings.HasPrefix(so.Param, "_") {
			if p.Blind {
				return sq, invalid("_sort: %s is blind-indexed and cannot order results", so.Param)
			}
			key.Kind = kindOf(p.Type)
		}
		sq.Sort = append(sq.Sort, key)
	}
	return sq, nil
}

func kindOf(t search.Type) store.IndexKind {
	switch t {
	case search.TypeString:
		return store.KindString
	case search.TypeToken:
		return store.KindToken
	case search.TypeDate:
		return store.KindDate
	case search.TypeNumber:
		return store.KindNumber
	case search.TypeQuantity:
		return store.KindQuantity
	case search.TypeReference:
		return store.KindReference
	case search.TypeURI:
		return store.KindURI
	}
	return 0
}

var errBlindOnly = errors.New("blind-indexed parameter: only exact matches are supported")

// errBlindSystem refuses "system|" on a blind-indexed token: a hash of a
// system alone, shared by many, would group people for whoever holds the
// database, so none is stored.
var errBlindSystem = errors.New("blind-indexed parameter: a search by system alone is not answered (the system is not indexed on its own, so that equal values do not group people in the database); search by system|value")

// predicates translates one search value into the storage predicates any
// of which must match.
func (s *Service) predicates(typ string, cl search.Clause, c search.Cond) ([]store.Predicate, error) {
	p := cl.Param
	if c.Missing != nil {
		return []store.Predicate{{Op: store.OpMissing, Missing: *c.Missing}}, nil
	}
	if p.Blind {
		forms, err := blindQueryForms(p, cl.Modifier, c)
		if err != nil {
			return nil, err
		}
		// While a key rotation re-indexes, a value's row may be under
		// any live key generation: one predicate names every hash, so
		// that :not excludes a resource that has the value under any.
		out := make([]store.Predicate, 0, len(forms))
		for _, f := range forms {
			sums := s.blind.Sums(typ, p.Code, f)
			out = append(out, store.Predicate{Kind: store.KindBlind, Op: store.OpEq, Value: sums[0], Alt: sums[1:], Not: c.Not})
		}
		return out, nil
	}
	switch p.Type {
	case search.TypeString:
		switch cl.Modifier {
		case "":
			return []store.Predicate{{Kind: store.KindString, Op: store.OpPrefix, Value: c.Text}}, nil
		case "contains":
			return []store.Predicate{{Kind: store.KindString, Op: store.OpContains, Value: c.Text}}, nil
		case "exact":
			return []store.Predicate{{Kind: store.KindString, Op: store.OpEq, Value: search.NormalizeString(c.Exact), HasSystem: true, System: c.Exact}}, nil
		}
	case search.TypeToken:
		if cl.Modifier != "" && cl.Modifier != "not" {
			break
		}
		if c.HasSystem && c.Code == "" {
			// "system|": any code of that system.
			return []store.Predicate{{Kind: store.KindToken, Op: store.OpSystem, HasSystem: true, System: c.System, Not: c.Not}}, nil
		}
		return []store.Predicate{{Kind: store.KindToken, Op: store.OpEq, HasSystem: c.HasSystem, System: c.System, Value: c.Code, Not: c.Not}}, nil
	case search.TypeReference:
		if cl.Modifier != "" && !fhir.IsResourceType(cl.Modifier) {
			break
		}
		return referencePreds(p, c), nil
	case search.TypeURI:
		if cl.Modifier != "" {
			break
		}
		return []store.Predicate{{Kind: store.KindURI, Op: store.OpEq, Value: c.Text}}, nil
	case search.TypeDate, search.TypeNumber:
		pr, err := rangePred(kindOf(p.Type), c)
		if err != nil {
			return nil, err
		}
		return []store.Predicate{pr}, nil
	case search.TypeQuantity:
		pr, err := rangePred(store.KindQuantity, c)
		if err != nil {
			return nil, err
		}
		if c.Code != "" {
			pr.Value = c.Code
			pr.HasSystem, pr.System = c.HasSystem, c.System
		}
		return []store.Predicate{pr}, nil
	}
	return nil, fmt.Errorf("modifier %q is not supported", cl.Modifier)
}

// referencePreds matches a reference given as "Type/id", or as a bare id
// against each type the parameter's values may have (Param.IDTargets).
func referencePreds(p *search.Param, c search.Cond) []store.Predicate {
	if strings.Contains(c.Text, "/") || c.RefType != "" {
		v := c.Text
		if c.RefType != "" && !strings.Contains(v, "/") {
			v = c.RefType + "/" + v
		}
		return []store.Predicate{{Kind: store.KindReference, Op: store.OpEq, Value: v}}
	}
	targets := p.IDTargets()
	out := make([]store.Predicate, 0, len(targets))
	for _, t := range targets {
		out = append(out, store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: t + "/" + c.Text})
	}
	return out
}

var cmps = map[string]store.Cmp{
	"": store.CmpEq, "eq": store.CmpEq, "ne": store.CmpNe, "gt": store.CmpGt, "lt": store.CmpLt,
	"ge": store.CmpGe, "le": store.CmpLe, "sa": store.CmpSa, "eb": store.CmpEb, "ap": store.CmpAp,
}

func rangePred(kind store.IndexKind, c search.Cond) (store.Predicate, error) {
	cmp, ok := cmps[c.Prefix]
	if !ok {
		return store.Predicate{}, fmt.Errorf("prefix %q is not supported", c.Prefix)
	}
	lo, hi := c.Lo, c.Hi
	if cmp == store.CmpAp { // approximately: widen by 10% of the value's magnitude
		w := 0.1 * max(abs(lo), abs(hi))
		if kind == store.KindDate {
			w = 0.1 * (hi - lo)
		}
		lo, hi = lo-w, hi+w
	}
	return store.Predicate{Kind: kind, Op: store.OpRange, Cmp: cmp, Lo: lo, Hi: hi, Not: c.Not}, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// blindQueryForms lists the blind-indexed forms a query value may match.
func blindQueryForms(p *search.Param, modifier string, c search.Cond) ([]string, error) {
	switch p.Type {
	case search.TypeString:
		switch modifier {
		case "":
			if strings.ContainsRune(c.Text, ' ') {
				return []string{blindFull + c.Text}, nil
			}
			return []string{blindWord + c.Text}, nil
		case "exact":
			return []string{blindExact + c.Exact}, nil
		}
	case search.TypeToken:
		if modifier != "" && modifier != "not" {
			break
		}
		switch {
		case c.HasSystem && c.Code == "":
			return nil, errBlindSystem
		case c.HasSystem:
			return []string{blindSys + c.System + "|" + c.Code}, nil
		}
		return []string{blindCode + c.Code}, nil
	case search.TypeDate:
		if c.Prefix != "" && c.Prefix != "eq" {
			return nil, errBlindOnly
		}
		d, ok := dateForm(c.Lo, c.Hi)
		if !ok {
			return nil, errBlindOnly
		}
		return []string{blindDate + d}, nil
	default:
		if modifier != "" {
			break
		}
		if c.Text != "" {
			return []string{blindOther + c.Text}, nil
		}
		return []string{blindOther + c.System + "|" + c.Code}, nil
	}
	return nil, errBlindOnly
}
