package ratelimit

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// perTen is one token every 10 seconds, five at once.
var perTen = Limit{Rate: 0.1, Burst: 5}

func TestBurstAndRefill(t *testing.T) {
	clk := newClock()
	l := New[string](0, clk.Now)
	for i := range 5 {
		d := l.Take("a", perTen)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("request %d of the burst: %+v; want allowed with %d left", i+1, d, 4-i)
		}
	}
	d := l.Take("a", perTen)
	if d.Allowed || d.RetryAfter != 10*time.Second || d.Remaining != 0 {
		t.Fatalf("request 6 = %+v; want refused, retry after 10s", d)
	}
	clk.Advance(4 * time.Second)
	if d := l.Take("a", perTen); d.Allowed || d.RetryAfter != 6*time.Second {
		t.Fatalf("after 4s: %+v; want refused, 6s", d)
	}
	clk.Advance(6 * time.Second)
	if d := l.Take("a", perTen); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after the retry time: %+v; want allowed with none left", d)
	}
	if d := l.Take("a", perTen); d.Allowed {
		t.Fatal("one token refilled, two taken")
	}
	if d := l.Take("b", perTen); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("another key: %+v; want its own full bucket", d)
	}
	// A long pause refills the bucket to Burst, not more.
	clk.Advance(time.Hour)
	n := 0
	for l.Take("a", perTen).Allowed {
		n++
	}
	if n != 5 {
		t.Errorf("after an hour %d requests allowed, want the burst of 5", n)
	}
}

// TestSustainedRate: over an hour as fast as allowed, a key gets the
// burst plus the rate times the time, and no more.
func TestSustainedRate(t *testing.T) {
	clk := newClock()
	l := New[string](0, clk.Now)
	lim := Limit{Rate: 1.0 / 6, Burst: 20}
	allowed := 0
	for range 100 {
		if l.Take("k", lim).Allowed {
			allowed++
		}
	}
	if allowed != 20 {
		t.Errorf("%d of 100 immediate requests allowed, want 20", allowed)
	}
	for range 3600 {
		clk.Advance(time.Second)
		if l.Take("k", lim).Allowed {
			allowed++
		}
	}
	if allowed < 619 || allowed > 621 {
		t.Errorf("%d requests in an hour, want 20 + 600", allowed)
	}
}

func TestPeekTakesNothing(t *testing.T) {
	clk := newClock()
	l := New[string](0, clk.Now)
	for range 10 {
		if d := l.Peek("a", perTen); !d.Allowed || d.Remaining != 5 {
			t.Fatalf("peek at a full bucket: %+v", d)
		}
	}
	for range 5 {
		l.Take("a", perTen)
	}
	if d := l.Peek("a", perTen); d.Allowed || d.RetryAfter != 10*time.Second {
		t.Fatalf("peek at an empty bucket: %+v; want refused, 10s", d)
	}
}

func TestRefund(t *testing.T) {
	clk := newClock()
	l := New[netip.Prefix](0, clk.Now)
	lim := Limit{Rate: 1.0 / 60, Burst: 3}
	a := AddrKey(netip.MustParseAddr("198.51.100.7"), 0)
	// Many successful sign-ins from behind one NAT: each token comes back.
	for i := range 50 {
		if !l.Take(a, lim).Allowed {
			t.Fatalf("successful attempt %d refused", i+1)
		}
		l.Refund(a, lim)
	}
	// Refunds do not overfill the bucket.
	l.Refund(a, lim)
	l.Refund(a, lim)
	n := 0
	for l.Take(a, lim).Allowed {
		n++
	}
	if n != 3 {
		t.Errorf("%d attempts after refunds, want the burst of 3", n)
	}
	l.Refund(AddrKey(netip.MustParseAddr("198.51.100.8"), 0), lim) // unknown: no effect, no entry
	if l.Len() != 1 {
		t.Errorf("%d keys remembered, want 1", l.Len())
	}
}

func TestAddrKey(t *testing.T) {
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"}, // one /64
		{"192.0.2.9", "::ffff:192.0.2.9"},                       // IPv4-mapped
	}
	for _, p := range same {
		if a, b := AddrKey(netip.MustParseAddr(p[0]), 0), AddrKey(netip.MustParseAddr(p[1]), 0); a != b {
			t.Errorf("%s and %s have separate keys %v and %v", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"}, // another /64
		{"192.0.2.9", "192.0.2.10"},            // IPv4 one by one
	}
	for _, p := range differ {
		if a, b := AddrKey(netip.MustParseAddr(p[0]), 0), AddrKey(netip.MustParseAddr(p[1]), 0); a == b {
			t.Errorf("%s and %s share the key %v", p[0], p[1], a)
		}
	}
	if a, b := AddrKey(netip.MustParseAddr("2001:db8::1"), 128), AddrKey(netip.MustParseAddr("2001:db8::2"), 128); a == b {
		t.Error("with 128 bits, IPv6 addresses still share a key")
	}
	if AddrKey(netip.Addr{}, 0) != (netip.Prefix{}) {
		t.Error("the invalid address has a key of its own")
	}
}

func TestBoundedMemory(t *testing.T) {
	clk := newClock()
	l := New[netip.Prefix](100, clk.Now)
	lim := Limit{Rate: 1.0 / 3600, Burst: 1}
	hot := AddrKey(netip.MustParseAddr("203.0.113.1"), 0)
	l.Take(hot, lim)
	for i := range 10_000 {
		l.Take(AddrKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 0), lim)
		if i%50 == 0 {
			l.Take(hot, lim) // recently seen: kept
		}
	}
	if n := l.Len(); n != 100 {
		t.Errorf("%d keys remembered, want the bound of 100", n)
	}
	if l.Take(hot, lim).Allowed {
		t.Error("a recently seen key was forgotten")
	}
}

