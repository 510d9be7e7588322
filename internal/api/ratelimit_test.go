package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// frozenClock is a clock that moves only when told.
type frozenClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFrozenClock() *frozenClock { return &frozenClock{t: time.Now().Truncate(time.Second)} }

func (c *frozenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *frozenClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// secretRequest sends a client credentials request with Basic credentials.
func (s *stack) secretRequest(id, secret string) response {
	s.t.Helper()
	return s.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basic(id, secret))
}

// TestClientSecretThrottle is catalogue case G2 at the token endpoint:
// 300 wrong secrets for a known client get 5 checks, then 429 with
// Retry-After and the RateLimit field, the lock is a security event in
// the log and in the ledger, and an unknown client id gets exactly the
// same answers (status, headers, body) after the same sequence.
func TestClientSecretThrottle(t *testing.T) {
	clk := newFrozenClock()
	s := newStackWith(t, stackOptions{authNow: clk.Now})
	c, secret, err := s.auth.CreateClient(t.Context(), "svc", []string{"system/Patient.rs"})
	if err != nil {
		t.Fatal(err)
	}
	wrong := secret.Reveal()[:10] + "not-the-secret"
	from := ledgerSize(t, s)
	run := func(id string) []response {
		var out []response
		for range 300 {
			out = append(out, s.secretRequest(id, wrong))
		}
		return out
	}
	known := run(c.ID)
	statuses := map[int]int{}
	for _, r := range known {
		statuses[r.status]++
	}
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 295 {
		t.Fatalf("300 wrong secrets: statuses %v, want 5 checked (401) and 295 refused (429)", statuses)
	}
	r := known[299]
	checkOutcome(t, "throttled token request", r, http.StatusTooManyRequests)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if got := r.header.Get("RateLimit"); got != `"client-secret";r=0;t=1` {
		t.Errorf("RateLimit %q", got)
	}
	if !strings.Contains(string(r.body), `"code":"throttled"`) {
		t.Errorf("429 body is not a throttled OperationOutcome: %s", r.body)
	}
	if !strings.Contains(s.logs.String(), "security event: client id throttled") {
		t.Error("no security event logged for the lock")
	}
	details := map[string]int{}
	for _, e := range ledgerEntries(t, s, from) {
		if e.Action == "token" {
			details[e.Detail]++
		}
	}
	if details["locked"] != 1 || details["throttled"] != 295 {
		t.Errorf("token entries by detail %v, want 1 locked and 295 throttled", details)
	}
	if strings.Contains(s.logs.String(), wrong) {
		t.Error("a secret reached the log")
	}

	// An id no client has: the same answers, one by one.
	unknown := run("ward-NOSUCHCLIENT00")
	for i := range known {
		k, u := known[i], unknown[i]
		if k.status != u.status || string(k.body) != string(u.body) {
			t.Fatalf("request %d: known %d %s, unknown %d %s", i, k.status, k.body, u.status, u.body)
		}
		for _, h := range []string{"Retry-After", "RateLimit", "RateLimit-Policy", "WWW-Authenticate", "Content-Type", "Cache-Control"} {
			if k.header.Get(h) != u.header.Get(h) {
				t.Fatalf("request %d: %s %q for a known client, %q for an unknown one", i, h, k.header.Get(h), u.header.Get(h))
			}
		}
	}

	// The lock is bounded and the right secret works once it ends.
	clk.Advance(time.Second)
	if r := s.secretRequest(c.ID, secret.Reveal()); r.status != http.StatusOK {
		t.Fatalf("the right secret after the lock: %d %s", r.status, r.body)
	}
}
