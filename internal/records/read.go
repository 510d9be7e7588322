package records

import (
	"context"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Read returns the current version of typ/id. A deleted resource is
// ErrGone; an unknown one ErrNotFound.
func (s *Service) Read(ctx context.Context, c Caller, typ, id string) (Entry, error) {
	if err := decide(c.Subject, policy.ActionRead, typ); err != nil {
		return Entry{}, err
	}
	row, err := s.store.Current(ctx, typ, id)
	if err != nil {
		return Entry{}, storeErr(err)
	}
	if row.Deleted {
		return Entry{Type: typ, ID: id, Version: row.Version, LastUpdated: row.LastUpdated, Deleted: true}, ErrGone
	}
	return s.open(ctx, row)
}

// VRead returns one version of typ/id. A version that records a deletion
// is ErrGone.
func (s *Service) VRead(ctx context.Context, c Caller, typ, id string, version int64) (Entry, error) {
	if err := decide(c.Subject, policy.ActionRead, typ); err != nil {
		return Entry{}, err
	}
	row, err := s.store.Version(ctx, typ, id, version)
	if err != nil {
		return Entry{}, storeErr(err)
	}
	if row.Deleted {
		return Entry{Type: typ, ID: id, Version: row.Version, LastUpdated: row.LastUpdated, Deleted: true}, ErrGone
	}
	return s.open(ctx, row)
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
	Total   int
	More    bool
}

// History lists versions, newest first.
func (s *Service) History(ctx context.Context, c Caller, req HistoryRequest) (HistoryPage, error) {
	if err := decide(c.Subject, policy.ActionHistory, req.Type); err != nil {
		return HistoryPage{}, err
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
		if _, err := s.store.Current(ctx, req.Type, req.ID); err != nil {
			return HistoryPage{}, storeErr(err)
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
	for _, row := range page.Resources {
		e, err := s.open(ctx, row)
		if err != nil {
			return HistoryPage{}, fmt.Errorf("records: history of %s: %w", row.Type, err)
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
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
