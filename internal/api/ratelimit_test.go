package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/ratelimit"
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

// secretFields is what a response's RateLimit fields say about its client
// id's secret attempts.
func secretFields(r response) string {
	var out []string
	for _, v := range r.header.Values("RateLimit") {
		if strings.HasPrefix(v, `"client-secret"`) {
			out = append(out, v)
		}
	}
	return strings.Join(out, ", ")
}

// TestClientSecretThrottle is catalogue case G2 at the token endpoint:
// 300 wrong secrets for a known client get 5 checks, then 429 with
// Retry-After and the RateLimit field, the lock is a security event in
// the log and in the ledger, and an unknown client id gets exactly the
// same answers (status, headers, body) after the same sequence.
func TestClientSecretThrottle(t *testing.T) {
	clk := newFrozenClock()
	// 600 token requests from one address: more than its default budget,
	// which TestAddressFlood checks.
	s := newStackWith(t, stackOptions{authNow: clk.Now, limits: ratelimit.Config{Address: ratelimit.Limit{Rate: 1000, Burst: 10_000}}})
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
	if got := secretFields(r); got != `"client-secret";r=0;t=1` {
		t.Errorf("RateLimit %q", r.header.Values("RateLimit"))
	}
	if !strings.Contains(string(r.body), `"code":"throttled"`) {
		t.Errorf("429 body is not a throttled OperationOutcome: %s", r.body)
	}
	if !strings.Contains(s.logs.String(), "security event: client id throttled") {
		t.Error("no security event logged for the lock")
	}
	// Refusals of requests that prove no one are recorded once per window
	// and kind, the rest counted in a summary entry (E6): every one of the
	// 300 is accounted for, by detail.
	if err := s.api.FlushFailures(t.Context()); err != nil {
		t.Fatal(err)
	}
	details := map[string]int{}
	for _, e := range ledgerEntries(t, s, from) {
		if e.Action != "token" {
			continue
		}
		if rest, ok := strings.CutPrefix(e.Detail, "aggregated count="); ok {
			count, _, _ := strings.Cut(rest, " ")
			_, of, _ := strings.Cut(rest, " of=")
			n, err := strconv.Atoi(count)
			if err != nil {
				t.Fatalf("summary %q", e.Detail)
			}
			details[of] += n
			continue
		}
		details[e.Detail]++
	}
	if details["locked"] != 1 || details["throttled"] != 295 || details["401"] != 4 {
		t.Errorf("token requests accounted by detail %v, want 4 checked (401), 1 locked and 295 throttled", details)
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
		// The address's own budget shrinks with every request; the
		// rest of the answer is the same.
		if secretFields(k) != secretFields(u) {
			t.Fatalf("request %d: RateLimit %q for a known client, %q for an unknown one", i, k.header.Values("RateLimit"), u.header.Values("RateLimit"))
		}
		for _, h := range []string{"Retry-After", "WWW-Authenticate", "Content-Type", "Cache-Control"} {
			if k.header.Get(h) != u.header.Get(h) {
				t.Fatalf("request %d: %s %q for a known client, %q for an unknown one", i, h, k.header.Get(h), u.header.Get(h))
			}
		}
	}

	// The unknown id's lock is a security event too, logged without the
	// id as sent (it is what an unproven caller typed, E5): by its
	// pseudonym, as the ledger records it.
	if strings.Contains(s.logs.String(), "NOSUCHCLIENT") {
		t.Error("an unregistered client id reached the log as sent")
	}
	if !strings.Contains(s.logs.String(), s.pseudonym("client", "ward-NOSUCHCLIENT00")) {
		t.Error("the unregistered client id's lock is not logged by its pseudonym")
	}

	// The lock is bounded and the right secret works once it ends.
	clk.Advance(time.Second)
	if r := s.secretRequest(c.ID, secret.Reveal()); r.status != http.StatusOK {
		t.Fatalf("the right secret after the lock: %d %s", r.status, r.body)
	}
}

