package keys

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Config tunes a Keyring. The zero value is valid.
type Config struct {
	// CacheSize bounds how many unwrapped data keys are held; default 4096.
	CacheSize int
	// CacheTTL bounds how long an unwrapped data key is held; default 10m.
	CacheTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Register keeps the record of erasures; default the KEK provider,
	// when it is an ErasureRegister.
	Register ErasureRegister
	// Rand is the source of data keys and nonces; default crypto/rand.
	// Anything but a cryptographically secure source breaks the sealing.
	Rand io.Reader
}

// Keyring hands out per-compartment data keys: it loads the wrapped key from
// a KeyStore, unwraps it with a KEKProvider, and caches the result. It is
// safe for concurrent use.
type Keyring struct {
	kek      KEKProvider
	register ErasureRegister // nil when the provider keeps none
	store    KeyStore
	size     int
	ttl      time.Duration
	now      func() time.Time
	rand     io.Reader

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recent first
	byComp   map[string]*list.Element
	inflight map[string]*call
}

type cacheEntry struct {
	compartment string
	key         *DataKey
	expires     time.Time
}

// call is an in-progress load of one compartment's key, shared by the
// goroutines that ask for it at the same time.
type call struct {
	done    chan struct{}
	key     *DataKey
	err     error
	evicted bool // Evict ran during the load: do not cache the result
}

// NewKeyring returns a Keyring over a KEK provider and a key store. A
// provider that is an ErasureRegister keeps the record of erasures.
func NewKeyring(p KEKProvider, ks KeyStore, cfg Config) (*Keyring, error) {
	if p == nil || ks == nil {
		return nil, errors.New("keys: keyring needs a KEK provider and a key store")
	}
	if cfg.CacheSize < 0 || cfg.CacheTTL < 0 {
		return nil, errors.New("keys: negative cache size or TTL")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 4096
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	register := cfg.Register
	if register == nil {
		register, _ = p.(ErasureRegister)
	}
	return &Keyring{
		kek: p, register: register, store: ks,
		size: cfg.CacheSize, ttl: cfg.CacheTTL, now: cfg.Now, rand: cfg.Rand,
		lru:      list.New(),
		byComp:   make(map[string]*list.Element),
		inflight: make(map[string]*call),
	}, nil
}

// ErasureRegister is a key provider's record of erased compartments, kept
// with the provider, outside the database (LocalFile is one).
type ErasureRegister interface {
	Erase(ctx context.Context, compartment string, at time.Time) error
	Erased(compartment string) (bool, error)
	Erasures() (map[string]time.Time, error)
}

// DataKey returns the compartment's data key (compartment "" is the shared
// key for resources outside any patient compartment), creating and wrapping a
// random 256-bit key on first use. Concurrent first use, in this process or
// in others sharing the KeyStore, converges on one key. An erased
// compartment's key is ErrErased, cached or not, stored or not: it is
// never handed out or made again.
func (k *Keyring) DataKey(ctx context.Context, compartment string) (*DataKey, error) {
	if err := k.checkErased(compartment); err != nil {
		return nil, err
	}
	for {
		k.mu.Lock()
		if dk := k.cachedLocked(compartment); dk != nil {
			k.mu.Unlock()
			return dk, nil
		}
		c, ok := k.inflight[compartment]
		if !ok {
			break // k.mu stays locked: this goroutine loads the key
		}
		k.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("keys: data key: %w", ctx.Err())
		}
		// The loader's own cancellation is not ours: try again.
		if c.err == nil || !errors.Is(c.err, context.Canceled) && !errors.Is(c.err, context.DeadlineExceeded) {
			return c.key, c.err
		}
	}
	c := &call{done: make(chan struct{})}
	k.inflight[compartment] = c
	k.mu.Unlock()

	c.key, c.err = k.load(ctx, compartment)

	k.mu.Lock()
	delete(k.inflight, compartment)
	if c.err == nil && !c.evicted {
		k.insertLocked(compartment, c.key)
	}
	k.mu.Unlock()
	close(c.done)
	return c.key, c.err
}

