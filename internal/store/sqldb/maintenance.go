package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"github.com/wardhealth/ward/internal/store"
)

// SensitivityPending implements store.Maintenance.
func (db *DB) SensitivityPending(ctx context.Context) (bool, error) {
	var pending int
	err := db.rq().QueryRowContext(ctx, `SELECT pending FROM sensitivity_reindex WHERE id = 1`).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return pending != 0, db.wrap("sensitivity pending", err)
}

// Unclassified implements store.Maintenance. It walks the unique index of
// current versions (rtype, rid).
func (db *DB) Unclassified(ctx context.Context, afterType, afterID string, limit int) ([]store.Resource, error) {
	if limit <= 0 {
		return nil, errors.New("sqldb: unclassified: limit must be positive")
	}
	rows, err := db.rq().QueryContext(ctx, db.rebind(`SELECT `+resourceCols+` FROM resources
		WHERE is_current AND NOT deleted AND sensitivity = 0 AND (rtype > ? OR (rtype = ? AND rid > ?))
		ORDER BY rtype, rid LIMIT ?`), afterType, afterType, afterID, limit)
	if err != nil {
		return nil, db.wrap("unclassified", err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, db.wrap("unclassified: scan", err)
		}
		out = append(out, r)
	}
	return out, db.wrap("unclassified", rows.Err())
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
	_, err := db.wq().ExecContext(ctx, `UPDATE sensitivity_reindex SET pending = 0 WHERE id = 1`)
	return db.wrap("sensitivity classified", err)
}
