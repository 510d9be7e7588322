// Package ratelimit is Ward's request-rate limiter: one token bucket per
// key (a principal, a source address), with bounded memory, and the IETF
// RateLimit header fields that describe it
// (draft-ietf-httpapi-ratelimit-headers-11).
//
// Each bucket is a GCRA (generic cell rate algorithm) token bucket: it
// holds at most Limit.Burst tokens and gains one every 1/Limit.Rate
// seconds; a request takes one. A bucket is one timestamp, so a check is
// a map lookup and a little arithmetic under a mutex (see
// BenchmarkTake).
//
// What it guarantees: a key never gets more than Burst requests at once
// nor more than Burst + Rate x t requests in any t, counted in this
// process, whatever the concurrency; and memory stays bounded (beyond
// MaxKeys the least recently seen key is forgotten, which refills its
// bucket). What it does not do: share state between processes (several
// replicas each grant the full budget), or decide whom to limit (the
// caller picks the key and the Limit).
package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Limit is a token bucket's size and refill rate.
type Limit struct {
	Rate  float64 `json:"rate"`  // tokens added per second
	Burst int     `json:"burst"` // tokens the bucket holds at most
}

// maxRate and maxBurst bound a Limit to what the arithmetic keeps exact.
const (
	maxRate  = 1e6
	maxBurst = 1e7
)

// Validate reports whether l is a usable limit: a rate above 0 and at most
// a million a second, and a burst from 1 to ten million.
func (l Limit) Validate() error {
	if err := l.check(); err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}

func (l Limit) check() error {
	if !(l.Rate > 0 && l.Rate <= maxRate) {
		return fmt.Errorf("rate %v outside (0, %g] per second", l.Rate, float64(maxRate))
	}
	if l.Burst < 1 || l.Burst > maxBurst {
		return fmt.Errorf("burst %d outside [1, %d]", l.Burst, int(maxBurst))
	}
	return nil
}

// IsZero reports whether l is unset.
func (l Limit) IsZero() bool { return l == Limit{} }

// every is the time one token takes to come back.
func (l Limit) every() time.Duration {
	return max(time.Duration(float64(time.Second)/l.Rate), 1)
}

// Window is the time an empty bucket takes to fill: the window of the
// RateLimit-Policy quota (Burst requests per Window).
func (l Limit) Window() time.Duration { return time.Duration(l.Burst) * l.every() }

// Decision is the outcome of one check against a bucket.
type Decision struct {
	Allowed bool
	Limit   Limit
	// Remaining is how many tokens the bucket holds after the check.
	Remaining int
	// Reset is how long until the bucket is full again.
	Reset time.Duration
	// RetryAfter, when not Allowed, is how long until a token is back.
	RetryAfter time.Duration
}

// Limiter keeps one bucket per key. It is safe for concurrent use.
type Limiter[K comparable] struct {
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	buckets map[K]*list.Element // of *bucket[K]
	lru     list.List           // most recently used first
}

// bucket is a GCRA bucket: full when tat <= now; each token taken moves
// tat one interval later; empty when tat is Burst intervals ahead of now.
type bucket[K comparable] struct {
	key K
	tat time.Time // theoretical arrival time
}

// DefaultMaxKeys is how many keys a Limiter remembers unless told: about
// 10 MB at most.
const DefaultMaxKeys = 1 << 16

// New returns a limiter that remembers at most maxKeys keys (0 means
// DefaultMaxKeys) and reads the time from now (nil means time.Now).
func New[K comparable](maxKeys int, now func() time.Time) *Limiter[K] {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter[K]{now: now, maxKeys: maxKeys, buckets: map[K]*list.Element{}}
}

// Take takes a token from k's bucket under lim, if one is there.
func (l *Limiter[K]) Take(k K, lim Limit) Decision { return l.check(k, lim, true) }

// Peek reports what Take would decide, without taking a token.
func (l *Limiter[K]) Peek(k K, lim Limit) Decision { return l.check(k, lim, false) }

