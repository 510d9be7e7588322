package sqldb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// AddPending implements store.Pending: one multi-row INSERT that commits
// on its own, or one transaction when entries need several.
func (db *DB) AddPending(ctx context.Context, entries []store.PendingEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if e.Writer == "" || len(e.Entry.Entry) == 0 || len(e.Tag) == 0 {
			return errors.New("sqldb: add pending: a writer, an entry and a tag are required")
		}
	}
	if len(entries) <= ledgerBatch {
		return db.insertPending(ctx, db.wq(), entries)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	t := tx.(*Tx)
	for start := 0; start < len(entries); start += ledgerBatch {
		if err := db.insertPending(ctx, t.q(), entries[start:min(start+ledgerBatch, len(entries))]); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (db *DB) insertPending(ctx context.Context, q querier, part []store.PendingEntry) error {
	args := make([]any, 0, 9*len(part))
	for _, e := range part {
		patients, err := json.Marshal(e.Entry.Patients)
		if err != nil {
			return fmt.Errorf("sqldb: add pending: %w", err)
		}
		if e.Entry.Patients == nil {
			patients = []byte("[]")
		}
		args = append(args, e.Writer, e.Seq, e.Entry.Time.UnixMicro(), e.Entry.Patient, string(patients),
			e.Entry.Actor, e.Entry.Client, e.Entry.Entry, e.Tag)
	}
	_, err := q.ExecContext(ctx, db.rowsSQL(`INSERT INTO ledger_pending (writer, seq, at, patient, patients, actor, client, entry, tag) VALUES `, 9, len(part)), args...)
	if err != nil {
		return db.wrap("add pending", err)
	}
	return nil
}

// PendingCount implements store.Pending.
func (db *DB) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := db.rq().QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger_pending`).Scan(&n)
	return n, db.wrap("count pending", err)
}

// PendingEntries implements store.LedgerWriter.
func (t *Tx) PendingEntries(ctx context.Context, limit int) ([]store.PendingEntry, error) {
	if !t.ledgerLocked {
		return nil, errors.New("sqldb: pending entries: LockLedger first")
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q().QueryContext(ctx, t.db.rebind(`SELECT writer, seq, at, patient, patients, actor, client, entry, tag
		FROM ledger_pending ORDER BY at, writer, seq LIMIT ?`), limit)
	if err != nil {
		return nil, t.db.wrap("pending entries", err)
	}
	defer rows.Close()
	var out []store.PendingEntry
	for rows.Next() {
		var (
			e        store.PendingEntry
			at       int64
			patients string
		)
		if err := rows.Scan(&e.Writer, &e.Seq, &at, &e.Entry.Patient, &patients, &e.Entry.Actor, &e.Entry.Client, &e.Entry.Entry, &e.Tag); err != nil {
			return nil, t.db.wrap("pending entries", err)
		}
		e.Entry.Time = time.UnixMicro(at).UTC()
		if err := json.Unmarshal([]byte(patients), &e.Entry.Patients); err != nil {
			return nil, fmt.Errorf("sqldb: pending entry %s/%d: patients: %w", e.Writer, e.Seq, err)
		}
		if len(e.Entry.Patients) == 0 {
			e.Entry.Patients = nil
		}
		out = append(out, e)
	}
	return out, t.db.wrap("pending entries", rows.Err())
}

// DropPending implements store.LedgerWriter: one DELETE per writer and
// batch, each of which must delete every key it names.
func (t *Tx) DropPending(ctx context.Context, keys []store.PendingKey) error {
	byWriter := map[string][]any{}
	var writers []string
	for _, k := range keys {
		if _, ok := byWriter[k.Writer]; !ok {
			writers = append(writers, k.Writer)
		}
		byWriter[k.Writer] = append(byWriter[k.Writer], k.Seq)
	}
	for _, w := range writers {
		seqs := byWriter[w]
		for start := 0; start < len(seqs); start += 3 * ledgerBatch {
			part := seqs[start:min(start+3*ledgerBatch, len(seqs))]
			q := `DELETE FROM ledger_pending WHERE writer = ? AND seq IN (?` + strings.Repeat(`, ?`, len(part)-1) + `)`
			res, err := t.q().ExecContext(ctx, t.db.rebind(q), append([]any{w}, part...)...)
			if err != nil {
				return t.db.wrap("drop pending", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return t.db.wrap("drop pending", err)
			} else if n != int64(len(part)) {
				return fmt.Errorf("sqldb: drop pending: %d of %d entries of writer %s are gone: %w", int64(len(part))-n, len(part), w, store.ErrConflict)
			}
		}
	}
	return nil
}
