package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/store"
)

// LoadKey implements store.Keys.
func (db *DB) LoadKey(ctx context.Context, compartment string) (store.WrappedKey, error) {
	return db.loadKey(ctx, db.rq(), compartment)
}

func (db *DB) loadKey(ctx context.Context, q querier, compartment string) (store.WrappedKey, error) {
	k := store.WrappedKey{Compartment: compartment}
	err := q.QueryRowContext(ctx, db.rebind(`SELECT kek_id, wrapped FROM data_keys WHERE compartment = ?`), compartment).Scan(&k.KEKID, &k.Wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return store.WrappedKey{}, fmt.Errorf("sqldb: load key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.WrappedKey{}, db.wrap("load key", err)
	}
	return k, nil
}

// CreateKey implements store.Keys: insert-if-absent, then read back the key
// that is stored, which is k or the key of a writer that won the race.
func (db *DB) CreateKey(ctx context.Context, k store.WrappedKey) (store.WrappedKey, error) {
	if k.KEKID == "" || len(k.Wrapped) == 0 {
		return store.WrappedKey{}, errors.New("sqldb: create key: kek id and wrapped key are required")
	}
	if _, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO data_keys (compartment, kek_id, wrapped) VALUES (?, ?, ?) ON CONFLICT (compartment) DO NOTHING`),
		k.Compartment, k.KEKID, k.Wrapped); err != nil {
		return store.WrappedKey{}, db.wrap("create key", err)
	}
	return db.loadKey(ctx, db.wq(), k.Compartment)
}

// ListKeys implements store.Keys, in compartment order. fn's error stops the
// listing and is returned unchanged.
func (db *DB) ListKeys(ctx context.Context, fn func(store.WrappedKey) error) error {
	rows, err := db.rq().QueryContext(ctx, `SELECT compartment, kek_id, wrapped FROM data_keys ORDER BY compartment`)
	if err != nil {
		return db.wrap("list keys", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k store.WrappedKey
		if err := rows.Scan(&k.Compartment, &k.KEKID, &k.Wrapped); err != nil {
			return db.wrap("list keys: scan", err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return db.wrap("list keys", rows.Err())
}

// ReplaceKey implements store.Keys as one conditional UPDATE.
func (db *DB) ReplaceKey(ctx context.Context, old, new store.WrappedKey) error {
	if old.Compartment != new.Compartment {
		return errors.New("sqldb: replace key: compartments differ")
	}
	if new.KEKID == "" || len(new.Wrapped) == 0 {
		return errors.New("sqldb: replace key: kek id and wrapped key are required")
	}
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE compartment = ? AND kek_id = ? AND wrapped = ?`),
		new.KEKID, new.Wrapped, old.Compartment, old.KEKID, old.Wrapped)
	if err != nil {
		return db.wrap("replace key", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap("replace key", err)
	}
	if n != 1 {
		return fmt.Errorf("sqldb: replace key: stored key changed: %w", store.ErrConflict)
	}
	return nil
}

// CreateClient implements store.Clients. Scopes and redirect URIs are stored
// space-separated, as in OAuth2, so neither may contain white space. A nil
// or empty SecretHash (a public client) reads back as nil.
func (db *DB) CreateClient(ctx context.Context, c store.Client) error {
	if c.ID == "" {
		return errors.New("sqldb: create client: id is required")
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return errors.New("sqldb: create client: a scope is empty or contains white space")
		}
	}
	for _, u := range c.RedirectURIs {
		if u == "" || strings.ContainsFunc(u, unicode.IsSpace) {
			return errors.New("sqldb: create client: a redirect uri is empty or contains white space")
		}
	}
	for _, tp := range c.CertThumbprints {
		if tp == "" || strings.ContainsFunc(tp, unicode.IsSpace) {
			return errors.New("sqldb: create client: a certificate thumbprint is empty or contains white space")
		}
	}
	if !utf8.Valid(c.JWKS) || bytes.IndexByte(c.JWKS, 0) >= 0 {
		return errors.New("sqldb: create client: the key set is not UTF-8 text")
	}
	hash := c.SecretHash
	if hash == nil {
		hash = []byte{}
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO clients (id, name, secret_hash, scopes, created, revoked, redirect_uris, jwks, cert_thumbprints) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.Name, hash, strings.Join(c.Scopes, " "), c.Created.UnixMicro(), c.Revoked, strings.Join(c.RedirectURIs, " "),
		string(c.JWKS), strings.Join(c.CertThumbprints, " "))
	return db.wrap("create client", err)
}

const clientCols = `id, name, secret_hash, scopes, created, revoked, redirect_uris, jwks, cert_thumbprints, suspended`

func scanClient(sc interface{ Scan(...any) error }) (store.Client, error) {
	var c store.Client
	var scopes, redirects, jwks, thumbprints string
	var created int64
	if err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &scopes, &created, &c.Revoked, &redirects, &jwks, &thumbprints, &c.Suspended); err != nil {
		return store.Client{}, err
	}
	c.SecretHash = nilIfEmpty(c.SecretHash)
	c.Scopes = strings.Fields(scopes)
	c.RedirectURIs = strings.Fields(redirects)
	c.Created = time.UnixMicro(created).UTC()
	if jwks != "" {
		c.JWKS = []byte(jwks)
	}
	c.CertThumbprints = strings.Fields(thumbprints)
	return c, nil
}

