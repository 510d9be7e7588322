package sqldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Erasures and store.ErasureWriter. Times are
// unix microseconds, a zero Approved included (an open request).
// Approving is one conditional UPDATE on approved = 0, so of concurrent
// approvers in every process sharing the database exactly one wins.

const erasureCols = `id, patient, requester, reason, legal_basis, requested, approved, approver, versions, index_rows`

func scanErasure(sc scanner) (store.Erasure, error) {
	var e store.Erasure
	var requested, approved int64
	if err := sc.Scan(&e.ID, &e.Patient, &e.Requester, &e.Reason, &e.LegalBasis, &requested, &approved, &e.Approver, &e.Versions, &e.IndexRows); err != nil {
		return store.Erasure{}, err
	}
	e.Requested = fromMicros(requested)
	if approved != 0 {
		e.Approved = fromMicros(approved)
	}
	return e, nil
}

// Erasure implements store.Erasures.
func (db *DB) Erasure(ctx context.Context, id string) (store.Erasure, error) {
	return scanOne(db, "erasure", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+erasureCols+` FROM erasures WHERE id = ?`), id), scanErasure)
}

// LegalHold implements store.Erasures.
func (db *DB) LegalHold(ctx context.Context, patient string) (store.LegalHold, error) {
	return scanOne(db, "legal hold", db.rq().QueryRowContext(ctx, db.rebind(`SELECT patient, reason, set_by, set_at FROM legal_holds WHERE patient = ?`), patient),
		func(sc scanner) (store.LegalHold, error) {
			var h store.LegalHold
			var at int64
			err := sc.Scan(&h.Patient, &h.Reason, &h.SetBy, &at)
			h.Set = fromMicros(at)
			return h, err
		})
}

// CreateErasure implements store.ErasureWriter.
func (t *Tx) CreateErasure(ctx context.Context, e store.Erasure) error {
	if e.ID == "" || e.Patient == "" || e.Requester == "" {
		return errors.New("sqldb: create erasure: id, patient and requester are required")
	}
	_, err := t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO erasures (`+erasureCols+`) VALUES (?, ?, ?, ?, ?, ?, 0, '', 0, 0)`),
		e.ID, e.Patient, e.Requester, e.Reason, e.LegalBasis, e.Requested.UnixMicro())
	return t.db.wrap("create erasure", err)
}

// ApproveErasure implements store.ErasureWriter.
func (t *Tx) ApproveErasure(ctx context.Context, id, approver string, approved time.Time, versions, indexRows int64) (store.Erasure, error) {
	if approved.IsZero() || approved.UnixMicro() == 0 || approver == "" {
		return store.Erasure{}, errors.New("sqldb: approve erasure: an approver and a time are required")
	}
	row := t.q().QueryRowContext(ctx, t.db.rebind(`UPDATE erasures SET approved = ?, approver = ?, versions = ?, index_rows = ?
		WHERE id = ? AND approved = 0 RETURNING `+erasureCols),
		approved.UnixMicro(), approver, versions, indexRows, id)
	return closeOnce(ctx, t, "approve erasure", "erasures", id, row, scanErasure)
}

// EraseCompartment implements store.ErasureWriter.
func (t *Tx) EraseCompartment(ctx context.Context, compartment string, at time.Time) (versions, indexRows int64, err error) {
	if compartment == "" {
		return 0, 0, errors.New("sqldb: erase compartment: the shared compartment cannot be erased")
	}
	rows, err := t.q().QueryContext(ctx, t.db.rebind(`SELECT rtype, rid, version FROM resources WHERE compartment = ? AND is_current AND NOT deleted`), compartment)
	if err != nil {
		return 0, 0, t.db.wrap("erase compartment: current versions", err)
	}
	type current struct {
		typ, id string
		version int64
	}
	var cur []current
	for rows.Next() {
		var c current
		if err := rows.Scan(&c.typ, &c.id, &c.version); err != nil {
			_ = rows.Close()
			return 0, 0, t.db.wrap("erase compartment: current versions", err)
		}
		cur = append(cur, c)
	}
	if err := rows.Close(); err != nil {
		return 0, 0, t.db.wrap("erase compartment: current versions", err)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, t.db.wrap("erase compartment: current versions", err)
	}
	for _, c := range cur {
		res, err := t.q().ExecContext(ctx, t.db.rebind(`DELETE FROM search_index WHERE rtype = ? AND rid = ?`), c.typ, c.id)
		if err != nil {
			return 0, 0, t.db.wrap("erase compartment: index", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, 0, t.db.wrap("erase compartment: index", err)
		}
		indexRows += n
	}
	// A current deletion keeps its place: it has no body, and it is the
	// "gone" of its id (an erasure's own deletions included, so that
	// erasing again deletes nothing).
	res, err := t.q().ExecContext(ctx, t.db.rebind(`DELETE FROM resources WHERE compartment = ? AND NOT (is_current AND deleted)`), compartment)
	if err != nil {
		return 0, 0, t.db.wrap("erase compartment: versions", err)
	}
	if versions, err = res.RowsAffected(); err != nil {
		return 0, 0, t.db.wrap("erase compartment: versions", err)
	}
	for _, c := range cur {
		if _, err := t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO resources (`+resourceCols+`, is_current) VALUES (?, ?, ?, ?, TRUE, ?, ?, 0, TRUE)`),
			c.typ, c.id, c.version+1, compartment, at.UnixMicro(), []byte{}); err != nil {
			return 0, 0, t.db.wrap("erase compartment: deletion", err)
		}
	}
	if _, err := t.q().ExecContext(ctx, t.db.rebind(`DELETE FROM data_keys WHERE compartment = ?`), compartment); err != nil {
		return 0, 0, t.db.wrap("erase compartment: data key", err)
	}
	return versions, indexRows, nil
}

