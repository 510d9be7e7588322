package auth

import (
	"strings"
	"sync"
	"time"
)

// clientCache remembers, for a bounded time and a bounded number of clients,
// whether a client may still use its tokens, so that Verify does not read
// the store on every request.
type clientCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	active bool
	at     time.Time
}

func newClientCache(ttl time.Duration, max int) *clientCache {
	return &clientCache{ttl: ttl, max: max, m: make(map[string]cacheEntry)}
}

// get returns the cached status of id if it was read less than ttl ago.
func (c *clientCache) get(id string, now time.Time) (active, ok bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) >= c.ttl || now.Before(e.at) {
		return false, false
	}
	return e.active, true
}

func (c *clientCache) put(id string, active bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k) // map order: an arbitrary victim
		}
	}
	c.m[id] = cacheEntry{active: active, at: now}
}

func (c *clientCache) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// forgetPrefix forgets every entry whose key starts with prefix.
func (c *clientCache) forgetPrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}
