package records

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/store"
)

// Blind index value shapes. Each prefix keeps one kind of value apart from
// the others under the same per-parameter key.
const (
	blindWord  = "w:" // one word of a normalised string
	blindFull  = "f:" // a whole normalised string
	blindExact = "x:" // a string as written, for :exact
	blindCode  = "c:" // a token's code, any system
	blindSys   = "s:" // a token's system|code
	blindDate  = "d:" // a date at the precision it was written (YYYY, YYYY-MM, YYYY-MM-DD)
	blindOther = "o:" // any other identifying value
)

// indexEntries turns extracted search values into index rows. Blind
// values become blind index rows; nothing identifying is stored in the clear.
func (s *Service) indexEntries(typ string, values []search.Value) []store.IndexEntry {
	out := make([]store.IndexEntry, 0, len(values)+4)
	seen := make(map[store.IndexEntry]struct{}, len(values))
	add := func(e store.IndexEntry) {
		if _, dup := seen[e]; dup {
			return
		}
		seen[e] = struct{}{}
		out = append(out, e)
	}
	for _, v := range values {
		if v.Param == "_id" || v.Param == "_lastUpdated" {
			continue // answered from the resources table itself
		}
		if v.Blind {
			for _, b := range blindForms(v) {
				add(store.IndexEntry{Param: v.Param, Kind: store.KindBlind, Value: s.blind.Sum(typ, v.Param, b)})
			}
			continue
		}
		switch v.Type {
		case search.TypeString:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindString, Value: v.Text, System: v.Exact})
		case search.TypeToken:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindToken, System: v.System, Value: v.Code})
		case search.TypeReference:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindReference, System: v.RefType, Value: v.Text})
		case search.TypeURI:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindURI, Value: v.Text})
		case search.TypeDate:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindDate, Lo: v.Lo, Hi: v.Hi})
		case search.TypeNumber:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindNumber, Lo: v.Lo, Hi: v.Hi})
		case search.TypeQuantity:
			add(store.IndexEntry{Param: v.Param, Kind: store.KindQuantity, System: v.System, Value: v.Code, Lo: v.Lo, Hi: v.Hi})
		}
	}
	return out
}

// blindForms lists the blind-indexed forms of one identifying value.
func blindForms(v search.Value) []string {
	switch v.Type {
	case search.TypeString:
		// A one-word value's whole form equals its word form, and a
		// query of one word looks for word forms (blindQueryForms): it
		// needs no row of its own.
		forms := []string{blindExact + v.Exact}
		if strings.ContainsRune(v.Text, ' ') {
			forms = append(forms, blindFull+v.Text)
		}
		for _, w := range strings.Fields(v.Text) {
			forms = append(forms, blindWord+w)
		}
		return forms
	case search.TypeToken:
		return []string{blindCode + v.Code, blindSys + v.System + "|" + v.Code}
	case search.TypeDate:
		if d, ok := dateForm(v.Lo, v.Hi); ok {
			return []string{blindDate + d}
		}
		return nil
	}
	if v.Text != "" {
		return []string{blindOther + v.Text}
	}
	return []string{blindOther + v.System + "|" + v.Code}
}

// dateForm recovers the written form of a date from its implicit range:
// a year, a month or a day. Other precisions are not blind-indexable.
func dateForm(lo, hi float64) (string, bool) {
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) || math.IsNaN(lo) || math.IsNaN(hi) {
		return "", false
	}
	start := time.Unix(0, 0).Add(time.Duration(lo * float64(time.Second))).UTC()
	start = start.Round(time.Second)
	end := time.Unix(0, 0).Add(time.Duration(hi * float64(time.Second))).UTC().Add(time.Millisecond).Truncate(time.Second)
	switch {
	case end.Equal(start.AddDate(1, 0, 0)) && start.YearDay() == 1:
		return start.Format("2006"), true
	case end.Equal(start.AddDate(0, 1, 0)) && start.Day() == 1:
		return start.Format("2006-01"), true
	case end.Equal(start.AddDate(0, 0, 1)):
		return start.Format("2006-01-02"), true
	}
	return "", false
}

// RebuildIndex rewrites the search index rows of every current version
// under the current indexing rule, once after an upgrade from a release
// that stored values in the clear that are now blind-indexed (store
// migration 0012) or that did not index the identifiers inside
// references (0022), then records that none is left. It returns how many
// versions' rows it replaced and how many of those it could not read (a
// body that does not decrypt or parse; reads refuse it too): their old
// rows are removed, so that nothing of them stays in the clear. It does nothing once
// done, and is safe while requests are served: a version rewritten
// meanwhile got its index when it was written, and only the version read
// is changed. A failure leaves the work pending for the next call.
func (s *Service) RebuildIndex(ctx context.Context) (rebuilt, unreadable int, err error) {
	pending, err := s.store.IndexRebuildPending(ctx)
	if err != nil || !pending {
		return 0, 0, storeErr(err)
	}
	rebuilt, err = eachStoredBatch(ctx, s.store.CurrentVersions, func(rows []store.Resource) (int, error) {
		out := make([]store.Reindexed, 0, len(rows))
		for _, row := range rows {
			index, err := s.storedIndex(ctx, row)
			switch {
			case stopsMaintenance(err):
				return 0, err
			case err != nil:
				unreadable++
				index = nil
			}
			out = append(out, store.Reindexed{Resource: row, Index: index})
		}
		n, err := s.store.ReplaceIndex(ctx, out)
		return n, storeErr(err)
	})
	if err != nil {
		return rebuilt, unreadable, err
	}
	return rebuilt, unreadable, storeErr(s.store.IndexRebuilt(ctx))
}

// eachStoredBatch pages through stored versions with page, in (type, id)
// order 500 at a time, handing each page to do, and returns the sum of
// what do counted; it stops at the first error.
func eachStoredBatch(ctx context.Context, page func(ctx context.Context, afterType, afterID string, limit int) ([]store.Resource, error),
	do func([]store.Resource) (int, error)) (int, error) {
	const batch = 500
	total, typ, id := 0, "", ""
	for {
		rows, err := page(ctx, typ, id, batch)
		if err != nil {
			return total, storeErr(err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		typ, id = rows[len(rows)-1].Type, rows[len(rows)-1].ID
		n, err := do(rows)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// stopsMaintenance reports whether an error reading a stored version must
// stop a maintenance pass (the key provider is down, the pass was
// cancelled) rather than count the version as unreadable.
func stopsMaintenance(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// storedIndex computes the index rows of a stored version from its body.
func (s *Service) storedIndex(ctx context.Context, row store.Resource) ([]store.IndexEntry, error) {
	e, err := s.decrypt(ctx, row)
	if err != nil {
		return nil, err
	}
	res, err := fhir.Parse(e.Body, fhir.Limits{})
	if err != nil {
		return nil, err
	}
	values, err := s.params.Extract(row.Type, res.Object)
	if err != nil {
		return nil, err
	}
	return s.indexEntries(row.Type, values), nil
}
