package store

import (
	"context"
	"time"
)

// Subscription is the delivery state of one FHIR Subscription resource
// (whose body is a sealed resource version like any other): who owns it,
// which resource type its criteria select, the scopes its owner was
// granted when it was written, its status and error text, and its signing
// secret, sealed by the caller. It holds no criteria value and no PHI.
type Subscription struct {
	ID     string
	Client string // the owning client; never changes
	Type   string // the resource type of the criteria
	Scopes []string
	Status string // SubscriptionRequested, SubscriptionActive, SubscriptionError or SubscriptionOff
	Error  string // why the last delivery failed: a fixed phrase, never PHI; "" when none
	// Secret is the sealed signing secret. PutSubscription keeps the
	// stored one when it is empty.
	Secret  []byte
	Updated time.Time
}

// Subscription statuses (FHIR R4 subscription-status).
const (
	SubscriptionRequested = "requested"
	SubscriptionActive    = "active"
	SubscriptionError     = "error"
	SubscriptionOff       = "off"
)

// Notification is one outbox row: a written resource version that one
// subscription may have to be told about. Lease is the claim that
// ClaimNotifications gave it; the dispatcher that holds it finishes or
// retries it.
type Notification struct {
	Subscription string
	Type, ID     string
	Version      int64
	Created      time.Time
	Due          time.Time
	Attempts     int
	Lease        string
}

// SubscriptionWriter changes subscriptions and the outbox inside a write
// transaction, so that a notification commits with the write it is about.
type SubscriptionWriter interface {
	// PutSubscription inserts or replaces a subscription's delivery state;
	// the owning client of a stored one never changes, and an empty
	// Secret keeps the stored one. Setting the status off drops its
	// pending notifications.
	PutSubscription(ctx context.Context, s Subscription) error
	// CountSubscriptions counts the subscriptions of client that are not
	// off, other than except. Where rows lock, it first locks the
	// client's row (when the clients table has one) until the transaction
	// ends, so that two transactions counting for the same client run one
	// after the other and a cap checked with it holds under concurrency.
	CountSubscriptions(ctx context.Context, client, except string) (int, error)
	// DeleteSubscription forgets a subscription and its pending
	// notifications; nothing happens when it is unknown.
	DeleteSubscription(ctx context.Context, id string) error
	// EnqueueNotifications adds an outbox row, due at, for every
	// subscription whose criteria select typ and whose status is not off,
	// about version of typ/id; it returns how many it added.
	EnqueueNotifications(ctx context.Context, typ, id string, version int64, at time.Time) (int, error)
}

// Subscriptions reads delivery state and works the outbox. Rows are
// claimed with a lease, so that several processes sharing the database
// never hold the same row at once: each is delivered by one dispatcher at
// a time, and by another only after the lease has run out.
type Subscriptions interface {
	// Subscription returns a subscription's delivery state, or ErrNotFound.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// SetSubscriptionStatus records the status and error of the last
	// delivery, unless the subscription is off or gone (then nothing
	// changes and no error is returned).
	SetSubscriptionStatus(ctx context.Context, id, status, errText string, at time.Time) error
	// ClaimNotifications leases up to limit rows that are due at now and
	// not leased at now, oldest due first, to lease until the given time,
	// and returns them with Lease set to lease.
	ClaimNotifications(ctx context.Context, lease string, now, until time.Time, limit int) ([]Notification, error)
	// FinishNotification deletes a row its lease still holds;
	// ErrConflict when the lease was lost (the row went to another
	// dispatcher or is gone).
	FinishNotification(ctx context.Context, n Notification) error
	// RetryNotification releases a row its lease still holds, due again
	// at due, with one more attempt counted; ErrConflict when the lease
	// was lost.
	RetryNotification(ctx context.Context, n Notification, due time.Time) error
	// PendingNotifications counts the outbox rows.
	PendingNotifications(ctx context.Context) (int, error)
}