// checkErased is ErrErased for a compartment in the provider's erasure
// register.
func (k *Keyring) checkErased(compartment string) error {
	if k.register == nil || compartment == "" {
		return nil
	}
	erased, err := k.register.Erased(compartment)
	switch {
	case err != nil:
		return fmt.Errorf("keys: erasure register: %w", err)
	case erased:
		return fmt.Errorf("%w: %s", ErrErased, compartment)
	}
	return nil
}

// Erase destroys a compartment's data key for good: the provider's
// erasure register records it, so that neither this process, nor another,
// nor one started on a restored database copy hands the key out or makes
// a new one, and the cached key is dropped. The caller deletes the
// wrapped key and what it sealed from the database.
func (k *Keyring) Erase(ctx context.Context, compartment string) error {
	if k.register == nil {
		return errors.New("keys: the key provider keeps no erasure register")
	}
	if err := k.register.Erase(ctx, compartment, k.now()); err != nil {
		return err
	}
	k.Evict(compartment)
	return nil
}

// Erased reports whether a compartment is in the provider's erasure
// register.
func (k *Keyring) Erased(compartment string) (bool, error) {
	if k.register == nil || compartment == "" {
		return false, nil
	}
	return k.register.Erased(compartment)
}

// Erasures returns the provider's erasure register (none without one).
func (k *Keyring) Erasures() (map[string]time.Time, error) {
	if k.register == nil {
		return map[string]time.Time{}, nil
	}
	return k.register.Erasures()
}

// Evict drops the compartment's unwrapped key from the cache. Erasure calls
// it after deleting the wrapped key. A load in progress is not cached.
func (k *Keyring) Evict(compartment string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.inflight[compartment]; ok {
		c.evicted = true
	}
	if e, ok := k.byComp[compartment]; ok {
		k.lru.Remove(e)
		delete(k.byComp, compartment)
	}
}

func (k *Keyring) cachedLocked(compartment string) *DataKey {
	e, ok := k.byComp[compartment]
	if !ok {
		return nil
	}
	ce := e.Value.(*cacheEntry)
	if !k.now().Before(ce.expires) {
		k.lru.Remove(e)
		delete(k.byComp, compartment)
		return nil
	}
	k.lru.MoveToFront(e)
	return ce.key
}

func (k *Keyring) insertLocked(compartment string, dk *DataKey) {
	if e, ok := k.byComp[compartment]; ok {
		k.lru.Remove(e)
	}
	k.byComp[compartment] = k.lru.PushFront(&cacheEntry{compartment, dk, k.now().Add(k.ttl)})
	for k.lru.Len() > k.size {
		oldest := k.lru.Back()
		k.lru.Remove(oldest)
		delete(k.byComp, oldest.Value.(*cacheEntry).compartment)
	}
}

// load reads or creates the compartment's wrapped key and unwraps it.
func (k *Keyring) load(ctx context.Context, compartment string) (*DataKey, error) {
	wk, err := k.store.LoadKey(ctx, compartment)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return k.create(ctx, compartment)
	case err != nil:
		return nil, fmt.Errorf("keys: loading data key: %w", err)
	}
	return k.unwrap(ctx, compartment, wk)
}

func (k *Keyring) create(ctx context.Context, compartment string) (*DataKey, error) {
	dek := make([]byte, dekSize)
	defer clear(dek)
	if _, err := io.ReadFull(k.rand, dek); err != nil {
		return nil, fmt.Errorf("keys: generating data key: %w", err)
	}
	wrapped, kekID, err := k.kek.Wrap(ctx, dek, wrapAAD(compartment))
	if err != nil {
		return nil, fmt.Errorf("keys: wrapping data key: %w", err)
	}
	mine := WrappedKey{Compartment: compartment, KEKID: kekID, Wrapped: wrapped}
	stored, err := k.store.CreateKey(ctx, mine)
	if err != nil {
		return nil, fmt.Errorf("keys: storing data key: %w", err)
	}
	if stored.KEKID == kekID && bytes.Equal(stored.Wrapped, wrapped) && stored.Compartment == compartment {
		return newDataKey(compartment, dek, k.rand)
	}
	// Another process created the key first: use the stored one.
	return k.unwrap(ctx, compartment, stored)
}

