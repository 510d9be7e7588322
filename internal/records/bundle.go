package records

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/policy"
)

// EntryResult is the outcome of one Bundle entry. Status is an HTTP status
// code; for a failed batch entry Err says why (package api renders it).
type EntryResult struct {
	Status int
	Wrote  bool  // a write (or a deletion of nothing) whose ledger entry committed with it
	Entry  Entry // the written or read version; zero for a search or failure
	Search *SearchResult
	Err    error
}

// CreateIfNoneExist creates res unless criteria (a query string such as
// "identifier=http://x|1") match an existing resource: one match is
// returned instead (created false), several are ErrPrecondition. A caller
// that may not create is refused before the criteria are matched. A
// create commits its entry with it; a match, which wrote nothing, is
// recorded as the read it is, and a failure with its outcome.
func (s *Service) CreateIfNoneExist(ctx context.Context, c Caller, res *fhir.Resource, criteria string, opts ...WriteOption) (Entry, bool, error) {
	e, created, err := s.createIfNoneExist(ctx, c, res, criteria, optionsOf(opts))
	if created {
		return e, true, nil
	}
	if err := s.account(ctx, c, err, access{action: "create", typ: res.Type, version: versionOf(e), patient: e.Compartment}); err != nil {
		return Entry{}, false, err
	}
	return e, false, nil
}

func (s *Service) createIfNoneExist(ctx context.Context, c Caller, res *fhir.Resource, criteria string, o writeOptions) (Entry, bool, error) {
	if _, err := s.decide(c.Subject, policy.ActionCreate, res.Type); err != nil {
		return Entry{}, false, err
	}
	d, err := s.decide(c.Subject, policy.ActionSearch, res.Type)
	if err != nil {
		return Entry{}, false, err
	}
	found, err := s.match(ctx, c, d, res.Type, criteria, 1)
	if err != nil {
		return Entry{}, false, err
	}
	switch len(found) {
	case 0:
		e, err := s.create(ctx, c, res, o)
		return e, err == nil, err
	case 1:
		e, err := s.open(ctx, d, found[0])
		return e, false, err
	}
	return Entry{}, false, fmt.Errorf("%w: criteria match more than one resource", ErrPrecondition)
}

// UpdateWhere is a conditional update: criteria select the resource to
// replace. No match creates (under res's id when it has one), one match is
// updated, several are ErrPrecondition. A caller that may not update typ
// is refused before the criteria are matched, so that what matches (412
// or not) tells it nothing. Its entry commits with its write; a failure
// is recorded with its outcome.
func (s *Service) UpdateWhere(ctx context.Context, c Caller, typ, criteria string, res *fhir.Resource, opts ...WriteOption) (Entry, bool, error) {
	e, created, err := s.updateWhere(ctx, c, typ, criteria, res, optionsOf(opts))
	if err := s.failed(ctx, c, err, access{action: "update", typ: typ}); err != nil {
		return Entry{}, false, err
	}
	return e, created, nil
}

func (s *Service) updateWhere(ctx context.Context, c Caller, typ, criteria string, res *fhir.Resource, o writeOptions) (Entry, bool, error) {
	if _, err := s.decide(c.Subject, policy.ActionUpdate, typ); err != nil {
		return Entry{}, false, err
	}
	d, err := s.decide(c.Subject, policy.ActionSearch, typ)
	if err != nil {
		return Entry{}, false, err
	}
	found, err := s.match(ctx, c, d, typ, criteria, 1)
	if err != nil {
		return Entry{}, false, err
	}
	switch len(found) {
	case 0:
		if res.ID == "" {
			e, err := s.create(ctx, c, res, o)
			return e, err == nil, err
		}
		return s.update(ctx, c, typ, res.ID, res, 0, o)
	case 1:
		if res.ID != "" && res.ID != found[0].ID {
			return Entry{}, false, invalid("resource id does not match the resource the criteria select")
		}
		res.SetID(found[0].ID)
		return s.update(ctx, c, typ, found[0].ID, res, 0, o)
	}
	return Entry{}, false, fmt.Errorf("%w: criteria match more than one resource", ErrPrecondition)
}