func (l *Limiter[K]) check(k K, lim Limit, take bool) Decision {
	every := lim.every()
	window := time.Duration(lim.Burst) * every
	l.mu.Lock()
	defer l.mu.Unlock()
	// The time is read under the lock: read before it, a caller could
	// find a bucket moved on by another that read a later time, and be
	// refused for a wait that is not there.
	now := l.now()
	b := l.get(k, now)
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	d := Decision{Limit: lim}
	next := tat.Add(every)
	if ahead := next.Sub(now); ahead > window {
		d.RetryAfter = ahead - window
		d.Reset = tat.Sub(now)
		return d
	}
	d.Allowed = true
	if take {
		tat = next
		b.tat = tat
	}
	d.Reset = tat.Sub(now)
	d.Remaining = int((window - d.Reset) / every)
	return d
}

// Refund gives back a token taken from k's bucket, after a request that
// should not count (a successful sign-in). A bucket never holds more than
// its burst, and an unknown key is left alone.
func (l *Limiter[K]) Refund(k K, lim Limit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, ok := l.buckets[k]
	if !ok {
		return
	}
	b := e.Value.(*bucket[K])
	if b.tat.After(now) {
		b.tat = b.tat.Add(-lim.every())
	}
}

// get returns k's bucket, marked most recently used, creating it (full) if
// needed and forgetting the least recently used one beyond maxKeys.
func (l *Limiter[K]) get(k K, now time.Time) *bucket[K] {
	if e, ok := l.buckets[k]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket[K])
	}
	var b *bucket[K]
	if l.lru.Len() >= l.maxKeys {
		// Reuse the oldest bucket rather than allocate a new one.
		old := l.lru.Back()
		b = old.Value.(*bucket[K])
		delete(l.buckets, b.key)
		l.lru.MoveToFront(old)
		b.key, b.tat = k, now
		l.buckets[k] = old
		return b
	}
	b = &bucket[K]{key: k, tat: now}
	l.buckets[k] = l.lru.PushFront(b)
	return b
}

// Len returns how many keys are remembered.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// AddrKey is the key of a source address: IPv4 addresses count one by
// one, IPv6 addresses by their first ipv6Bits bits (what one subscriber
// usually holds: 64 when 0 or out of range), and an IPv4-mapped IPv6
// address as its IPv4 address. Every invalid address shares one key.
func AddrKey(addr netip.Addr, ipv6Bits int) netip.Prefix {
	if ipv6Bits <= 0 || ipv6Bits > 128 {
		ipv6Bits = 64
	}
	addr = addr.Unmap()
	bits := addr.BitLen() // 32, 128, or 0 for the zero Addr
	if addr.Is6() {
		bits = ipv6Bits
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// seconds rounds d up to whole seconds, at least 1: the delay-seconds of
// Retry-After and of the header fields' windows.
func seconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	return max(s, 1)
}

// PolicyField is the RateLimit-Policy field value of the quota policy name
// under lim: `"name";q=<burst>;w=<seconds to refill it all>`.
func PolicyField(name string, lim Limit) string {
	return `"` + name + `";q=` + strconv.Itoa(lim.Burst) + `;w=` + strconv.FormatInt(seconds(lim.Window()), 10)
}

// Field is the RateLimit field value of d under the policy name:
// `"name";r=<remaining>;t=<seconds>`, where t is, for a refused request,
// the Retry-After delay, and otherwise the time until the bucket is full
// again (RetryAfterSeconds gives the same rounding).
func (d Decision) Field(name string) string {
	var buf [96]byte
	return string(d.AppendField(buf[:0], name))
}

// AppendField appends Field(name) to dst.
func (d Decision) AppendField(dst []byte, name string) []byte {
	t := d.Reset
	if !d.Allowed {
		t = d.RetryAfter
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, `";r=`...)
	dst = strconv.AppendInt(dst, int64(d.Remaining), 10)
	dst = append(dst, ";t="...)
	return strconv.AppendInt(dst, seconds(t), 10)
}

// RetryAfterSeconds is the Retry-After value of a refused request: whole
// seconds, rounded up, at least 1.
func (d Decision) RetryAfterSeconds() int64 { return seconds(d.RetryAfter) }
