package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

const ledgerBatch = 200 // entries or hashes per multi-row INSERT

// LedgerSize implements store.LedgerReader.
func (db *DB) LedgerSize(ctx context.Context) (int64, error) { return db.ledgerSize(ctx, db.rq()) }

// LedgerEntries implements store.LedgerReader.
func (db *DB) LedgerEntries(ctx context.Context, start, end int64) ([]store.LedgerEntry, error) {
	return db.ledgerEntries(ctx, db.rq(), start, end)
}

// LedgerEntriesByPatient implements store.LedgerReader.
func (db *DB) LedgerEntriesByPatient(ctx context.Context, patient string, since, before time.Time, offset, count int) ([]store.LedgerEntry, error) {
	return db.ledgerByPatient(ctx, db.rq(), patient, since, before, offset, count)
}

// LedgerEntriesByActor implements store.LedgerReader.
func (db *DB) LedgerEntriesByActor(ctx context.Context, q store.ActorQuery) ([]store.LedgerEntry, error) {
	return db.ledgerByActor(ctx, db.rq(), q)
}

// LastLedgerEntryByActor implements store.Store.
func (db *DB) LastLedgerEntryByActor(ctx context.Context, actor, client string) (store.LedgerEntry, error) {
	column, who := "actor", actor
	if who == "" {
		column, who = "client", client
	}
	if who == "" || (actor != "" && client != "") {
		return store.LedgerEntry{}, errors.New("sqldb: last ledger entry by actor: exactly one of an actor and a client is required")
	}
	rows, err := db.rq().QueryContext(ctx, db.rebind(`SELECT `+ledgerColumns+` FROM ledger_entries
		WHERE `+column+` = ? ORDER BY at DESC, idx DESC LIMIT 1`), who)
	if err != nil {
		return store.LedgerEntry{}, db.wrap("last ledger entry by actor", err)
	}
	out, err := db.scanLedger(rows)
	if err != nil {
		return store.LedgerEntry{}, err
	}
	if len(out) == 0 {
		return store.LedgerEntry{}, store.ErrNotFound
	}
	return out[0], nil
}

// LedgerPatientRows implements store.LedgerReader.
func (db *DB) LedgerPatientRows(ctx context.Context, start, end int64) ([]store.LedgerPatientRow, error) {
	return db.ledgerPatientRows(ctx, db.rq(), start, end)
}

// LedgerHashes implements store.LedgerReader.
func (db *DB) LedgerHashes(ctx context.Context, indexes []int64) ([][store.HashSize]byte, error) {
	return db.ledgerHashes(ctx, db.rq(), indexes)
}

// Checkpoint implements store.LedgerReader.
func (db *DB) Checkpoint(ctx context.Context, size int64) ([]byte, error) {
	return db.checkpoint(ctx, db.rq(), size)
}

// LatestCheckpoint implements store.LedgerReader.
func (db *DB) LatestCheckpoint(ctx context.Context) (int64, []byte, error) {
	return db.latestCheckpoint(ctx, db.rq())
}

// ListCheckpoints implements store.LedgerReader.
func (db *DB) ListCheckpoints(ctx context.Context, fn func(int64, []byte) error) error {
	return db.listCheckpoints(ctx, db.rq(), fn)
}

