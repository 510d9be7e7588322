package records

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Read returns the current version of typ/id. A deleted resource is
// ErrGone; an unknown one, or one outside the caller's compartment,
// ErrNotFound. The read is recorded, whatever its outcome.
func (s *Service) Read(ctx context.Context, c Caller, typ, id string) (Entry, error) {
	e, err := s.read(ctx, c, typ, id)
	return answer(e, s.account(ctx, c, err, access{action: "read", typ: typ, id: id, version: versionOf(e), patient: e.Compartment}))
}

func (s *Service) read(ctx context.Context, c Caller, typ, id string) (Entry, error) {
	d, err := s.decide(c.Subject, policy.ActionRead, typ)
	if err != nil {
		return Entry{}, err
	}
	row, err := s.store.Current(ctx, typ, id)
	if err != nil {
		return Entry{}, storeErr(err)
	}
	if !within(d, row.Compartment) {
		return Entry{}, hiddenIn(row.Compartment)
	}
	v, err := s.screen(ctx, c, d, row)
	if err != nil {
		return Entry{}, err
	}
	if typ == subscriptionType {
		if err := s.ownSubscription(ctx, c, id); err != nil {
			return Entry{}, err
		}
	}
	if row.Deleted {
		return Entry{Type: typ, ID: id, Version: row.Version, LastUpdated: row.LastUpdated, Deleted: true}, ErrGone
	}
	e, err := v.reveal(s.open(ctx, d, row))
	if err != nil {
		return Entry{}, err
	}
	return s.subscriptionView(ctx, c, e)
}

// VRead returns one version of typ/id. A version that records a deletion
// is ErrGone; a version sealed outside the caller's compartment is
// ErrNotFound, as an unknown one. The read is recorded, whatever its
// outcome.
func (s *Service) VRead(ctx context.Context, c Caller, typ, id string, version int64) (Entry, error) {
	e, err := s.vread(ctx, c, typ, id, version)
	return answer(e, s.account(ctx, c, err, access{action: "vread", typ: typ, id: id, version: versionOf(e), patient: e.Compartment}))
}

func (s *Service) vread(ctx context.Context, c Caller, typ, id string, version int64) (Entry, error) {
	d, err := s.decide(c.Subject, policy.ActionRead, typ)
	if err != nil {
		return Entry{}, err
	}
	row, err := s.store.Version(ctx, typ, id, version)
	if errors.Is(err, store.ErrNotFound) {
		// The versions of an erased patient's resource are gone, not
		// unknown (its current version is the erasure's deletion).
		if err := s.erasedResource(ctx, d, typ, id); err != nil {
			return Entry{}, err
		}
	}
	if err != nil {
		return Entry{}, storeErr(err)
	}
	if !within(d, row.Compartment) {
		return Entry{}, hiddenIn(row.Compartment)
	}
	v, err := s.screen(ctx, c, d, row)
	if err != nil {
		return Entry{}, err
	}
	if typ == subscriptionType {
		if err := s.ownSubscription(ctx, c, id); err != nil {
			return Entry{}, err
		}
	}
	if row.Deleted {
		return Entry{Type: typ, ID: id, Version: row.Version, LastUpdated: row.LastUpdated, Deleted: true}, ErrGone
	}
	e, err := v.reveal(s.open(ctx, d, row))
	if err != nil {
		return Entry{}, err
	}
	return s.subscriptionView(ctx, c, e)
}

// HistoryRequest selects versions for a history interaction. Type "" is the
// whole server; ID "" the whole type.
type HistoryRequest struct {
	Type, ID string
	Since    time.Time
	At       time.Time
	Offset   int
	Count    int
}

// HistoryPage is one page of versions, newest first.
type HistoryPage struct {
	Entries []Entry
	// Total counts every version the history selects, valid when HasTotal.
	// A type or system history omits it for a caller from whom security
	// labels may hide versions: the store counts versions without reading
	// their labels, and a total that included hidden ones would tell how
	// many there are.
	Total    int
	HasTotal bool
	More     bool
	// Next is the offset of the next page. Versions hidden from the caller
	// are left out of Entries but not of the paging, so a page may hold
	// fewer entries than it spans, or none.
	Next int
}

// History lists versions, newest first. Under a compartment obligation
// only an instance history is available, and only when every version of
// the resource is in the compartment; otherwise it answers as an unknown
// resource would. The history is recorded, naming the patient of every
// version it lists, whatever its outcome.
func (s *Service) History(ctx context.Context, c Caller, req HistoryRequest) (HistoryPage, error) {
	page, err := s.history(ctx, c, req)
	return answer(page, s.account(ctx, c, err, access{action: "history", typ: cmp.Or(req.Type, "_history"), id: req.ID, query: c.Query,
		patients: compartments(page.Entries), listed: true}))
}

