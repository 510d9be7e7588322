package credential

import (
	"net/netip"
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

func TestAddrLimiterBurstAndRefill(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Burst: 5, Every: 10 * time.Second, Now: clk.Now})
	a := netip.MustParseAddr("192.0.2.1")
	for i := range 5 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("attempt %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow(a)
	if ok || retry != 10*time.Second {
		t.Fatalf("attempt 6 = %v, retry after %v; want refused, 10s", ok, retry)
	}
	clk.Advance(4 * time.Second)
	if ok, retry := l.Allow(a); ok || retry != 6*time.Second {
		t.Fatalf("after 4s: %v, %v; want refused, 6s", ok, retry)
	}
	clk.Advance(6 * time.Second)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("refused after the retry time")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("one token refilled, two taken")
	}
	// Another address has its own bucket.
	if ok, _ := l.Allow(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Fatal("a neighbouring IPv4 address is limited too")
	}
	// A long pause refills the bucket to Burst, not more.
	clk.Advance(time.Hour)
	n := 0
	for {
		if ok, _ := l.Allow(a); !ok {
			break
		}
		n++
	}
	if n != 5 {
		t.Errorf("after an hour %d attempts allowed, want the burst of 5", n)
	}
}

// TestAddrLimiterSpreadAttack is catalogue B4 from one address: 100 wrong
// passwords spread over 100 accounts. Each account sees one failure, so
// only the address limit stops it.
func TestAddrLimiterSpreadAttack(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Now: clk.Now}) // defaults: 20 at once, one per 6 s
	a := netip.MustParseAddr("2001:db8::1")
	allowed := 0
	for range 100 {
		if ok, _ := l.Allow(a); ok {
			allowed++
		}
	}
	if allowed != 20 {
		t.Errorf("%d of 100 immediate attempts allowed, want 20", allowed)
	}
	// Over one hour, as fast as allowed: 20 + 600.
	for range 3600 {
		clk.Advance(time.Second)
		if ok, _ := l.Allow(a); ok {
			allowed++
		}
	}
	if allowed > 621 {
		t.Errorf("%d attempts in an hour, want at most 620", allowed)
	}
}

func TestAddrLimiterRefund(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Burst: 3, Every: time.Minute, Now: clk.Now})
	a := netip.MustParseAddr("198.51.100.7")
	// Many successful sign-ins from behind one NAT: each token comes back.
	for i := range 50 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("successful attempt %d refused", i+1)
		}
		l.Refund(a)
	}
	// Refunds do not overfill the bucket.
	l.Refund(a)
	l.Refund(a)
	n := 0
	for {
		if ok, _ := l.Allow(a); !ok {
			break
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d attempts after refunds, want the burst of 3", n)
	}
	l.Refund(netip.MustParseAddr("198.51.100.8")) // unknown address: no effect, no entry
	if l.len() != 1 {
		t.Errorf("%d addresses remembered, want 1", l.len())
	}
}

func TestAddrLimiterKeys(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Burst: 1, Every: time.Hour, Now: clk.Now})
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"}, // one /64
		{"192.0.2.9", "::ffff:192.0.2.9"},                       // IPv4-mapped
	}
	for _, p := range same {
		l.Allow(netip.MustParseAddr(p[0]))
		if ok, _ := l.Allow(netip.MustParseAddr(p[1])); ok {
			t.Errorf("%s and %s have separate buckets", p[0], p[1])
		}
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Error("another /64 shares a bucket")
	}
	l.Allow(netip.Addr{})
	if ok, _ := l.Allow(netip.Addr{}); ok {
		t.Error("unknown addresses are not limited")
	}
}

func TestAddrLimiterBoundedMemory(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Burst: 1, Every: time.Hour, MaxAddrs: 100, Now: clk.Now})
	hot := netip.MustParseAddr("203.0.113.1")
	l.Allow(hot)
	for i := range 10_000 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if i%50 == 0 {
			l.Allow(hot) // recently seen: kept
		}
	}
	if n := l.len(); n != 100 {
		t.Errorf("%d addresses remembered, want the bound of 100", n)
	}
	if ok, _ := l.Allow(hot); ok {
		t.Error("a recently seen address was forgotten")
	}
}

func TestAddrLimiterConcurrent(t *testing.T) {
	clk := newClock()
	l := NewAddrLimiter(AddrLimit{Burst: 50, Every: time.Hour, Now: clk.Now})
	a := netip.MustParseAddr("192.0.2.50")
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.Allow(a); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d of 800 concurrent attempts allowed, want exactly the burst of 50", allowed)
	}
}