// getAs sends a GET with a bearer token from any goroutine, returning the
// status and headers (0 when the request could not be sent).
func (s *stack) getAs(path, token string) (int, http.Header) {
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		return 0, nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// TestPrincipalFlood is catalogue case C5: a flood from one principal
// gets 429 with Retry-After and the RateLimit fields once its budget is
// spent, for that principal only; another principal and /healthz are
// unaffected while it lasts; the refusals are in the ledger; and the
// budget comes back with time (an injected clock).
func TestPrincipalFlood(t *testing.T) {
	clk := newFrozenClock()
	s := newStackWith(t, stackOptions{apiNow: clk.Now, limits: ratelimit.Config{Principal: ratelimit.Limit{Rate: 10, Burst: 100}}})
	flooder := s.newToken("system/*.rs")
	other := s.newToken("system/*.rs")
	from := ledgerSize(t, s)

	var mu sync.Mutex
	statuses := map[int]int{}
	health := map[int]int{}
	var throttled http.Header
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				code, h := s.getAs("/fhir/Patient/no-such-patient", flooder)
				hc, hh := s.getAs("/healthz", "")
				mu.Lock()
				statuses[code]++
				health[hc]++
				if code == http.StatusTooManyRequests {
					throttled = h
				}
				if hh.Get("RateLimit") != "" || hh.Get("Retry-After") != "" {
					health[-1]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusNotFound] != 100 || statuses[http.StatusTooManyRequests] != 100 {
		t.Fatalf("200 requests from one principal: %v, want the burst of 100 answered and 100 refused", statuses)
	}
	if health[http.StatusOK] != 200 || len(health) != 1 {
		t.Errorf("/healthz under the flood: %v, want 200 answers of 200 without limit fields", health)
	}
	for h, want := range map[string]string{
		"Retry-After":      "1",
		"RateLimit-Policy": `"principal";q=100;w=10`,
		"RateLimit":        `"principal";r=0;t=1`,
	} {
		if got := throttled.Get(h); got != want {
			t.Errorf("429 %s: %q, want %q", h, got, want)
		}
	}
	r := s.do("GET", "/fhir/Patient/no-such-patient", nil, "Authorization", "Bearer "+flooder)
	if m := checkOutcome(t, "flooded principal", r, http.StatusTooManyRequests); m != nil && !strings.Contains(string(r.body), `"code":"throttled"`) {
		t.Errorf("429 body: %s", r.body)
	}

	// Another principal is unaffected, and told its own budget.
	code, h := s.getAs("/fhir/Patient/no-such-patient", other)
	if code != http.StatusNotFound || h.Get("RateLimit") != `"principal";r=99;t=1` {
		t.Fatalf("another principal during the flood: %d, RateLimit %q", code, h.Get("RateLimit"))
	}

	// Each refusal is in the ledger, naming the flooding client.
	refused := 0
	for _, e := range ledgerEntries(t, s, from) {
		if e.Detail == "rate-limited" {
			refused++
		}
	}
	if refused != 101 {
		t.Errorf("%d ledger entries of refused requests, want 101", refused)
	}

	// A second later the bucket holds 10 tokens again.
	clk.Advance(time.Second)
	allowed := 0
	for range 20 {
		if code, _ := s.getAs("/fhir/Patient/no-such-patient", flooder); code == http.StatusNotFound {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("a second after the flood %d of 20 requests answered, want the 10 the rate gave back", allowed)
	}
}

// tokenWith returns an access token for a client with a known secret.
func (s *stack) tokenWith(id, secret string) string {
	s.t.Helper()
	r := must(s.t, s.secretRequest(id, secret), http.StatusOK)
	tok, _ := r.json(s.t)["access_token"].(string)
	return tok
}

// TestRateLimitOverrides: a role's limit applies to people of that role,
// a client's to its tokens, and everyone else gets the default; each 429
// says which quota it applied.
func TestRateLimitOverrides(t *testing.T) {
	clk := newFrozenClock()
	s := newStackWith(t, stackOptions{apiNow: clk.Now, limits: ratelimit.Config{
		Principal: ratelimit.Limit{Rate: 1, Burst: 20},
		Roles:     map[string]ratelimit.Limit{policy.RolePatient: {Rate: 1, Burst: 3}},
		Clients:   map[string]ratelimit.Limit{"etl-feed": {Rate: 1, Burst: 7}},
	}})
	_, secret, err := s.auth.CreateClientWithID(t.Context(), "etl-feed", "ETL", []string{"system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	etl := s.tokenWith("etl-feed", secret.Reveal())
	service := s.newToken("system/*.rs")
	_, pid := s.newPatientUser("pat.limits")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	patient := rp.exchange(t, s.signIn(s.newBrowser(), a, rp.authURL("rl"), "pat.limits", testPassword)).AccessToken

	for _, tc := range []struct {
		name   string
		token  string
		burst  int
		policy string
	}{
		{"patient role", patient, 3, `"principal";q=3;w=3`},
		{"client override", etl, 7, `"principal";q=7;w=7`},
		{"default", service, 20, `"principal";q=20;w=20`},
	} {
		answered := 0
		var last http.Header
		for range 30 {
			code, h := s.getAs("/fhir/Patient/"+pid, tc.token)
			if code != http.StatusTooManyRequests && code != 0 {
				answered++
			}
			last = h
		}
		if answered != tc.burst {
			t.Errorf("%s: %d of 30 requests answered, want %d", tc.name, answered, tc.burst)
		}
		if got := last.Get("RateLimit-Policy"); got != tc.policy {
			t.Errorf("%s: RateLimit-Policy %q, want %q", tc.name, got, tc.policy)
		}
	}
}

// sendFrom runs one request through the handler as if it came from addr,
// without TLS: what each source address gets is the point.
func (s *stack) sendFrom(addr, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, s.base+path, strings.NewReader(body))
	req.RemoteAddr = addr
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.srv.Config.Handler.ServeHTTP(rec, req)
	return rec
}

// TestAddressFlood: requests that authenticate at the token endpoint, and
// requests whose bearer token fails, are limited per source address
// before the expensive work; another address is unaffected; an address
// that used up its failures is refused before its tokens are checked,
// until the budget comes back.
func TestAddressFlood(t *testing.T) {
	clk := newFrozenClock()
	s := newStackWith(t, stackOptions{apiNow: clk.Now, limits: ratelimit.Config{
		Address:      ratelimit.Limit{Rate: 1, Burst: 20},
		AuthFailures: ratelimit.Limit{Rate: 1, Burst: 10},
	}})
	const flooder, neighbour = "192.0.2.7:40000", "198.51.100.9:40000"
	// Each request names another client id, so no id's own throttle
	// plays a part.
	form := func(i int) string {
		return fmt.Sprintf("grant_type=client_credentials&client_id=ward-x%d&client_secret=guess", i)
	}
	statuses := map[int]int{}
	var last *httptest.ResponseRecorder
	for i := range 50 {
		last = s.sendFrom(flooder, "POST", "/oauth2/token", form(i), "Content-Type", "application/x-www-form-urlencoded")
		statuses[last.Code]++
	}
	if statuses[http.StatusUnauthorized] != 20 || statuses[http.StatusTooManyRequests] != 30 {
		t.Fatalf("50 token requests from one address: %v, want 20 answered and 30 refused", statuses)
	}
	if got := last.Header().Get("RateLimit-Policy"); got != `"address";q=20;w=20` || last.Header().Get("Retry-After") != "1" {
		t.Errorf("refused token request: RateLimit-Policy %q, Retry-After %q", got, last.Header().Get("Retry-After"))
	}
	if r := s.sendFrom(neighbour, "POST", "/oauth2/token", form(50), "Content-Type", "application/x-www-form-urlencoded"); r.Code != http.StatusUnauthorized {
		t.Errorf("another address during the flood: %d, want its own budget", r.Code)
	}

	// Bad bearer tokens: 10 checked, then refused unchecked.
	statuses = map[int]int{}
	for range 30 {
		statuses[s.sendFrom(flooder, "GET", "/fhir/Patient", "", "Authorization", "Bearer forged."+strings.Repeat("x", 40)).Code]++
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != 20 {
		t.Fatalf("30 bad tokens from one address: %v, want 10 checked and 20 refused", statuses)
	}
	// Refused before the check: even a valid token, from that address.
	if r := s.sendFrom(flooder, "GET", "/fhir/Patient", "", "Authorization", "Bearer "+s.token); r.Code != http.StatusTooManyRequests {
		t.Errorf("a valid token from the flooding address: %d, want 429", r.Code)
	}
	if r := s.sendFrom(neighbour, "GET", "/fhir/Patient", "", "Authorization", "Bearer "+s.token); r.Code != http.StatusOK {
		t.Errorf("a valid token from another address: %d, want 200", r.Code)
	}
	if r := s.sendFrom(flooder, "GET", "/healthz", ""); r.Code != http.StatusOK || r.Header().Get("RateLimit") != "" {
		t.Errorf("/healthz from the flooding address: %d, RateLimit %q", r.Code, r.Header().Get("RateLimit"))
	}
	// A second later one failure is forgiven: a valid token passes, and
	// does not use it up.
	clk.Advance(time.Second)
	for range 3 {
		if r := s.sendFrom(flooder, "GET", "/fhir/Patient", "", "Authorization", "Bearer "+s.token); r.Code != http.StatusOK {
			t.Fatalf("a valid token a second later: %d", r.Code)
		}
	}
}

// TestSignInAddressLimit is catalogue case B4 spread over accounts: wrong
// passwords from one address for many accounts (which each account's
// throttle never sees) are refused after the address's budget, while
// successful sign-ins from it cost nothing.
func TestSignInAddressLimit(t *testing.T) {
	s := newStackWith(t, stackOptions{limits: ratelimit.Config{SignInAttempts: ratelimit.Limit{Rate: 1.0 / 3600, Burst: 5}}})
	s.newPatientUser("pat.spray")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	// Three people sign in correctly: their attempts are given back.
	for i := range 3 {
		b := s.newBrowser()
		b.get(rp.authURL(fmt.Sprint("ok", i)))
		b.submit("/signin", "username", "pat.spray", "password", testPassword)
		if b.code != http.StatusOK || strings.HasSuffix(b.url, "/signin") {
			t.Fatalf("right password %d: %d at %s", i, b.code, b.url)
		}
	}
	b := s.newBrowser()
	b.get(rp.authURL("spray"))
	b.onPage("/signin")
	for i := range 5 {
		b.submit("/signin", "username", fmt.Sprint("someone.", i), "password", "a wrong password 1")
		if b.code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, b.code)
		}
	}
	b.submit("/signin", "username", "someone.else", "password", "a wrong password 1")
	if b.code != http.StatusTooManyRequests || !strings.Contains(b.page, `"code":"throttled"`) {
		t.Fatalf("sixth wrong password from the address: %d %.200s, want 429", b.code, b.page)
	}
}
