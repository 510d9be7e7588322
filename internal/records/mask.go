package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Field masking (catalogue case A7). A Decision's Mask lists elements its
// subject's role never sees. The service keeps that obligation where every
// path passes:
//
//   - open, which every read path calls to decrypt a stored version for a
//     caller, and every write's result serve a version only as the
//     Decision that allowed the access lets its subject see it: read,
//     vread, searches and their _include and _revinclude (each resource
//     under the Decision of its own type), instance history (every
//     version), $everything, transaction and batch entries, conditional
//     create's match and the body a write returns. Entries are masked
//     before they leave the service, so package api serialises nothing
//     else. _summary=count returns a total and no resource; _summary's
//     other values and _elements (search.go, resultView) reduce bodies
//     that open already masked, so they only remove more and cannot bring
//     a masked element back.
//   - searches, conditional criteria and _revinclude may not match, count
//     or sort on a masked element (guardQuery): a match would tell what it
//     holds. Criteria on a partly masked element (identifiers, while only
//     SSNs are masked) are allowed when each value names another system.
//   - writes by a masked subject neither set nor erase what it cannot see:
//     a body holding a masked element is ErrForbidden, and an update
//     carries the masked elements of the current version over into the
//     new one (fhir.Mask.CarryOver), so a read-modify-write keeps them.
//
// A masked version keeps its version id, meta.versionId, ETag and
// Location: it is a view of the stored version, not another version, and
// its meta.security says REDACTED. A client that writes it back does not
// store the label: it is Ward's marker of the view.

// maskCache holds compiled masks by their entries: roles are few, so the
// cache stays small; past maxCachedMasks masks are compiled each time.
type maskCache struct {
	m  sync.Map // string -> fhir.Mask
	n  int
	mu sync.Mutex
}

const maxCachedMasks = 64

// maskOf returns the compiled mask of d. A mask entry that does not
// compile fails the access: an element it names must not slip through.
func (s *Service) maskOf(d policy.Decision) (fhir.Mask, error) {
	if len(d.Mask) == 0 {
		return fhir.Mask{}, nil
	}
	key := d.Mask[0]
	if len(d.Mask) > 1 {
		key = strings.Join(d.Mask, "\n")
	}
	if m, ok := s.masks.m.Load(key); ok {
		return m.(fhir.Mask), nil
	}
	m, err := fhir.ParseMask(d.Mask)
	if err != nil {
		return fhir.Mask{}, fmt.Errorf("records: role mask: %w", err)
	}
	s.masks.mu.Lock()
	if s.masks.n < maxCachedMasks {
		s.masks.n++
		s.masks.m.Store(key, m)
	}
	s.masks.mu.Unlock()
	return m, nil
}

// served returns a stored body as d's subject may see it.
func (s *Service) served(d policy.Decision, body []byte) ([]byte, error) {
	out, _, err := s.masked(d, body)
	return out, err
}

// masked is served, reporting whether the mask removed anything.
func (s *Service) masked(d policy.Decision, body []byte) ([]byte, bool, error) {
	m, err := s.maskOf(d)
	if err != nil || m.Empty() {
		return body, false, err
	}
	out, changed, err := m.Apply(body)
	if err != nil {
		// Not wrapped: a stored body that does not decode is the server's
		// fault, not a bad request (package api answers a *fhir.Error 400).
		return nil, false, fmt.Errorf("records: masking a stored body: %v", err)
	}
	return out, changed, nil
}

// open decrypts one stored version for a caller whose access d allowed,
// as that caller may see it.
func (s *Service) open(ctx context.Context, d policy.Decision, row store.Resource) (Entry, error) {
	return s.openWith(ctx, d, row, s.keyring.DataKey)
}

// openWith is open with the data key from dataKey.
func (s *Service) openWith(ctx context.Context, d policy.Decision, row store.Resource, dataKey func(context.Context, string) (*keys.DataKey, error)) (Entry, error) {
	e, err := s.decryptWith(ctx, row, dataKey)
	if err != nil || e.Body == nil {
		return e, err
	}
	body, changed, err := s.masked(d, e.Body)
	if err != nil {
		return Entry{}, err
	}
	if changed {
		// The REDACTED label is Ward's marker, not one of the version's:
		// label checks read the stored body.
		e.stored = e.Body
	}
	e.Body = body
	return e, nil
}

// errMasked is a write by a masked subject that would set, change or
// erase what the subject may not see.
func errMasked(typ string) error {
	return fmt.Errorf("%w: %s: %w", ErrForbidden, typ, fhir.ErrMasked)
}

// guardMasked refuses a body that holds elements its writer may not see,
// and drops the REDACTED marker the writer may have read and sent back.
func (s *Service) guardMasked(op *writeOp) error {
	m, err := s.maskOf(op.within)
	if err != nil || m.Empty() {
		return err
	}
	if m.Hides(op.res) {
		return errMasked(op.typ)
	}
	if err := m.CarryOver(op.res, nil); err != nil {
		return errMasked(op.typ)
	}
	return nil
}

