package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/ratelimit"
)

// manualClock is a clock that moves only when told to.
type manualClock struct{ ns atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// direct sends a request to the handler itself, without TLS, from source.
func (s *stack) direct(method, path, source, authz string) int {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = source + ":4711"
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	s.api.ServeHTTP(w, r)
	return w.Code
}

// aggregate is what a summary entry says: how many refusals it counts
// beyond its window's first, and that first's request id; ok is false for
// an entry that is not a summary.
func aggregate(e ledger.Entry) (n int, first string, ok bool) {
	rest, ok := strings.CutPrefix(e.Detail, "aggregated ")
	if !ok {
		return 0, "", false
	}
	for _, f := range strings.Fields(rest) {
		switch k, v, _ := strings.Cut(f, "="); k {
		case "count":
			n, _ = strconv.Atoi(v)
		case "first":
			first = v
		}
	}
	return n, first, true
}

// accounted checks entries: each is either a refusal's own entry (a
// window's first) or a summary naming one of them, and returns how many
// requests they account for together.
func accounted(t *testing.T, entries []ledger.Entry) (firsts, summaries, requests int) {
	t.Helper()
	ids := map[string]bool{}
	for _, e := range entries {
		if _, _, ok := aggregate(e); !ok {
			ids[e.RequestID] = true
		}
	}
	for _, e := range entries {
		n, first, ok := aggregate(e)
		switch {
		case !ok:
			firsts++
			requests++
		case !ids[first]:
			t.Errorf("summary %q names a first entry that is not in the ledger", e.Detail)
		case n < 1:
			t.Errorf("summary %q counts nothing", e.Detail)
		default:
			summaries++
			requests += n
		}
	}
	return firsts, summaries, requests
}

// TestFailuresAggregated is catalogue case E6: 100,000 bad-token requests
// from one source over three windows add 2 entries per window (the first
// refusal, recorded before it is answered, and a summary counting the
// rest), which together account for every request; sources beyond
// FailureConfig.Sources share one bucket, so a window adds at most
// 2*(Sources+1) entries; authenticated requests keep one entry each.
func TestFailuresAggregated(t *testing.T) {
	const window = time.Minute
	clock := newManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newStackWith(t, stackOptions{apiNow: clock.Now, failures: api.FailureConfig{Window: window, Sources: 4}, limits: floodLimits})
	ctx := context.Background()

	before := ledgerSize(t, s)
	sent := 0
	for w, n := range []int{40000, 40000, 20000} {
		for i := range n {
			if code := s.direct("GET", "/fhir/Patient", "192.0.2.1", "Bearer x.y.z"); code != http.StatusUnauthorized {
				t.Fatalf("bad token answered %d, want 401", code)
			}
			if w == 0 && i == 999 {
				if grew := ledgerSize(t, s) - before; grew != 1 {
					t.Fatalf("1,000 bad-token requests in one window added %d entries, want 1", grew)
				}
			}
		}
		sent += n
		clock.Advance(window)
	}
	if err := s.api.FlushFailures(ctx); err != nil {
		t.Fatal(err)
	}
	got := ledgerEntries(t, s, before)
	firsts, summaries, requests := accounted(t, got)
	t.Logf("%d bad-token requests from one source over 3 windows: %d ledger entries (%d firsts, %d summaries)", sent, len(got), firsts, summaries)
	if firsts != 3 || summaries != 3 || requests != sent {
		t.Fatalf("%d firsts, %d summaries accounting for %d requests; want 3, 3 and %d", firsts, summaries, requests, sent)
	}
	for _, e := range got {
		if e.Source != "192.0.2.1" || e.Action != "search" || e.Outcome != "denied" {
			t.Errorf("entry %+v: want source 192.0.2.1, search, denied", e)
		}
	}

	// Ten sources in one window, four tracked: 4 + 1 firsts, 4 + 1
	// summaries, 2*(Sources+1) entries for 1,000 requests.
	before = ledgerSize(t, s)
	for i := range 10 {
		for range 100 {
			if code := s.direct("GET", "/fhir/Observation", "198.51.100."+strconv.Itoa(i), ""); code != http.StatusUnauthorized {
				t.Fatalf("no token answered %d, want 401", code)
			}
		}
	}
	if err := s.api.FlushFailures(ctx); err != nil {
		t.Fatal(err)
	}
	got = ledgerEntries(t, s, before)
	firsts, summaries, requests = accounted(t, got)
	others := 0
	for _, e := range got {
		if e.Action == api.ActionOtherSources {
			others++
			if n, _, _ := aggregate(e); n != 6*100-1 {
				t.Errorf("other sources counted %d, want %d", n, 6*100-1)
			}
		}
	}
	if len(got) != 2*(4+1) || firsts != 5 || summaries != 5 || others != 1 || requests != 1000 {
		t.Fatalf("%d entries (%d firsts, %d summaries, %d for other sources) accounting for %d requests; want 10 (5, 5, 1) and 1000",
			len(got), firsts, summaries, others, requests)
	}

	// Authenticated requests, refused or not, keep one entry each.
	before = ledgerSize(t, s)
	for range 20 {
		if code := s.direct("GET", "/fhir/Patient?_count=1", "192.0.2.1", "Bearer "+s.token); code != http.StatusOK {
			t.Fatalf("search answered %d", code)
		}
		if code := s.direct("GET", "/fhir/Patient/nope", "192.0.2.1", "Bearer "+s.token); code != http.StatusNotFound {
			t.Fatalf("unknown id answered %d", code)
		}
	}
	if n := len(ledgerEntries(t, s, before)); n != 40 {
		t.Fatalf("40 authenticated requests added %d entries, want 40", n)
	}
}

// TestFailuresConcurrent counts refusals from many goroutines while the
// window closes under them: every request is accounted for exactly once,
// and each window has at most one first entry and one summary.
func TestFailuresConcurrent(t *testing.T) {
	const window = time.Minute
	clock := newManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newStackWith(t, stackOptions{apiNow: clock.Now, failures: api.FailureConfig{Window: window}, limits: floodLimits})
	before := ledgerSize(t, s)
	const workers, each = 8, 150
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w == 0 && (i == each/3 || i == 2*each/3) {
					clock.Advance(window) // two closes, mid-flood
				}
				if code := s.direct("GET", "/fhir/Patient", "192.0.2.9", "Bearer x.y.z"); code != http.StatusUnauthorized {
					t.Errorf("answered %d, want 401", code)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := s.api.FlushFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ledgerEntries(t, s, before)
	firsts, summaries, requests := accounted(t, got)
	if requests != int(sent.Load()) || firsts > 3 || summaries > 3 {
		t.Fatalf("%d firsts and %d summaries over 3 windows accounting for %d of %d requests", firsts, summaries, requests, sent.Load())
	}
}

// downLedger is a ledger that refuses appends while down is set.
type downLedger struct {
	api.Appender
	down atomic.Bool
}

func (l *downLedger) Append(ctx context.Context, recs ...audit.Record) error {
	if l.down.Load() {
		return errors.New("injected: ledger unavailable")
	}
	return l.Appender.Append(ctx, recs...)
}

func (l *downLedger) Flush(ctx context.Context) error {
	if f, ok := l.Appender.(interface{ Flush(context.Context) error }); ok {
		return f.Flush(ctx)
	}
	return nil
}

// A refusal that cannot be recorded is not answered as a refusal (E2,
// invariant 3): while the ledger fails, nothing is counted and every
// refusal is a 503; once it works, the next refusal is the window's first
// and is recorded.
func TestFailuresFailClosed(t *testing.T) {
	clock := newManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	l := &downLedger{}
	s := newStackWith(t, stackOptions{apiNow: clock.Now, wrapLedger: func(a api.Appender) api.Appender { l.Appender = a; return l }})
	before := ledgerSize(t, s)
	l.down.Store(true)
	for range 3 {
		if code := s.direct("GET", "/fhir/Patient", "192.0.2.7", "Bearer x.y.z"); code != http.StatusServiceUnavailable {
			t.Fatalf("refusal with the ledger down answered %d, want 503", code)
		}
	}
	l.down.Store(false)
	for range 3 {
		if code := s.direct("GET", "/fhir/Patient", "192.0.2.7", "Bearer x.y.z"); code != http.StatusUnauthorized {
			t.Fatalf("refusal answered %d, want 401", code)
		}
	}
	if err := s.api.FlushFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ledgerEntries(t, s, before)
	if firsts, summaries, requests := accounted(t, got); firsts != 1 || summaries != 1 || requests != 3 {
		t.Fatalf("%d firsts, %d summaries for %d requests; want 1, 1 and the 3 answered with 401", firsts, summaries, requests)
	}
}

// floodLimits lift the per-address limits on failed authentication, so
// that these tests see what the ledger keeps of a flood the rate limits
// would otherwise cut short (TestAddressFlood covers the limits).
var floodLimits = ratelimit.Config{Address: ratelimit.Limit{Rate: 1e6, Burst: 1e7}, AuthFailures: ratelimit.Limit{Rate: 1e6, Burst: 1e7}}

// Refusals that name a registered client or app without proving it (a
// wrong client secret, a failed password) are refusals of requests that
// prove no one too: counted after their window's first.
func TestFailuresNamingAClientAggregated(t *testing.T) {
	s := newStackWith(t, stackOptions{limits: floodLimits})
	c, _, err := s.auth.CreateClient(context.Background(), "svc", []string{"system/Patient.rs"})
	if err != nil {
		t.Fatal(err)
	}
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	b := s.newBrowser()
	b.get(rp.authURL("agg"))
	b.onPage("/signin")
	if err := s.api.FlushFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := ledgerSize(t, s)
	for i := range 10 {
		// Four wrong secrets: the fifth would start the client id's
		// lock, a refusal of another kind (TestClientSecretThrottle).
		if i < 4 {
			r := s.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basic(c.ID, "wrong secret"))
			if r.status != http.StatusUnauthorized {
				t.Fatalf("wrong secret: %d", r.status)
			}
		}
		b.submit("/signin", "username", "nobody."+strconv.Itoa(i), "password", "wrong password")
		if b.code != http.StatusUnauthorized {
			t.Fatalf("unknown account: %d", b.code)
		}
	}
	if err := s.api.FlushFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ledgerEntries(t, s, before)
	firsts, summaries, requests := accounted(t, got)
	if firsts != 2 || summaries != 2 || requests != 14 {
		t.Fatalf("%d firsts and %d summaries accounting for %d of 14 refusals; want 2, 2 and 14", firsts, summaries, requests)
	}
	for _, e := range got {
		if _, _, ok := aggregate(e); !ok && e.Action == "token" && e.Client != c.ID {
			t.Errorf("the wrong secret's entry names client %q, want the registered %q", e.Client, c.ID)
		}
	}
}
