// Package storetest is the conformance suite for store.Store. Every backend
// runs the same suite with the same expectations, so a query answers the same
// on SQLite and on PostgreSQL: Run covers one store handle, RunShared covers
// two handles on the same database (two processes sharing PostgreSQL, or two
// connections to one SQLite file).
//
// The suite checks behaviour through the contract only. It does not check
// durability across crashes or performance.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// PostgresURL returns the PostgreSQL URL for tests from WARD_TEST_POSTGRES.
// When it is unset the test is skipped, unless WARD_REQUIRE_POSTGRES=1, which
// makes a missing variable a failure (CI must not silently skip a backend).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("WARD_TEST_POSTGRES")
	if u != "" {
		return u
	}
	if os.Getenv("WARD_REQUIRE_POSTGRES") == "1" {
		t.Fatal("WARD_REQUIRE_POSTGRES=1 but WARD_TEST_POSTGRES is not set")
	}
	t.Skip("WARD_TEST_POSTGRES not set: skipping PostgreSQL conformance tests")
	return ""
}

// conformanceTest is one named test of the suite; each gets a fresh store.
type conformanceTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs the conformance suite. open must return a store on a fresh, empty
// database and arrange for it to be closed when t ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []conformanceTest{
		{"ReadWrite", testReadWrite},
		{"Versions", testVersions},
		{"Conflicts", testConflicts},
		{"Rollback", testRollback},
		{"TxReads", testTxReads},
		{"History", testHistory},
		{"SearchPredicates", testSearchPredicates},
		{"SearchFilters", testSearchFilters},
		{"SearchSort", testSearchSort},
		{"SearchPaging", testSearchPaging},
		{"SearchTotalCountsCurrent", testSearchTotalCountsCurrent},
		{"IndexReplaced", testIndexReplaced},
		{"LiteralValues", testLiteralValues},
		{"ConcurrentWriters", func(t *testing.T, s store.Store) { testConcurrentWriters(t, s, s) }},
		{"Keys", testKeys},
		{"KeyRace", func(t *testing.T, s store.Store) { testKeyRace(t, s, s) }},
		{"Clients", testClients},
		{"BadQueries", testBadQueries},
		{"Ledger", testLedger},
		{"LedgerSequencing", func(t *testing.T, s store.Store) { testLedgerSequencing(t, s, s) }},
	}
	tests = append(tests, identityTests...)
	tests = append(tests, clientKeyTests...)
	tests = append(tests, labelTests...)
	tests = append(tests, emergencyTests...)
	tests = append(tests, erasureTests...)
	tests = append(tests, exportTests...)
	tests = append(tests, alertTests...)
	tests = append(tests, subscriptionTests...)
	tests = append(tests, esignTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// RunShared runs the tests that need two handles on one database. openPair
// must return two independently opened stores on the same fresh database.
func RunShared(t *testing.T, openPair func(t *testing.T) (store.Store, store.Store)) {
	t.Run("Visibility", func(t *testing.T) {
		a, b := openPair(t)
		put(t, a, res("Patient", "p1", 1, 0), nil)
		got, err := b.Current(t.Context(), "Patient", "p1")
		if err != nil || got.Version != 1 {
			t.Fatalf("second handle: Current = %v, %v; want version 1", got.Version, err)
		}
	})
	t.Run("SameVersionRace", func(t *testing.T) { testSameVersionRace(t, openPair) })
	t.Run("ConcurrentWriters", func(t *testing.T) {
		a, b := openPair(t)
		testConcurrentWriters(t, a, b)
	})
	t.Run("KeyRace", func(t *testing.T) {
		a, b := openPair(t)
		testKeyRace(t, a, b)
	})
	t.Run("LedgerSequencing", func(t *testing.T) {
		a, b := openPair(t)
		testLedgerSequencing(t, a, b)
	})
	runSharedIdentity(t, openPair)
	runSharedEmergency(t, openPair)
	t.Run("AssertionIDRace", func(t *testing.T) {
		a, b := openPair(t)
		testAssertionIDRace(t, a, b)
	})
	t.Run("ClientAttemptsRace", func(t *testing.T) {
		a, b := openPair(t)
		testClientAttemptsRace(t, a, b)
	})
}

// base is the timestamp of the first version in every test.
var base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns base plus n seconds and a microsecond fraction, to check that
// microseconds survive the round trip.
func at(n int) time.Time { return base.Add(time.Duration(n)*time.Second + 123456*time.Microsecond) }

func res(typ, id string, version int64, n int) store.Resource {
	return store.Resource{
		Type: typ, ID: id, Version: version, LastUpdated: at(n),
		Body: fmt.Appendf(nil, "sealed\x00%s/%s/%d", typ, id, version),
	}
}

// put writes one version in its own transaction.
func put(t *testing.T, s store.Store, r store.Resource, index []store.IndexEntry) {
	t.Helper()
	if err := tryPut(t.Context(), s, r, index); err != nil {
		t.Fatalf("PutVersion(%s/%s/%d): %v", r.Type, r.ID, r.Version, err)
	}
}

func tryPut(ctx context.Context, s store.Store, r store.Resource, index []store.IndexEntry) error {
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.PutVersion(ctx, r, index); err != nil {
		return err
	}
	return tx.Commit()
}

func sameResource(a, b store.Resource) bool {
	return a.Type == b.Type && a.ID == b.ID && a.Version == b.Version && a.Compartment == b.Compartment &&
		a.Deleted == b.Deleted && a.LastUpdated.Equal(b.LastUpdated) && bytes.Equal(a.Body, b.Body)
}

func testReadWrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := res("Observation", "o1", 1, 0)
	r.Compartment = "patient-1"
	put(t, s, r, []store.IndexEntry{{Param: "code", Kind: store.KindToken, System: "s", Value: "v"}})
	got, err := s.Current(ctx, "Observation", "o1")
	if err != nil || !sameResource(got, r) {
		t.Fatalf("Current = %+v, %v; want %+v", got, err, r)
	}
	if got.LastUpdated.Location() != time.UTC {
		t.Errorf("LastUpdated location = %v, want UTC", got.LastUpdated.Location())
	}
	got, err = s.Version(ctx, "Observation", "o1", 1)
	if err != nil || !sameResource(got, r) {
		t.Fatalf("Version = %+v, %v; want %+v", got, err, r)
	}
	missing := []struct {
		name string
		fn   func() error
	}{
		{"unknown id", func() error { _, err := s.Current(ctx, "Observation", "nope"); return err }},
		{"other type", func() error { _, err := s.Current(ctx, "Patient", "o1"); return err }},
		{"unknown version", func() error { _, err := s.Version(ctx, "Observation", "o1", 2); return err }},
		{"version zero", func() error { _, err := s.Version(ctx, "Observation", "o1", 0); return err }},
	}
	for _, m := range missing {
		if err := m.fn(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", m.name, err)
		}
	}
}

func testVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	for v := int64(1); v <= 3; v++ {
		put(t, s, res("Patient", "p", v, int(v)), nil)
	}
	del := store.Resource{Type: "Patient", ID: "p", Version: 4, Deleted: true, LastUpdated: at(4)}
	put(t, s, del, nil)
	got, err := s.Current(ctx, "Patient", "p")
	if err != nil || !got.Deleted || got.Version != 4 || len(got.Body) != 0 {
		t.Fatalf("Current after delete = %+v, %v; want deleted version 4", got, err)
	}
	for v := int64(1); v <= 3; v++ {
		got, err := s.Version(ctx, "Patient", "p", v)
		if want := res("Patient", "p", v, int(v)); err != nil || !sameResource(got, want) {
			t.Errorf("Version(%d) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	page, err := s.Search(ctx, store.Query{Type: "Patient", Count: 10, Total: true})
	if err != nil || page.Total != 0 || len(page.Resources) != 0 {
		t.Fatalf("Search after delete = %+v, %v; want nothing", page, err)
	}
	put(t, s, res("Patient", "p", 5, 5), nil)
	page, err = s.Search(ctx, store.Query{Type: "Patient", Count: 10})
	if err != nil || len(page.Resources) != 1 || page.Resources[0].Version != 5 {
		t.Fatalf("Search after re-create = %+v, %v; want version 5", page, err)
	}
}

func testConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, res("Patient", "p", 1, 1), nil)
	put(t, s, res("Patient", "p", 2, 2), nil)
	cases := []struct {
		name    string
		id      string
		version int64
	}{
		{"duplicate latest", "p", 2},
		{"duplicate old", "p", 1},
		{"gap", "p", 4},
		{"far gap", "p", 10},
		{"zero", "p", 0},
		{"negative", "p", -1},
		{"new resource not at 1", "q", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tryPut(ctx, s, res("Patient", tc.id, tc.version, 9), nil)
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("PutVersion(%s, %d) = %v, want ErrConflict", tc.id, tc.version, err)
			}
			got, err := s.Current(ctx, "Patient", "p")
			if err != nil || !sameResource(got, res("Patient", "p", 2, 2)) {
				t.Fatalf("Current after conflict = %+v, %v; want version 2 unchanged", got, err)
			}
			if _, err := s.Current(ctx, "Patient", "q"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Current(q) = %v, want ErrNotFound", err)
			}
		})
	}
	// The conflict text must not echo the row it collided with.
	err := tryPut(ctx, s, res("Patient", "p", 2, 2), nil)
	if msg := err.Error(); bytes.Contains([]byte(msg), []byte("sealed")) {
		t.Errorf("conflict error %q leaks the body", msg)
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idx := []store.IndexEntry{{Param: "name", Kind: store.KindString, Value: "x"}}
	if err := tx.PutVersion(ctx, res("Patient", "a", 1, 0), idx); err != nil {
		t.Fatal(err)
	}
	if err := tx.PutVersion(ctx, res("Patient", "b", 1, 0), idx); err != nil {
		t.Fatal(err)
	}
	// A conflict inside the transaction; the caller abandons it whole.
	if err := tx.PutVersion(ctx, res("Patient", "a", 1, 0), idx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate in tx = %v, want ErrConflict", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Errorf("second Rollback = %v, want nil", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Current(ctx, "Patient", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Current(%s) after rollback = %v, want ErrNotFound", id, err)
		}
	}
	page, err := s.Search(ctx, store.Query{Type: "Patient", Total: true, Clauses: []store.Clause{
		{Param: "name", Any: []store.Predicate{{Kind: store.KindString, Op: store.OpEq, Value: "x"}}}}})
	if err != nil || page.Total != 0 {
		t.Fatalf("Search after rollback = %+v, %v; want no rows", page, err)
	}
	// The store is usable after a rolled-back conflict.
	put(t, s, res("Patient", "a", 1, 0), idx)
}