// PutCheckpoint implements store.Store.
func (db *DB) PutCheckpoint(ctx context.Context, size int64, note []byte) error {
	if size < 0 || len(note) == 0 {
		return errors.New("sqldb: put checkpoint: a size and a note are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO ledger_checkpoints (size, note, created) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING`),
		size, note, time.Now().UnixMicro())
	return db.wrap("put checkpoint", err)
}

// AddCosignatures implements store.Store.
func (db *DB) AddCosignatures(ctx context.Context, size int64, lines []byte) error {
	if len(lines) == 0 || lines[len(lines)-1] != '\n' {
		return errors.New("sqldb: add cosignatures: lines must end with a newline")
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t := tx.(*Tx)
	note, err := db.checkpoint(ctx, t.q(), size)
	if err != nil {
		return err
	}
	merged := note
	for _, line := range strings.SplitAfter(string(lines), "\n") {
		if line != "" && !strings.Contains(string(merged), line) {
			merged = append(merged, line...)
		}
	}
	if len(merged) == len(note) {
		return nil
	}
	if _, err := t.q().ExecContext(ctx, db.rebind(`UPDATE ledger_checkpoints SET note = ? WHERE size = ?`), merged, size); err != nil {
		return db.wrap("add cosignatures", err)
	}
	return tx.Commit()
}

// The same readers inside a transaction.

// LedgerSize implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerSize(ctx context.Context) (int64, error) { return t.db.ledgerSize(ctx, t.q()) }

// LedgerEntries implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerEntries(ctx context.Context, start, end int64) ([]store.LedgerEntry, error) {
	return t.db.ledgerEntries(ctx, t.q(), start, end)
}

// LedgerEntriesByPatient implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerEntriesByPatient(ctx context.Context, patient string, since, before time.Time, offset, count int) ([]store.LedgerEntry, error) {
	return t.db.ledgerByPatient(ctx, t.q(), patient, since, before, offset, count)
}

// LedgerEntriesByActor implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerEntriesByActor(ctx context.Context, q store.ActorQuery) ([]store.LedgerEntry, error) {
	return t.db.ledgerByActor(ctx, t.q(), q)
}

// LedgerPatientRows implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerPatientRows(ctx context.Context, start, end int64) ([]store.LedgerPatientRow, error) {
	return t.db.ledgerPatientRows(ctx, t.q(), start, end)
}

// LedgerHashes implements store.LedgerReader inside the transaction.
func (t *Tx) LedgerHashes(ctx context.Context, indexes []int64) ([][store.HashSize]byte, error) {
	return t.db.ledgerHashes(ctx, t.q(), indexes)
}

// Checkpoint implements store.LedgerReader inside the transaction.
func (t *Tx) Checkpoint(ctx context.Context, size int64) ([]byte, error) {
	return t.db.checkpoint(ctx, t.q(), size)
}

// LatestCheckpoint implements store.LedgerReader inside the transaction.
func (t *Tx) LatestCheckpoint(ctx context.Context) (int64, []byte, error) {
	return t.db.latestCheckpoint(ctx, t.q())
}

// ListCheckpoints implements store.LedgerReader inside the transaction.
func (t *Tx) ListCheckpoints(ctx context.Context, fn func(int64, []byte) error) error {
	return t.db.listCheckpoints(ctx, t.q(), fn)
}

// LockLedger implements store.LedgerWriter: it locks the ledger's head row
// (SELECT ... FOR UPDATE where the database has row locks; SQLite's write
// transaction is already exclusive) and remembers the size.
func (t *Tx) LockLedger(ctx context.Context) (int64, error) {
	var size int64
	err := t.q().QueryRowContext(ctx, `SELECT size FROM ledger_head WHERE id = 1`+t.db.d.LockRow).Scan(&size)
	if err != nil {
		return 0, t.db.wrap("lock ledger", err)
	}
	t.ledgerSize, t.ledgerLocked = size, true
	return size, nil
}

