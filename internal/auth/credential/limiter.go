package credential

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// AddrLimit configures an AddrLimiter. Zero values mean the defaults.
type AddrLimit struct {
	Burst    int              // attempts allowed at once; default 20
	Every    time.Duration    // one more attempt per Every; default 6 s (600 an hour)
	MaxAddrs int              // addresses remembered; default 65,536 (a few MB)
	IPv6Bits int              // IPv6 prefix length one client is taken to hold; default 64
	Now      func() time.Time // clock; default time.Now
}

// AddrLimiter is a token bucket per source address for sign-in attempts,
// against guessing spread across many accounts from one place (catalogue
// B4), which per-account throttling does not see. IPv4 addresses count
// one by one, IPv6 addresses per /64 (what one subscriber usually holds).
// Take a token before each attempt, whatever its outcome, so that
// concurrent attempts are bounded too, and Refund it on success, so that
// many people signing in correctly from behind one NAT are not slowed.
//
// Memory is bounded: beyond MaxAddrs the least recently seen address is
// forgotten, which resets its bucket. An attacker controlling more
// addresses than that is left to the per-account Throttle. State is per
// process: with several replicas each one grants the full rate.
//
// An AddrLimiter is safe for concurrent use.
type AddrLimiter struct {
	cfg AddrLimit

	mu      sync.Mutex
	buckets map[netip.Prefix]*list.Element // of *bucket
	lru     list.List                      // most recently used first
}

// bucket is a GCRA token bucket: full at tat <= now, each token taken
// moves tat one interval later, empty when tat is Burst intervals ahead.
type bucket struct {
	key netip.Prefix
	tat time.Time // theoretical arrival time
}

// NewAddrLimiter returns a limiter with cfg's limits.
func NewAddrLimiter(cfg AddrLimit) *AddrLimiter {
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.Every <= 0 {
		cfg.Every = 6 * time.Second
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = 1 << 16
	}
	if cfg.IPv6Bits <= 0 || cfg.IPv6Bits > 128 {
		cfg.IPv6Bits = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &AddrLimiter{cfg: cfg, buckets: map[netip.Prefix]*list.Element{}}
}

func (l *AddrLimiter) key(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := addr.BitLen() // 32, 128, or 0 for the zero Addr
	if addr.Is6() {
		bits = l.cfg.IPv6Bits
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // the zero Addr: all such callers share one bucket
	}
	return p
}

// Allow takes a token for addr. It reports whether the attempt may go on
// and, if not, how long until it could.
func (l *AddrLimiter) Allow(addr netip.Addr) (ok bool, retryAfter time.Duration) {
	now := l.cfg.Now()
	k := l.key(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(k, now)
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	window := time.Duration(l.cfg.Burst) * l.cfg.Every
	if next := tat.Add(l.cfg.Every); next.Sub(now) > window {
		return false, next.Sub(now) - window
	}
	b.tat = tat.Add(l.cfg.Every)
	return true, 0
}

// Refund gives back a token taken for addr, after a successful attempt.
// The bucket never holds more than Burst tokens.
func (l *AddrLimiter) Refund(addr netip.Addr) {
	now := l.cfg.Now()
	k := l.key(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.buckets[k]
	if !ok {
		return
	}
	b := e.Value.(*bucket)
	if b.tat.After(now) {
		b.tat = b.tat.Add(-l.cfg.Every)
	}
}

// get returns k's bucket, marked most recently used, creating it (full) if
// needed and forgetting the least recently used one beyond MaxAddrs.
func (l *AddrLimiter) get(k netip.Prefix, now time.Time) *bucket {
	if e, ok := l.buckets[k]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	if l.lru.Len() >= l.cfg.MaxAddrs {
		old := l.lru.Back()
		l.lru.Remove(old)
		delete(l.buckets, old.Value.(*bucket).key)
	}
	b := &bucket{key: k, tat: now}
	l.buckets[k] = l.lru.PushFront(b)
	return b
}

// len returns how many addresses are remembered.
func (l *AddrLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
