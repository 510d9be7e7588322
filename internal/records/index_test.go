package records_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// rebuildStore is a store whose index predates the current indexing rule
// until it is rebuilt.
type rebuildStore struct {
	store.Store
	pending bool
}

func (r *rebuildStore) IndexRebuildPending(context.Context) (bool, error) { return r.pending, nil }
func (r *rebuildStore) IndexRebuilt(context.Context) error {
	r.pending = false
	return nil
}

// TestRebuildIndex: an Observation whose valueString an earlier release
// indexed in the clear is found only by its plaintext row before the
// rebuild, and only by its blind row after it; a second run does nothing.
func TestRebuildIndex(t *testing.T) {
	up := &rebuildStore{}
	svc, db := newServiceWith(t, records.Config{}, func(s store.Store) store.Store { up.Store = s; return up })
	ctx := context.Background()
	sys := service(t, "system/*.cruds")
	obs, err := svc.Create(ctx, sys, parse(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"Chest pain"}`))
	if err != nil {
		t.Fatal(err)
	}
	// As an earlier release left it: the string in the clear.
	plain := []store.IndexEntry{{Param: "value-string", Kind: store.KindString, Value: "chest pain", System: "Chest pain"}}
	if n, err := db.ReplaceIndex(ctx, []store.Reindexed{{Resource: store.Resource{Type: "Observation", ID: obs.ID, Version: obs.Version}, Index: plain}}); err != nil || n != 1 {
		t.Fatalf("set the old index: %d, %v", n, err)
	}
	up.pending = true
	plaintextRows := func() int {
		t.Helper()
		page, err := db.Search(ctx, store.Query{Type: "Observation", Count: 10, Clauses: []store.Clause{{Param: "value-string",
			Any: []store.Predicate{{Kind: store.KindString, Op: store.OpPrefix, Value: "chest"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Resources)
	}
	found := func() int {
		t.Helper()
		res, err := svc.Search(ctx, sys, "Observation", url.Values{"value-string": {"pain"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Matches)
	}
	if plaintextRows() != 1 || found() != 0 {
		t.Fatal("the old index is not as an earlier release left it")
	}
	rebuilt, unreadable, err := svc.RebuildIndex(ctx)
	if err != nil || rebuilt != 1 || unreadable != 0 {
		t.Fatalf("RebuildIndex: %d rebuilt, %d unreadable, %v; want 1, 0", rebuilt, unreadable, err)
	}
	if up.pending {
		t.Fatal("the rebuild is not recorded as done")
	}
	if n := plaintextRows(); n != 0 {
		t.Fatalf("%d plaintext rows left after the rebuild", n)
	}
	if n := found(); n != 1 {
		t.Fatalf("a search by a word of the value finds %d after the rebuild, want 1", n)
	}
	if rebuilt, _, err := svc.RebuildIndex(ctx); err != nil || rebuilt != 0 {
		t.Fatalf("second run: %d rebuilt, %v", rebuilt, err)
	}
}

// TestRebuildIndexReferenceIdentifiers: an Observation stored before
// Ward indexed the identifiers inside references (migration 0022) is not
// found by subject:identifier; after the rebuild it is, by system|value
// and by value alone (not by another value), and its other rows stay.
func TestRebuildIndexReferenceIdentifiers(t *testing.T) {
	up := &rebuildStore{}
	svc, db := newServiceWith(t, records.Config{}, func(s store.Store) store.Store { up.Store = s; return up })
	ctx := context.Background()
	sys := service(t, "system/*.cruds")
	obs, err := svc.Create(ctx, sys, parse(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},`+
		`"subject":{"type":"Device","identifier":{"system":"http://hospital.example/mrn","value":"12345"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	// As an earlier release left it: the status, no identifier rows.
	old := []store.IndexEntry{{Param: "status", Kind: store.KindToken, Value: "final"}}
	if n, err := db.ReplaceIndex(ctx, []store.Reindexed{{Resource: store.Resource{Type: "Observation", ID: obs.ID, Version: obs.Version}, Index: old}}); err != nil || n != 1 {
		t.Fatalf("set the old index: %d, %v", n, err)
	}
	up.pending = true
	found := func(params url.Values) int {
		t.Helper()
		res, err := svc.Search(ctx, sys, "Observation", params)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Matches)
	}
	byIdent := url.Values{"subject:identifier": {"http://hospital.example/mrn|12345"}}
	if found(byIdent) != 0 || found(url.Values{"status": {"final"}}) != 1 {
		t.Fatal("the old index is not as an earlier release left it")
	}
	rebuilt, unreadable, err := svc.RebuildIndex(ctx)
	if err != nil || rebuilt != 1 || unreadable != 0 {
		t.Fatalf("RebuildIndex: %d rebuilt, %d unreadable, %v; want 1, 0", rebuilt, unreadable, err)
	}
	for _, q := range []url.Values{byIdent, {"subject:identifier": {"12345"}}, {"status": {"final"}}} {
		if n := found(q); n != 1 {
			t.Errorf("%v finds %d after the rebuild, want 1", q, n)
		}
	}
	if n := found(url.Values{"subject:identifier": {"http://hospital.example/mrn|54321"}}); n != 0 {
		t.Errorf("another value finds %d after the rebuild", n)
	}
}
