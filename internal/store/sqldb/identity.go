package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.Identity. Times are stored as unix
// microseconds (a zero time included, so it reads back as zero), byte fields
// as blobs with nil stored empty and read back as nil, and AMR values
// space-separated. Compare-and-swap updates (UpdateUser, UseRefreshToken) are
// single conditional UPDATEs, so the database, not the process, picks the one
// winner among writers in every process sharing it.

type scanner interface{ Scan(...any) error }

// nilIfEmpty reads an empty blob back as nil, so nil round-trips whichever
// form the driver returns for an empty value.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// emptyIfNil stores nil as an empty blob in NOT NULL columns.
func emptyIfNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// inTx runs fn in one write transaction and commits it.
func (db *DB) inTx(ctx context.Context, op string, fn func(q querier) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return db.wrap(op, err)
	}
	t := &Tx{db: db, tx: tx}
	defer t.Rollback()
	if err := fn(t.q()); err != nil {
		return err
	}
	return db.wrap(op, tx.Commit())
}

// affected returns ErrNotFound (prefixed by op) when res changed no row.
func (db *DB) affected(op string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqldb: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

// exists reports whether a row of table has id. table is one of this file's
// fixed table names, never a caller's value.
func (db *DB) exists(ctx context.Context, op, table, id string) (bool, error) {
	var one int
	err := db.rq().QueryRowContext(ctx, db.rebind(`SELECT 1 FROM `+table+` WHERE id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.wrap(op, err)
	}
	return true, nil
}

// scanOne scans a single row, mapping no row to ErrNotFound.
func scanOne[T any](db *DB, op string, row *sql.Row, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, fmt.Errorf("sqldb: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		var zero T
		return zero, db.wrap(op, err)
	}
	return v, nil
}

// Users.

const userCols = `id, username, role, fhir_user, created, disabled, revision, password_hash, mfa_secret, mfa_last_step, recovery, failures, locked_until, not_before, webauthn, display_name, signing`

func scanUser(sc scanner) (store.User, error) {
	var u store.User
	var created, locked, notBefore int64
	if err := sc.Scan(&u.ID, &u.Username, &u.Role, &u.FHIRUser, &created, &u.Disabled, &u.Revision,
		&u.PasswordHash, &u.MFASecret, &u.MFALastStep, &u.Recovery, &u.Failures, &locked, &notBefore, &u.WebAuthn, &u.DisplayName, &u.Signing); err != nil {
		return store.User{}, err
	}
	u.Created, u.LockedUntil, u.NotBefore = fromMicros(created), fromMicros(locked), fromMicros(notBefore)
	u.PasswordHash, u.MFASecret, u.Recovery, u.WebAuthn = nilIfEmpty(u.PasswordHash), nilIfEmpty(u.MFASecret), nilIfEmpty(u.Recovery), nilIfEmpty(u.WebAuthn)
	return u, nil
}

// CreateUser implements store.Identity. The user is stored as given,
// Revision included (callers start at 0).
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	if u.ID == "" || u.Username == "" {
		return errors.New("sqldb: create user: id and username are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.Username, u.Role, u.FHIRUser, u.Created.UnixMicro(), u.Disabled, u.Revision,
		emptyIfNil(u.PasswordHash), emptyIfNil(u.MFASecret), u.MFALastStep, emptyIfNil(u.Recovery), u.Failures,
		u.LockedUntil.UnixMicro(), u.NotBefore.UnixMicro(), emptyIfNil(u.WebAuthn), u.DisplayName, u.Signing)
	return db.wrap("create user", err)
}

// User implements store.Identity.
func (db *DB) User(ctx context.Context, id string) (store.User, error) {
	return scanOne(db, "user", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+userCols+` FROM users WHERE id = ?`), id), scanUser)
}

// UserByName implements store.Identity; the username matches exactly.
func (db *DB) UserByName(ctx context.Context, username string) (store.User, error) {
	return scanOne(db, "user by name", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+userCols+` FROM users WHERE username = ?`), username), scanUser)
}

// ListUsers implements store.Identity, in bytewise username order.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := db.rq().QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, db.wrap("list users", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, db.wrap("list users: scan", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("list users", err)
	}
	return out, nil
}

// UpdateUser implements store.Identity as one conditional UPDATE on id and
// revision. It writes every field but ID, Username and Created, and returns
// u with Revision+1 and the stored ID, Username and Created. When no row
// matched: ErrConflict if the user exists (its revision moved on),
// ErrNotFound if not.
func (db *DB) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	var username string
	var created int64
	err := db.wq().QueryRowContext(ctx, db.rebind(`UPDATE users SET role = ?, fhir_user = ?, disabled = ?, revision = revision + 1,
		password_hash = ?, mfa_secret = ?, mfa_last_step = ?, recovery = ?, failures = ?, locked_until = ?, not_before = ?, webauthn = ?,
		display_name = ?, signing = ?
		WHERE id = ? AND revision = ? RETURNING username, created`),
		u.Role, u.FHIRUser, u.Disabled,
		emptyIfNil(u.PasswordHash), emptyIfNil(u.MFASecret), u.MFALastStep, emptyIfNil(u.Recovery), u.Failures,
		u.LockedUntil.UnixMicro(), u.NotBefore.UnixMicro(), emptyIfNil(u.WebAuthn),
		u.DisplayName, u.Signing,
		u.ID, u.Revision).Scan(&username, &created)
	if errors.Is(err, sql.ErrNoRows) {
		ok, err := db.exists(ctx, "update user", "users", u.ID)
		switch {
		case err != nil:
			return store.User{}, err
		case ok:
			return store.User{}, fmt.Errorf("sqldb: update user: revision changed: %w", store.ErrConflict)
		}
		return store.User{}, fmt.Errorf("sqldb: update user: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, db.wrap("update user", err)
	}
	u.Username, u.Created = username, fromMicros(created)
	u.Revision++
	return u, nil
}

// Sessions.

// joinAMR encodes authentication methods space-separated.
func joinAMR(op string, amr []string) (string, error) {
	for _, m := range amr {
		if m == "" || strings.ContainsFunc(m, unicode.IsSpace) {
			return "", fmt.Errorf("sqldb: %s: an amr value is empty or contains white space", op)
		}
	}
	return strings.Join(amr, " "), nil
}

const sessionCols = `id, user_id, created, last_seen, auth_time, mfa_time, amr, ended`

func scanSession(sc scanner) (store.Session, error) {
	var s store.Session
	var created, lastSeen, authTime, mfaTime int64
	var amr string
	if err := sc.Scan(&s.ID, &s.UserID, &created, &lastSeen, &authTime, &mfaTime, &amr, &s.Ended); err != nil {
		return store.Session{}, err
	}
	s.Created, s.LastSeen, s.AuthTime, s.MFATime = fromMicros(created), fromMicros(lastSeen), fromMicros(authTime), fromMicros(mfaTime)
	s.AMR = strings.Fields(amr)
	return s, nil
}

// CreateSession implements store.Identity; ErrConflict on a duplicate id.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	if s.ID == "" || s.UserID == "" {
		return errors.New("sqldb: create session: id and user id are required")
	}
	amr, err := joinAMR("create session", s.AMR)
	if err != nil {
		return err
	}
	_, err = db.wq().ExecContext(ctx, db.rebind(`INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		s.ID, s.UserID, s.Created.UnixMicro(), s.LastSeen.UnixMicro(), s.AuthTime.UnixMicro(), s.MFATime.UnixMicro(), amr, s.Ended)
	return db.wrap("create session", err)
}

// Session implements store.Identity. An ended session is still returned,
// with Ended set.
func (db *DB) Session(ctx context.Context, id string) (store.Session, error) {
	return scanOne(db, "session", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+sessionCols+` FROM sessions WHERE id = ?`), id), scanSession)
}