// Client implements store.Clients.
func (db *DB) Client(ctx context.Context, id string) (store.Client, error) {
	c, err := scanClient(db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+clientCols+` FROM clients WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Client{}, fmt.Errorf("sqldb: client: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Client{}, db.wrap("client", err)
	}
	return c, nil
}

// ListClients implements store.Clients, in id order.
func (db *DB) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := db.rq().QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, db.wrap("list clients", err)
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, db.wrap("list clients: scan", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("list clients", err)
	}
	return out, nil
}

// RevokeClient implements store.Clients. Revoking a revoked client succeeds.
func (db *DB) RevokeClient(ctx context.Context, id string) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE clients SET revoked = TRUE WHERE id = ?`), id)
	if err != nil {
		return db.wrap("revoke client", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap("revoke client", err)
	}
	if n == 0 {
		return fmt.Errorf("sqldb: revoke client: %w", store.ErrNotFound)
	}
	return nil
}

// SetClientSuspended implements store.Clients.
func (db *DB) SetClientSuspended(ctx context.Context, id string, suspended bool) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE clients SET suspended = ? WHERE id = ?`), suspended, id)
	if err != nil {
		return db.wrap("set client suspended", err)
	}
	return db.affected("set client suspended", res)
}

// UseAssertionID implements store.Clients: an insert that does nothing when
// the pair exists, so that of concurrent users in any process sharing the
// database exactly one inserts the row.
func (db *DB) UseAssertionID(ctx context.Context, clientID, jti string, until time.Time) error {
	if clientID == "" || jti == "" {
		return errors.New("sqldb: use assertion id: client id and jti are required")
	}
	res, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO client_assertions (client_id, jti, expires) VALUES (?, ?, ?) ON CONFLICT (client_id, jti) DO NOTHING`),
		clientID, jti, until.UnixMicro())
	if err != nil {
		return db.wrap("use assertion id", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap("use assertion id", err)
	}
	if n != 1 {
		return fmt.Errorf("sqldb: use assertion id: %w", store.ErrConflict)
	}
	return nil
}

// DeleteAssertionIDs implements store.Clients.
func (db *DB) DeleteAssertionIDs(ctx context.Context, before time.Time) error {
	_, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM client_assertions WHERE expires < ?`), before.UnixMicro())
	return db.wrap("delete assertion ids", err)
}

// ClientAttempts implements store.Clients.
func (db *DB) ClientAttempts(ctx context.Context, key string) (store.Attempts, error) {
	var failures, locked int64
	err := db.rq().QueryRowContext(ctx, db.rebind(`SELECT failures, locked_until FROM client_attempts WHERE id = ?`), key).Scan(&failures, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Attempts{}, nil
	}
	if err != nil {
		return store.Attempts{}, db.wrap("client attempts", err)
	}
	return store.Attempts{Failures: int(failures), LockedUntil: fromMicros(locked)}, nil
}

// SwapClientAttempts implements store.Clients: one conditional statement
// (an insert that does nothing when the row exists, an update or a delete
// that matches the old values), so that of concurrent swaps from the same
// state in any process sharing the database exactly one succeeds.
func (db *DB) SwapClientAttempts(ctx context.Context, key string, old, new store.Attempts) error {
	if key == "" {
		return errors.New("sqldb: swap client attempts: a key is required")
	}
	var (
		query string
		args  []any
	)
	switch {
	case old.IsZero() && new.IsZero():
		a, err := db.ClientAttempts(ctx, key)
		if err != nil {
			return err
		}
		if !a.IsZero() {
			return fmt.Errorf("sqldb: swap client attempts: %w", store.ErrConflict)
		}
		return nil
	case old.IsZero():
		query = `INSERT INTO client_attempts (id, failures, locked_until) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`
		args = []any{key, new.Failures, new.LockedUntil.UnixMicro()}
	case new.IsZero():
		query = `DELETE FROM client_attempts WHERE id = ? AND failures = ? AND locked_until = ?`
		args = []any{key, old.Failures, old.LockedUntil.UnixMicro()}
	default:
		query = `UPDATE client_attempts SET failures = ?, locked_until = ? WHERE id = ? AND failures = ? AND locked_until = ?`
		args = []any{new.Failures, new.LockedUntil.UnixMicro(), key, old.Failures, old.LockedUntil.UnixMicro()}
	}
	res, err := db.wq().ExecContext(ctx, db.rebind(query), args...)
	if err != nil {
		return db.wrap("swap client attempts", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap("swap client attempts", err)
	}
	if n != 1 {
		return fmt.Errorf("sqldb: swap client attempts: %w", store.ErrConflict)
	}
	return nil
}

// DeleteClientAttempts implements store.Clients.
func (db *DB) DeleteClientAttempts(ctx context.Context, before time.Time) error {
	_, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM client_attempts WHERE locked_until < ?`), before.UnixMicro())
	return db.wrap("delete client attempts", err)
}