// bundleEntry is a parsed request entry of a transaction or batch.
type bundleEntry struct {
	index    int
	method   string
	typ, id  string
	query    string // conditional criteria or search parameters
	ifMatch  int64
	entry    fhir.Entry
	op       *writeOp
	existing *Entry  // conditional create that matched
	patch    Patcher // a PATCH entry's patch
	fresh    bool    // a conditional update that matched nothing got a new server-assigned id
}

// methodOrder is FHIR's processing order for transactions.
var methodOrder = map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 2, http.MethodGet: 3, http.MethodHead: 3}

func (s *Service) parseEntry(i int, e fhir.Entry) (*bundleEntry, error) {
	if e.Request == nil {
		return nil, invalid("Bundle.entry[%d].request is required", i)
	}
	be := &bundleEntry{index: i, method: strings.ToUpper(e.Request.Method), entry: e}
	if _, ok := methodOrder[be.method]; !ok {
		return nil, invalid("Bundle.entry[%d].request.method %q is not supported", i, e.Request.Method)
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(e.Request.URL, "/"), "?")
	be.query = query
	parts := strings.Split(path, "/")
	if !fhir.IsResourceType(parts[0]) {
		return nil, invalid("Bundle.entry[%d].request.url does not name a resource type", i)
	}
	be.typ = parts[0]
	switch {
	case len(parts) == 2 && fhir.ValidID(parts[1]):
		be.id = parts[1]
	case len(parts) != 1:
		return nil, invalid("Bundle.entry[%d].request.url is not supported", i)
	}
	if e.Request.IfMatch != "" {
		v, err := ParseETag(e.Request.IfMatch)
		if err != nil {
			return nil, invalid("Bundle.entry[%d].request.ifMatch: %v", i, err)
		}
		be.ifMatch = v
	}
	needsResource := be.method == http.MethodPost || be.method == http.MethodPut || be.method == http.MethodPatch
	if needsResource != (e.Resource != nil) {
		return nil, invalid("Bundle.entry[%d]: resource must be present exactly for POST, PUT and PATCH", i)
	}
	if be.method == http.MethodPatch {
		if be.id == "" && be.query == "" {
			return nil, invalid("Bundle.entry[%d].request.url needs an id or search criteria", i)
		}
		p, err := s.entryPatch(e.Resource)
		var fe *fhir.Error
		switch {
		case errors.As(err, &fe):
			return nil, inEntry(i, fe)
		case err != nil:
			return nil, invalid("Bundle.entry[%d].resource: %v", i, err)
		}
		be.patch = p
		return be, nil
	}
	if needsResource && e.Resource.Type != be.typ {
		return nil, invalid("Bundle.entry[%d].resource type does not match the request url", i)
	}
	return be, nil
}

// inEntry is fe with each issue saying that it is about entry i of a
// Bundle: which operation of which entry's patch failed.
func inEntry(i int, fe *fhir.Error) *fhir.Error {
	out := &fhir.Error{Issues: slices.Clone(fe.Issues)}
	for j := range out.Issues {
		out.Issues[j].Diagnostics = "Bundle.entry[" + strconv.Itoa(i) + "]: " + out.Issues[j].Diagnostics
	}
	return out
}

// jsonPatchType is the contentType of a Binary holding a JSON Patch.
const jsonPatchType = "application/json-patch+json"

// entryPatch reads the patch of a PATCH entry, as FHIR R4 carries it in a
// Bundle: a Binary whose contentType is application/json-patch+json and
// whose data is the JSON Patch, or a Parameters resource that is a
// FHIRPath Patch. Both are bounded as a PATCH body is.
func (s *Service) entryPatch(r *fhir.Resource) (Patcher, error) {
	switch r.Type {
	case "Parameters":
		return s.validator.ParseFHIRPathPatch(r.Marshal(), fhir.Limits{}, 0)
	case "Binary":
		ct, _ := r.Object["contentType"].(string)
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != jsonPatchType {
			return nil, errors.New("a Binary patch must have contentType " + jsonPatchType)
		}
		data, _ := r.Object["data"].(string)
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil || data == "" {
			return nil, errors.New("a Binary patch needs its JSON Patch as base64 data")
		}
		return fhir.ParseJSONPatch(raw, fhir.Limits{}, 0)
	}
	return nil, errors.New("a PATCH entry's resource is a Binary holding a JSON Patch or a Parameters holding a FHIRPath Patch")
}