// AppendLedger implements store.LedgerWriter.
func (t *Tx) AppendLedger(ctx context.Context, entries []store.LedgerEntry, hashes []store.LedgerHash) error {
	if !t.ledgerLocked {
		return errors.New("sqldb: append ledger: LockLedger first")
	}
	if len(entries) == 0 {
		return nil
	}
	for i, e := range entries {
		if e.Index != t.ledgerSize+int64(i) {
			return fmt.Errorf("sqldb: append ledger: entry index %d, want %d: %w", e.Index, t.ledgerSize+int64(i), store.ErrConflict)
		}
		if len(e.Entry) == 0 {
			return errors.New("sqldb: append ledger: empty entry")
		}
	}
	q := t.q()
	for start := 0; start < len(entries); start += ledgerBatch {
		part := entries[start:min(start+ledgerBatch, len(entries))]
		args := make([]any, 0, 6*len(part))
		for _, e := range part {
			args = append(args, e.Index, e.Entry, e.Patient, e.Time.UnixMicro(), e.Actor, e.Client)
		}
		if _, err := q.ExecContext(ctx, t.db.rowsSQL(`INSERT INTO ledger_entries (idx, entry, patient, at, actor, client) VALUES `, 6, len(part)), args...); err != nil {
			return t.db.wrap("append ledger: entries", err)
		}
	}
	patients := patientRows(entries)
	for start := 0; start < len(patients); start += 3 * ledgerBatch {
		part := patients[start:min(start+3*ledgerBatch, len(patients))]
		if _, err := q.ExecContext(ctx, t.db.rowsSQL(`INSERT INTO ledger_patients (patient, at, idx) VALUES `, 3, len(part)/3), part...); err != nil {
			return t.db.wrap("append ledger: patients", err)
		}
	}
	for start := 0; start < len(hashes); start += ledgerBatch {
		part := hashes[start:min(start+ledgerBatch, len(hashes))]
		args := make([]any, 0, 2*len(part))
		for _, h := range part {
			args = append(args, h.Index, h.Hash[:])
		}
		if _, err := q.ExecContext(ctx, t.db.rowsSQL(`INSERT INTO ledger_hashes (idx, hash) VALUES `, 2, len(part)), args...); err != nil {
			return t.db.wrap("append ledger: hashes", err)
		}
	}
	n := int64(len(entries))
	if _, err := q.ExecContext(ctx, t.db.rebind(`UPDATE ledger_head SET size = ? WHERE id = 1`), t.ledgerSize+n); err != nil {
		return t.db.wrap("append ledger: head", err)
	}
	t.ledgerSize += n
	return nil
}

// patientRows returns the ledger_patients rows of entries, flattened
// (patient, at, idx): one per entry and distinct non-empty id in its
// Patients other than its Patient, which ledger_entries indexes already.
// So an entry appears at most once in a patient's entries.
func patientRows(entries []store.LedgerEntry) []any {
	var rows []any
	for _, e := range entries {
		if len(e.Patients) == 0 {
			continue
		}
		seen := make(map[string]bool, len(e.Patients)+1)
		seen[e.Patient] = true // and "" is never indexed
		seen[""] = true
		at := e.Time.UnixMicro()
		for _, p := range e.Patients {
			if !seen[p] {
				seen[p] = true
				rows = append(rows, p, at, e.Index)
			}
		}
	}
	return rows
}

// rowsSQL returns a multi-row INSERT of n rows of cols columns.
func (db *DB) rowsSQL(prefix string, cols, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return db.rebind(b.String())
}

func (db *DB) ledgerSize(ctx context.Context, q querier) (int64, error) {
	var size int64
	err := q.QueryRowContext(ctx, `SELECT size FROM ledger_head WHERE id = 1`).Scan(&size)
	return size, db.wrap("ledger size", err)
}

