package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// Queue is the part of the store a Dispatcher works: the outbox and the
// subscriptions' status (store.Subscriptions).
type Queue interface {
	ClaimNotifications(ctx context.Context, lease string, now, until time.Time, limit int) ([]store.Notification, error)
	FinishNotification(ctx context.Context, n store.Notification) error
	RetryNotification(ctx context.Context, n store.Notification, due time.Time) error
	SetSubscriptionStatus(ctx context.Context, id, status, errText string, at time.Time) error
}

// Notifier decides and records one notification (records.Service).
type Notifier interface {
	Notification(ctx context.Context, n store.Notification) (records.Delivery, error)
}

// Config configures a Dispatcher. Zero values mean the defaults.
type Config struct {
	Queue   Queue
	Records Notifier
	// Client sends notifications; it must be a Guard's Client.
	Client *http.Client
	Now    func() time.Time
	// Lease is how long a claimed row is this dispatcher's; default 5
	// minutes. It must exceed the time a batch takes.
	Lease time.Duration
	// Batch is the number of rows claimed at once; default 32. Workers
	// send that many at once; default 4.
	Batch, Workers int
	// BaseDelay and MaxDelay bound the exponential backoff between
	// attempts: BaseDelay * 2^(attempts-1), at most MaxDelay; defaults
	// 10 seconds and 1 hour.
	BaseDelay, MaxDelay time.Duration
	// MaxAttempts is the number of attempts after which a notification is
	// dropped; default 12 (about 6 hours with the default delays).
	MaxAttempts int
	// Poll is how often Run looks for due rows when nothing wakes it;
	// default 2 seconds.
	Poll time.Duration
}

// Dispatcher delivers the outbox's notifications.
type Dispatcher struct {
	cfg   Config
	lease string
	wake  chan struct{}
}

// New returns a Dispatcher; every dispatcher has its own lease name.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Queue == nil || cfg.Records == nil || cfg.Client == nil {
		return nil, errors.New("notify: a dispatcher needs a queue, the records service and a guarded client")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 10 * time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = time.Hour
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 12
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &Dispatcher{cfg: cfg, lease: hex.EncodeToString(b[:]), wake: make(chan struct{}, 1)}, nil
}

// Wake makes Run look for due rows now (records.Config.Enqueued).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: batch after batch while rows are due,
// then it waits for Wake or the poll interval. Errors of the store are
// returned to onError and retried at the next poll.
func (d *Dispatcher) Run(ctx context.Context, onError func(error)) {
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	for {
		r, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		if err == nil && r.Claimed == d.cfg.Batch {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-tick.C:
		}
	}
}

// Result counts what one RunOnce did.
type Result struct {
	Claimed   int // rows claimed
	Sent      int // notifications the endpoint accepted (2xx)
	Failed    int // attempts that failed and will be retried
	Dropped   int // rows given up after MaxAttempts
	Skipped   int // rows with nothing to send (no match, off, owner refused)
	Unhandled int // rows records could not decide now (retried)
}

