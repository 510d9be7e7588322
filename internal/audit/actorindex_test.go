package audit

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// A database upgraded to the actor index gets the actor and client of the
// entries it already held from their encodings, exactly as the offline
// verifier decodes them (escapes, quotes, non-ASCII, a control character
// an entry written before Ward replaced them may hold), so that breach
// scoping finds the entries of before the upgrade and the verifier
// accepts the filled columns. On SQLite and PostgreSQL.
func TestActorIndexBackfill(t *testing.T) {
	type backend struct {
		name string
		// open opens the store; undo, on a closed store, makes the
		// database look as it was before migration 16.
		open func() (store.Store, error)
		undo func() error
	}
	backends := []func(t *testing.T) backend{
		func(t *testing.T) backend {
			path := filepath.Join(t.TempDir(), "ward.db")
			return backend{"sqlite",
				func() (store.Store, error) { return sqlite.Open(context.Background(), path) },
				func() error {
					raw, err := sql.Open("sqlite", "file:"+path)
					if err != nil {
						return err
					}
					defer raw.Close()
					return undoActorIndex(raw, "")
				}}
		},
		func(t *testing.T) backend {
			sc := storetest.FreshSchema(t, "ward_actor_backfill_")
			return backend{"postgres",
				func() (store.Store, error) { return postgres.Open(context.Background(), sc.URL) },
				func() error { return undoActorIndex(sc.Admin, sc.Name+".") }}
		},
	}
	for i, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			b := backends[i](t)
			ctx := context.Background()
			st, err := b.open()
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
			actors := []string{"u-1", `qu"ote\back`, "émile", "svc:batch/1", ""}
			var recs []Record
			for k, a := range actors {
				rec, err := NewRecord(ledger.Entry{Time: at.Add(time.Duration(k) * time.Second), Actor: a, Client: "app-" + a, Action: "read", Outcome: "success"})
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
			}
			// An entry of before Ward replaced control characters holds
			// one escaped.
			old := bytes.Replace(recs[0].Entry, []byte(`"actor":"u-1"`), []byte(`"actor":"u\u0007-1"`), 1)
			if _, err := ledger.DecodeEntry(old); err != nil {
				t.Fatalf("the old-style entry does not decode: %v", err)
			}
			recs = append(recs, Record{Entry: old, Time: recs[0].Time, Actor: "u\a-1", Client: "app-u-1"})
			tx, err := st.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := AppendInTx(ctx, tx, recs); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if err := b.undo(); err != nil {
				t.Fatalf("undo migration 16: %v", err)
			}
			st, err = b.open()
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			defer st.Close()
			if _, err := VerifyPatientIndex(ctx, st, int64(len(recs))); err != nil {
				t.Fatalf("the verifier rejects the filled columns: %v", err)
			}
			for k, a := range append(actors[:4:4], "u\a-1") {
				rows, err := st.LedgerEntriesByActor(ctx, store.ActorQuery{Actor: a, AfterIndex: -1, Count: 10})
				if err != nil {
					t.Fatal(err)
				}
				want := []int64{int64(k)}
				if k == 4 {
					want = []int64{5}
				}
				var got []int64
				for _, r := range rows {
					got = append(got, r.Index)
				}
				if !slices.Equal(got, want) {
					t.Errorf("entries of actor %q after the upgrade: %v, want %v", a, got, want)
				}
			}
			rows, err := st.LedgerEntriesByActor(ctx, store.ActorQuery{Client: "app-" + actors[1], AfterIndex: -1, Count: 10})
			if err != nil || len(rows) != 1 || rows[0].Index != 1 {
				t.Errorf("entries of client %q after the upgrade: %+v, %v", "app-"+actors[1], rows, err)
			}
		})
	}
}

// undoActorIndex drops migration 16's columns and indexes through raw, as
// if the database predated it; prefix qualifies table names.
func undoActorIndex(raw *sql.DB, prefix string) error {
	for _, q := range []string{
		`DROP INDEX ` + prefix + `ledger_entries_actor`, `DROP INDEX ` + prefix + `ledger_entries_client`,
		`ALTER TABLE ` + prefix + `ledger_entries DROP COLUMN actor`, `ALTER TABLE ` + prefix + `ledger_entries DROP COLUMN client`,
		// Later migrations are undone too: they are applied again after 16.
		`DROP TABLE ` + prefix + `alerts`, `DROP TABLE ` + prefix + `detector_cursor`, `DROP TABLE ` + prefix + `incidents`, `DROP TABLE ` + prefix + `ledger_pending`,
		`ALTER TABLE ` + prefix + `clients DROP COLUMN suspended`,
		`DROP TABLE ` + prefix + `subscriptions`, `DROP TABLE ` + prefix + `subscription_outbox`, `DROP INDEX ` + prefix + `resources_live`,
		`DROP TABLE ` + prefix + `signatures`, `DROP TABLE ` + prefix + `sign_challenges`,
		`ALTER TABLE ` + prefix + `users DROP COLUMN display_name`, `ALTER TABLE ` + prefix + `users DROP COLUMN signing`,
		`DELETE FROM ` + prefix + `schema_migrations WHERE version >= 16`,
	} {
		if _, err := raw.Exec(q); err != nil {
			return err
		}
	}
	return nil
}
