package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// indexBatch is the number of index rows per multi-row INSERT. Eight columns
// per row keeps every statement far below both backends' parameter limits.
const indexBatch = 64

const resourceCols = `rtype, rid, version, compartment, deleted, last_updated, body, sensitivity`

func scanResource(sc interface{ Scan(...any) error }) (store.Resource, error) {
	var r store.Resource
	var micros, sensitivity int64
	if err := sc.Scan(&r.Type, &r.ID, &r.Version, &r.Compartment, &r.Deleted, &micros, &r.Body, &sensitivity); err != nil {
		return store.Resource{}, err
	}
	r.LastUpdated = time.UnixMicro(micros).UTC()
	r.Sensitivity = uint8(sensitivity) // #nosec G115 -- a sensitivity class Ward stored, 0..255 by the schema
	if len(r.Body) == 0 {
		r.Body = nil
	}
	return r, nil
}

func (db *DB) current(ctx context.Context, q querier, typ, id string) (store.Resource, error) {
	row := q.QueryRowContext(ctx, db.rebind(`SELECT `+resourceCols+` FROM resources WHERE rtype = ? AND rid = ? AND is_current`), typ, id)
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Resource{}, fmt.Errorf("sqldb: current: %w", store.ErrNotFound)
	}
	return r, db.wrap("current", err)
}

func (db *DB) version(ctx context.Context, q querier, typ, id string, version int64) (store.Resource, error) {
	row := q.QueryRowContext(ctx, db.rebind(`SELECT `+resourceCols+` FROM resources WHERE rtype = ? AND rid = ? AND version = ?`), typ, id, version)
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Resource{}, fmt.Errorf("sqldb: version: %w", store.ErrNotFound)
	}
	return r, db.wrap("version", err)
}

// putVersion retires the previous current row, inserts the new one and
// replaces the index rows. The retire step matches only version-1 while it is
// current, so a gap or a lost race finds no row; the insert hits the primary
// key when the version exists. Both are ErrConflict, decided by the database.
func (db *DB) putVersion(ctx context.Context, t *Tx, r store.Resource, index []store.IndexEntry) error {
	tx := t.q()
	if r.Type == "" || r.ID == "" {
		return errors.New("sqldb: put version: type and id are required")
	}
	if r.Version < 1 {
		return fmt.Errorf("sqldb: put version: version %d: %w", r.Version, store.ErrConflict)
	}
	if r.Deleted && (len(r.Body) != 0 || len(index) != 0) {
		return errors.New("sqldb: put version: a deletion has no body and no index rows")
	}
	if r.Version > 1 {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE resources SET is_current = FALSE WHERE rtype = ? AND rid = ? AND version = ? AND is_current`),
			r.Type, r.ID, r.Version-1)
		if err != nil {
			return db.wrap("put version: retire previous", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return db.wrap("put version: retire previous", err)
		}
		if n != 1 {
			return fmt.Errorf("sqldb: put version: previous version is not current: %w", store.ErrConflict)
		}
	}
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO resources (`+resourceCols+`, is_current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, TRUE)`),
		r.Type, r.ID, r.Version, r.Compartment, r.Deleted, r.LastUpdated.UnixMicro(), body, int64(r.Sensitivity)); err != nil {
		return db.wrap("put version: insert", err)
	}
	if r.Version > 1 {
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM search_index WHERE rtype = ? AND rid = ?`), r.Type, r.ID); err != nil {
			return db.wrap("put version: clear index", err)
		}
	}
	for start := 0; start < len(index); start += indexBatch {
		end := min(start+indexBatch, len(index))
		if err := db.insertIndex(ctx, t, r.Type, r.ID, index[start:end]); err != nil {
			return err
		}
	}
	return nil
}

// insertIndex writes rows with one multi-row INSERT. Its SQL depends only
// on the row count, so a bundle of hundreds of resources with similar index
// sizes reuses a handful of prepared statements.
func (db *DB) insertIndex(ctx context.Context, t *Tx, typ, id string, rows []store.IndexEntry) error {
	args := make([]any, 0, 8*len(rows))
	for _, e := range rows {
		if e.Param == "" || e.Kind == 0 {
			return errors.New("sqldb: put version: index row without param or kind")
		}
		args = append(args, typ, id, e.Param, int64(e.Kind), e.System, e.Value, e.Lo, e.Hi)
	}
	if _, err := t.q().ExecContext(ctx, db.indexInsertSQL(len(rows)), args...); err != nil {
		return db.wrap("put version: insert index", err)
	}
	return nil
}

// indexInsertSQL returns the multi-row index INSERT for n rows.
func (db *DB) indexInsertSQL(n int) string {
	return db.rowsSQL(`INSERT INTO search_index (rtype, rid, param, kind, system, value, lo, hi) VALUES `, 8, n)
}