func (db *DB) ledgerEntries(ctx context.Context, q querier, start, end int64) ([]store.LedgerEntry, error) {
	if start < 0 || end < start {
		return nil, errors.New("sqldb: ledger entries: bad range")
	}
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT `+ledgerColumns+` FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx`), start, end)
	if err != nil {
		return nil, db.wrap("ledger entries", err)
	}
	return db.scanLedger(rows)
}

func (db *DB) ledgerByPatient(ctx context.Context, q querier, patient string, since, before time.Time, offset, count int) ([]store.LedgerEntry, error) {
	if offset < 0 || count < 0 {
		return nil, errors.New("sqldb: ledger by patient: negative offset or count")
	}
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !since.IsZero() {
		lo = since.UnixMicro()
	}
	if !before.IsZero() {
		hi = before.UnixMicro()
	}
	// An entry names the patient in ledger_entries.patient or in
	// ledger_patients, never both (see patientRows): UNION ALL has no
	// duplicates, and each arm reads its index in order.
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT `+ledgerColumns+` FROM ledger_entries WHERE patient = ? AND at >= ? AND at < ?
		UNION ALL
		SELECT p.idx, e.entry, e.patient, p.at, e.actor, e.client FROM ledger_patients p JOIN ledger_entries e ON e.idx = p.idx WHERE p.patient = ? AND p.at >= ? AND p.at < ?
		ORDER BY at, idx LIMIT ? OFFSET ?`),
		patient, lo, hi, patient, lo, hi, count, offset)
	if err != nil {
		return nil, db.wrap("ledger by patient", err)
	}
	return db.scanLedger(rows)
}

// ledgerColumns are the columns scanLedger reads, in its order.
const ledgerColumns = `idx, entry, patient, at, actor, client`

func (db *DB) ledgerByActor(ctx context.Context, q querier, aq store.ActorQuery) ([]store.LedgerEntry, error) {
	column, who := "actor", aq.Actor
	if who == "" {
		column, who = "client", aq.Client
	}
	switch {
	case who == "" || (aq.Actor != "" && aq.Client != ""):
		return nil, errors.New("sqldb: ledger by actor: exactly one of an actor and a client is required")
	case aq.Count < 0:
		return nil, errors.New("sqldb: ledger by actor: negative count")
	}
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !aq.Since.IsZero() {
		lo = aq.Since.UnixMicro()
	}
	if !aq.Before.IsZero() {
		hi = aq.Before.UnixMicro()
	}
	// The row value (at, idx) > (lo, after) is the keyset condition, and
	// at >= lo bounds the index range where the database does not derive
	// it from the row value.
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT `+ledgerColumns+` FROM ledger_entries
		WHERE `+column+` = ? AND at >= ? AND (at, idx) > (?, ?) AND at < ?
		ORDER BY at, idx LIMIT ?`), who, lo, lo, aq.AfterIndex, hi, aq.Count)
	if err != nil {
		return nil, db.wrap("ledger by actor", err)
	}
	return db.scanLedger(rows)
}

func (db *DB) scanLedger(rows *sql.Rows) ([]store.LedgerEntry, error) {
	defer rows.Close()
	var out []store.LedgerEntry
	for rows.Next() {
		var (
			e  store.LedgerEntry
			at int64
		)
		if err := rows.Scan(&e.Index, &e.Entry, &e.Patient, &at, &e.Actor, &e.Client); err != nil {
			return nil, db.wrap("ledger entries", err)
		}
		e.Time = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	return out, db.wrap("ledger entries", rows.Err())
}

func (db *DB) ledgerPatientRows(ctx context.Context, q querier, start, end int64) ([]store.LedgerPatientRow, error) {
	if end < start {
		return nil, errors.New("sqldb: ledger patient rows: bad range")
	}
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT idx, patient, at FROM ledger_patients WHERE idx >= ? AND idx < ? ORDER BY idx`), start, end)
	if err != nil {
		return nil, db.wrap("ledger patient rows", err)
	}
	defer rows.Close()
	var out []store.LedgerPatientRow
	for rows.Next() {
		var (
			r  store.LedgerPatientRow
			at int64
		)
		if err := rows.Scan(&r.Index, &r.Patient, &at); err != nil {
			return nil, db.wrap("ledger patient rows", err)
		}
		r.Time = time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("ledger patient rows", err)
	}
	// Bytewise, whatever the database's collation orders text by.
	slices.SortFunc(out, func(a, b store.LedgerPatientRow) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), strings.Compare(a.Patient, b.Patient), a.Time.Compare(b.Time))
	})
	return out, nil
}