// SetLegalHold implements store.ErasureWriter.
func (t *Tx) SetLegalHold(ctx context.Context, h store.LegalHold) error {
	if h.Patient == "" || h.Reason == "" {
		return errors.New("sqldb: set legal hold: a patient and a reason are required")
	}
	if _, err := t.q().ExecContext(ctx, t.db.rebind(`DELETE FROM legal_holds WHERE patient = ?`), h.Patient); err != nil {
		return t.db.wrap("set legal hold", err)
	}
	_, err := t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO legal_holds (patient, reason, set_by, set_at) VALUES (?, ?, ?, ?)`),
		h.Patient, h.Reason, h.SetBy, h.Set.UnixMicro())
	return t.db.wrap("set legal hold", err)
}

// ReleaseLegalHold implements store.ErasureWriter.
func (t *Tx) ReleaseLegalHold(ctx context.Context, patient string) error {
	res, err := t.q().ExecContext(ctx, t.db.rebind(`DELETE FROM legal_holds WHERE patient = ?`), patient)
	if err != nil {
		return t.db.wrap("release legal hold", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.db.wrap("release legal hold", err)
	} else if n == 0 {
		return fmt.Errorf("sqldb: release legal hold: %w", store.ErrNotFound)
	}
	return nil
}

// CompartmentActivity implements store.Retention: two grouped queries,
// one over current versions and one over the date index of Encounters.
func (db *DB) CompartmentActivity(ctx context.Context, fn func(store.Activity) error) error {
	encounters := map[string]float64{}
	rows, err := db.rq().QueryContext(ctx, `SELECT r.compartment, MAX(i.hi) FROM search_index i
		JOIN resources r ON r.rtype = i.rtype AND r.rid = i.rid AND r.is_current AND NOT r.deleted
		WHERE i.rtype = 'Encounter' AND i.param = 'date' AND i.kind = 3 AND r.compartment <> ''
		GROUP BY r.compartment`)
	if err != nil {
		return db.wrap("compartment activity: encounters", err)
	}
	for rows.Next() {
		var c string
		var hi float64
		if err := rows.Scan(&c, &hi); err != nil {
			_ = rows.Close()
			return db.wrap("compartment activity: encounters", err)
		}
		encounters[c] = hi
	}
	if err := rows.Close(); err != nil {
		return db.wrap("compartment activity: encounters", err)
	}
	rows, err = db.rq().QueryContext(ctx, `SELECT compartment, MAX(last_updated), COUNT(*) FROM resources
		WHERE is_current AND NOT deleted AND compartment <> '' GROUP BY compartment ORDER BY compartment`)
	if err != nil {
		return db.wrap("compartment activity", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a store.Activity
		var updated int64
		if err := rows.Scan(&a.Compartment, &updated, &a.Resources); err != nil {
			return db.wrap("compartment activity", err)
		}
		a.LastUpdated = fromMicros(updated)
		if hi, ok := encounters[a.Compartment]; ok {
			a.LastEncounter = secondsTime(hi)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return db.wrap("compartment activity", rows.Err())
}

// secondsTime is an index bound in unix seconds as a time; an unbounded
// one is the year 9999.
func secondsTime(s float64) time.Time {
	const max = 253402300799 // 9999-12-31T23:59:59Z
	if s > max || s != s {
		s = max
	}
	return time.Unix(int64(s), 0).UTC()
}
