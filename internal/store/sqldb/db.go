// Package sqldb implements store.Store once, over database/sql, for every SQL
// backend Ward supports. A backend (package sqlite, package postgres) supplies
// the connection pools and a small Dialect: placeholder style, column types,
// a migration lock and error classification. Everything else (schema,
// migrations, version sequencing, search translation, keys, clients) lives
// here, so the backends cannot drift apart.
//
// What it guarantees:
//   - Every value reaches the database as a bound parameter; SQL text is built
//     only from fixed fragments and placeholders, so no value can change a
//     statement. LIKE patterns are escaped, so '%', '_' and '\' match literally.
//   - Version sequencing is enforced by the database (primary key and a unique
//     index on the current row), not by process memory: several processes
//     sharing one database cannot both write the same version, and a version
//     that skips one is refused with store.ErrConflict.
//   - Uniqueness violations surface as store.ErrConflict; connection, I/O and
//     resource failures wrap store.ErrUnavailable. Conflict errors carry no
//     driver text; other errors wrap the driver error for diagnosis but never
//     the SQL text or bound values.
//   - The embedded migrations are applied on Open, under a dialect lock, in one
//     transaction, so concurrent starts are safe.
//
// What it does not do: it does not interpret FHIR, encrypt, or check that
// index rows agree with a body; it stores what it is given.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/store"
)

// ErrorClass is how a dialect classifies a driver error.
type ErrorClass int

// Error classes.
const (
	ClassOther       ErrorClass = iota // a bug or a bad statement: passed through wrapped
	ClassConflict                      // a unique or primary key violation
	ClassUnavailable                   // connection, I/O, disk full, busy: the database cannot serve
)

// Dialect is what differs between SQL backends.
type Dialect struct {
	// Name prefixes nothing user-visible; it is for diagnostics in tests.
	Name string
	// Numbered selects $1, $2, ... placeholders instead of ?.
	Numbered bool
	// Arrays binds a list of strings as one text[] parameter; otherwise
	// as a JSON array that queries read with json_each.
	Arrays bool
	// TextType and BlobType replace {{text}} and {{blob}} in migrations.
	// TextType must compare bytewise (e.g. TEXT COLLATE "C" on PostgreSQL) so
	// sorting is identical on every backend.
	TextType, BlobType string
	// JSONText is the SQL expression, a format of the column (%[1]s) and
	// the key (%[2]s), that reads the string value of a top-level key of
	// the UTF-8 JSON object held in a blob column, decoding its escapes;
	// NULL when the key is absent. Migrations write it as {{json c k}}.
	JSONText string
	// LockRow is appended to a SELECT of one row to lock it until the
	// transaction ends (" FOR UPDATE"); empty where write transactions are
	// exclusive anyway (SQLite).
	LockRow string
	// MigrationLock, when not empty, is executed first in the migration
	// transaction to serialise concurrent starts (e.g. an advisory lock).
	MigrationLock string
	// Classify sorts driver errors into classes. It must not return
	// ClassConflict for anything but uniqueness violations.
	Classify func(error) ErrorClass
}

// DB is a store.Store over database/sql.
type DB struct {
	d     Dialect
	read  *sql.DB // queries outside transactions
	write *sql.DB // transactions and single-statement writes
	same  bool

	readStmts, writeStmts *stmtCache

	mu     sync.Mutex
	closed bool
}

// rq runs queries on the read pool through prepared stmtCache.
func (db *DB) rq() querier { return preparedQuerier{st: db.readStmts} }

// wq runs single stmtCache on the write pool through prepared stmtCache.
func (db *DB) wq() querier { return preparedQuerier{st: db.writeStmts} }

var _ store.Store = (*DB)(nil)