// TouchSession implements store.Identity: it sets LastSeen, and MFATime and
// AMR from mfa when mfa is not nil. It does not change Ended.
// ErrNotFound for an unknown session.
func (db *DB) TouchSession(ctx context.Context, id string, lastSeen time.Time, mfa *store.Session) error {
	var res sql.Result
	var err error
	if mfa == nil {
		res, err = db.wq().ExecContext(ctx, db.rebind(`UPDATE sessions SET last_seen = ? WHERE id = ?`), lastSeen.UnixMicro(), id)
	} else {
		amr, aerr := joinAMR("touch session", mfa.AMR)
		if aerr != nil {
			return aerr
		}
		res, err = db.wq().ExecContext(ctx, db.rebind(`UPDATE sessions SET last_seen = ?, mfa_time = ?, amr = ? WHERE id = ?`),
			lastSeen.UnixMicro(), mfa.MFATime.UnixMicro(), amr, id)
	}
	if err != nil {
		return db.wrap("touch session", err)
	}
	return db.affected("touch session", res)
}

// EndSession implements store.Identity: in one transaction it marks the
// session ended and revokes every grant made in it. Ending an ended session
// succeeds (and revokes grants made since). ErrNotFound for an unknown
// session, and then nothing changes.
func (db *DB) EndSession(ctx context.Context, id string) error {
	return db.inTx(ctx, "end session", func(q querier) error {
		res, err := q.ExecContext(ctx, db.rebind(`UPDATE sessions SET ended = TRUE WHERE id = ?`), id)
		if err != nil {
			return db.wrap("end session", err)
		}
		if err := db.affected("end session", res); err != nil {
			return err
		}
		_, err = q.ExecContext(ctx, db.rebind(`UPDATE grants SET revoked = TRUE WHERE session_id = ?`), id)
		return db.wrap("end session: revoke grants", err)
	})
}

