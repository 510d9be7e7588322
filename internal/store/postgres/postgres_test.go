package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// freshSchema returns the test URL of a fresh schema, dropped when t ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	return storetest.FreshSchema(t, "ward_test_").URL
}

func openURL(t testing.TB, u string) store.Store {
	t.Helper()
	db, err := Open(t.Context(), u)
	return storetest.Opened(t, db, err)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openURL(t, freshSchema(t)) })
}

func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		u := freshSchema(t)
		return openURL(t, u), openURL(t, u)
	})
}

// TestConcurrentMigrations starts several stores on one empty schema at once:
// the advisory lock must let exactly one apply the migrations.
func TestConcurrentMigrations(t *testing.T) {
	u := freshSchema(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			db, err := Open(t.Context(), u)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s := openURL(t, u)
	if _, err := s.Current(t.Context(), "Patient", "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current on a migrated schema = %v, want ErrNotFound", err)
	}
}

func TestCheckTLS(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{"postgres://u@127.0.0.1/db?sslmode=disable", true},
		{"postgres://u@localhost/db?sslmode=prefer", true},
		{"postgres://u@[::1]/db?sslmode=allow", true},
		{"postgres://u@/db?host=/var/run/postgresql&sslmode=disable", true},
		{"postgres://u@db.example.com/db?sslmode=verify-full", true},
		{"postgres://u@db.example.com/db?sslmode=verify-ca", true},
		{"postgres://u@db.example.com/db?sslmode=disable", false},
		{"postgres://u@db.example.com/db?sslmode=allow", false},
		{"postgres://u@db.example.com/db?sslmode=prefer", false},
		{"postgres://u@db.example.com/db?sslmode=require", false},
		{"postgres://u@10.0.0.5/db?sslmode=disable", false},
		{"postgres://u@127.0.0.1,db.example.com/db?sslmode=disable", false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			err = checkTLS(&cfg.Config)
			if (err == nil) != tc.ok {
				t.Fatalf("checkTLS = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "sslmode=verify-full") {
				t.Errorf("error %q does not name the fix", err)
			}
		})
	}
}

func TestOpenRejectsPlaintextRemote(t *testing.T) {
	_, err := Open(t.Context(), "postgres://ward:s3cret@db.example.com/ward?sslmode=disable")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open = %v, want a refusal that does not echo the password", err)
	}
	_, err = Open(t.Context(), "postgres://ward:s3cret@db.example.com:notaport/ward")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open(bad URL) = %v, want an error that does not echo the password", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	_, err := Open(t.Context(), "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(unreachable) = %v, want ErrUnavailable", err)
	}
}

func BenchmarkPutVersion(b *testing.B) {
	storetest.BenchPutVersion(b, openURL(b, freshSchema(b)))
}

func BenchmarkCurrent(b *testing.B) {
	storetest.BenchCurrent(b, openURL(b, freshSchema(b)))
}
