package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/store"
)

// SensitivityPending implements store.Maintenance.
func (db *DB) SensitivityPending(ctx context.Context) (bool, error) {
	return db.pending(ctx, "sensitivity_reindex")
}

// pending reads the one-row flag table of a maintenance task (a
// migration's constant, never input): whether the task is still to do.
func (db *DB) pending(ctx context.Context, table string) (bool, error) {
	var pending int
	err := db.rq().QueryRowContext(ctx, `SELECT pending FROM `+table+` WHERE id = 1`).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return pending != 0, db.wrap(table+" pending", err)
}

// done records that a maintenance task is done.
func (db *DB) done(ctx context.Context, table string) error {
	_, err := db.wq().ExecContext(ctx, `UPDATE `+table+` SET pending = 0 WHERE id = 1`)
	return db.wrap(table+" done", err)
}

// Unclassified implements store.Maintenance. It walks the unique index of
// current versions (rtype, rid).
func (db *DB) Unclassified(ctx context.Context, afterType, afterID string, limit int) ([]store.Resource, error) {
	return db.walkCurrent(ctx, "unclassified", "sensitivity = 0 AND ", afterType, afterID, limit)
}

// walkCurrent pages through current, non-deleted versions in (type, id)
// order; filter, when not empty, is a condition followed by " AND ".
func (db *DB) walkCurrent(ctx context.Context, what, filter, afterType, afterID string, limit int) ([]store.Resource, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqldb: %s: limit must be positive", what)
	}
	rows, err := db.rq().QueryContext(ctx, db.rebind(`SELECT `+resourceCols+` FROM resources
		WHERE is_current AND NOT deleted AND `+filter+`(rtype > ? OR (rtype = ? AND rid > ?))
		ORDER BY rtype, rid LIMIT ?`), afterType, afterType, afterID, limit)
	if err != nil {
		return nil, db.wrap(what, err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, db.wrap(what+": scan", err)
		}
		out = append(out, r)
	}
	return out, db.wrap(what, rows.Err())
}

// SetSensitivity implements store.Maintenance.
func (db *DB) SetSensitivity(ctx context.Context, versions []store.Resource) (n int, err error) {
	if len(versions) == 0 {
		return 0, nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, db.wrap("set sensitivity: begin", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	q := db.rebind(`UPDATE resources SET sensitivity = ? WHERE rtype = ? AND rid = ? AND version = ? AND is_current`)
	for _, r := range versions {
		res, err := tx.ExecContext(ctx, q, int64(r.Sensitivity), r.Type, r.ID, r.Version)
		if err != nil {
			return 0, db.wrap("set sensitivity", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, db.wrap("set sensitivity", err)
		}
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, db.wrap("set sensitivity: commit", err)
	}
	return n, nil
}

// SensitivityClassified implements store.Maintenance.
func (db *DB) SensitivityClassified(ctx context.Context) error {
	return db.done(ctx, "sensitivity_reindex")
}

// IndexRebuildPending implements store.Maintenance.
func (db *DB) IndexRebuildPending(ctx context.Context) (bool, error) {
	return db.pending(ctx, "index_rebuild")
}

// CurrentVersions implements store.Maintenance. It walks the unique index
// of current versions (rtype, rid).
func (db *DB) CurrentVersions(ctx context.Context, afterType, afterID string, limit int) ([]store.Resource, error) {
	return db.walkCurrent(ctx, "current versions", "", afterType, afterID, limit)
}

// ReplaceIndex implements store.Maintenance.
func (db *DB) ReplaceIndex(ctx context.Context, versions []store.Reindexed) (n int, err error) {
	if len(versions) == 0 {
		return 0, nil
	}
	err = store.ReadWrite(ctx, db, func(stx store.Tx) error {
		n = 0
		return db.replaceIndex(ctx, stx.(*Tx), versions, &n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (db *DB) replaceIndex(ctx context.Context, t *Tx, versions []store.Reindexed, n *int) error {
	for _, v := range versions {
		r := v.Resource
		var current bool
		err := t.q().QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) > 0 FROM resources WHERE rtype = ? AND rid = ? AND version = ? AND is_current AND NOT deleted`),
			r.Type, r.ID, r.Version).Scan(&current)
		if err != nil {
			return db.wrap("replace index", err)
		}
		if !current {
			continue
		}
		if _, err := t.q().ExecContext(ctx, db.rebind(`DELETE FROM search_index WHERE rtype = ? AND rid = ?`), r.Type, r.ID); err != nil {
			return db.wrap("replace index: clear", err)
		}
		for start := 0; start < len(v.Index); start += indexBatch {
			if err := db.insertIndex(ctx, t, r.Type, r.ID, v.Index[start:min(start+indexBatch, len(v.Index))]); err != nil {
				return err
			}
		}
		*n++
	}
	return nil
}

// IndexRebuilt implements store.Maintenance.
func (db *DB) IndexRebuilt(ctx context.Context) error {
	return db.done(ctx, "index_rebuild")
}