// EndUserSessions implements store.Identity: in one transaction it ends
// every session of the user and revokes every grant of the user, whatever
// session it was made in. A user without sessions or grants (or an unknown
// user id) is not an error.
func (db *DB) EndUserSessions(ctx context.Context, userID string) error {
	return db.inTx(ctx, "end user sessions", func(q querier) error {
		if _, err := q.ExecContext(ctx, db.rebind(`UPDATE sessions SET ended = TRUE WHERE user_id = ?`), userID); err != nil {
			return db.wrap("end user sessions", err)
		}
		_, err := q.ExecContext(ctx, db.rebind(`UPDATE grants SET revoked = TRUE WHERE user_id = ?`), userID)
		return db.wrap("end user sessions: revoke grants", err)
	})
}

// Grants.

const grantCols = `id, user_id, client_id, session_id, created, revoked`

func scanGrant(sc scanner) (store.Grant, error) {
	var g store.Grant
	var created int64
	if err := sc.Scan(&g.ID, &g.UserID, &g.ClientID, &g.SessionID, &created, &g.Revoked); err != nil {
		return store.Grant{}, err
	}
	g.Created = fromMicros(created)
	return g, nil
}

// CreateGrant implements store.Identity; ErrConflict on a duplicate id.
func (db *DB) CreateGrant(ctx context.Context, g store.Grant) error {
	if g.ID == "" || g.UserID == "" || g.ClientID == "" {
		return errors.New("sqldb: create grant: id, user id and client id are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		g.ID, g.UserID, g.ClientID, g.SessionID, g.Created.UnixMicro(), g.Revoked)
	return db.wrap("create grant", err)
}

// Grant implements store.Identity.
func (db *DB) Grant(ctx context.Context, id string) (store.Grant, error) {
	return scanOne(db, "grant", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+grantCols+` FROM grants WHERE id = ?`), id), scanGrant)
}

// RevokeGrant implements store.Identity. Revoking a revoked grant succeeds;
// ErrNotFound for an unknown grant.
func (db *DB) RevokeGrant(ctx context.Context, id string) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE grants SET revoked = TRUE WHERE id = ?`), id)
	if err != nil {
		return db.wrap("revoke grant", err)
	}
	return db.affected("revoke grant", res)
}

// Refresh tokens.

const refreshCols = `id, grant_id, data, created, expires, used`

func scanRefresh(sc scanner) (store.RefreshToken, error) {
	var t store.RefreshToken
	var created, expires int64
	if err := sc.Scan(&t.ID, &t.GrantID, &t.Data, &created, &expires, &t.Used); err != nil {
		return store.RefreshToken{}, err
	}
	t.Data = nilIfEmpty(t.Data)
	t.Created, t.Expires = fromMicros(created), fromMicros(expires)
	return t, nil
}

// CreateRefreshToken implements store.Identity; ErrConflict on a duplicate id.
func (db *DB) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if t.ID == "" || t.GrantID == "" {
		return errors.New("sqldb: create refresh token: id and grant id are required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		t.ID, t.GrantID, emptyIfNil(t.Data), t.Created.UnixMicro(), t.Expires.UnixMicro(), t.Used)
	return db.wrap("create refresh token", err)
}

// RefreshToken implements store.Identity. It returns expired tokens that
// DeleteExpired has not removed yet; checking Expires is the caller's.
func (db *DB) RefreshToken(ctx context.Context, id string) (store.RefreshToken, error) {
	return scanOne(db, "refresh token", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+refreshCols+` FROM refresh_tokens WHERE id = ?`), id), scanRefresh)
}

// UseRefreshToken implements store.Identity as one conditional UPDATE, so
// of any number of concurrent callers exactly one succeeds. When no row
// matched: ErrConflict if the token exists (it was used: reuse),
// ErrNotFound if not. It does not look at Expires.
func (db *DB) UseRefreshToken(ctx context.Context, id string) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE refresh_tokens SET used = TRUE WHERE id = ? AND NOT used`), id)
	if err != nil {
		return db.wrap("use refresh token", err)
	}
	err = db.affected("use refresh token", res)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ok, err := db.exists(ctx, "use refresh token", "refresh_tokens", id)
	switch {
	case err != nil:
		return err
	case ok:
		return fmt.Errorf("sqldb: use refresh token: already used: %w", store.ErrConflict)
	}
	return fmt.Errorf("sqldb: use refresh token: %w", store.ErrNotFound)
}

