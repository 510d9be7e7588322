package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// subscriptionTests are Run's tests of subscriptions and their outbox;
// each gets a fresh store.
var subscriptionTests = []conformanceTest{
	{"Subscriptions", testSubscriptions},
	{"Outbox", testOutbox},
	{"OutboxRollback", testOutboxRollback},
}

func putSubscription(t *testing.T, s store.Store, sub store.Subscription) {
	t.Helper()
	err := store.ReadWrite(t.Context(), s, func(tx store.Tx) error { return tx.PutSubscription(t.Context(), sub) })
	if err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, s store.Store, typ, id string, version int64, n int) int {
	t.Helper()
	var added int
	err := store.ReadWrite(t.Context(), s, func(tx store.Tx) error {
		var err error
		added, err = tx.EnqueueNotifications(t.Context(), typ, id, version, at(n))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return added
}

// testSubscriptions: a subscription's state round-trips; a later put
// keeps the owner and, when it brings none, the secret; a delivery status
// never turns an off subscription back on.
func testSubscriptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Subscription(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown subscription: %v", err)
	}
	sub := store.Subscription{ID: "s1", Client: "svc", Type: "Observation", Scopes: []string{"system/Observation.rs"},
		Status: store.SubscriptionRequested, Secret: []byte("sealed secret"), Updated: at(1)}
	putSubscription(t, s, sub)
	got, err := s.Subscription(ctx, "s1")
	if err != nil || got.Client != "svc" || got.Type != "Observation" || !slices.Equal(got.Scopes, sub.Scopes) ||
		got.Status != store.SubscriptionRequested || string(got.Secret) != "sealed secret" || !got.Updated.Equal(at(1)) {
		t.Fatalf("stored %+v, %v", got, err)
	}
	again := sub
	again.Client, again.Secret, again.Type, again.Updated = "thief", nil, "Condition", at(2)
	putSubscription(t, s, again)
	if got, _ = s.Subscription(ctx, "s1"); got.Client != "svc" || string(got.Secret) != "sealed secret" || got.Type != "Condition" {
		t.Fatalf("after a second put: %+v", got)
	}
	if err := s.SetSubscriptionStatus(ctx, "s1", store.SubscriptionError, "endpoint answered 500", at(3)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Subscription(ctx, "s1"); got.Status != store.SubscriptionError || got.Error != "endpoint answered 500" {
		t.Fatalf("after a failed delivery: %+v", got)
	}
	off := sub
	off.Status = store.SubscriptionOff
	putSubscription(t, s, off)
	if err := s.SetSubscriptionStatus(ctx, "s1", store.SubscriptionActive, "", at(4)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Subscription(ctx, "s1"); got.Status != store.SubscriptionOff {
		t.Fatalf("a delivery turned an off subscription %q", got.Status)
	}
	if err := s.SetSubscriptionStatus(ctx, "s1", "bogus", "", at(4)); err == nil {
		t.Fatal("an unknown status was accepted")
	}
	if err := s.SetSubscriptionStatus(ctx, "unknown", store.SubscriptionActive, "", at(4)); err != nil {
		t.Fatalf("status of an unknown subscription: %v", err)
	}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "s1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscription(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted subscription: %v", err)
	}
}

// testOutbox: a write enqueues one row per subscription on its type that
// is not off, once; rows are claimed only when due and not leased, by one
// claimant of many; a lost lease cannot finish or retry a row; a retry
// counts the attempt and makes the row due later.
func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sub := range []store.Subscription{
		{ID: "a", Client: "svc", Type: "Observation", Status: store.SubscriptionActive, Secret: []byte("x"), Updated: at(0)},
		{ID: "b", Client: "svc", Type: "Observation", Status: store.SubscriptionError, Secret: []byte("x"), Updated: at(0)},
		{ID: "c", Client: "svc", Type: "Observation", Status: store.SubscriptionOff, Secret: []byte("x"), Updated: at(0)},
		{ID: "d", Client: "svc", Type: "Condition", Status: store.SubscriptionRequested, Secret: []byte("x"), Updated: at(0)},
	} {
		putSubscription(t, s, sub)
	}
	if n := enqueue(t, s, "Observation", "o1", 1, 1); n != 2 {
		t.Fatalf("enqueued %d rows for two live subscriptions", n)
	}
	if n := enqueue(t, s, "Observation", "o1", 1, 1); n != 0 {
		t.Fatalf("the same version enqueued %d more rows", n)
	}
	if n := enqueue(t, s, "Patient", "p1", 1, 1); n != 0 {
		t.Fatalf("a type no one subscribes to enqueued %d rows", n)
	}
	if p, err := s.PendingNotifications(ctx); err != nil || p != 2 {
		t.Fatalf("pending %d, %v", p, err)
	}
	if got, err := s.ClaimNotifications(ctx, "early", at(0), at(60), 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed before due: %v, %v", got, err)
	}
	// Many claimants at once: each row goes to exactly one.
	var (
		mu     sync.Mutex
		owners = map[string]string{}
		wg     sync.WaitGroup
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease := string(rune('A' + i)) // #nosec G115 -- i counts a handful of test claimants
			got, err := s.ClaimNotifications(ctx, lease, at(2), at(62), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range got {
				if prev, ok := owners[n.Subscription]; ok {
					t.Errorf("row of %s claimed by %s and %s", n.Subscription, prev, lease)
				}
				owners[n.Subscription] = lease
				if n.Lease != lease || n.Type != "Observation" || n.ID != "o1" || n.Version != 1 || !n.Created.Equal(at(1)) {
					t.Errorf("claimed %+v", n)
				}
			}
		}()
	}
	wg.Wait()
	if len(owners) != 2 {
		t.Fatalf("claimed rows of %v, want a and b", owners)
	}
	if got, err := s.ClaimNotifications(ctx, "late", at(30), at(90), 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed under a live lease: %v, %v", got, err)
	}
	// The lease runs out: another claimant takes the row over, and the
	// first one can no longer finish it.
	first := store.Notification{Subscription: "a", Type: "Observation", ID: "o1", Version: 1, Lease: owners["a"]}
	got, err := s.ClaimNotifications(ctx, "takeover", at(62), at(120), 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim after the leases ran out: %v, %v", got, err)
	}
	if err := s.FinishNotification(ctx, first); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finish with a lost lease: %v", err)
	}
	if err := s.RetryNotification(ctx, first, at(500)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("retry with a lost lease: %v", err)
	}
	var a, b store.Notification
	for _, n := range got {
		if n.Subscription == "a" {
			a = n
		} else {
			b = n
		}
	}
	if err := s.FinishNotification(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryNotification(ctx, b, at(300)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimNotifications(ctx, "soon", at(299), at(400), 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed before the retry is due: %v, %v", got, err)
	}
	got, err = s.ClaimNotifications(ctx, "retry", at(300), at(400), 10)
	if err != nil || len(got) != 1 || got[0].Subscription != "b" || got[0].Attempts != 1 || !got[0].Due.Equal(at(300)) {
		t.Fatalf("claimed for the retry: %+v, %v", got, err)
	}
	// Turning a subscription off, or deleting it, drops its rows.
	enqueue(t, s, "Observation", "o2", 1, 5)
	off := store.Subscription{ID: "a", Client: "svc", Type: "Observation", Status: store.SubscriptionOff, Updated: at(6)}
	putSubscription(t, s, off)
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "b") }); err != nil {
		t.Fatal(err)
	}
	if p, err := s.PendingNotifications(ctx); err != nil || p != 0 {
		t.Fatalf("pending after off and delete: %d, %v", p, err)
	}
	if _, err := s.ClaimNotifications(ctx, "", at(0), at(1), 1); err == nil {
		t.Fatal("a claim without a lease was accepted")
	}
}

// testOutboxRollback: a row enqueued in a transaction that rolls back is
// not there, like the write it was about.
func testOutboxRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	putSubscription(t, s, store.Subscription{ID: "a", Client: "svc", Type: "Observation", Status: store.SubscriptionActive, Secret: []byte("x"), Updated: at(0)})
	boom := errors.New("boom")
	err := store.ReadWrite(ctx, s, func(tx store.Tx) error {
		if err := tx.PutVersion(ctx, res("Observation", "o1", 1, 1), nil); err != nil {
			return err
		}
		if _, err := tx.EnqueueNotifications(ctx, "Observation", "o1", 1, at(1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if p, err := s.PendingNotifications(ctx); err != nil || p != 0 {
		t.Fatalf("pending after a rollback: %d, %v", p, err)
	}
}