// Transaction processes a transaction Bundle atomically: every write
// commits in one storage transaction or none does. urn:uuid and other
// fullUrl references between entries are rewritten to the assigned ids.
// Results are in entry order.
//
// Each write's entry commits with the transaction; each read and search
// is recorded as one entry of its own, and the transaction by one more
// when it wrote nothing. A transaction that fails is recorded with its
// outcome.
func (s *Service) Transaction(ctx context.Context, c Caller, b *fhir.Bundle) ([]EntryResult, error) {
	results, err := s.transaction(ctx, c, b)
	if err != nil {
		return nil, s.account(ctx, c, err, access{action: "transaction"})
	}
	return answer(results, s.recordBundle(ctx, c, b, results, !wroteAny(results)))
}

func (s *Service) transaction(ctx context.Context, c Caller, b *fhir.Bundle) ([]EntryResult, error) {
	if len(b.Entries) > s.cfg.MaxBundleEntries {
		return nil, fmt.Errorf("%w: a bundle may hold at most %d entries", ErrTooCostly, s.cfg.MaxBundleEntries)
	}
	entries := make([]*bundleEntry, len(b.Entries))
	for i, e := range b.Entries {
		be, err := s.parseEntry(i, e)
		if err != nil {
			return nil, err
		}
		entries[i] = be
	}
	if err := s.resolveTransaction(ctx, c, entries); err != nil {
		return nil, err
	}
	var ops []*writeOp
	for _, be := range sortedByMethod(entries) {
		if be.op != nil {
			ops = append(ops, be.op)
		}
	}
	if err := s.commit(ctx, c, ops); err != nil {
		return nil, err
	}
	results := make([]EntryResult, len(entries))
	for _, be := range entries {
		results[be.index] = s.entryResult(ctx, c, be)
		if be.method == http.MethodGet && results[be.index].Err != nil {
			return nil, results[be.index].Err
		}
	}
	return results, nil
}

