package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// Client-secret guessing is throttled per client id like people's
// passwords (credential.Throttle: a few free failures, then a delay that
// doubles up to a cap), with the count kept in the store so that every
// replica sharing it sees one count: spreading guesses over replicas does
// not multiply them.
//
// An attempt is counted before its secret is checked, with a
// compare-and-swap on the stored count, so concurrent guesses cannot all
// slip in before the first failure is recorded; a success resets the
// count. Ids of clients that do not exist are counted the same way, so a
// throttled unknown id answers exactly like a throttled known one.

// ErrClientLocked marks (wrapped with the invalid_client error) the failed
// secret that locked its client id for a while: the caller raises a
// security event for it.
var ErrClientLocked = errors.New("auth: repeated client authentication failures locked the client id")

// ThrottledError is returned, instead of checking the secret, while a
// client id's attempts are throttled: for a known and an unknown id alike.
type ThrottledError struct {
	RetryAfter time.Duration // until the next attempt is checked
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("auth: client authentication throttled for %v", e.RetryAfter)
}

const (
	// attemptsMemory is how long the count of a client id is kept after its
	// last lock ended: a guesser who waits longer than this starts again
	// with the free attempts.
	attemptsMemory = 24 * time.Hour
	// maxAttemptSwaps bounds the retries of one attempt's compare-and-swap
	// against concurrent attempts on the same id.
	maxAttemptSwaps = 16
)

// attemptKey is the store key of a client id as submitted: a hash, so
// that what an unauthenticated caller sends is never stored as given.
func attemptKey(clientID string) string {
	h := sha256.Sum256([]byte("ward client secret attempts\x00" + clientID))
	return base64URL(h[:])
}

// takeAttempt counts an attempt for key, unless its attempts are
// throttled, in which case it returns a *ThrottledError. It returns the
// count as stored with this attempt in it.
func (s *Server) takeAttempt(ctx context.Context, key string, now time.Time) (store.Attempts, error) {
	s.purgeAttempts(ctx, now)
	for range maxAttemptSwaps {
		cur, err := s.clients.ClientAttempts(ctx, key)
		if err != nil {
			return store.Attempts{}, fmt.Errorf("auth: client attempts: %w", err)
		}
		if now.Before(cur.LockedUntil) {
			return store.Attempts{}, &ThrottledError{RetryAfter: cur.LockedUntil.Sub(now)}
		}
		next := store.Attempts{Failures: cur.Failures + 1}
		next.LockedUntil = s.cfg.SecretThrottle.LockedUntil(next.Failures, now).UTC().Truncate(time.Microsecond)
		err = s.clients.SwapClientAttempts(ctx, key, cur, next)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.Attempts{}, fmt.Errorf("auth: count client attempt: %w", err)
		}
		return next, nil
	}
	// So many concurrent attempts on one id that none got counted in
	// time: refuse this one unchecked.
	return store.Attempts{}, &ThrottledError{RetryAfter: time.Second}
}

// resetAttempts forgets key's failures after a success.
func (s *Server) resetAttempts(ctx context.Context, key string) error {
	for range maxAttemptSwaps {
		cur, err := s.clients.ClientAttempts(ctx, key)
		if err != nil {
			return fmt.Errorf("auth: client attempts: %w", err)
		}
		if cur.IsZero() {
			return nil
		}
		err = s.clients.SwapClientAttempts(ctx, key, cur, store.Attempts{})
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("auth: reset client attempts: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("auth: reset client attempts: %w", store.ErrConflict)
}

// purgeAttempts deletes, at most once per purgeEvery, the counts whose
// lock ended more than attemptsMemory ago, so that ids tried once and
// never again do not accumulate.
func (s *Server) purgeAttempts(ctx context.Context, now time.Time) {
	last := s.lastAttemptPurge.Load()
	if now.UnixNano()-last < int64(purgeEvery) || !s.lastAttemptPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_ = s.clients.DeleteClientAttempts(ctx, now.Add(-attemptsMemory))
}
