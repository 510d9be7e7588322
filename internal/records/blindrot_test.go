package records_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// rotationQueries are searches on blind-indexed parameters (and one
// that is not), with :not and identifiers, whose answers must not change
// while the blind-index key rotates.
var rotationQueries = []url.Values{
	{"identifier": {"urn:test|id-3"}},
	{"identifier": {"id-4"}},
	{"identifier:not": {"urn:test|id-3"}},
	{"identifier:not": {"urn:test|id-5"}, "family": {"smith"}},
	{"identifier": {"urn:test|id-1,urn:test|id-7"}},
	{"family": {"smith"}},
	{"family:exact": {"Jones"}},
	{"name": {"ann"}},
	{"birthdate": {"1970-01-02"}},
	{"gender": {"female"}, "family": {"smith"}},
}

// openBlindStore opens a fresh store of a backend.
type openBlindStore func(t testing.TB) store.Store

func sqliteBlindStore(t testing.TB) store.Store {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func postgresBlindStore(t testing.TB) store.Store {
	sc := storetest.FreshSchema(t, "ward_records_test_")
	db, err := postgres.Open(t.Context(), sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rotService is a records service over db whose blind index follows the
// key file kf (or is fixed, when blind is not nil).
func rotService(t testing.TB, db store.Store, kf *keys.LocalFile, blind *keys.BlindIndex) *records.Service {
	t.Helper()
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := search.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	val, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(db, audit.Config{})
	t.Cleanup(func() { log.Close() })
	if blind == nil {
		blind = kf.BlindIndex()
	}
	return records.New(records.Config{Ledger: log}, db, kr, blind, reg, val)
}

func rotPatient(i int, active bool) string {
	families := []string{"Smith", "Jones", "Smith", "Brown"}
	givens := []string{"Ann", "Bob", "Anna", "Carl", "Dee"}
	genders := []string{"female", "male"}
	return fmt.Sprintf(`{"resourceType":"Patient","id":"p%02d","active":%t,"identifier":[{"system":"urn:test","value":"id-%d"}],`+
		`"name":[{"family":"%s","given":["%s"]}],"gender":"%s","birthDate":"1970-01-%02d"}`,
		i, active, i, families[i%len(families)], givens[i%len(givens)], genders[i%len(genders)], 1+i%3)
}

// answers runs every rotation query and returns the ids each finds.
func answers(t *testing.T, svc *records.Service) []string {
	t.Helper()
	sys := service(t, "system/*.cruds")
	var out []string
	for _, q := range rotationQueries {
		q := maps(q)
		q.Set("_count", "100")
		res, err := svc.Search(context.Background(), sys, "Patient", q)
		if err != nil {
			t.Fatalf("search %v: %v", q, err)
		}
		var ids []string
		for _, e := range res.Matches {
			ids = append(ids, e.ID)
		}
		slices.Sort(ids)
		out = append(out, strings.Join(ids, ","))
	}
	return out
}

func maps(q url.Values) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

// TestBlindIndexRotation rotates the blind-index key with the re-index
// stopped and resumed by another process, on SQLite and PostgreSQL:
// every search answers the same before, after the announcement, at
// several points of the re-index (rows under both keys) and after, also
// with writes under either key in between; at the end no row is left
// under the old key and the old generation is gone.
func TestBlindIndexRotation(t *testing.T) {
	for _, b := range []struct {
		name string
		open openBlindStore
	}{{"sqlite", sqliteBlindStore}, {"postgres", postgresBlindStore}} {
		t.Run(b.name, func(t *testing.T) { testBlindIndexRotation(t, b.open) })
	}
}

func testBlindIndexRotation(t *testing.T, open openBlindStore) {
	ctx := context.Background()
	keyPath := filepath.Join(t.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	kf, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := open(t)
	svc := rotService(t, db, kf, nil)
	// oldOnly hashes under the first generation only: it finds the rows
	// not yet rewritten.
	oldOnly := rotService(t, db, kf, keys.NewBlindIndex(kf.IndexKey()))
	sys := service(t, "system/*.cruds")
	const n = 12
	write := func(svc *records.Service, i int, active bool) {
		t.Helper()
		if _, _, err := svc.Update(ctx, sys, "Patient", fmt.Sprintf("p%02d", i), parse(t, rotPatient(i, active)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		write(svc, i, true)
	}
	want := answers(t, svc)
	if want[0] != "p03" || want[5] == "" || !strings.Contains(want[2], "p00") {
		t.Fatalf("the queries do not find what the data holds: %q", want)
	}
	check := func(when string, svc *records.Service) {
		t.Helper()
		if got := answers(t, svc); !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: %v found %q, want %q", when, rotationQueries[i], got[i], want[i])
				}
			}
			t.FailNow()
		}
	}
	step := func(svc *records.Service, kf *keys.LocalFile, now time.Time, batch int) records.ReindexStatus {
		t.Helper()
		st, err := svc.ReindexStep(ctx, kf, now, batch)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	id, err := kf.AnnounceIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("announced", svc)
	write(svc, 1, false) // written under the old key still
	check("announced, after a write", svc)
	now := time.Now()
	if st := step(svc, kf, now, 3); !st.Waiting || st.State != "announced" {
		t.Fatalf("the announcement was cut short: %+v", st)
	}
	now = now.Add(keys.AnnounceWait + time.Second)
	if st := step(svc, kf, now, 3); st.State != "reindexing" || st.Pass != 1 {
		t.Fatalf("start: %+v", st)
	}
	write(svc, 2, false) // under the new key, before the re-index reaches it
	check("re-index started", svc)
	for range 2 {
		if st := step(svc, kf, now, 3); st.Rewritten != 3 {
			t.Fatalf("a batch rewrote %d versions, want 3", st.Rewritten)
		}
		check("partly re-indexed", svc)
	}
	if old := answers(t, oldOnly); slices.Equal(old, want) || old[5] == "" {
		t.Fatalf("after a partial re-index the old key alone finds %q: not a mix of both keys", old)
	}

	// The server stops; another process resumes from the recorded cursor.
	kf2, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc2 := rotService(t, db, kf2, nil)
	rot, _, err := kf2.IndexRotation()
	if err != nil || rot.Cursor.Done != 6 || rot.Cursor.AfterID != "p05" {
		t.Fatalf("cursor after a stop: %+v %v", rot.Cursor, err)
	}
	check("resumed", svc2)
	for i := 0; ; i++ {
		st := step(svc2, kf2, now, 3)
		if st.Pass == 2 {
			if st.Done != n {
				t.Fatalf("pass 1 rewrote %d versions in all, want %d", st.Done, n)
			}
			break
		}
		if i > n {
			t.Fatal("pass 1 does not end")
		}
		check("resumed, partly re-indexed", svc)
	}
	check("pass 1 done", svc)
	if st := step(svc2, kf2, now, 100); !st.Waiting {
		t.Fatalf("pass 2 did not wait for late writers: %+v", st)
	}
	now = now.Add(keys.AnnounceWait)
	write(svc, 4, false)
	for i := 0; ; i++ {
		st := step(svc2, kf2, now, 5)
		if st.Finished {
			break
		}
		if i > n {
			t.Fatal("pass 2 does not end")
		}
		check("pass 2", svc)
	}
	check("after the rotation", svc)
	check("after the rotation, other process", svc2)
	old := answers(t, oldOnly)
	for _, i := range []int{0, 1, 4, 5, 6, 7, 8, 9} { // the positive searches
		if old[i] != "" {
			t.Fatalf("rows under the old key remain: %v finds %q", rotationQueries[i], old[i])
		}
	}
	if err := kf.Refresh(); err != nil {
		t.Fatal(err)
	}
	if gs := kf.Generations(keys.KindIndex); len(gs) != 1 || gs[0].ID != id || gs[0].State != "" {
		t.Fatalf("index generations after the rotation: %+v", gs)
	}
	if _, ok, _ := kf.IndexRotation(); ok {
		t.Fatal("rotation still in progress")
	}
}
