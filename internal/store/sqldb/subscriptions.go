package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// This file implements store.SubscriptionWriter and store.Subscriptions.
// The outbox is filled by one INSERT ... SELECT in the write's
// transaction; a row is claimed by a conditional UPDATE on its lease, so
// that of two dispatchers that picked the same row only one changes it
// (PostgreSQL re-checks the condition on the row the other committed;
// SQLite has one writer).

const subscriptionCols = `id, client, rtype, scopes, status, error, secret, updated`

func scanSubscription(sc scanner) (store.Subscription, error) {
	var s store.Subscription
	var scopes string
	var updated int64
	if err := sc.Scan(&s.ID, &s.Client, &s.Type, &scopes, &s.Status, &s.Error, &s.Secret, &updated); err != nil {
		return store.Subscription{}, err
	}
	s.Scopes = strings.Fields(scopes)
	s.Updated = fromMicros(updated)
	return s, nil
}

func validStatus(status string) bool {
	switch status {
	case store.SubscriptionRequested, store.SubscriptionActive, store.SubscriptionError, store.SubscriptionOff:
		return true
	}
	return false
}

// PutSubscription implements store.SubscriptionWriter.
func (t *Tx) PutSubscription(ctx context.Context, s store.Subscription) error {
	if s.ID == "" || s.Client == "" || s.Type == "" || !validStatus(s.Status) {
		return errors.New("sqldb: put subscription: id, client, type and a known status are required")
	}
	for _, sc := range s.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return errors.New("sqldb: put subscription: a scope is empty or holds white space")
		}
	}
	db := t.db
	_, err := t.q().ExecContext(ctx, db.rebind(`INSERT INTO subscriptions (`+subscriptionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			rtype = excluded.rtype, scopes = excluded.scopes, status = excluded.status, error = excluded.error,
			secret = CASE WHEN length(excluded.secret) = 0 THEN subscriptions.secret ELSE excluded.secret END,
			updated = excluded.updated`),
		s.ID, s.Client, s.Type, strings.Join(s.Scopes, " "), s.Status, s.Error, emptyIfNil(s.Secret), s.Updated.UnixMicro())
	if err != nil {
		return db.wrap("put subscription", err)
	}
	if s.Status == store.SubscriptionOff {
		_, err = t.q().ExecContext(ctx, db.rebind(`DELETE FROM subscription_outbox WHERE subscription = ?`), s.ID)
	}
	return db.wrap("put subscription", err)
}

// CountSubscriptions implements store.SubscriptionWriter.
func (t *Tx) CountSubscriptions(ctx context.Context, client, except string) (int, error) {
	db := t.db
	if db.d.LockRow != "" {
		rows, err := t.q().QueryContext(ctx, db.rebind(`SELECT id FROM clients WHERE id = ?`+db.d.LockRow), client)
		if err != nil {
			return 0, db.wrap("count subscriptions", err)
		}
		if err := rows.Close(); err != nil {
			return 0, db.wrap("count subscriptions", err)
		}
	}
	var n int
	err := t.q().QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM subscriptions WHERE client = ? AND id <> ? AND status <> ?`),
		client, except, store.SubscriptionOff).Scan(&n)
	return n, db.wrap("count subscriptions", err)
}

// DeleteSubscription implements store.SubscriptionWriter.
func (t *Tx) DeleteSubscription(ctx context.Context, id string) error {
	db := t.db
	if _, err := t.q().ExecContext(ctx, db.rebind(`DELETE FROM subscription_outbox WHERE subscription = ?`), id); err != nil {
		return db.wrap("delete subscription", err)
	}
	_, err := t.q().ExecContext(ctx, db.rebind(`DELETE FROM subscriptions WHERE id = ?`), id)
	return db.wrap("delete subscription", err)
}

