package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/wardhealth/ward/internal/ratelimit"
)

// BenchmarkRateLimitCheck is the rate-limit step of one authenticated
// request as the HTTP layer runs it: the principal's limit looked up
// (with overrides configured), its token taken among 10,000 principals'
// buckets, and the RateLimit-Policy and RateLimit fields written.
func BenchmarkRateLimitCheck(b *testing.B) {
	cfg := ratelimit.Config{
		Principal: ratelimit.Limit{Rate: 1e6, Burst: 1e7},
		Roles:     map[string]ratelimit.Limit{"patient": {Rate: 1e6, Burst: 1e7}},
		Clients:   map[string]ratelimit.Limit{"etl": {Rate: 1e6, Burst: 1e7}},
	}
	s := &Server{limits: newLimits(cfg, nil)}
	r := httptest.NewRequest(http.MethodGet, "https://ward.example/fhir/Patient/1", nil)
	w := httptest.NewRecorder()
	clients := make([]string, 10_000)
	for i := range clients {
		clients[i] = "ward-client-" + strconv.Itoa(i)
	}
	h := w.Header()
	i := 0
	for b.Loop() {
		clear(h)
		if err := s.limitPrincipal(w, r, clients[i%len(clients)], "", ""); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestQuotaPrecedence: a client's override beats its person's role's,
// which beats the default; a service has no role.
func TestQuotaPrecedence(t *testing.T) {
	l := newLimits(ratelimit.Config{
		Principal: ratelimit.Limit{Rate: 50, Burst: 500},
		Roles:     map[string]ratelimit.Limit{"patient": {Rate: 2, Burst: 20}},
		Clients:   map[string]ratelimit.Limit{"ward-etl": {Rate: 1000, Burst: 10000}},
	}, nil)
	for _, tc := range []struct {
		client, role string
		want         ratelimit.Limit
		policy       string
	}{
		{"svc", "", ratelimit.Limit{Rate: 50, Burst: 500}, `"principal";q=500;w=10`},
		{"app", "patient", ratelimit.Limit{Rate: 2, Burst: 20}, `"principal";q=20;w=10`},
		{"app", "practitioner", ratelimit.Limit{Rate: 50, Burst: 500}, `"principal";q=500;w=10`},
		{"ward-etl", "", ratelimit.Limit{Rate: 1000, Burst: 10000}, `"principal";q=10000;w=10`},
		{"ward-etl", "patient", ratelimit.Limit{Rate: 1000, Burst: 10000}, `"principal";q=10000;w=10`},
	} {
		if got := l.forPrincipal(tc.client, tc.role); got.limit != tc.want || got.policy != tc.policy {
			t.Errorf("forPrincipal(%q, %q) = %+v, want %v %s", tc.client, tc.role, got, tc.want, tc.policy)
		}
	}
}