func TestConcurrent(t *testing.T) {
	clk := newClock()
	l := New[string](0, clk.Now)
	lim := Limit{Rate: 1.0 / 3600, Burst: 50}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if l.Take("k", lim).Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d of 800 concurrent requests allowed, want exactly the burst of 50", allowed)
	}
}

// TestFields checks the header fields against the structured-field form
// of draft-ietf-httpapi-ratelimit-headers-11 (sections 3 and 4): a
// string item naming the policy, integer parameters, and a refused
// request's t equal to its Retry-After.
func TestFields(t *testing.T) {
	clk := newClock()
	l := New[string](0, clk.Now)
	lim := Limit{Rate: 100, Burst: 1000}
	if got, want := PolicyField("principal", lim), `"principal";q=1000;w=10`; got != want {
		t.Errorf("policy field %s, want %s", got, want)
	}
	if got, want := PolicyField("signin", Limit{Rate: 1.0 / 6, Burst: 20}), `"signin";q=20;w=120`; got != want {
		t.Errorf("policy field %s, want %s", got, want)
	}
	d := l.Take("a", lim)
	if got, want := d.Field("principal"), `"principal";r=999;t=1`; got != want {
		t.Errorf("field after one request %s, want %s", got, want)
	}
	for range 999 {
		d = l.Take("a", lim)
	}
	if got, want := d.Field("principal"), `"principal";r=0;t=10`; got != want {
		t.Errorf("field after the burst %s, want %s", got, want)
	}
	d = l.Take("a", lim)
	if d.Allowed || d.RetryAfterSeconds() != 1 {
		t.Fatalf("over the burst: %+v", d)
	}
	if got, want := d.Field("principal"), `"principal";r=0;t=1`; got != want {
		t.Errorf("field of a refused request %s, want %s", got, want)
	}
	clk.Advance(5 * time.Second)
	d = l.Take("a", lim)
	if got := d.Field("principal"); got != `"principal";r=499;t=6` {
		t.Errorf("field 5 s later %s", got)
	}
}

func TestConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"principal": {"rate": 50, "burst": 500},
		"roles": {"patient": {"rate": 2, "burst": 20}},
		"clients": {"ward-etl": {"rate": 1000, "burst": 10000}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if c.Principal != (Limit{50, 500}) || c.Roles["patient"] != (Limit{2, 20}) || c.Clients["ward-etl"] != (Limit{1000, 10000}) {
		t.Errorf("parsed %+v", c)
	}
	if c.Address != DefaultConfig.Address || c.SignInAttempts != DefaultConfig.SignInAttempts {
		t.Errorf("unset limits are not the defaults: %+v", c)
	}
	for name, bad := range map[string]string{
		"unknown member": `{"principle": {"rate": 1, "burst": 1}}`,
		"zero rate":      `{"principal": {"rate": 0, "burst": 10}}`,
		"zero burst":     `{"principal": {"rate": 1, "burst": 0}}`,
		"negative rate":  `{"roles": {"patient": {"rate": -1, "burst": 10}}}`,
		"huge burst":     `{"clients": {"c": {"rate": 1, "burst": 100000000}}}`,
		"empty client":   `{"clients": {"": {"rate": 1, "burst": 1}}}`,
		"trailing data":  `{} {}`,
		"ipv6 bits":      `{"ipv6_bits": 129}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		} else if !strings.HasPrefix(err.Error(), "ratelimit: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config is invalid: %v", err)
	}
}

// BenchmarkTake is one rate-limit check: a principal's token taken from
// its bucket among 10,000 remembered keys.
func BenchmarkTake(b *testing.B) {
	l := New[string](0, nil)
	lim := Limit{Rate: 1e6, Burst: 1e7}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "ward-client-" + strconv.Itoa(i)
		l.Take(keys[i], lim)
	}
	i := 0
	for b.Loop() {
		l.Take(keys[i%len(keys)], lim)
		i++
	}
}

// BenchmarkTakeParallel is BenchmarkTake from every core at once.
func BenchmarkTakeParallel(b *testing.B) {
	l := New[string](0, nil)
	lim := Limit{Rate: 1e6, Burst: 1e7}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Take("ward-client-one", lim)
		}
	})
}
