package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func openAt(t testing.TB, path string) store.Store {
	t.Helper()
	db, err := Open(t.Context(), path)
	return storetest.Opened(t, db, err)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "ward.db"))
	})
}

func TestSharedFile(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "ward.db")
		return openAt(t, path), openAt(t, path)
	})
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ward.db")
	s := openAt(t, path)
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := store.Resource{Type: "Patient", ID: "p", Version: 1, Body: []byte("x")}
	if err := tx.PutVersion(t.Context(), r, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", filepath.Base(p), err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateClient(t.Context(), store.Client{ID: "c", Name: "n", SecretHash: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Migrations are not re-applied, and the data is there.
	s := openAt(t, path)
	if _, err := s.Client(t.Context(), "c"); err != nil {
		t.Fatalf("Client after reopen: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, path := range []string{"", ":memory:", filepath.Join(t.TempDir(), "missing-dir", "ward.db")} {
		if db, err := Open(t.Context(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestUnavailableAfterClose(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.Current(t.Context(), "Patient", "p"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current on a closed store = %v, want a database error", err)
	}
}

func BenchmarkPutVersion(b *testing.B) {
	storetest.BenchPutVersion(b, openAt(b, filepath.Join(b.TempDir(), "ward.db")))
}

func BenchmarkCurrent(b *testing.B) {
	storetest.BenchCurrent(b, openAt(b, filepath.Join(b.TempDir(), "ward.db")))
}

// FuzzLiteralSearch checks that any value matches only itself (equality) or
// the values it literally prefixes or is contained in, next to values that
// are LIKE wildcards and SQL metacharacters.
func FuzzLiteralSearch(f *testing.F) {
	for _, v := range []string{`' OR 1=1 --`, `%`, `_`, `\`, `a%`, `"; DROP TABLE resources; --`, "Ünï", ""} {
		f.Add(v)
	}
	s := openAt(f, filepath.Join(f.TempDir(), "ward.db"))
	fixed := []string{"a", "%", "_x", `\`, "abc", "x'y"}
	for i, v := range fixed {
		put(f, s, store.Resource{Type: "Basic", ID: fmt.Sprint("fixed-", i), Version: 1, Body: []byte{1}}, v)
	}
	version := int64(0)
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Skip("values are non-empty UTF-8 without NUL")
		}
		version++
		put(t, s, store.Resource{Type: "Basic", ID: "fuzz", Version: version, Body: []byte{1}}, v)
		all := append([]string{v}, fixed...)
		for _, op := range []store.Op{store.OpEq, store.OpPrefix, store.OpContains} {
			want := 0
			for _, x := range all {
				if op == store.OpEq && x == v || op == store.OpPrefix && strings.HasPrefix(x, v) || op == store.OpContains && strings.Contains(x, v) {
					want++
				}
			}
			page, err := s.Search(t.Context(), store.Query{Type: "Basic", Total: true, Clauses: []store.Clause{
				{Param: "s", Any: []store.Predicate{{Kind: store.KindString, Op: op, Value: v}}}}})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != want {
				t.Fatalf("op %d %q: %d matches, want %d", op, v, page.Total, want)
			}
		}
	})
}

func put(t testing.TB, s store.Store, r store.Resource, value string) {
	t.Helper()
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.PutVersion(t.Context(), r, []store.IndexEntry{{Param: "s", Kind: store.KindString, Value: value}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A database that held resources when the sensitivity and index rebuild
// migrations ran has versions to classify and an index to rebuild; one
// that was empty has neither.
func TestSensitivityPendingAfterUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutVersion(t.Context(), store.Resource{Type: "Patient", ID: "p", Version: 1, Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if pending, err := db.SensitivityPending(t.Context()); err != nil || pending {
		t.Fatalf("pending on a database created empty: %v, %v", pending, err)
	}
	if pending, err := db.IndexRebuildPending(t.Context()); err != nil || pending {
		t.Fatalf("index rebuild pending on a database created empty: %v, %v", pending, err)
	}
	db.Close()
	// Undo the migration, as if the database predated it, and open again.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// Later migrations are undone too: they are applied again after 11.
	for _, q := range []string{`DROP TABLE sensitivity_reindex`, `DROP TABLE index_rebuild`, `DROP TABLE client_attempts`,
		`DROP TABLE erasures`, `DROP TABLE legal_holds`, `DROP INDEX resources_compartment`, `DROP TABLE export_jobs`,
		`DROP TABLE alerts`, `DROP TABLE detector_cursor`, `DROP TABLE incidents`, `ALTER TABLE clients DROP COLUMN suspended`, `DROP TABLE ledger_pending`,
		`DROP TABLE subscriptions`, `DROP TABLE subscription_outbox`, `DROP INDEX resources_live`,
		`DROP INDEX ledger_entries_actor`, `DROP INDEX ledger_entries_client`, `ALTER TABLE ledger_entries DROP COLUMN actor`, `ALTER TABLE ledger_entries DROP COLUMN client`,
		`DROP TABLE signatures`, `DROP TABLE sign_challenges`, `ALTER TABLE users DROP COLUMN display_name`, `ALTER TABLE users DROP COLUMN signing`,
		`DELETE FROM schema_migrations WHERE version >= 11`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	s := openAt(t, path)
	if pending, err := s.SensitivityPending(t.Context()); err != nil || !pending {
		t.Fatalf("pending after upgrading a database with resources: %v, %v", pending, err)
	}
	if pending, err := s.IndexRebuildPending(t.Context()); err != nil || !pending {
		t.Fatalf("index rebuild pending after upgrading a database with resources: %v, %v", pending, err)
	}
}

// Migration 22 (the identifiers inside references are indexed): a
// database whose index was rebuilt under the earlier rule and that holds
// resources has its index to rebuild again; an empty one does not.
func TestIndexRebuildPendingAfterReferenceIdentifiers(t *testing.T) {
	for _, withResources := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "ward.db")
		s := openAt(t, path)
		if withResources {
			put(t, s, store.Resource{Type: "Observation", ID: "o", Version: 1, Body: []byte("x")}, "v")
		}
		if err := s.IndexRebuilt(t.Context()); err != nil {
			t.Fatal(err)
		}
		if pending, err := s.IndexRebuildPending(t.Context()); err != nil || pending {
			t.Fatalf("pending once rebuilt: %v, %v", pending, err)
		}
		s.Close()
		// As if the database predated migration 22, then open again.
		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`DELETE FROM schema_migrations WHERE version >= 22`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		s = openAt(t, path)
		if pending, err := s.IndexRebuildPending(t.Context()); err != nil || pending != withResources {
			t.Errorf("with resources %v: index rebuild pending %v (%v) after migration 22, want %v", withResources, pending, err, withResources)
		}
	}
}