// resolveTransaction assigns ids, settles conditional entries, rewrites
// references between entries and checks policy for every entry.
func (s *Service) resolveTransaction(ctx context.Context, c Caller, entries []*bundleEntry) error {
	ids := make(map[string]string) // fullUrl -> Type/id
	targets := make(map[string]bool)
	for _, be := range sortedByMethod(entries) {
		switch be.method {
		case http.MethodPost:
			d, err := s.decide(c.Subject, policy.ActionCreate, be.typ)
			if err != nil {
				return err
			}
			if be.entry.Request.IfNoneExist != "" {
				// As CreateIfNoneExist: a match is returned, so matching
				// is a search, and it sees only what the search grant does.
				ds, err := s.decide(c.Subject, policy.ActionSearch, be.typ)
				if err != nil {
					return err
				}
				found, err := s.match(ctx, c, ds, be.typ, be.entry.Request.IfNoneExist, 1)
				if err != nil {
					return err
				}
				if len(found) > 1 {
					return fmt.Errorf("%w: Bundle.entry[%d] ifNoneExist matches more than one resource", ErrPrecondition, be.index)
				}
				if len(found) == 1 {
					e, err := s.open(ctx, ds, found[0])
					if err != nil {
						return err
					}
					be.existing, be.id = &e, e.ID
				}
			}
			if be.existing == nil {
				be.id = newID()
				be.op = &writeOp{typ: be.typ, id: be.id, res: be.entry.Resource, mustNew: true, within: d}
			}
		case http.MethodPut:
			d, err := s.decide(c.Subject, policy.ActionUpdate, be.typ)
			if err != nil {
				return err
			}
			if be.id == "" {
				if err := s.resolveConditionalPut(ctx, c, be); err != nil {
					return err
				}
			} else if be.entry.Resource.ID != be.id {
				return invalid("Bundle.entry[%d].resource id does not match the request url", be.index)
			}
			be.op = &writeOp{typ: be.typ, id: be.id, res: be.entry.Resource, expect: be.ifMatch, within: d, mustNew: be.fresh}
		case http.MethodPatch:
			// As Patch: an update of the version the caller reads, decided
			// before a conditional entry's criteria are matched.
			d, err := s.decide(c.Subject, policy.ActionUpdate, be.typ)
			if err != nil {
				return err
			}
			if err := s.matchEntry(ctx, c, be, "patch", ErrNotFound); err != nil {
				return err
			}
			op, err := s.patchOp(ctx, c, d, be.typ, be.id, be.patch, be.ifMatch)
			var fe *fhir.Error
			switch {
			case errors.As(err, &fe):
				return inEntry(be.index, fe)
			case err != nil:
				return fmt.Errorf("records: Bundle.entry[%d]: %w", be.index, err)
			}
			be.op = op
		case http.MethodDelete:
			d, err := s.decide(c.Subject, policy.ActionDelete, be.typ)
			if err != nil {
				return err
			}
			// A conditional delete in a transaction must name one resource.
			if err := s.matchEntry(ctx, c, be, "delete", ErrPrecondition); err != nil {
				return err
			}
			be.op = &writeOp{typ: be.typ, id: be.id, expect: be.ifMatch, within: d}
		}
		if be.op != nil && be.op.res == nil || be.method == http.MethodGet {
			continue
		}
		ref := be.typ + "/" + be.id
		if be.op != nil {
			if targets[ref] {
				return invalid("Bundle.entry[%d]: %s is written more than once", be.index, ref)
			}
			targets[ref] = true
		}
		if fu := be.entry.FullURL; fu != "" {
			if _, dup := ids[fu]; dup {
				return invalid("Bundle.entry[%d].fullUrl is not unique", be.index)
			}
			ids[fu] = ref
		}
	}
	for _, be := range entries {
		if be.op == nil || be.op.res == nil {
			continue
		}
		for _, r := range be.op.res.References() {
			if to, ok := ids[r.Value()]; ok {
				r.Set(to)
			} else if strings.HasPrefix(r.Value(), "urn:uuid:") {
				return invalid("Bundle.entry[%d]: reference to an unknown urn:uuid entry", be.index)
			}
		}
	}
	return nil
}

func (s *Service) resolveConditionalPut(ctx context.Context, c Caller, be *bundleEntry) error {
	if be.query == "" {
		return invalid("Bundle.entry[%d].request.url needs an id or search criteria", be.index)
	}
	// As UpdateWhere: the criteria select among what a search may see.
	d, err := s.decide(c.Subject, policy.ActionSearch, be.typ)
	if err != nil {
		return err
	}
	found, err := s.match(ctx, c, d, be.typ, be.query, 1)
	if err != nil {
		return err
	}
	switch len(found) {
	case 0:
		be.id = be.entry.Resource.ID
		if be.id == "" {
			be.id, be.fresh = newID(), true
		}
	case 1:
		be.id = found[0].ID
	default:
		return fmt.Errorf("%w: Bundle.entry[%d] criteria match more than one resource", ErrPrecondition, be.index)
	}
	if be.entry.Resource.ID != "" && be.entry.Resource.ID != be.id {
		return invalid("Bundle.entry[%d].resource id does not match the resource the criteria select", be.index)
	}
	return nil
}

func (s *Service) entryResult(ctx context.Context, c Caller, be *bundleEntry) EntryResult {
	switch {
	case be.existing != nil:
		return EntryResult{Status: http.StatusOK, Entry: *be.existing}
	case be.op != nil && be.op.res == nil:
		return EntryResult{Status: http.StatusNoContent, Entry: be.op.entry, Wrote: true}
	case be.op != nil && be.op.created:
		return EntryResult{Status: http.StatusCreated, Entry: be.op.entry, Wrote: true}
	case be.op != nil:
		return EntryResult{Status: http.StatusOK, Entry: be.op.entry, Wrote: true}
	}
	return s.get(ctx, c, be)
}

