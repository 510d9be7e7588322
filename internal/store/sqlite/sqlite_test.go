package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func openAt(t *testing.T, path string) store.Store {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
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