// Open wraps the pools and applies pending migrations. read serves queries
// outside transactions and write serves transactions and other writes; they
// may be the same pool. The DB takes ownership of both pools and closes them
// in Close.
func Open(ctx context.Context, d Dialect, read, write *sql.DB) (*DB, error) {
	if d.Classify == nil || d.TextType == "" || d.BlobType == "" {
		return nil, errors.New("sqldb: incomplete dialect")
	}
	db := &DB{d: d, read: read, write: write, same: read == write}
	db.readStmts, db.writeStmts = newStmtCache(read), newStmtCache(write)
	if db.same {
		db.readStmts = db.writeStmts
	}
	if err := db.migrate(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// Close releases both pools.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	err := errors.Join(db.readStmts.close(), db.writeStmts.close())
	err = errors.Join(err, db.write.Close())
	if !db.same {
		err = errors.Join(err, db.read.Close())
	}
	if err != nil {
		return fmt.Errorf("sqldb: close: %w", err)
	}
	return nil
}

// wrap converts a driver error into the store's error vocabulary.
func (db *DB) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sqldb: %s: %w", op, err)
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn):
		return fmt.Errorf("sqldb: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	switch db.d.Classify(err) {
	case ClassConflict:
		return fmt.Errorf("sqldb: %s: %w", op, store.ErrConflict)
	case ClassUnavailable:
		return fmt.Errorf("sqldb: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("sqldb: %s: %w", op, err)
}

// rebind rewrites ? placeholders for numbered dialects. It is used only on
// this package's fixed stmtCache, which contain no quoted question marks.
func (db *DB) rebind(q string) string {
	if !db.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Current implements store.Reader.
func (db *DB) Current(ctx context.Context, typ, id string) (store.Resource, error) {
	return db.current(ctx, db.rq(), typ, id)
}

// Version implements store.Reader.
func (db *DB) Version(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	return db.version(ctx, db.rq(), typ, id, version)
}

// Search implements store.Reader.
func (db *DB) Search(ctx context.Context, q store.Query) (store.Page, error) {
	return db.search(ctx, db.rq(), q)
}

// History implements store.Reader.
func (db *DB) History(ctx context.Context, q store.HistoryQuery) (store.Page, error) {
	return db.history(ctx, db.rq(), q)
}

// Begin implements store.Store. On backends with a single writer connection
// (SQLite), a goroutine holding a Tx must not call the store's other write
// methods (keys, clients) before it commits or rolls back.
func (db *DB) Begin(ctx context.Context) (store.Tx, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, db.wrap("begin", err)
	}
	return &Tx{db: db, tx: tx}, nil
}

// Tx is a store.Tx over a database/sql transaction.
type Tx struct {
	db    *DB
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // prepared in this transaction; closed with it

	ledgerLocked bool  // LockLedger ran in this transaction
	ledgerSize   int64 // the ledger's size as locked, plus what was appended
}

// q runs stmtCache inside the transaction, prepared once per connection.
func (t *Tx) q() querier { return txQuerier{t} }

var _ store.Tx = (*Tx)(nil)

// Current implements store.Reader inside the transaction.
func (t *Tx) Current(ctx context.Context, typ, id string) (store.Resource, error) {
	return t.db.current(ctx, t.q(), typ, id)
}

// Version implements store.Reader inside the transaction.
func (t *Tx) Version(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	return t.db.version(ctx, t.q(), typ, id, version)
}

// Search implements store.Reader inside the transaction.
func (t *Tx) Search(ctx context.Context, q store.Query) (store.Page, error) {
	return t.db.search(ctx, t.q(), q)
}

// History implements store.Reader inside the transaction.
func (t *Tx) History(ctx context.Context, q store.HistoryQuery) (store.Page, error) {
	return t.db.history(ctx, t.q(), q)
}

// PutVersion implements store.Tx.
func (t *Tx) PutVersion(ctx context.Context, r store.Resource, index []store.IndexEntry) error {
	return t.db.putVersion(ctx, t, r, index)
}

// Commit implements store.Tx.
func (t *Tx) Commit() error {
	return t.db.wrap("commit", t.tx.Commit())
}

// Rollback implements store.Tx. Rolling back a finished transaction is not an
// error, so callers may defer it.
func (t *Tx) Rollback() error {
	err := t.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return t.db.wrap("rollback", err)
}