// get serves a GET entry: a read, or a search when the url has no id.
func (s *Service) get(ctx context.Context, c Caller, be *bundleEntry) EntryResult {
	if be.id != "" {
		e, err := s.read(ctx, c, be.typ, be.id)
		if err != nil {
			return EntryResult{Err: err}
		}
		return EntryResult{Status: http.StatusOK, Entry: e}
	}
	params, err := search.ParseParams(be.query)
	if err != nil {
		return EntryResult{Err: fmt.Errorf("%w: Bundle.entry[%d].request.url: %w", ErrInvalid, be.index, err)}
	}
	res, err := s.search(ctx, c, be.typ, params)
	if err != nil {
		return EntryResult{Err: err}
	}
	return EntryResult{Status: http.StatusOK, Search: &res}
}

// Batch processes each entry on its own; one entry's failure does not
// affect the others. Each write's entry commits with it; every other
// entry (a read, a search, a failure) is recorded as one entry of its
// own, and the batch by one more.
func (s *Service) Batch(ctx context.Context, c Caller, b *fhir.Bundle) ([]EntryResult, error) {
	results, err := s.batch(ctx, c, b)
	if err != nil {
		return nil, s.account(ctx, c, err, access{action: "batch"})
	}
	return answer(results, s.recordBundle(ctx, c, b, results, true))
}

func (s *Service) batch(ctx context.Context, c Caller, b *fhir.Bundle) ([]EntryResult, error) {
	if len(b.Entries) > s.cfg.MaxBundleEntries {
		return nil, fmt.Errorf("%w: a bundle may hold at most %d entries", ErrTooCostly, s.cfg.MaxBundleEntries)
	}
	results := make([]EntryResult, len(b.Entries))
	for i, e := range b.Entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		be, err := s.parseEntry(i, e)
		if err != nil {
			results[i] = EntryResult{Err: err}
			continue
		}
		for _, r := range refsOf(be) {
			if strings.HasPrefix(r.Value(), "urn:uuid:") {
				err = invalid("Bundle.entry[%d]: batch entries cannot refer to each other", i)
			}
		}
		if err == nil {
			results[i] = s.batchEntry(ctx, c, be)
		} else {
			results[i] = EntryResult{Err: err}
		}
		if errors.Is(results[i].Err, ErrUnavailable) {
			return nil, results[i].Err
		}
	}
	return results, nil
}

func refsOf(be *bundleEntry) []fhir.Reference {
	if be.entry.Resource == nil {
		return nil
	}
	return be.entry.Resource.References()
}

func (s *Service) batchEntry(ctx context.Context, c Caller, be *bundleEntry) EntryResult {
	var (
		e       Entry
		created bool
		err     error
	)
	switch be.method {
	case http.MethodGet, http.MethodHead:
		return s.get(ctx, c, be)
	case http.MethodPost:
		if crit := be.entry.Request.IfNoneExist; crit != "" {
			e, created, err = s.createIfNoneExist(ctx, c, be.entry.Resource, crit, writeOptions{})
		} else {
			e, err = s.create(ctx, c, be.entry.Resource, writeOptions{})
			created = err == nil
		}
	case http.MethodPut:
		if be.id == "" {
			e, created, err = s.updateWhere(ctx, c, be.typ, be.query, be.entry.Resource, writeOptions{})
		} else {
			e, created, err = s.update(ctx, c, be.typ, be.id, be.entry.Resource, be.ifMatch, writeOptions{})
		}
	case http.MethodPatch:
		if be.id == "" {
			e, err = s.patchWhere(ctx, c, be.typ, be.query, be.patch, be.ifMatch)
		} else {
			e, err = s.patch(ctx, c, be.typ, be.id, be.patch, be.ifMatch)
		}
	case http.MethodDelete:
		if be.id == "" {
			var deleted bool
			if e, deleted, err = s.deleteWhere(ctx, c, be.typ, be.query); err == nil && !deleted {
				return EntryResult{Status: http.StatusNoContent}
			}
		} else {
			e, err = s.delete(ctx, c, be.typ, be.id)
		}
		if err == nil {
			return EntryResult{Status: http.StatusNoContent, Entry: e, Wrote: true}
		}
	}
	if err != nil {
		return EntryResult{Err: err}
	}
	// A POST that matched an existing resource (If-None-Exist) wrote nothing.
	wrote := be.method == http.MethodPut || be.method == http.MethodPatch || created
	if created {
		return EntryResult{Status: http.StatusCreated, Entry: e, Wrote: wrote}
	}
	return EntryResult{Status: http.StatusOK, Entry: e, Wrote: wrote}
}