// carryMasked returns the body an update stores when its writer may not
// see some elements of the type: the writer's body with the current
// version's masked elements carried over, indexed and checked again, since
// they change what the body holds. Without a mask it returns op.res.
func (s *Service) carryMasked(ctx context.Context, op *writeOp, cur store.Resource, exists bool) (*fhir.Resource, error) {
	m, err := s.maskOf(op.within)
	if err != nil {
		return nil, err
	}
	if !m.Covers(op.typ) || op.mustNew {
		return op.res, nil
	}
	var stored []byte
	if exists && !cur.Deleted {
		e, err := s.decrypt(ctx, cur)
		if err != nil {
			return nil, err
		}
		stored = e.Body
	}
	if !m.Mentions(op.typ, stored) {
		// Nothing hidden to carry (guardMasked checked the writer's body):
		// a practitioner's update of a resource without a reference SSN is
		// neither parsed again nor prepared twice.
		return op.res, nil
	}
	var src *fhir.Resource
	if stored != nil {
		if src, err = fhir.Parse(stored, fhir.Limits{}); err != nil {
			return nil, fmt.Errorf("records: stored %s: %v", cur.Type, err) // a 500, not a 400
		}
	}
	// op.res stays the writer's body: a retry carries over from a fresh
	// current version.
	res := op.res.Clone()
	if err := m.CarryOver(res, src); err != nil {
		if errors.Is(err, fhir.ErrMasked) {
			return nil, errMasked(op.typ)
		}
		return nil, err
	}
	if err := s.prepareBody(ctx, op, res); err != nil {
		return nil, err
	}
	return res, nil
}

// guardQuery refuses a search, or a conditional interaction's criteria,
// that could match on what d's subject may not see: a match, a count or an
// order would tell what a masked element holds (which related patient has
// this social security number). A parameter that reaches a masked element
// is refused, unless the mask hides only items of certain systems and
// every value of the clause names another system ("identifier=MRN-system|
// 123" stays possible while SSNs are masked). So is ref:identifier, which
// matches Reference.identifier, when the mask hides reference
// identifiers of some systems.
func (s *Service) guardQuery(d policy.Decision, q *search.Query) error {
	m, err := s.maskOf(d)
	if err != nil || !m.Covers(q.Type) {
		return err
	}
	for _, cl := range q.Clauses {
		if !clauseClear(m, q.Type, cl) {
			return fmt.Errorf("%w: %s: search parameter %s reaches masked elements", ErrForbidden, q.Type, cl.Param.Code)
		}
	}
	for _, so := range q.Sort {
		if p, ok := s.params.Param(q.Type, so.Param); ok && paramMasked(m, q.Type, p) {
			return fmt.Errorf("%w: %s: _sort on %s reaches masked elements", ErrForbidden, q.Type, so.Param)
		}
	}
	return nil
}

// paramClear reports whether searches on p of typ under d reach no masked
// element, whatever their values (for _revinclude, whose matches are
// references to the page's resources).
func (s *Service) paramClear(d policy.Decision, typ, code string) bool {
	m, err := s.maskOf(d)
	if err != nil {
		return false
	}
	p, ok := s.params.Param(typ, code)
	return ok && !paramMasked(m, typ, p)
}

func paramMasked(m fhir.Mask, typ string, p *search.Param) bool {
	for _, path := range paramPaths(typ, p.Expression) {
		if hidden, _ := m.Reaches(typ, path); hidden {
			return true
		}
	}
	return false
}

func clauseClear(m fhir.Mask, typ string, cl search.Clause) bool {
	if systems := m.ReferenceSystems(); systems != nil && cl.Param.ReferenceIdentifier() && !valuesNameOther(cl, systems) {
		return false
	}
	for _, path := range paramPaths(typ, cl.Param.Expression) {
		hidden, systems := m.Reaches(typ, path)
		if !hidden {
			continue
		}
		if systems == nil || !valuesNameOther(cl, systems) {
			return false
		}
	}
	return true
}

// valuesNameOther reports whether every value of a token clause names a
// system other than systems: it can then match no item of those systems.
func valuesNameOther(cl search.Clause, systems []string) bool {
	if cl.Param.Type != search.TypeToken || cl.Modifier != "" {
		return false
	}
	for _, c := range cl.Any {
		if c.Missing != nil || c.Not || !c.HasSystem || slices.Contains(systems, c.System) {
			return false
		}
	}
	return true
}

// paramPaths lists the element paths of typ that a search parameter's
// FHIRPath expression reads, one per union branch: the member names from
// the root up to the first function, operator or indexer
// ("Observation.value.as(Quantity)" reads value, "Patient.name.given"
// reads name.given). Stopping early only widens what counts as reached. A
// branch rooted elsewhere, or that cannot be read so, counts as reading the
// whole resource.
func paramPaths(typ, expr string) [][]string {
	var out [][]string
	for _, b := range strings.Split(expr, "|") {
		b = strings.TrimLeft(strings.TrimSpace(b), "(")
		root, rest, ok := strings.Cut(b, ".")
		if !ok || (root != typ && root != "Resource" && root != "DomainResource") {
			if root != typ && fhir.IsResourceType(root) {
				continue // a branch for another type of a shared parameter
			}
			return [][]string{{}}
		}
		var path []string
		for rest != "" {
			i := 0
			for i < len(rest) && (rest[i] >= 'a' && rest[i] <= 'z' || rest[i] >= 'A' && rest[i] <= 'Z' || rest[i] >= '0' && rest[i] <= '9' || rest[i] == '_') {
				i++
			}
			if i == 0 || i < len(rest) && rest[i] == '(' {
				break // a function: the path so far is what it reads
			}
			path = append(path, rest[:i])
			if i == len(rest) || rest[i] != '.' {
				break
			}
			rest = rest[i+1:]
		}
		if len(path) == 0 {
			return [][]string{{}}
		}
		out = append(out, path)
	}
	return out
}
