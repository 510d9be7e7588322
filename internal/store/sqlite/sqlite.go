// Package sqlite is Ward's embedded storage backend: store.Store on one SQLite
// file through the pure Go driver modernc.org/sqlite, so the binary stays
// static. The store itself is package sqldb; this package supplies the
// connections and the SQLite dialect.
//
// What it guarantees: the database runs in WAL mode with synchronous=FULL, so
// a committed transaction survives power loss; writes go through a single
// connection whose transactions start with BEGIN IMMEDIATE, so writers queue
// instead of failing on lock upgrades, while a separate read-only pool serves
// queries concurrently with the writer; other processes opening the same file
// wait up to the busy timeout. The database file and its -wal and -shm files
// are created with mode 0600.
//
// What it does not guarantee: a goroutine holding a write transaction must not
// call the store's other write methods (keys, clients) until it commits, since
// they wait for the one writer connection. Network file systems are not
// supported (SQLite's WAL needs shared memory).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wardhealth/ward/internal/store/sqldb"
)

// busyTimeoutMS is how long a connection waits for another writer (in this
// or another process) before giving up with SQLITE_BUSY.
const busyTimeoutMS = 10000

// Dialect is the SQLite dialect of sqldb.
func Dialect() sqldb.Dialect {
	return sqldb.Dialect{
		Name:     "sqlite",
		TextType: "TEXT",
		BlobType: "BLOB",
		JSONText: `json_extract(CAST(%[1]s AS TEXT), '$.%[2]s')`,
		Classify: classify,
	}
}

// classify maps SQLite result codes to sqldb error classes.
func classify(err error) sqldb.ErrorClass {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return sqldb.ClassOther
	}
	code := se.Code()
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return sqldb.ClassConflict
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return sqldb.ClassUnavailable
	}
	return sqldb.ClassOther
}

// dsn builds a connection string for path. Pragmas run on every new
// connection. case_sensitive_like makes LIKE compare bytes exactly, as on
// PostgreSQL.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+fmt.Sprint(busyTimeoutMS)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "case_sensitive_like(ON)")
	// Statement journals stay in memory: multi-row index INSERTs would
	// otherwise write every touched page to a temporary file.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "cache_size(-16384)")
		// Readers map the database file (its first GiB) instead of
		// copying pages into their own cache. Every commit, and the
		// ledger spool's folds of read entries come several times a
		// second, empties each reader's page cache; re-reading a mapped
		// page costs no system call and no copy. A search runs 2.2-2.8
		// times as fast (docs/PERFORMANCE.md, Searches). The mapping is
		// read-only; an I/O error under it stops the process instead of
		// failing one query, which fails closed.
		q.Add("_pragma", "mmap_size(1073741824)")
		q.Add("_pragma", "query_only(ON)")
	} else {
		// The single writer keeps a larger page cache, and checkpoints the
		// WAL every 64 MiB instead of every 4 MiB: index pages dirtied by
		// successive transactions are then copied to the database file once
		// instead of once per checkpoint. Durability is unchanged: every
		// commit still syncs the WAL (synchronous=FULL).
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "wal_autocheckpoint(16384)")
		// Deleted content is overwritten where it lies, at no extra I/O:
		// index rows replaced by a rebuild (or a new version) do not linger
		// in free space.
		q.Add("_pragma", "secure_delete(FAST)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(ctx context.Context, path string) (*sqldb.DB, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("sqlite: a database file path is required")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the database path the operator configures
	if err != nil {
		return nil, fmt.Errorf("sqlite: create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: create database file: %w", err)
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// The writer connection creates the WAL before any reader opens.
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	db, err := sqldb.Open(ctx, Dialect(), read, write)
	if err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite creates -wal and -shm with the database file's mode; make sure
	// nothing (an umask, a file created by an older version) left them open.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = db.Close()
			return nil, fmt.Errorf("sqlite: restrict file mode: %w", err)
		}
	}
	return db, nil
}
