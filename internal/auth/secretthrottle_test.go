package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// outcome classifies a token request's result for comparison.
func outcome(err error) string {
	var te *ThrottledError
	var oe *OAuthError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &te):
		return fmt.Sprintf("throttled %v", te.RetryAfter)
	case errors.Is(err, ErrClientLocked) && errors.As(err, &oe):
		return "locked " + oe.Code
	case errors.As(err, &oe):
		return oe.Code
	}
	return "error " + err.Error()
}

// TestSecretThrottle is catalogue case G2 for client secrets: 300 wrong
// secrets for one client get 5 checks, then a lock that doubles with each
// further failure; while locked even the right secret is refused
// unchecked; the lock is bounded, and a success clears the count.
func TestSecretThrottle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	try := func(secret string) string {
		_, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: secret})
		return outcome(err)
	}
	wrong := otherChar(f.secret.Reveal())
	got := map[string]int{}
	for range 300 {
		got[try(wrong)]++
	}
	want := map[string]int{"invalid_client": 4, "locked invalid_client": 1, "throttled 1s": 295}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("300 wrong secrets at once: %v, want %v", got, want)
	}
	if o := try(f.secret.Reveal()); o != "throttled 1s" {
		t.Fatalf("the right secret while locked: %s, want it refused unchecked", o)
	}
	// Each further failure doubles the lock: 2 s, 4 s, 8 s...
	for _, lock := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		f.clock.Add(lock)
		if o := try(wrong); o != "locked invalid_client" {
			t.Fatalf("a wrong secret after a %v lock: %s", lock, o)
		}
		if o := try(wrong); o != fmt.Sprintf("throttled %v", 2*lock) {
			t.Fatalf("the next one: %s, want throttled %v", o, 2*lock)
		}
	}
	// Bounded: the lock never exceeds the cap (15 minutes by default).
	for range 20 {
		f.clock.Add(time.Hour)
		try(wrong)
	}
	if o := try(wrong); o != "throttled 15m0s" {
		t.Fatalf("after many failures: %s, want the 15 minute cap", o)
	}
	f.clock.Add(15 * time.Minute)
	if o := try(f.secret.Reveal()); o != "ok" {
		t.Fatalf("the right secret after the lock: %s", o)
	}
	// The success cleared the count: 4 free failures again.
	for i := range 4 {
		if o := try(wrong); o != "invalid_client" {
			t.Fatalf("failure %d after a success: %s", i+1, o)
		}
	}
}

// TestSecretThrottleUnknownAlike: the same attempts answer the same for a
// client id that exists and one that does not, so throttling reveals
// nothing about which ids exist; and they are counted apart.
func TestSecretThrottleUnknownAlike(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wrong := otherChar(f.secret.Reveal())
	seq := func(id string) []string {
		var out []string
		for i := range 40 {
			if i%10 == 9 {
				f.clock.Add(3 * time.Second)
			}
			_, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: id, ClientSecret: wrong})
			out = append(out, outcome(err))
		}
		return out
	}
	start := f.clock.Now()
	known := seq(f.id)
	f.clock.Add(start.Sub(f.clock.Now())) // replay the same clock for the unknown id
	unknown := seq("ward-NOSUCHCLIENT0")
	if !slices.Contains(known, "locked invalid_client") || !slices.Contains(known, "throttled 1s") {
		t.Fatalf("40 wrong secrets for a known id were not throttled: %v", known)
	}
	if fmt.Sprint(known) != fmt.Sprint(unknown) {
		t.Fatalf("known and unknown ids answer differently:\nknown   %v\nunknown %v", known, unknown)
	}
	// The other id's failures did not lock this one: the right secret is
	// still throttled only by its own count, which ends.
	f.clock.Add(time.Hour)
	if _, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()}); err != nil {
		t.Fatalf("right secret an hour later: %v", err)
	}
}

// TestSecretThrottleConcurrent: many wrong secrets at once still get only
// the free attempts checked; the count is taken before the check.
func TestSecretThrottleConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wrong := otherChar(f.secret.Reveal())
	var mu sync.Mutex
	checked := 0
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			_, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: wrong})
			var te *ThrottledError
			if !errors.As(err, &te) {
				mu.Lock()
				checked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if checked != 5 {
		t.Fatalf("%d of 64 concurrent wrong secrets were checked, want the 5 free ones", checked)
	}
}

// TestSecretAttemptsPurged: counts of ids not tried for a day are deleted,
// so ids tried once do not accumulate.
func TestSecretAttemptsPurged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := range 50 {
		f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: fmt.Sprint("ward-gone-", i), ClientSecret: "x"})
	}
	if n := f.store.attemptCount(); n != 50 {
		t.Fatalf("%d counts kept, want 50", n)
	}
	f.clock.Add(attemptsMemory + 2*purgeEvery)
	f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: "ward-new", ClientSecret: "x"})
	if n := f.store.attemptCount(); n != 1 {
		t.Fatalf("%d counts kept a day later, want only the new one", n)
	}
}
