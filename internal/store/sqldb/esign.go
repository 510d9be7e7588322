package sqldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Signatures and store.SignatureWriter. A
// nonce is consumed by one DELETE that matches its user, target, meaning
// and expiry, so of concurrent uses in every process sharing the database
// exactly one deletes the row.

// Signatures implements store.Signatures.
func (db *DB) Signatures(ctx context.Context, typ, id string) ([]store.SignatureRow, error) {
	rows, err := db.rq().QueryContext(ctx, db.rebind(`SELECT provenance, rtype, rid, version, signer, ledger_index, signed
		FROM signatures WHERE rtype = ? AND rid = ? ORDER BY version, signed, provenance`), typ, id)
	if err != nil {
		return nil, db.wrap("signatures", err)
	}
	defer rows.Close()
	var out []store.SignatureRow
	for rows.Next() {
		var s store.SignatureRow
		var signed int64
		if err := rows.Scan(&s.Provenance, &s.Type, &s.ID, &s.Version, &s.Signer, &s.LedgerIndex, &signed); err != nil {
			return nil, db.wrap("signatures: scan", err)
		}
		s.Signed = fromMicros(signed)
		out = append(out, s)
	}
	return out, db.wrap("signatures", rows.Err())
}

// PutSignature implements store.SignatureWriter.
func (t *Tx) PutSignature(ctx context.Context, s store.SignatureRow) error {
	if s.Provenance == "" || s.Type == "" || s.ID == "" || s.Version < 1 || s.Signer == "" {
		return errors.New("sqldb: put signature: provenance, resource, version and signer are required")
	}
	_, err := t.q().ExecContext(ctx, t.db.rebind(`INSERT INTO signatures (provenance, rtype, rid, version, signer, ledger_index, signed) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		s.Provenance, s.Type, s.ID, s.Version, s.Signer, s.LedgerIndex, s.Signed.UnixMicro())
	return t.db.wrap("put signature", err)
}

// CreateSignChallenge implements store.Signatures.
func (db *DB) CreateSignChallenge(ctx context.Context, c store.SignChallenge) error {
	if c.Nonce == "" || c.UserID == "" || c.Target == "" || c.Meaning == "" {
		return errors.New("sqldb: create sign challenge: nonce, user, target and meaning are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO sign_challenges (nonce, user_id, target, meaning, expires) VALUES (?, ?, ?, ?, ?)`),
		c.Nonce, c.UserID, c.Target, c.Meaning, c.Expires.UnixMicro())
	return db.wrap("create sign challenge", err)
}

// UseSignChallenge implements store.Signatures.
func (db *DB) UseSignChallenge(ctx context.Context, c store.SignChallenge, now time.Time) error {
	if _, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM sign_challenges WHERE expires <= ?`), now.UnixMicro()); err != nil {
		return db.wrap("use sign challenge: expired", err)
	}
	res, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM sign_challenges WHERE nonce = ? AND user_id = ? AND target = ? AND meaning = ? AND expires > ?`),
		c.Nonce, c.UserID, c.Target, c.Meaning, now.UnixMicro())
	if err != nil {
		return db.wrap("use sign challenge", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap("use sign challenge", err)
	}
	if n != 1 {
		// A nonce presented for another user, target or meaning is spent
		// too: a borrowed ceremony cannot be retried as its owner.
		if _, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM sign_challenges WHERE nonce = ?`), c.Nonce); err != nil {
			return db.wrap("use sign challenge", err)
		}
		return fmt.Errorf("sqldb: use sign challenge: %w", store.ErrNotFound)
	}
	return nil
}