// sortedByMethod returns entries in FHIR transaction processing order,
// stable within a method.
func sortedByMethod(entries []*bundleEntry) []*bundleEntry {
	out := make([]*bundleEntry, 0, len(entries))
	for order := 0; order <= 3; order++ {
		for _, be := range entries {
			if methodOrder[be.method] == order {
				out = append(out, be)
			}
		}
	}
	return out
}

// ParseETag reads a version from an ETag or If-Match value: W/"3" or "3".
// The version must be written as Ward writes it (ParseVersion).
func ParseETag(s string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, errors.New(`expected W/"<version>"`)
	}
	v, ok := ParseVersion(s[1 : len(s)-1])
	if !ok {
		return 0, errors.New("the version is not a version id Ward issues (1, 2, 3...)")
	}
	return v, nil
}

// ParseVersion reads a version id exactly as Ward issues them: decimal
// digits, from 1, without sign, space or leading zero. "+1", "01", "1.0"
// and " 1" are other strings than the "1" in an ETag or meta.versionId,
// so they name no version (strconv.ParseInt would read "+1" and "01" as
// 1).
func ParseVersion(s string) (int64, bool) {
	if s == "" || len(s) > 18 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// wroteAny reports whether a transaction's results include a write, whose
// ledger entry committed with it.
func wroteAny(results []EntryResult) bool {
	for _, res := range results {
		if res.Err == nil && res.Wrote {
			return true
		}
	}
	return false
}

// recordBundle records one entry for each entry of a batch or transaction
// whose own entry was not committed with a write: its reads and searches,
// so that what a bundle disclosed is accounted patient by patient, and its
// failed or refused writes, so that each is in the ledger with its
// outcome. With own, the bundle itself gets an entry too, the last.
func (s *Service) recordBundle(ctx context.Context, c Caller, b *fhir.Bundle, results []EntryResult, own bool) error {
	var as []access
	for i, res := range results {
		if i >= len(b.Entries) || b.Entries[i].Request == nil || res.Wrote {
			continue
		}
		as = append(as, s.bundleEntryAccess(i, b.Entries[i].Request, res))
	}
	if own {
		as = append(as, access{action: b.Type})
	}
	if len(as) == 0 {
		return nil
	}
	return s.record(ctx, c, as...)
}

// bundleEntryAccess is the entry of entry i of a bundle, requested by req,
// whose result res committed no entry of its own.
func (s *Service) bundleEntryAccess(i int, req *fhir.Request, res EntryResult) access {
	path, rawQuery, _ := strings.Cut(strings.TrimPrefix(req.URL, "/"), "?")
	seg := strings.Split(path, "/")
	a := access{action: Action(strings.ToUpper(req.Method), seg), typ: seg[0], detail: "bundle entry " + strconv.Itoa(i), err: res.Err}
	if a.typ != "" && a.typ != "_history" && !fhir.IsResourceType(a.typ) {
		a.typ = s.cfg.Pseudonyms.Sum(PseudonymType, a.typ)
	}
	if len(seg) > 1 && fhir.ValidID(seg[1]) {
		a.id = seg[1]
	}
	if a.action == "search" || a.action == "history" {
		if q, err := search.ParseParams(rawQuery); err == nil {
			a.query = QueryNames(s.cfg.Pseudonyms, q)
		}
	}
	switch {
	case res.Err != nil:
	case res.Search != nil:
		a.patients, a.listed = append(compartments(res.Search.Matches, res.Search.Included), res.Search.reached...), true
	default:
		a.id, a.version, a.patient, a.status = res.Entry.ID, versionOf(res.Entry), res.Entry.Compartment, res.Status
	}
	return a
}

// Action names a FHIR interaction, as audit entries record it, from its
// method and the path segments below the FHIR base.
func Action(method string, seg []string) string {
	last := seg[len(seg)-1]
	switch {
	case len(seg) >= 2 && seg[len(seg)-2] == "_history":
		return "vread"
	case last == "_history":
		return "history"
	case last == "$everything":
		return "everything"
	case last == "$signatures":
		return ActionSignatures
	case last == "$sign":
		return ActionSign
	case last == "_search":
		return "search"
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		if len(seg) == 2 {
			return "read"
		}
		return "search"
	case http.MethodPost:
		if seg[0] == "" {
			return "bundle"
		}
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	case http.MethodPatch, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return strings.ToLower(method)
	}
	return "unknown-method"
}

// DeleteWhere is a conditional delete (DELETE /fhir/{type}?criteria): the
// one resource the criteria match is deleted, as Delete would; no match
// deletes nothing and succeeds (deleted false), several are
// ErrPrecondition. A caller that may not delete typ is refused before the
// criteria are matched, and the match sees only what the caller's search
// would. The deletion's entry commits with it; a delete of nothing, and a
// failure, are recorded too.
func (s *Service) DeleteWhere(ctx context.Context, c Caller, typ, criteria string) (Entry, bool, error) {
	e, deleted, err := s.deleteWhere(ctx, c, typ, criteria)
	if err == nil && deleted {
		return e, true, nil
	}
	if err := s.account(ctx, c, err, access{action: "delete", typ: typ, status: http.StatusNoContent}); err != nil {
		return Entry{}, false, err
	}
	return Entry{}, false, nil
}

func (s *Service) deleteWhere(ctx context.Context, c Caller, typ, criteria string) (Entry, bool, error) {
	if _, err := s.decide(c.Subject, policy.ActionDelete, typ); err != nil {
		return Entry{}, false, err
	}
	id, err := s.matchOne(ctx, c, typ, criteria)
	if err != nil || id == "" {
		return Entry{}, false, err
	}
	e, err := s.delete(ctx, c, typ, id)
	return e, err == nil, err
}

// matchOne returns the id of the one resource of typ the criteria match,
// as the caller's search sees them: "" for none, ErrPrecondition for
// several.
func (s *Service) matchOne(ctx context.Context, c Caller, typ, criteria string) (string, error) {
	d, err := s.decide(c.Subject, policy.ActionSearch, typ)
	if err != nil {
		return "", err
	}
	found, err := s.match(ctx, c, d, typ, criteria, 1)
	switch {
	case err != nil:
		return "", err
	case len(found) > 1:
		return "", fmt.Errorf("%w: criteria match more than one resource", ErrPrecondition)
	case len(found) == 1:
		return found[0].ID, nil
	}
	return "", nil
}

// matchEntry sets the id of a conditional PATCH or DELETE entry (what) to
// the one resource its criteria match; none is the error when they match
// nothing. An entry with an id is left as it is.
func (s *Service) matchEntry(ctx context.Context, c Caller, be *bundleEntry, what string, none error) error {
	if be.id != "" {
		return nil
	}
	id, err := s.matchOne(ctx, c, be.typ, be.query)
	if err != nil {
		return fmt.Errorf("records: Bundle.entry[%d]: %w", be.index, err)
	}
	if id == "" {
		return fmt.Errorf("%w: Bundle.entry[%d]: the conditional %s matches no resource", none, be.index, what)
	}
	be.id = id
	return nil
}
