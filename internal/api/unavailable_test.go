package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// clientsDown fails client lookups as a database that is restarting does,
// while everything else (the ledger included) still works: the state in
// which a 401 could otherwise be recorded and served.
type clientsDown struct {
	store.Store
	down *atomic.Bool
}

func (c clientsDown) Client(ctx context.Context, id string) (store.Client, error) {
	if c.down.Load() {
		return store.Client{}, fmt.Errorf("injected: %w", store.ErrUnavailable)
	}
	return c.Store.Client(ctx, id)
}

// F4, E2: a valid token whose client cannot be looked up because the
// database is unavailable gets 503, not 401 invalid_token (which tells the
// client to throw its token away and is audited as a denial).
func TestTokenCheckStoreUnavailable(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	s := newStackWith(t, stackOptions{wrapStore: func(st store.Store) store.Store { return clientsDown{st, &down} }})
	// Issuing the token cached the client's status; the check reads the
	// store again once auth's default client cache TTL (5s) has passed.
	time.Sleep(5*time.Second + 200*time.Millisecond)
	down.Store(true)
	r := s.do("GET", "/fhir/Patient", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("valid token, client lookup unavailable: status %d, want 503 (if 200: did auth's client cache TTL grow?): %s", r.status, r.body)
	}
	if h := r.header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("503 carries WWW-Authenticate %q", h)
	}
	if !strings.Contains(string(r.body), r.header.Get("X-Request-Id")) || strings.Contains(string(r.body), "injected") {
		t.Errorf("the 503 body should name the request id and nothing else: %s", r.body)
	}
	down.Store(false)
	must(t, s.do("GET", "/fhir/Patient", nil), http.StatusOK)
}