// RunOnce claims one batch of due rows and works it.
func (d *Dispatcher) RunOnce(ctx context.Context) (Result, error) {
	now := d.cfg.Now()
	rows, err := d.cfg.Queue.ClaimNotifications(ctx, d.lease, now, now.Add(d.cfg.Lease), d.cfg.Batch)
	if err != nil {
		return Result{}, fmt.Errorf("notify: claim: %w", err)
	}
	r := Result{Claimed: len(rows)}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, d.cfg.Workers)
	)
	for _, n := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outcome, err := d.deliver(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			switch outcome {
			case sent:
				r.Sent++
			case failed:
				r.Failed++
			case dropped:
				r.Dropped++
			case skipped:
				r.Skipped++
			case unhandled:
				r.Unhandled++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return r, errors.Join(errs...)
}

type outcome int

const (
	sent outcome = iota
	failed
	dropped
	skipped
	unhandled
)

// deliver works one claimed row. Its error is the store's or records'
// (the row is then left to its lease or retried); an endpoint's failure
// is an outcome, kept in the subscription's status.
func (d *Dispatcher) deliver(ctx context.Context, n store.Notification) (outcome, error) {
	q := d.cfg.Queue
	dl, err := d.cfg.Records.Notification(ctx, n)
	switch {
	case errors.Is(err, records.ErrOwnerRefused):
		err = q.SetSubscriptionStatus(ctx, n.Subscription, store.SubscriptionError, "the owning client may no longer run the criteria", d.cfg.Now())
		return skipped, errors.Join(err, q.FinishNotification(ctx, n))
	case errors.Is(err, records.ErrNoDelivery):
		return skipped, q.FinishNotification(ctx, n)
	case err != nil:
		// Nothing was sent (the ledger or the keys are away): try again
		// later, counted as an attempt so that it ends.
		return unhandled, errors.Join(fmt.Errorf("notify: deciding a notification: %w", err), d.retry(ctx, n))
	}
	if problem := d.send(ctx, dl); problem != "" {
		now := d.cfg.Now()
		if n.Attempts+1 >= d.cfg.MaxAttempts {
			err := q.SetSubscriptionStatus(ctx, n.Subscription, store.SubscriptionError,
				problem+"; a notification was dropped after "+strconv.Itoa(d.cfg.MaxAttempts)+" attempts", now)
			return dropped, errors.Join(err, q.FinishNotification(ctx, n))
		}
		err := q.SetSubscriptionStatus(ctx, n.Subscription, store.SubscriptionError, problem, now)
		return failed, errors.Join(err, d.retry(ctx, n))
	}
	err = q.SetSubscriptionStatus(ctx, n.Subscription, store.SubscriptionActive, "", d.cfg.Now())
	return sent, errors.Join(err, q.FinishNotification(ctx, n))
}

// Backoff is the delay before attempt number attempts+1 of a row that
// failed attempts times: BaseDelay * 2^(attempts-1), at most MaxDelay.
func (d *Dispatcher) Backoff(attempts int) time.Duration {
	delay := d.cfg.BaseDelay
	for i := 1; i < attempts && delay < d.cfg.MaxDelay; i++ {
		delay *= 2
	}
	return min(delay, d.cfg.MaxDelay)
}

func (d *Dispatcher) retry(ctx context.Context, n store.Notification) error {
	return d.cfg.Queue.RetryNotification(ctx, n, d.cfg.Now().Add(d.Backoff(n.Attempts+1)))
}

// maxResponse is how much of an answer is read (and discarded).
const maxResponse = 64 << 10

// send posts one notification; it returns "" when the endpoint accepted
// it (2xx), else a fixed phrase saying why not, which never holds the
// endpoint's answer.
func (d *Dispatcher) send(ctx context.Context, dl records.Delivery) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.Endpoint.String(), bytes.NewReader(dl.Body))
	if err != nil {
		return "the endpoint is not a valid URL"
	}
	if dl.ContentType != "" {
		req.Header.Set("Content-Type", dl.ContentType)
	}
	req.Header.Set("User-Agent", "Ward")
	req.Header.Set(SignatureHeader, Sign(dl.Secret, d.cfg.Now(), dl.Body))
	req.Header.Set("X-Ward-Subscription", dl.Subscription)
	req.Header.Set("X-Ward-Delivery", dl.ID)
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return transportProblem(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "the endpoint answered " + strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// transportProblem names a failed request's cause in a fixed phrase.
func transportProblem(err error) string {
	var (
		netErr  net.Error
		certErr *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, ErrRefusedAddress):
		return "the endpoint's address is not allowed"
	case errors.As(err, &certErr):
		return "the endpoint's TLS certificate was not accepted"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "the endpoint did not answer in time"
	}
	return "the endpoint could not be reached"
}