// EnqueueNotifications implements store.SubscriptionWriter.
func (t *Tx) EnqueueNotifications(ctx context.Context, typ, id string, version int64, at time.Time) (int, error) {
	db := t.db
	// The casts give PostgreSQL the types of parameters in a select list.
	res, err := t.q().ExecContext(ctx, db.rebind(`INSERT INTO subscription_outbox
		(subscription, rtype, rid, version, created, due, attempts, lease_owner, lease_until)
		SELECT id, rtype, CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), 0, '', 0
		FROM subscriptions WHERE rtype = ? AND status <> ?
		ON CONFLICT DO NOTHING`),
		id, version, at.UnixMicro(), at.UnixMicro(), typ, store.SubscriptionOff)
	if err != nil {
		return 0, db.wrap("enqueue notifications", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, db.wrap("enqueue notifications", err)
	}
	return int(n), nil
}

// Subscription implements store.Subscriptions.
func (db *DB) Subscription(ctx context.Context, id string) (store.Subscription, error) {
	return scanOne(db, "subscription", db.rq().QueryRowContext(ctx, db.rebind(`SELECT `+subscriptionCols+` FROM subscriptions WHERE id = ?`), id), scanSubscription)
}

// SetSubscriptionStatus implements store.Subscriptions.
func (db *DB) SetSubscriptionStatus(ctx context.Context, id, status, errText string, at time.Time) error {
	if !validStatus(status) || status == store.SubscriptionOff {
		return fmt.Errorf("sqldb: set subscription status: %q is not a delivery status", status)
	}
	_, err := db.wq().ExecContext(ctx, db.rebind(`UPDATE subscriptions SET status = ?, error = ?, updated = ?
		WHERE id = ? AND status <> ? AND (status <> ? OR error <> ?)`),
		status, errText, at.UnixMicro(), id, store.SubscriptionOff, status, errText)
	return db.wrap("set subscription status", err)
}

const notificationCols = `subscription, rtype, rid, version, created, due, attempts`

// ClaimNotifications implements store.Subscriptions.
func (db *DB) ClaimNotifications(ctx context.Context, lease string, now, until time.Time, limit int) ([]store.Notification, error) {
	if lease == "" || limit <= 0 || !until.After(now) {
		return nil, errors.New("sqldb: claim notifications: a lease, a positive limit and a lease end after now are required")
	}
	var claimed []store.Notification
	err := db.inTx(ctx, "claim notifications", func(q querier) error {
		rows, err := q.QueryContext(ctx, db.rebind(`SELECT `+notificationCols+` FROM subscription_outbox
			WHERE due <= ? AND lease_until <= ? ORDER BY due, subscription, rtype, rid, version LIMIT ?`),
			now.UnixMicro(), now.UnixMicro(), limit)
		if err != nil {
			return db.wrap("claim notifications", err)
		}
		var candidates []store.Notification
		for rows.Next() {
			var n store.Notification
			var created, due int64
			if err := rows.Scan(&n.Subscription, &n.Type, &n.ID, &n.Version, &created, &due, &n.Attempts); err != nil {
				_ = rows.Close() // the scan's error is the one to report
				return db.wrap("claim notifications", err)
			}
			n.Created, n.Due = fromMicros(created), fromMicros(due)
			candidates = append(candidates, n)
		}
		if err := rows.Close(); err != nil {
			return db.wrap("claim notifications", err)
		}
		if err := rows.Err(); err != nil {
			return db.wrap("claim notifications", err)
		}
		for _, n := range candidates {
			res, err := q.ExecContext(ctx, db.rebind(`UPDATE subscription_outbox SET lease_owner = ?, lease_until = ?
				WHERE subscription = ? AND rtype = ? AND rid = ? AND version = ? AND lease_until <= ?`),
				lease, until.UnixMicro(), n.Subscription, n.Type, n.ID, n.Version, now.UnixMicro())
			if err != nil {
				return db.wrap("claim notifications", err)
			}
			if k, err := res.RowsAffected(); err != nil {
				return db.wrap("claim notifications", err)
			} else if k == 1 {
				n.Lease = lease
				claimed = append(claimed, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// held runs a statement on one row that n's lease still holds; ErrConflict
// when it holds none.
func (db *DB) held(ctx context.Context, op, stmt string, n store.Notification, args ...any) error {
	args = append(args, n.Subscription, n.Type, n.ID, n.Version, n.Lease)
	res, err := db.wq().ExecContext(ctx, db.rebind(stmt+` WHERE subscription = ? AND rtype = ? AND rid = ? AND version = ? AND lease_owner = ?`), args...)
	if err != nil {
		return db.wrap(op, err)
	}
	k, err := res.RowsAffected()
	if err != nil {
		return db.wrap(op, err)
	}
	if k == 0 {
		return fmt.Errorf("sqldb: %s: the lease was lost: %w", op, store.ErrConflict)
	}
	return nil
}

// FinishNotification implements store.Subscriptions.
func (db *DB) FinishNotification(ctx context.Context, n store.Notification) error {
	if n.Lease == "" {
		return errors.New("sqldb: finish notification: no lease")
	}
	return db.held(ctx, "finish notification", `DELETE FROM subscription_outbox`, n)
}

// RetryNotification implements store.Subscriptions.
func (db *DB) RetryNotification(ctx context.Context, n store.Notification, due time.Time) error {
	if n.Lease == "" {
		return errors.New("sqldb: retry notification: no lease")
	}
	return db.held(ctx, "retry notification", `UPDATE subscription_outbox SET due = ?, attempts = attempts + 1, lease_owner = '', lease_until = 0`, n, due.UnixMicro())
}

// PendingNotifications implements store.Subscriptions.
func (db *DB) PendingNotifications(ctx context.Context) (int, error) {
	var n int
	err := db.rq().QueryRowContext(ctx, `SELECT COUNT(*) FROM subscription_outbox`).Scan(&n)
	return n, db.wrap("pending notifications", err)
}
