package sqldb

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds the prepared statement cache of a pool. Search
// SQL varies with the query's shape; past the bound, stmtCache run
// unprepared.
const maxCachedStatements = 512

// stmtCache caches prepared stmtCache of one pool, keyed by SQL text.
// database/sql prepares a statement on each connection the first time that
// connection runs it, so the hot paths (reads by id, version and index
// inserts) parse their SQL once per connection instead of once per call.
type stmtCache struct {
	pool *sql.DB
	mu   sync.Mutex
	m    map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query, or nil when the cache is
// full or preparing failed (the caller then runs the query unprepared, and
// meets the same error there if it persists).
func (s *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	s.mu.Lock()
	st, ok := s.m[query]
	full := len(s.m) >= maxCachedStatements
	s.mu.Unlock()
	if ok {
		return st
	}
	if full {
		return nil
	}
	// Prepare without the lock: preparing may wait for a connection.
	st, err := s.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.m[query]; ok {
		_ = st.Close()
		return prev
	}
	s.m[query] = st
	return st
}

func (s *stmtCache) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for q, st := range s.m {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.m, q)
	}
	return first
}

// preparedQuerier runs queries on a pool through its cached prepared
// statements.
type preparedQuerier struct{ st *stmtCache }

func (q preparedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.st.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.st.pool.ExecContext(ctx, query, args...)
}

func (q preparedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.st.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.st.pool.QueryContext(ctx, query, args...)
}

func (q preparedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.st.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.st.pool.QueryRowContext(ctx, query, args...)
}

// txQuerier runs statements inside a transaction, each prepared once per
// transaction on the transaction's own connection. (Preparing on the pool
// instead would wait for a connection, and a single-connection pool's only
// connection is the one the transaction holds.)
type txQuerier struct{ t *Tx }

func (q txQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := q.t.stmts[query]; ok {
		return st
	}
	if len(q.t.stmts) >= maxCachedStatements {
		return nil
	}
	st, err := q.t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if q.t.stmts == nil {
		q.t.stmts = map[string]*sql.Stmt{}
	}
	q.t.stmts[query] = st
	return st
}

func (q txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.t.tx.ExecContext(ctx, query, args...)
}

func (q txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.t.tx.QueryContext(ctx, query, args...)
}

func (q txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.t.tx.QueryRowContext(ctx, query, args...)
}