// Authorization requests.

const authRequestCols = `id, code, data, expires`

func scanAuthRequest(sc scanner) (store.AuthRequest, error) {
	var r store.AuthRequest
	var expires int64
	if err := sc.Scan(&r.ID, &r.Code, &r.Data, &expires); err != nil {
		return store.AuthRequest{}, err
	}
	r.Data = nilIfEmpty(r.Data)
	r.Expires = fromMicros(expires)
	return r, nil
}

// PutAuthRequest implements store.Identity: it inserts r or replaces every
// field of the request with r's id. ErrConflict when r.Code is not empty and
// another request holds that code.
func (db *DB) PutAuthRequest(ctx context.Context, r store.AuthRequest) error {
	if r.ID == "" {
		return errors.New("sqldb: put auth request: id is required")
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`INSERT INTO auth_requests (`+authRequestCols+`) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET code = excluded.code, data = excluded.data, expires = excluded.expires`),
		r.ID, r.Code, emptyIfNil(r.Data), r.Expires.UnixMicro())
	return db.wrap("put auth request", err)
}

// AuthRequest implements store.Identity.
func (db *DB) AuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	return scanOne(db, "auth request", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+authRequestCols+` FROM auth_requests WHERE id = ?`), id), scanAuthRequest)
}

// AuthRequestByCode implements store.Identity. The empty code (not issued)
// matches no request: ErrNotFound.
func (db *DB) AuthRequestByCode(ctx context.Context, code string) (store.AuthRequest, error) {
	if code == "" {
		return store.AuthRequest{}, fmt.Errorf("sqldb: auth request by code: %w", store.ErrNotFound)
	}
	return scanOne(db, "auth request by code", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+authRequestCols+` FROM auth_requests WHERE code = ?`), code), scanAuthRequest)
}

// DeleteAuthRequest implements store.Identity; ErrNotFound when no request
// has the id. Of concurrent deletes of one request exactly one succeeds, so
// a caller that deletes before honouring a code exchanges it once.
func (db *DB) DeleteAuthRequest(ctx context.Context, id string) error {
	res, err := db.wq().ExecContext(ctx, db.rebind(`DELETE FROM auth_requests WHERE id = ?`), id)
	if err != nil {
		return db.wrap("delete auth request", err)
	}
	return db.affected("delete auth request", res)
}

// DeleteExpired implements store.Identity: in one transaction it deletes the
// auth requests and refresh tokens whose Expires is strictly before now.
func (db *DB) DeleteExpired(ctx context.Context, now time.Time) error {
	return db.inTx(ctx, "delete expired", func(q querier) error {
		if _, err := q.ExecContext(ctx, db.rebind(`DELETE FROM auth_requests WHERE expires < ?`), now.UnixMicro()); err != nil {
			return db.wrap("delete expired auth requests", err)
		}
		_, err := q.ExecContext(ctx, db.rebind(`DELETE FROM refresh_tokens WHERE expires < ?`), now.UnixMicro())
		return db.wrap("delete expired refresh tokens", err)
	})
}
