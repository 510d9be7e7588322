package auth

import (
	"crypto/sha256"
	"sync"

	"github.com/wardhealth/ward/internal/policy"
)

// maxCachedTokens bounds the verified-token cache.
const maxCachedTokens = 10000

// tokenCache remembers tokens whose signature and claims verified, keyed by
// the SHA-256 of the exact token text, so that a client's repeated requests
// cost a hash instead of an Ed25519 verification. A token that differs in
// any byte has another key and is verified in full. Expiry and the client's
// status are checked on every use, cached or not.
type tokenCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verified
}

type verified struct {
	claims claims
	scopes []policy.Scope
	person *personClaims // a person's token; nil for a service's
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]verified)}
}

func (c *tokenCache) get(key [sha256.Size]byte) (verified, bool) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	return v, ok
}

// put stores v, first dropping entries that expired before nowUnix and, if
// the cache is still full, arbitrary ones.
func (c *tokenCache) put(key [sha256.Size]byte, v verified, nowUnix int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		for k, e := range c.m {
			if e.claims.Expiry+int64(clockSkew.Seconds()) <= nowUnix {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxCachedTokens {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = v
}