func testTxReads(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, res("Patient", "p", 1, 0), nil)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	idx := []store.IndexEntry{{Param: "name", Kind: store.KindString, Value: "new"}}
	if err := tx.PutVersion(ctx, res("Patient", "p", 2, 1), idx); err != nil {
		t.Fatal(err)
	}
	got, err := tx.Current(ctx, "Patient", "p")
	if err != nil || got.Version != 2 {
		t.Fatalf("tx.Current = %d, %v; want 2", got.Version, err)
	}
	if _, err := tx.Version(ctx, "Patient", "p", 1); err != nil {
		t.Fatalf("tx.Version(1) = %v", err)
	}
	page, err := tx.Search(ctx, store.Query{Type: "Patient", Count: 5, Clauses: []store.Clause{
		{Param: "name", Any: []store.Predicate{{Kind: store.KindString, Op: store.OpEq, Value: "new"}}}}})
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("tx.Search = %+v, %v; want the uncommitted version", page, err)
	}
	hist, err := tx.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p", Count: 5})
	if err != nil || hist.Total != 2 {
		t.Fatalf("tx.History total = %d, %v; want 2", hist.Total, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err = s.Current(ctx, "Patient", "p")
	if err != nil || got.Version != 2 {
		t.Fatalf("Current after commit = %d, %v; want 2", got.Version, err)
	}
}

func versionsOf(p store.Page) []string {
	var out []string
	for _, r := range p.Resources {
		out = append(out, fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version))
	}
	return out
}

func testHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Patient/a v1@0 v2@2 v3(deleted)@5; Patient/b v1@1 v2@4; Observation/o v1@3 v2@5.
	// a/3 and o/2 share an instant: the higher version comes first.
	put(t, s, res("Patient", "a", 1, 0), nil)
	put(t, s, res("Patient", "b", 1, 1), nil)
	put(t, s, res("Patient", "a", 2, 2), nil)
	put(t, s, res("Observation", "o", 1, 3), nil)
	put(t, s, res("Patient", "b", 2, 4), nil)
	put(t, s, store.Resource{Type: "Patient", ID: "a", Version: 3, Deleted: true, LastUpdated: at(5)}, nil)
	put(t, s, res("Observation", "o", 2, 5), nil)

	cases := []struct {
		name string
		q    store.HistoryQuery
		want []string
		more bool
		tot  int
	}{
		{"server", store.HistoryQuery{Count: 10}, []string{"Patient/a/3", "Observation/o/2", "Patient/b/2", "Observation/o/1", "Patient/a/2", "Patient/b/1", "Patient/a/1"}, false, 7},
		{"type", store.HistoryQuery{Type: "Patient", Count: 10}, []string{"Patient/a/3", "Patient/b/2", "Patient/a/2", "Patient/b/1", "Patient/a/1"}, false, 5},
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a", Count: 10}, []string{"Patient/a/3", "Patient/a/2", "Patient/a/1"}, false, 3},
		{"unknown instance", store.HistoryQuery{Type: "Patient", ID: "zz", Count: 10}, nil, false, 0},
		{"since inclusive", store.HistoryQuery{Type: "Patient", Since: at(2), Count: 10}, []string{"Patient/a/3", "Patient/b/2", "Patient/a/2"}, false, 3},
		{"before exclusive", store.HistoryQuery{Type: "Patient", Before: at(2), Count: 10}, []string{"Patient/b/1", "Patient/a/1"}, false, 2},
		{"since and before", store.HistoryQuery{Since: at(1), Before: at(4), Count: 10}, []string{"Observation/o/1", "Patient/a/2", "Patient/b/1"}, false, 3},
		{"first page", store.HistoryQuery{Count: 3}, []string{"Patient/a/3", "Observation/o/2", "Patient/b/2"}, true, 7},
		{"middle page", store.HistoryQuery{Offset: 3, Count: 3}, []string{"Observation/o/1", "Patient/a/2", "Patient/b/1"}, true, 7},
		{"last page", store.HistoryQuery{Offset: 6, Count: 3}, []string{"Patient/a/1"}, false, 7},
		{"exact last page", store.HistoryQuery{Offset: 4, Count: 3}, []string{"Patient/a/2", "Patient/b/1", "Patient/a/1"}, false, 7},
		{"past the end", store.HistoryQuery{Offset: 9, Count: 3}, nil, false, 7},
		{"count only", store.HistoryQuery{Type: "Patient"}, nil, true, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.History(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := versionsOf(page); !slices.Equal(got, tc.want) || page.More != tc.more || page.Total != tc.tot {
				t.Fatalf("History = %v more=%v total=%d; want %v more=%v total=%d", got, page.More, page.Total, tc.want, tc.more, tc.tot)
			}
		})
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "a", Count: 1})
	if err != nil || len(page.Resources) != 1 || !page.Resources[0].Deleted || len(page.Resources[0].Body) != 0 {
		t.Fatalf("History newest = %+v, %v; want the deletion", page, err)
	}
}

