package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Alerts. An alert is upserted on its dedupe
// key in one statement, so that detectors in several processes replaying
// the same ledger store each alert once; an incident's update is
// conditional on its revision.

const alertCols = `id, akey, rule, severity, actor, client, source, summary, evidence, count, first_at, last_at, raised, status, status_by, status_at, incident`

func scanAlert(sc scanner) (store.Alert, error) {
	var a store.Alert
	var evidence string
	var first, last, raised, statusAt int64
	if err := sc.Scan(&a.ID, &a.Key, &a.Rule, &a.Severity, &a.Actor, &a.Client, &a.Source, &a.Summary, &evidence, &a.Count,
		&first, &last, &raised, &a.Status, &a.StatusBy, &statusAt, &a.Incident); err != nil {
		return store.Alert{}, err
	}
	for _, f := range strings.Fields(evidence) {
		i, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return store.Alert{}, fmt.Errorf("alert evidence: %w", err)
		}
		a.Evidence = append(a.Evidence, i)
	}
	a.First, a.Last, a.Raised = fromMicros(first), fromMicros(last), fromMicros(raised)
	if statusAt != 0 {
		a.StatusAt = fromMicros(statusAt)
	}
	return a, nil
}

func evidenceText(l []int64) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(parts, " ")
}

// SaveAlerts implements store.Alerts.
func (db *DB) SaveAlerts(ctx context.Context, alerts []store.Alert, position int64) error {
	for _, a := range alerts {
		if a.ID == "" || a.Key == "" || a.Rule == "" {
			return errors.New("sqldb: save alerts: id, key and rule are required")
		}
	}
	return db.inTx(ctx, "save alerts", func(q querier) error {
		for _, a := range alerts {
			_, err := q.ExecContext(ctx, db.rebind(`INSERT INTO alerts (`+alertCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, '')
				ON CONFLICT (akey) DO UPDATE SET
					severity = CASE WHEN excluded.last_at >= alerts.last_at THEN excluded.severity ELSE alerts.severity END,
					summary  = CASE WHEN excluded.last_at >= alerts.last_at THEN excluded.summary ELSE alerts.summary END,
					evidence = CASE WHEN excluded.last_at >= alerts.last_at THEN excluded.evidence ELSE alerts.evidence END,
					count    = CASE WHEN excluded.last_at >= alerts.last_at THEN excluded.count ELSE alerts.count END,
					last_at  = CASE WHEN excluded.last_at >= alerts.last_at THEN excluded.last_at ELSE alerts.last_at END`),
				a.ID, a.Key, a.Rule, a.Severity, a.Actor, a.Client, a.Source, a.Summary, evidenceText(a.Evidence), a.Count,
				a.First.UnixMicro(), a.Last.UnixMicro(), a.Raised.UnixMicro(), store.AlertOpen)
			if err != nil {
				return db.wrap("save alerts", err)
			}
		}
		_, err := q.ExecContext(ctx, db.rebind(`UPDATE detector_cursor SET position = ? WHERE id = 1 AND position < ?`), position, position)
		return db.wrap("save alerts", err)
	})
}

// DetectorPosition implements store.Alerts.
func (db *DB) DetectorPosition(ctx context.Context) (int64, error) {
	var p int64
	err := db.rq().QueryRowContext(ctx, `SELECT position FROM detector_cursor WHERE id = 1`).Scan(&p)
	return p, db.wrap("detector position", err)
}

// Alert implements store.Alerts.
func (db *DB) Alert(ctx context.Context, id string) (store.Alert, error) {
	return scanOne(db, "alert", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+alertCols+` FROM alerts WHERE id = ?`), id), scanAlert)
}

// ListAlerts implements store.Alerts.
func (db *DB) ListAlerts(ctx context.Context, q store.AlertQuery) ([]store.Alert, bool, error) {
	if q.Offset < 0 || q.Count < 0 {
		return nil, false, errors.New("sqldb: list alerts: negative offset or count")
	}
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{{"status", q.Status}, {"rule", q.Rule}, {"actor", q.Actor}, {"incident", q.Incident}} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	query := `SELECT ` + alertCols + ` FROM alerts`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY raised DESC, id DESC LIMIT ? OFFSET ?`
	rows, err := db.rq().QueryContext(ctx, db.rebind(query), append(args, q.Count+1, q.Offset)...)
	if err != nil {
		return nil, false, db.wrap("list alerts", err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, false, db.wrap("list alerts", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, false, db.wrap("list alerts", err)
	}
	if len(out) > q.Count {
		return out[:q.Count], true, nil
	}
	return out, false, nil
}

// SetAlertStatus implements store.Alerts.
func (db *DB) SetAlertStatus(ctx context.Context, id, status, by string, at time.Time, incident string) (store.Alert, error) {
	switch status {
	case store.AlertOpen, store.AlertAcknowledged, store.AlertClosed:
	default:
		return store.Alert{}, fmt.Errorf("sqldb: set alert status: unknown status %q", status)
	}
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE alerts SET status = ?, status_by = ?, status_at = ?,
		incident = CASE WHEN ? = '' THEN incident ELSE ? END WHERE id = ?`), status, by, at.UnixMicro(), incident, incident, id)
	if err != nil {
		return store.Alert{}, db.wrap("set alert status", err)
	}
	if err := db.affected("set alert status", res); err != nil {
		return store.Alert{}, err
	}
	return db.Alert(ctx, id)
}

const incidentCols = `id, status, opened, updated, revision, body`

func scanIncident(sc scanner) (store.Incident, error) {
	var inc store.Incident
	var opened, updated int64
	if err := sc.Scan(&inc.ID, &inc.Status, &opened, &updated, &inc.Revision, &inc.Body); err != nil {
		return store.Incident{}, err
	}
	inc.Opened, inc.Updated = fromMicros(opened), fromMicros(updated)
	return inc, nil
}

// CreateIncident implements store.Alerts.
func (db *DB) CreateIncident(ctx context.Context, inc store.Incident) error {
	if inc.ID == "" || inc.Status == "" {
		return errors.New("sqldb: create incident: id and status are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO incidents (`+incidentCols+`) VALUES (?, ?, ?, ?, 1, ?)`),
		inc.ID, inc.Status, inc.Opened.UnixMicro(), inc.Updated.UnixMicro(), emptyIfNil(inc.Body))
	return db.wrap("create incident", err)
}

// Incident implements store.Alerts.
func (db *DB) Incident(ctx context.Context, id string) (store.Incident, error) {
	return scanOne(db, "incident", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+incidentCols+` FROM incidents WHERE id = ?`), id), scanIncident)
}

// ListIncidents implements store.Alerts.
func (db *DB) ListIncidents(ctx context.Context, status string, offset, count int) ([]store.Incident, bool, error) {
	if offset < 0 || count < 0 {
		return nil, false, errors.New("sqldb: list incidents: negative offset or count")
	}
	query, args := `SELECT `+incidentCols+` FROM incidents`, []any{}
	if status != "" {
		query, args = query+` WHERE status = ?`, append(args, status)
	}
	rows, err := db.rq().QueryContext(ctx, db.rebind(query+` ORDER BY opened DESC, id DESC LIMIT ? OFFSET ?`), append(args, count+1, offset)...)
	if err != nil {
		return nil, false, db.wrap("list incidents", err)
	}
	defer rows.Close()
	var out []store.Incident
	for rows.Next() {
		inc, err := scanIncident(rows)
		if err != nil {
			return nil, false, db.wrap("list incidents", err)
		}
		out = append(out, inc)
	}
	if err := rows.Err(); err != nil {
		return nil, false, db.wrap("list incidents", err)
	}
	if len(out) > count {
		return out[:count], true, nil
	}
	return out, false, nil
}

// UpdateIncident implements store.Alerts.
func (db *DB) UpdateIncident(ctx context.Context, inc store.Incident, revision int64) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE incidents SET status = ?, updated = ?, body = ?, revision = revision + 1
		WHERE id = ? AND revision = ?`), inc.Status, inc.Updated.UnixMicro(), emptyIfNil(inc.Body), inc.ID, revision)
	if err != nil {
		return db.wrap("update incident", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return db.wrap("update incident", err)
	} else if n == 1 {
		return nil
	}
	exists, err := db.exists(ctx, "update incident", "incidents", inc.ID)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("sqldb: update incident: changed since revision %d: %w", revision, store.ErrConflict)
	}
	return fmt.Errorf("sqldb: update incident: %w", store.ErrNotFound)
}
