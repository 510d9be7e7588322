package sqldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Exports. A job's update is one conditional
// UPDATE on state = 'running', so a job cancelled (deleted) or finished
// in another process is not brought back by a late progress report.

const exportCols = `id, client, user_id, request, state, progress, output, kek_id, wrapped, created, updated, expires`

func scanExport(sc scanner) (store.ExportJob, error) {
	var j store.ExportJob
	var created, updated, expires int64
	if err := sc.Scan(&j.ID, &j.Client, &j.User, &j.Request, &j.State, &j.Progress, &j.Output, &j.KEKID, &j.Key, &created, &updated, &expires); err != nil {
		return store.ExportJob{}, err
	}
	j.Created, j.Updated, j.Expires = fromMicros(created), fromMicros(updated), fromMicros(expires)
	j.Output = nilIfEmpty(j.Output)
	return j, nil
}

// CreateExportJob implements store.Exports.
func (db *DB) CreateExportJob(ctx context.Context, j store.ExportJob) error {
	if j.ID == "" || j.Client == "" || j.State == "" {
		return errors.New("sqldb: create export job: id, client and state are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO export_jobs (`+exportCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		j.ID, j.Client, j.User, j.Request, j.State, j.Progress, emptyIfNil(j.Output), j.KEKID, emptyIfNil(j.Key),
		j.Created.UnixMicro(), j.Updated.UnixMicro(), j.Expires.UnixMicro())
	return db.wrap("create export job", err)
}

// ExportJob implements store.Exports.
func (db *DB) ExportJob(ctx context.Context, id string) (store.ExportJob, error) {
	return scanOne(db, "export job", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+exportCols+` FROM export_jobs WHERE id = ?`), id), scanExport)
}

// UpdateExportJob implements store.Exports.
func (db *DB) UpdateExportJob(ctx context.Context, j store.ExportJob) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE export_jobs SET state = ?, progress = ?, output = ?, updated = ?, expires = ?
		WHERE id = ? AND state = ?`),
		j.State, j.Progress, emptyIfNil(j.Output), j.Updated.UnixMicro(), j.Expires.UnixMicro(), j.ID, store.ExportRunning)
	if err != nil {
		return db.wrap("update export job", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return db.wrap("update export job", err)
	} else if n == 1 {
		return nil
	}
	exists, err := db.exists(ctx, "update export job", "export_jobs", j.ID)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("sqldb: update export job: no longer running: %w", store.ErrConflict)
	}
	return fmt.Errorf("sqldb: update export job: %w", store.ErrNotFound)
}

// DeleteExportJob implements store.Exports.
func (db *DB) DeleteExportJob(ctx context.Context, id string) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM export_jobs WHERE id = ?`), id)
	if err != nil {
		return db.wrap("delete export job", err)
	}
	return db.affected("delete export job", res)
}

// ExpiredExportJobs implements store.Exports.
func (db *DB) ExpiredExportJobs(ctx context.Context, before time.Time, limit int) ([]store.ExportJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.rq().QueryContext(ctx, db.rebind(`SELECT `+exportCols+` FROM export_jobs WHERE expires < ? ORDER BY expires, id LIMIT ?`), before.UnixMicro(), limit)
	if err != nil {
		return nil, db.wrap("expired export jobs", err)
	}
	defer rows.Close()
	var out []store.ExportJob
	for rows.Next() {
		j, err := scanExport(rows)
		if err != nil {
			return nil, db.wrap("expired export jobs: scan", err)
		}
		out = append(out, j)
	}
	return out, db.wrap("expired export jobs", rows.Err())
}
