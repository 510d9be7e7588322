package storetest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Schema is a freshly created PostgreSQL schema for one test, dropped when
// the test ends, with a connection that reads it directly as a database
// administrator would.
type Schema struct {
	Name  string
	URL   string // WARD_TEST_POSTGRES with search_path set to Name
	Admin *sql.DB
}

// FreshSchema creates a schema with a random name prefixed by prefix. Like
// PostgresURL, it skips the test when WARD_TEST_POSTGRES is unset unless
// WARD_REQUIRE_POSTGRES=1.
func FreshSchema(t testing.TB, prefix string) *Schema {
	t.Helper()
	base := PostgresURL(t)
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("WARD_TEST_POSTGRES: %v", err)
	}
	admin := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = admin.Close() })
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("PostgreSQL at WARD_TEST_POSTGRES is unreachable or refuses CREATE SCHEMA: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("WARD_TEST_POSTGRES is not a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return &Schema{Name: name, URL: u.String(), Admin: admin}
}
