// Package postgres is Ward's scale-out storage backend: store.Store on a
// PostgreSQL database through pgx's database/sql driver (pure Go). The store
// itself is package sqldb; this package supplies the connection pool and the
// PostgreSQL dialect.
//
// What it guarantees: several Ward processes may share one database. Version
// sequencing relies on the primary key and a unique index on the current row,
// so concurrent writers of the same version get exactly one winner and
// store.ErrConflict for the others; migrations run under a transaction-scoped
// advisory lock, so concurrent starts are safe. Text columns use the "C"
// collation, so sorting is bytewise and identical to SQLite. Connections to a
// host other than loopback or a unix socket must verify the server
// certificate (sslmode=verify-full or verify-ca).
//
// What it does not guarantee: it does not manage the database, its users or
// its backups. The caller picks the schema with the search_path URL
// parameter; the schema must exist.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wardhealth/ward/internal/store/sqldb"
)

// maxConns bounds the pool of one process.
const maxConns = 16

// Dialect is the PostgreSQL dialect of sqldb.
func Dialect() sqldb.Dialect {
	return sqldb.Dialect{
		Name:     "postgres",
		Numbered: true,
		Arrays:   true,
		TextType: `TEXT COLLATE "C"`,
		BlobType: "BYTEA",
		JSONText: `(convert_from(%[1]s, 'UTF8')::json ->> '%[2]s')`,
		LockRow:  " FOR UPDATE",
		// One lock per schema, held until the migration transaction ends.
		MigrationLock: `SELECT pg_advisory_xact_lock(hashtext('ward.migrate.' || COALESCE(current_schema(), '')))`,
		Classify:      classify,
	}
}

// classify maps PostgreSQL errors to sqldb error classes. Serialization
// failures and deadlocks are lost races between writers: the caller re-reads
// and retries, as for a duplicate version.
func classify(err error) sqldb.ErrorClass {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505", pe.Code == "40001", pe.Code == "40P01":
			return sqldb.ClassConflict
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources (disk full, out of memory, too many connections)
			strings.HasPrefix(pe.Code, "57P"), // shutdown, cannot connect now
			strings.HasPrefix(pe.Code, "58"),  // system error (I/O)
			pe.Code == "25006":                // read-only transaction (a standby)
			return sqldb.ClassUnavailable
		}
		return sqldb.ClassOther
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sqldb.ClassUnavailable
	}
	return sqldb.ClassOther
}

// connectTimeout bounds a connection attempt when the URL sets none
// (connect_timeout).
const connectTimeout = 10 * time.Second

// Open connects to the database named by url (postgres://...) and applies
// pending migrations. Use the search_path parameter to select a schema.
func Open(ctx context.Context, url string) (*sqldb.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, and with it a password.
		return nil, errors.New("postgres: invalid connection URL")
	}
	if err := checkTLS(&cfg.Config); err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		// A server that does not answer must fail a connection attempt,
		// not hang it until the operating system gives up.
		cfg.ConnectTimeout = connectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	s, err := sqldb.Open(ctx, Dialect(), db, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// checkTLS enforces invariant 8: every host the driver may try, including
// fallbacks such as sslmode=prefer's plaintext retry, either is local or
// verifies the server certificate.
func checkTLS(cfg *pgconn.Config) error {
	hosts := []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}
	hosts = append(hosts, cfg.Fallbacks...)
	for _, h := range hosts {
		if isLocal(h.Host) {
			continue
		}
		if h.TLSConfig == nil || (h.TLSConfig.InsecureSkipVerify && h.TLSConfig.VerifyPeerCertificate == nil) {
			return fmt.Errorf("postgres: the connection to %s would not verify the server certificate: use sslmode=verify-full (with sslrootcert for a private CA), or connect over loopback or a unix socket", h.Host)
		}
	}
	return nil
}

// isLocal reports whether host is a unix socket directory or a loopback
// address, where TLS adds nothing.
func isLocal(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