func (s *Service) history(ctx context.Context, c Caller, req HistoryRequest) (HistoryPage, error) {
	d, err := s.decide(c.Subject, policy.ActionHistory, req.Type)
	if err != nil {
		return HistoryPage{}, err
	}
	if d.Restricted() && req.ID == "" {
		// The storage contract's history has no compartment filter, and
		// filtering a page afterwards would still count other patients.
		return HistoryPage{}, errNoCompartmentView("type and system history")
	}
	count := req.Count
	if count <= 0 {
		count = s.defaultCount()
	}
	if m := s.maxCount(); count > m {
		count = m
	}
	if req.ID != "" {
		// An instance history of something that never existed is a 404.
		cur, err := s.store.Current(ctx, req.Type, req.ID)
		if err != nil {
			return HistoryPage{}, storeErr(err)
		}
		if !within(d, cur.Compartment) {
			return HistoryPage{}, hiddenIn(cur.Compartment)
		}
		if err := s.erasedResource(ctx, d, req.Type, req.ID); err != nil {
			return HistoryPage{}, err
		}
		if err := s.historyVisible(ctx, c, d, req.Type, req.ID); err != nil {
			return HistoryPage{}, err
		}
		if d.Restricted() {
			if err := s.historyWithin(ctx, req.Type, req.ID, d); err != nil {
				return HistoryPage{}, err
			}
		}
	}
	page, err := s.store.History(ctx, store.HistoryQuery{
		Type: req.Type, ID: req.ID, Since: req.Since, Before: req.At,
		Offset: req.Offset, Count: count,
	})
	if err != nil {
		return HistoryPage{}, storeErr(err)
	}
	out := HistoryPage{Total: page.Total, More: page.More, Entries: make([]Entry, 0, len(page.Resources))}
	// An instance history is answered only when every version is visible
	// (historyVisible above), so its total hides nothing.
	out.HasTotal = req.ID != "" || !s.labelsRestrict(c, d, req.Type)
	out.Next = req.Offset + len(page.Resources)
	for _, row := range page.Resources {
		if !within(d, row.Compartment) {
			// Moved out of the compartment since historyWithin looked.
			return HistoryPage{}, hiddenIn(row.Compartment)
		}
		e, err := s.openSeen(ctx, c, d, row)
		if errors.Is(err, ErrHidden) && req.ID == "" {
			continue // a version labelled beyond what c sees (see labels.go)
		}
		if err != nil {
			return HistoryPage{}, fmt.Errorf("records: history of %s: %w", row.Type, err)
		}
		if row.Type == subscriptionType {
			// Another client's Subscription is not there for c: an
			// instance history of one answers as an unknown id, a type or
			// system history leaves it out and gives no total.
			if e, err = s.subscriptionView(ctx, c, e); errors.Is(err, ErrHidden) && req.ID == "" {
				out.HasTotal = false
				continue
			} else if err != nil {
				return HistoryPage{}, err
			}
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

// historyWithin reports ErrNotFound unless every version of typ/id is
// sealed in compartment: a resource that was ever another patient's, or
// shared, has no history a compartment-bound caller may page through.
func (s *Service) historyWithin(ctx context.Context, typ, id string, d policy.Decision) error {
	const batch = 200
	for offset := 0; ; offset += batch {
		page, err := s.store.History(ctx, store.HistoryQuery{Type: typ, ID: id, Offset: offset, Count: batch})
		if err != nil {
			return storeErr(err)
		}
		for _, row := range page.Resources {
			if !d.Reaches(row.Compartment) {
				return hiddenIn(row.Compartment)
			}
		}
		if !page.More || len(page.Resources) == 0 {
			return nil
		}
	}
}

func (s *Service) defaultCount() int {
	if s.cfg.Search.DefaultCount > 0 {
		return s.cfg.Search.DefaultCount
	}
	return 50
}

func (s *Service) maxCount() int {
	if s.cfg.Search.MaxCount > 0 {
		return s.cfg.Search.MaxCount
	}
	return 1000
}

// erasedResource is ErrGone for a resource of an erased patient that d
// reaches (HiddenError for one it does not), nil otherwise.
func (s *Service) erasedResource(ctx context.Context, d policy.Decision, typ, id string) error {
	cur, err := s.store.Current(ctx, typ, id)
	if err != nil || !cur.Deleted || cur.Compartment == "" {
		return nil
	}
	erased, err := s.keyring.Erased(cur.Compartment)
	switch {
	case err != nil:
		return fmt.Errorf("%w: erasure register: %w", ErrUnavailable, err)
	case !erased:
		return nil
	case !within(d, cur.Compartment):
		return hiddenIn(cur.Compartment)
	}
	return fmt.Errorf("%w: the patient's record was erased", ErrGone)
}