func (db *DB) ledgerHashes(ctx context.Context, q querier, indexes []int64) ([][store.HashSize]byte, error) {
	out := make([][store.HashSize]byte, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	args := make([]any, len(indexes))
	for i, x := range indexes {
		args[i] = x
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(indexes)), ", ")
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT idx, hash FROM ledger_hashes WHERE idx IN (`+in+`)`), args...)
	if err != nil {
		return nil, db.wrap("ledger hashes", err)
	}
	defer rows.Close()
	found := make(map[int64][store.HashSize]byte, len(indexes))
	for rows.Next() {
		var (
			idx int64
			h   []byte
		)
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, db.wrap("ledger hashes", err)
		}
		if len(h) != store.HashSize {
			return nil, fmt.Errorf("sqldb: ledger hash %d has %d bytes", idx, len(h))
		}
		found[idx] = [store.HashSize]byte(h)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("ledger hashes", err)
	}
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("sqldb: ledger hash %d: %w", x, store.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

func (db *DB) checkpoint(ctx context.Context, q querier, size int64) ([]byte, error) {
	var note []byte
	err := q.QueryRowContext(ctx, db.rebind(`SELECT note FROM ledger_checkpoints WHERE size = ?`), size).Scan(&note)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqldb: checkpoint %d: %w", size, store.ErrNotFound)
	}
	return note, db.wrap("checkpoint", err)
}

func (db *DB) latestCheckpoint(ctx context.Context, q querier) (int64, []byte, error) {
	var (
		size int64
		note []byte
	)
	err := q.QueryRowContext(ctx, `SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("sqldb: latest checkpoint: %w", store.ErrNotFound)
	}
	return size, note, db.wrap("latest checkpoint", err)
}

func (db *DB) listCheckpoints(ctx context.Context, q querier, fn func(int64, []byte) error) error {
	rows, err := q.QueryContext(ctx, `SELECT size, note FROM ledger_checkpoints ORDER BY size`)
	if err != nil {
		return db.wrap("list checkpoints", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			size int64
			note []byte
		)
		if err := rows.Scan(&size, &note); err != nil {
			return db.wrap("list checkpoints", err)
		}
		if err := fn(size, note); err != nil {
			return err
		}
	}
	return db.wrap("list checkpoints", rows.Err())
}

// MarkSpool implements store.LedgerWriter.
func (t *Tx) MarkSpool(ctx context.Context, spool string, folded int64) error {
	if spool == "" || folded < 0 {
		return errors.New("sqldb: mark spool: a spool and a sequence number are required")
	}
	prev, err := t.db.spoolMark(ctx, t.q(), spool)
	if err != nil {
		return err
	}
	if folded < prev {
		return fmt.Errorf("sqldb: mark spool %s: %d is below the recorded %d: %w", spool, folded, prev, store.ErrConflict)
	}
	_, err = t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO ledger_spools (spool, folded) VALUES (?, ?)
		ON CONFLICT (spool) DO UPDATE SET folded = excluded.folded`), spool, folded)
	return t.db.wrap("mark spool", err)
}

// SpoolMark implements store.Spools.
func (db *DB) SpoolMark(ctx context.Context, spool string) (int64, error) {
	return db.spoolMark(ctx, db.rq(), spool)
}

// ForgetSpool implements store.Spools.
func (db *DB) ForgetSpool(ctx context.Context, spool string) error {
	_, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM ledger_spools WHERE spool = ?`), spool)
	return db.wrap("forget spool", err)
}

func (db *DB) spoolMark(ctx context.Context, q querier, spool string) (int64, error) {
	var folded int64
	err := q.QueryRowContext(ctx, db.rebind(`SELECT folded FROM ledger_spools WHERE spool = ?`), spool).Scan(&folded)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return folded, db.wrap("spool mark", err)
}