func (k *Keyring) unwrap(ctx context.Context, compartment string, wk WrappedKey) (*DataKey, error) {
	if wk.Compartment != compartment {
		return nil, fmt.Errorf("keys: key store returned the key of another compartment: %w", ErrDecrypt)
	}
	dek, err := k.kek.Unwrap(ctx, wk.Wrapped, wk.KEKID, wrapAAD(compartment))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrapping data key: %w", err)
	}
	defer clear(dek)
	return newDataKey(compartment, dek, k.rand)
}

// Rewrap rewraps every data key that is not wrapped under the provider's
// current KEK, and returns how many it rewrapped. Data is not re-encrypted.
// It is safe while servers run: each key is swapped with compare-and-swap,
// and a key that another process rewrapped meanwhile is left alone.
func (k *Keyring) Rewrap(ctx context.Context) (n int, err error) {
	current := k.kek.CurrentKEK()
	var stale []WrappedKey
	err = k.store.ListKeys(ctx, func(wk WrappedKey) error {
		if wk.KEKID != current {
			stale = append(stale, wk)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("keys: listing data keys: %w", err)
	}
	for _, wk := range stale {
		done, err := k.rewrapOne(ctx, wk)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// rewrapOne rewraps wk, starting over (a few times) when another process
// changed the stored key meanwhile. It reports whether this call replaced
// the stored key. A KeyStore that reports lost races as ErrKeyConflict is
// recognised; for one that does not, the key is reloaded to tell a lost race
// from a failure.
func (k *Keyring) rewrapOne(ctx context.Context, wk WrappedKey) (bool, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if wk.KEKID == k.kek.CurrentKEK() {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("keys: rewrap: %w", err)
		}
		aad := wrapAAD(wk.Compartment)
		dek, err := k.kek.Unwrap(ctx, wk.Wrapped, wk.KEKID, aad)
		if err != nil {
			return false, fmt.Errorf("keys: rewrap: unwrapping a data key: %w", err)
		}
		wrapped, kekID, err := k.kek.Wrap(ctx, dek, aad)
		clear(dek)
		if err != nil {
			return false, fmt.Errorf("keys: rewrap: wrapping a data key: %w", err)
		}
		nk := WrappedKey{Compartment: wk.Compartment, KEKID: kekID, Wrapped: wrapped}
		replaceErr := k.store.ReplaceKey(ctx, wk, nk)
		if replaceErr == nil {
			return true, nil
		}
		cur, err := k.store.LoadKey(ctx, wk.Compartment)
		if err != nil {
			return false, fmt.Errorf("keys: rewrap: replacing a data key: %w", replaceErr)
		}
		changed := cur.KEKID != wk.KEKID || !bytes.Equal(cur.Wrapped, wk.Wrapped)
		if !changed && !errors.Is(replaceErr, ErrKeyConflict) || attempt == attempts {
			return false, fmt.Errorf("keys: rewrap: replacing a data key: %w", replaceErr)
		}
		wk = cur
	}
}

// KEKsInUse returns the ids of the KEKs that wrap at least one stored data
// key. Pass its result to a provider's retirement after Rewrap.
func (k *Keyring) KEKsInUse(ctx context.Context) (map[string]bool, error) {
	used := make(map[string]bool)
	err := k.store.ListKeys(ctx, func(wk WrappedKey) error {
		used[wk.KEKID] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: listing data keys: %w", err)
	}
	return used, nil
}
