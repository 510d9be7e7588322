package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Emergency and store.EmergencyWriter. Times are
// unix microseconds, a zero Reviewed included (an open grant); a nil Note
// is stored empty and read back as nil. Closing a grant is one conditional
// UPDATE on reviewed = 0, so of concurrent reviewers in every process
// sharing the database exactly one wins.

const emergencyCols = `id, user_id, patient, purpose, reason, created, expires, reviewed, reviewer, outcome, note`

func scanEmergency(sc scanner) (store.EmergencyGrant, error) {
	var g store.EmergencyGrant
	var created, expires, reviewed int64
	if err := sc.Scan(&g.ID, &g.UserID, &g.Patient, &g.Purpose, &g.Reason, &created, &expires, &reviewed, &g.Reviewer, &g.Outcome, &g.Note); err != nil {
		return store.EmergencyGrant{}, err
	}
	g.Created, g.Expires = fromMicros(created), fromMicros(expires)
	if reviewed != 0 {
		g.Reviewed = fromMicros(reviewed)
	}
	g.Reason, g.Note = nilIfEmpty(g.Reason), nilIfEmpty(g.Note)
	return g, nil
}

// EmergencyGrant implements store.Emergency.
func (db *DB) EmergencyGrant(ctx context.Context, id string) (store.EmergencyGrant, error) {
	return scanOne(db, "emergency grant", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+emergencyCols+` FROM emergency_grants WHERE id = ?`), id), scanEmergency)
}

// ActiveEmergencyGrants implements store.Emergency.
func (db *DB) ActiveEmergencyGrants(ctx context.Context, userID string, at time.Time) ([]store.EmergencyGrant, error) {
	t := at.UnixMicro()
	return db.grants(ctx, "active emergency grants", db.rebind(`SELECT `+emergencyCols+` FROM emergency_grants
		WHERE user_id = ? AND expires > ? AND created <= ? ORDER BY created, id`), userID, t, t)
}

// CountEmergencyGrants implements store.Emergency, through the index on
// user_id.
func (db *DB) CountEmergencyGrants(ctx context.Context, userID, patient string, since, before time.Time) (int, error) {
	var n int
	err := db.rq().QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM emergency_grants WHERE user_id = ? AND patient = ? AND created >= ? AND created < ?`),
		userID, patient, since.UnixMicro(), before.UnixMicro()).Scan(&n)
	return n, db.wrap("count emergency grants", err)
}

// ListEmergencyGrants implements store.Emergency.
func (db *DB) ListEmergencyGrants(ctx context.Context, q store.EmergencyQuery) ([]store.EmergencyGrant, bool, error) {
	if q.Offset < 0 || q.Count < 0 {
		return nil, false, errors.New("sqldb: list emergency grants: negative offset or count")
	}
	where := ""
	if q.Unreviewed {
		where = ` WHERE reviewed = 0`
	}
	gs, err := db.grants(ctx, "list emergency grants", db.rebind(`SELECT `+emergencyCols+` FROM emergency_grants`+where+` ORDER BY created, id LIMIT ? OFFSET ?`),
		q.Count+1, q.Offset)
	if err != nil {
		return nil, false, err
	}
	if len(gs) > q.Count {
		return gs[:q.Count], true, nil
	}
	return gs, false, nil
}

func (db *DB) grants(ctx context.Context, op, query string, args ...any) ([]store.EmergencyGrant, error) {
	rows, err := db.rq().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	defer rows.Close()
	var out []store.EmergencyGrant
	for rows.Next() {
		g, err := scanEmergency(rows)
		if err != nil {
			return nil, db.wrap(op+": scan", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap(op, err)
	}
	return out, nil
}

// CreateEmergencyGrant implements store.EmergencyWriter.
func (t *Tx) CreateEmergencyGrant(ctx context.Context, g store.EmergencyGrant) error {
	if g.ID == "" || g.UserID == "" || g.Patient == "" {
		return errors.New("sqldb: create emergency grant: id, user id and patient are required")
	}
	_, err := t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO emergency_grants (`+emergencyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', '', ?)`),
		g.ID, g.UserID, g.Patient, g.Purpose, emptyIfNil(g.Reason), g.Created.UnixMicro(), g.Expires.UnixMicro(), []byte{})
	return t.db.wrap("create emergency grant", err)
}

// ReviewEmergencyGrant implements store.EmergencyWriter.
func (t *Tx) ReviewEmergencyGrant(ctx context.Context, id string, reviewed time.Time, reviewer, outcome string, note []byte) (store.EmergencyGrant, error) {
	if reviewed.IsZero() || reviewed.UnixMicro() == 0 {
		return store.EmergencyGrant{}, errors.New("sqldb: review emergency grant: no review time")
	}
	row := t.q().QueryRowContext(ctx, t.db.rebind(`UPDATE emergency_grants SET reviewed = ?, reviewer = ?, outcome = ?, note = ?
		WHERE id = ? AND reviewed = 0 RETURNING `+emergencyCols),
		reviewed.UnixMicro(), reviewer, outcome, emptyIfNil(note), id)
	return closeOnce(ctx, t, "review emergency grant", "emergency_grants", id, row, scanEmergency)
}

// closeOnce scans the row an UPDATE ... WHERE id = ? AND <still open>
// RETURNING returned, and tells a row that does not exist (ErrNotFound)
// from one closed already, by anyone in any process (ErrConflict).
func closeOnce[T any](ctx context.Context, t *Tx, op, table, id string, row *sql.Row, scan func(scanner) (T, error)) (T, error) {
	var zero T
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err := t.q().QueryRowContext(ctx, t.db.rebind(`SELECT 1 FROM `+table+` WHERE id = ?`), id).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return zero, fmt.Errorf("sqldb: %s: %w", op, store.ErrNotFound)
		case err != nil:
			return zero, t.db.wrap(op, err)
		}
		return zero, fmt.Errorf("sqldb: %s: done already: %w", op, store.ErrConflict)
	}
	if err != nil {
		return zero, t.db.wrap(op, err)
	}
	return v, nil
}