// testConcurrentWriters has goroutines update one resource through a and b
// (which may be the same store), re-reading and retrying on conflict as the
// records service does. Every version 1..n must exist exactly once.
func testConcurrentWriters(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const workers, updates = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range updates {
				if err := updateWithRetry(ctx, s, w); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const n = workers * updates
	hist, err := a.History(ctx, store.HistoryQuery{Type: "Patient", ID: "shared", Count: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	if hist.Total != n || len(hist.Resources) != n {
		t.Fatalf("history has %d versions (total %d), want %d", len(hist.Resources), hist.Total, n)
	}
	for i, r := range hist.Resources {
		if want := int64(n - i); r.Version != want {
			t.Fatalf("history[%d] = version %d, want %d", i, r.Version, want)
		}
	}
	cur, err := b.Current(ctx, "Patient", "shared")
	if err != nil || cur.Version != n {
		t.Fatalf("Current = %d, %v; want %d", cur.Version, err, n)
	}
	page, err := a.Search(ctx, store.Query{Type: "Patient", Total: true, Clauses: []store.Clause{
		{Param: "writer", Any: []store.Predicate{{Op: store.OpMissing, Missing: false}}}}})
	if err != nil || page.Total != 1 {
		t.Fatalf("index rows after concurrent writes: total %d, %v; want 1 resource", page.Total, err)
	}
}

func updateWithRetry(ctx context.Context, s store.Store, worker int) error {
	for attempt := 0; attempt < 1000; attempt++ {
		err := func() error {
			tx, err := s.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			next := int64(1)
			cur, err := tx.Current(ctx, "Patient", "shared")
			switch {
			case err == nil:
				next = cur.Version + 1
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			r := res("Patient", "shared", next, int(next))
			idx := []store.IndexEntry{{Param: "writer", Kind: store.KindToken, Value: fmt.Sprint(worker)}}
			if err := tx.PutVersion(ctx, r, idx); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return errors.New("storetest: no progress after 1000 conflicts")
}

// testSameVersionRace has two handles write the same version of the same
// resource at once, many times: exactly one must win each round.
func testSameVersionRace(t *testing.T, openPair func(t *testing.T) (store.Store, store.Store)) {
	a, b := openPair(t)
	ctx := t.Context()
	for round := int64(1); round <= 10; round++ {
		var wg sync.WaitGroup
		var errs [2]error
		for i, s := range []store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := res("Patient", "race", round, int(round))
				r.Body = fmt.Appendf(nil, "writer %d", i)
				errs[i] = tryPut(ctx, s, r, []store.IndexEntry{{Param: "w", Kind: store.KindToken, Value: fmt.Sprint(i)}})
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1 (errors %v)", round, wins, errs)
		}
	}
	hist, err := b.History(ctx, store.HistoryQuery{Type: "Patient", ID: "race", Count: 20})
	if err != nil || hist.Total != 10 {
		t.Fatalf("history total = %d, %v; want 10", hist.Total, err)
	}
}

func testKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.LoadKey(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadKey(unknown) = %v, want ErrNotFound", err)
	}
	k1 := store.WrappedKey{Compartment: "p1", KEKID: "kek-1", Wrapped: []byte{0, 1, 2, 3}}
	shared := store.WrappedKey{Compartment: "", KEKID: "kek-1", Wrapped: []byte{9, 9}}
	for _, k := range []store.WrappedKey{k1, shared} {
		got, err := s.CreateKey(ctx, k)
		if err != nil || !sameKey(got, k) {
			t.Fatalf("CreateKey(%q) = %+v, %v", k.Compartment, got, err)
		}
	}
	other := store.WrappedKey{Compartment: "p1", KEKID: "kek-2", Wrapped: []byte{7}}
	got, err := s.CreateKey(ctx, other)
	if err != nil || !sameKey(got, k1) {
		t.Fatalf("CreateKey over existing = %+v, %v; want the first key", got, err)
	}
	got, err = s.LoadKey(ctx, "p1")
	if err != nil || !sameKey(got, k1) {
		t.Fatalf("LoadKey = %+v, %v", got, err)
	}

	rotated := store.WrappedKey{Compartment: "p1", KEKID: "kek-2", Wrapped: []byte{4, 5, 6}}
	if err := s.ReplaceKey(ctx, k1, rotated); err != nil {
		t.Fatalf("ReplaceKey = %v", err)
	}
	stale := []struct {
		name string
		old  store.WrappedKey
	}{
		{"stale kek and bytes", k1},
		{"stale bytes", store.WrappedKey{Compartment: "p1", KEKID: "kek-2", Wrapped: []byte{4, 5, 7}}},
		{"stale kek", store.WrappedKey{Compartment: "p1", KEKID: "kek-1", Wrapped: []byte{4, 5, 6}}},
		{"unknown compartment", store.WrappedKey{Compartment: "p9", KEKID: "kek-2", Wrapped: []byte{4, 5, 6}}},
	}
	for _, tc := range stale {
		n := store.WrappedKey{Compartment: tc.old.Compartment, KEKID: "kek-3", Wrapped: []byte{1}}
		if err := s.ReplaceKey(ctx, tc.old, n); !errors.Is(err, store.ErrConflict) {
			t.Errorf("ReplaceKey(%s) = %v, want ErrConflict", tc.name, err)
		}
	}
	if got, _ := s.LoadKey(ctx, "p1"); !sameKey(got, rotated) {
		t.Fatalf("after failed swaps LoadKey = %+v, want %+v", got, rotated)
	}

	var listed []store.WrappedKey
	if err := s.ListKeys(ctx, func(k store.WrappedKey) error { listed = append(listed, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || !sameKey(listed[0], shared) || !sameKey(listed[1], rotated) {
		t.Fatalf("ListKeys = %+v", listed)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.ListKeys(ctx, func(store.WrappedKey) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ListKeys with failing fn = %v after %d calls; want stop after 1", err, calls)
	}
}

func sameKey(a, b store.WrappedKey) bool {
	return a.Compartment == b.Compartment && a.KEKID == b.KEKID && bytes.Equal(a.Wrapped, b.Wrapped)
}

// testKeyRace has many goroutines create the same compartment's key: all
// must get the one key that was stored.
func testKeyRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const n = 8
	got := make([]store.WrappedKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.CreateKey(ctx, store.WrappedKey{Compartment: "race", KEKID: "kek", Wrapped: []byte{byte(i)}}) // #nosec G115 -- test data: the intended truncation to a byte
		}()
	}
	wg.Wait()
	stored, err := a.LoadKey(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || !sameKey(got[i], stored) {
			t.Fatalf("CreateKey #%d = %+v, %v; want the stored key %+v", i, got[i], errs[i], stored)
		}
	}
}

func testClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Client(ctx, "app"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Client(unknown) = %v, want ErrNotFound", err)
	}
	c := store.Client{ID: "app", Name: "App", SecretHash: []byte{1, 2, 3}, Scopes: []string{"system/*.read", "openid"}, Created: at(0)}
	d := store.Client{ID: "aardvark", Name: "Other", SecretHash: []byte{4}, Created: at(1)}
	for _, cl := range []store.Client{c, d} {
		if err := s.CreateClient(ctx, cl); err != nil {
			t.Fatalf("CreateClient(%s) = %v", cl.ID, err)
		}
	}
	if err := s.CreateClient(ctx, store.Client{ID: "app", Name: "Dup", SecretHash: []byte{9}, Created: at(2)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateClient = %v, want ErrConflict", err)
	}
	got, err := s.Client(ctx, "app")
	if err != nil || !sameClient(got, c) {
		t.Fatalf("Client = %+v, %v; want %+v", got, err, c)
	}
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 2 || !sameClient(list[0], d) || !sameClient(list[1], c) {
		t.Fatalf("ListClients = %+v, %v", list, err)
	}
	if err := s.RevokeClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeClient(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeClient(unknown) = %v, want ErrNotFound", err)
	}
	got, err = s.Client(ctx, "app")
	if err != nil || !got.Revoked {
		t.Fatalf("Client after revoke = %+v, %v; want revoked", got, err)
	}
	if got, _ := s.Client(ctx, "aardvark"); got.Revoked {
		t.Fatal("revoking one client revoked another")
	}
}

func sameClient(a, b store.Client) bool {
	return a.ID == b.ID && a.Name == b.Name && bytes.Equal(a.SecretHash, b.SecretHash) &&
		slices.Equal(a.Scopes, b.Scopes) && a.Created.Equal(b.Created) && a.Revoked == b.Revoked &&
		bytes.Equal(a.JWKS, b.JWKS) && slices.Equal(a.CertThumbprints, b.CertThumbprints)
}

func testBadQueries(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := []struct {
		name string
		q    store.Query
	}{
		{"no type", store.Query{Count: 1}},
		{"negative count", store.Query{Type: "Patient", Count: -1}},
		{"negative offset", store.Query{Type: "Patient", Offset: -1, Count: 1}},
		{"empty clause", store.Query{Type: "Patient", Count: 1, Clauses: []store.Clause{{Param: "x"}}}},
		{"unknown op", store.Query{Type: "Patient", Count: 1, Clauses: []store.Clause{{Param: "x", Any: []store.Predicate{{Op: 99}}}}}},
		{"unknown cmp", store.Query{Type: "Patient", Count: 1, Clauses: []store.Clause{{Param: "x", Any: []store.Predicate{{Op: store.OpRange, Cmp: 99}}}}}},
	}
	for _, tc := range bad {
		if _, err := s.Search(ctx, tc.q); err == nil {
			t.Errorf("Search(%s) succeeded, want an error", tc.name)
		}
	}
	if _, err := s.History(ctx, store.HistoryQuery{ID: "x", Count: 1}); err == nil {
		t.Error("History with an id but no type succeeded, want an error")
	}
}

// Opened is what a backend's test opener returns: the store Open gave,
// closed when t ends, or a fatal error.
func Opened[S store.Store](t testing.TB, s S, err error) store.Store {
	t.Helper()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
