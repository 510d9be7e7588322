package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// rawBackend is a store and a direct connection to its tables, as a
// database administrator (or an attacker with the disk) would have.
type rawBackend struct {
	name string
	open func(t *testing.T) (st store.Store, raw *sql.DB, table func(string) string)
}

func rawBackends() []rawBackend {
	return []rawBackend{
		{"sqlite", func(t *testing.T) (store.Store, *sql.DB, func(string) string) {
			path := filepath.Join(t.TempDir(), "ward.db")
			st := openT(t, func() (store.Store, error) { return sqlite.Open(context.Background(), path) })
			raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			return st, raw, func(name string) string { return name }
		}},
		{"postgres", func(t *testing.T) (store.Store, *sql.DB, func(string) string) {
			sc := storetest.FreshSchema(t, "ward_audit_index_")
			st := openT(t, func() (store.Store, error) { return postgres.Open(context.Background(), sc.URL) })
			return st, sc.Admin, func(name string) string { return sc.Name + "." + name }
		}},
	}
}

// The patient and actor index (each entry's patient, actor, client and
// time columns, and the rows of the entries naming several patients) must
// say what the entries say:
// every deletion, insertion or edit of it is found and named, though the
// Merkle tree, which covers the entries only, still verifies.
func TestVerifyPatientIndex(t *testing.T) {
	for _, b := range rawBackends() {
		t.Run(b.name, func(t *testing.T) {
			st, raw, table := b.open(t)
			ctx := context.Background()
			at := time.Date(2025, 4, 1, 9, 30, 0, 123456789, time.UTC)
			search := ledger.Entry{Time: at.Add(time.Second), Actor: "c", Client: "c", Action: "search", ResourceType: "Observation", Outcome: "success"}
			search.SetPatients([]string{"pc", "pa", "pb", "pa"})
			entries := []ledger.Entry{
				{Time: at, Actor: "c", Client: "c", Action: "read", ResourceType: "Patient", ResourceID: "pa", Patient: "pa", Outcome: "success"},
				search,
				// Its own patient in its list too: indexed once, in the column.
				{Time: at.Add(2 * time.Second), Actor: "c", Client: "c", Action: "history", Patient: "pd", Patients: []string{"pe", "pd"}, Outcome: "success"},
				{Time: at.Add(3 * time.Second), Actor: "c", Client: "c", Action: "token", Outcome: "success"},
			}
			l := New(st, Config{})
			defer l.Close()
			for _, e := range entries {
				rec, err := NewRecord(e)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Append(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			signer := newSigner(t)
			if _, _, err := Checkpoint(ctx, st, signer); err != nil {
				t.Fatal(err)
			}
			check := func() error {
				t.Helper()
				if err := verify(ctx, st, signer); err != nil {
					t.Fatalf("the Merkle tree no longer verifies: %v", err)
				}
				_, err := VerifyPatientIndex(ctx, st, int64(len(entries)))
				return err
			}
			if rows, err := VerifyPatientIndex(ctx, st, int64(len(entries))); err != nil || rows != 4 {
				t.Fatalf("untouched index: %d rows, %v; want 4 rows (pa, pb, pc; pe) and no error", rows, err)
			}
			// Verifying a prefix, as when entries arrive while verify runs:
			// the later entries' rows are theirs, not strays.
			if rows, err := VerifyPatientIndex(ctx, st, 1); err != nil || rows != 0 {
				t.Fatalf("the first entry alone: %d rows, %v", rows, err)
			}

			micros := func(idx int) int64 { return entries[idx].Time.UnixMicro() }
			ent, pat := table("ledger_entries"), table("ledger_patients")
			insert := func(p string, idx int, atMicros int64) string {
				return fmt.Sprintf(`INSERT INTO %s (patient, at, idx) VALUES ('%s', %d, %d)`, pat, p, atMicros, idx)
			}
			remove := func(p string, idx int) string {
				return fmt.Sprintf(`DELETE FROM %s WHERE patient = '%s' AND idx = %d`, pat, p, idx)
			}
			rename := func(from, to string, idx int) string {
				return fmt.Sprintf(`UPDATE %s SET patient = '%s' WHERE patient = '%s' AND idx = %d`, pat, to, from, idx)
			}
			mutations := []struct {
				name     string
				do, undo []string
				index    int64
				reason   string
			}{
				{"delete an index row", []string{remove("pb", 1)}, []string{insert("pb", 1, micros(1))}, 1, `lacks patient "pb"`},
				{"delete the last index row of an entry", []string{remove("pc", 1)}, []string{insert("pc", 1, micros(1))}, 1, `lacks patient "pc"`},
				{"add an index row", []string{insert("px", 1, micros(1))}, []string{remove("px", 1)}, 1, `patient "px", whom it does not name`},
				{"add an index row to a one-patient entry", []string{insert("pq", 0, micros(0))}, []string{remove("pq", 0)}, 0, `patient "pq", whom it does not name`},
				{"index an entry under its own patient again", []string{insert("pd", 2, micros(2))}, []string{remove("pd", 2)}, 2, `under "pd", its patient column's, a second time`},
				{"index an entry twice under one patient", []string{insert("pa", 1, micros(1)+1)}, []string{fmt.Sprintf(`DELETE FROM %s WHERE idx = 1 AND at = %d`, pat, micros(1)+1)}, 1, `patient "pa" twice`},
				{"change an index row's patient", []string{rename("pc", "pz", 1)}, []string{rename("pz", "pc", 1)}, 1, `lacks patient "pc"`},
				{"change an index row's time", []string{fmt.Sprintf(`UPDATE %s SET at = 0 WHERE patient = 'pe' AND idx = 2`, pat)},
					[]string{fmt.Sprintf(`UPDATE %s SET at = %d WHERE patient = 'pe' AND idx = 2`, pat, micros(2))}, 2, `under patient "pe" at 1970`},
				{"index a row under an entry the ledger does not hold", []string{insert("pa", 99, micros(1))}, []string{remove("pa", 99)}, 99, "holds no such entry"},
				{"index a row under a negative index", []string{insert("pa", -1, micros(1))}, []string{remove("pa", -1)}, -1, "holds no such entry"},
				{"change an entry's patient column", []string{fmt.Sprintf(`UPDATE %s SET patient = 'pz' WHERE idx = 0`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET patient = 'pa' WHERE idx = 0`, ent)}, 0, `patient column says "pz" but the entry names "pa"`},
				{"empty an entry's patient column", []string{fmt.Sprintf(`UPDATE %s SET patient = '' WHERE idx = 2`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET patient = 'pd' WHERE idx = 2`, ent)}, 2, `patient column says "" but the entry names "pd"`},
				{"give a patient to an entry naming none", []string{fmt.Sprintf(`UPDATE %s SET patient = 'pa' WHERE idx = 3`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET patient = '' WHERE idx = 3`, ent)}, 3, `patient column says "pa" but the entry names ""`},
				{"change an entry's actor column", []string{fmt.Sprintf(`UPDATE %s SET actor = 'someone-else' WHERE idx = 1`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET actor = 'c' WHERE idx = 1`, ent)}, 1, `actor column says "someone-else" but the entry's actor is "c"`},
				{"empty an entry's actor column", []string{fmt.Sprintf(`UPDATE %s SET actor = '' WHERE idx = 0`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET actor = 'c' WHERE idx = 0`, ent)}, 0, `actor column says ""`},
				{"change an entry's client column", []string{fmt.Sprintf(`UPDATE %s SET client = 'other-app' WHERE idx = 3`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET client = 'c' WHERE idx = 3`, ent)}, 3, `client column says "other-app" but the entry's client is "c"`},
				{"change an entry's time column", []string{fmt.Sprintf(`UPDATE %s SET at = at + 1 WHERE idx = 0`, ent)},
					[]string{fmt.Sprintf(`UPDATE %s SET at = %d WHERE idx = 0`, ent, micros(0))}, 0, "time column says"},
			}
			detected := 0
			for _, m := range mutations {
				for _, q := range m.do {
					if _, err := raw.ExecContext(ctx, q); err != nil {
						t.Fatalf("%s: %v", m.name, err)
					}
				}
				err := check()
				var ve *ledger.VerifyError
				switch {
				case err == nil:
					t.Errorf("%s: not detected", m.name)
				case !errors.As(err, &ve) || ve.Index != m.index || !strings.Contains(ve.Reason, m.reason):
					t.Errorf("%s: %v; want index %d and a reason with %q", m.name, err, m.index, m.reason)
				default:
					detected++
				}
				for _, q := range m.undo {
					if _, err := raw.ExecContext(ctx, q); err != nil {
						t.Fatalf("%s: undo: %v", m.name, err)
					}
				}
				if err := check(); err != nil {
					t.Fatalf("%s: the repaired index is still rejected: %v", m.name, err)
				}
			}
			t.Logf("patient index mutations detected: %d/%d", detected, len(mutations))
		})
	}
}
