// Package keystest holds the conformance suites of package keys' contracts
// (TestProvider for KEK providers, TestKeyStore for wrapped-key stores) and
// an in-memory KeyStore for tests.
//
// It is for tests only: MemKeyStore keeps keys in process memory and offers
// none of the durability a real store gives.
package keystest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
)

// TestProvider checks that p behaves as a keys.KEKProvider: round trips,
// binding to aad and KEK id, rejection of every flipped bit, and concurrent
// use. p must be freshly created and not rotated during the test.
func TestProvider(t *testing.T, p keys.KEKProvider) {
	t.Helper()
	ctx := context.Background()
	dek := randBytes(t, 32)
	aad := []byte("compartment-a")

	wrapped, kekID, err := p.Wrap(ctx, dek, aad)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if kekID == "" || kekID != p.CurrentKEK() {
		t.Fatalf("Wrap used kek %q, CurrentKEK is %q", kekID, p.CurrentKEK())
	}
	if bytes.Contains(wrapped, dek) {
		t.Fatal("wrapped key contains the plaintext key")
	}

	t.Run("RoundTrip", func(t *testing.T) {
		for _, n := range []int{0, 1, 16, 32, 64} {
			in := randBytes(t, n)
			w, id, err := p.Wrap(ctx, in, aad)
			if err != nil {
				t.Fatalf("Wrap(%d bytes): %v", n, err)
			}
			out, err := p.Unwrap(ctx, w, id, aad)
			if err != nil {
				t.Fatalf("Unwrap(%d bytes): %v", n, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("Unwrap(%d bytes) returned a different key", n)
			}
		}
	})

	t.Run("UnwrapReturnsCopy", func(t *testing.T) {
		out, err := p.Unwrap(ctx, wrapped, kekID, aad)
		if err != nil {
			t.Fatal(err)
		}
		clear(out)
		again, err := p.Unwrap(ctx, wrapped, kekID, aad)
		if err != nil || !bytes.Equal(again, dek) {
			t.Fatalf("Unwrap after clearing an earlier result: %v", err)
		}
	})

	t.Run("Rejects", func(t *testing.T) {
		tests := []struct {
			name    string
			wrapped []byte
			kekID   string
			aad     []byte
		}{
			{"other aad", wrapped, kekID, []byte("compartment-b")},
			{"empty aad", wrapped, kekID, nil},
			{"aad prefix", wrapped, kekID, aad[:len(aad)-1]},
			{"unknown kek", wrapped, kekID + "x", aad},
			{"empty kek", wrapped, "", aad},
			{"empty wrapped", nil, kekID, aad},
			{"truncated", wrapped[:len(wrapped)-1], kekID, aad},
			{"extended", append(bytes.Clone(wrapped), 0), kekID, aad},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := p.Unwrap(ctx, tt.wrapped, tt.kekID, tt.aad)
				if err == nil {
					t.Fatal("Unwrap succeeded")
				}
				if out != nil {
					t.Fatal("Unwrap returned key material with an error")
				}
			})
		}
	})

	t.Run("FlipEveryBit", func(t *testing.T) {
		for i := range len(wrapped) * 8 {
			w := bytes.Clone(wrapped)
			w[i/8] ^= 1 << (i % 8)
			out, err := p.Unwrap(ctx, w, kekID, aad)
			if err == nil || out != nil {
				t.Fatalf("bit %d flipped: Unwrap = %x, %v; want error and no key", i, out, err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := []byte(fmt.Sprintf("data key of goroutine %02d........", g))
				a := []byte(fmt.Sprint("compartment-", g))
				for range 50 {
					w, id, err := p.Wrap(ctx, in, a)
					if err != nil {
						errs <- err
						return
					}
					out, err := p.Unwrap(ctx, w, id, a)
					if err != nil || !bytes.Equal(out, in) {
						errs <- fmt.Errorf("round trip failed: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestKeyStore checks that ks behaves as a keys.KeyStore. ks must be empty.
func TestKeyStore(t *testing.T, ks keys.KeyStore) {
	t.Helper()
	ctx := context.Background()

	if _, err := ks.LoadKey(ctx, "a"); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("LoadKey of a missing key: %v, want ErrKeyNotFound", err)
	}
	a1 := keys.WrappedKey{Compartment: "a", KEKID: "k1", Wrapped: []byte("wrapped a1")}
	got, err := ks.CreateKey(ctx, a1)
	if err != nil || !equal(got, a1) {
		t.Fatalf("CreateKey = %+v, %v; want %+v", got, err, a1)
	}
	a2 := keys.WrappedKey{Compartment: "a", KEKID: "k1", Wrapped: []byte("wrapped a2")}
	if got, err = ks.CreateKey(ctx, a2); err != nil || !equal(got, a1) {
		t.Fatalf("second CreateKey = %+v, %v; want the first key %+v", got, err, a1)
	}
	shared := keys.WrappedKey{Compartment: "", KEKID: "k1", Wrapped: []byte("wrapped shared")}
	if got, err = ks.CreateKey(ctx, shared); err != nil || !equal(got, shared) {
		t.Fatalf("CreateKey of the shared key = %+v, %v", got, err)
	}
	if got, err = ks.LoadKey(ctx, "a"); err != nil || !equal(got, a1) {
		t.Fatalf("LoadKey = %+v, %v; want %+v", got, err, a1)
	}

	a3 := keys.WrappedKey{Compartment: "a", KEKID: "k2", Wrapped: []byte("wrapped a3")}
	if err := ks.ReplaceKey(ctx, a2, a3); !errors.Is(err, keys.ErrKeyConflict) {
		t.Fatalf("ReplaceKey with a stale old key: %v, want ErrKeyConflict", err)
	}
	if err := ks.ReplaceKey(ctx, a1, a3); err != nil {
		t.Fatalf("ReplaceKey: %v", err)
	}
	if err := ks.ReplaceKey(ctx, a1, a3); !errors.Is(err, keys.ErrKeyConflict) {
		t.Fatalf("repeated ReplaceKey: %v, want ErrKeyConflict", err)
	}
	if got, err = ks.LoadKey(ctx, "a"); err != nil || !equal(got, a3) {
		t.Fatalf("LoadKey after ReplaceKey = %+v, %v; want %+v", got, err, a3)
	}

	seen := map[string]keys.WrappedKey{}
	err = ks.ListKeys(ctx, func(k keys.WrappedKey) error {
		seen[k.Compartment] = k
		return nil
	})
	if err != nil || len(seen) != 2 || !equal(seen["a"], a3) || !equal(seen[""], shared) {
		t.Fatalf("ListKeys = %+v, %v", seen, err)
	}
	stop := errors.New("stop")
	if err := ks.ListKeys(ctx, func(keys.WrappedKey) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ListKeys with a failing callback: %v, want its error", err)
	}

	t.Run("ConcurrentCreate", func(t *testing.T) {
		var wg sync.WaitGroup
		winners := make([]keys.WrappedKey, 16)
		for i := range winners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := keys.WrappedKey{Compartment: "race", KEKID: "k1", Wrapped: []byte(fmt.Sprint("candidate ", i))}
				w, err := ks.CreateKey(ctx, k)
				if err != nil {
					t.Error(err)
				}
				winners[i] = w
			}()
		}
		wg.Wait()
		for _, w := range winners {
			if !equal(w, winners[0]) {
				t.Fatalf("CreateKey returned different winners: %+v and %+v", w, winners[0])
			}
		}
	})
}

func equal(a, b keys.WrappedKey) bool {
	return a.Compartment == b.Compartment && a.KEKID == b.KEKID && bytes.Equal(a.Wrapped, b.Wrapped)
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// MemKeyStore is an in-memory keys.KeyStore. The zero value is empty and
// ready; it is safe for concurrent use. Several keyrings sharing one
// MemKeyStore behave like processes sharing a database.
type MemKeyStore struct {
	mu   sync.Mutex
	keys map[string]keys.WrappedKey
	// Err, when set, is returned by every method (a failing database).
	Err error
}

func (m *MemKeyStore) fail() error {
	if m.Err != nil {
		return fmt.Errorf("keystest: %w", m.Err)
	}
	return nil
}

// LoadKey returns the compartment's key or keys.ErrKeyNotFound.
func (m *MemKeyStore) LoadKey(ctx context.Context, compartment string) (keys.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return keys.WrappedKey{}, err
	}
	k, ok := m.keys[compartment]
	if !ok {
		return keys.WrappedKey{}, keys.ErrKeyNotFound
	}
	return clone(k), nil
}

// CreateKey stores k unless its compartment has a key, and returns the
// stored key.
func (m *MemKeyStore) CreateKey(ctx context.Context, k keys.WrappedKey) (keys.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return keys.WrappedKey{}, err
	}
	if old, ok := m.keys[k.Compartment]; ok {
		return clone(old), nil
	}
	if m.keys == nil {
		m.keys = make(map[string]keys.WrappedKey)
	}
	m.keys[k.Compartment] = clone(k)
	return clone(k), nil
}

// ListKeys calls fn for every key, outside the store's lock.
func (m *MemKeyStore) ListKeys(ctx context.Context, fn func(keys.WrappedKey) error) error {
	m.mu.Lock()
	if err := m.fail(); err != nil {
		m.mu.Unlock()
		return err
	}
	all := make([]keys.WrappedKey, 0, len(m.keys))
	for _, k := range m.keys {
		all = append(all, clone(k))
	}
	m.mu.Unlock()
	for _, k := range all {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceKey swaps old for new if old is still stored.
func (m *MemKeyStore) ReplaceKey(ctx context.Context, old, new keys.WrappedKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return err
	}
	cur, ok := m.keys[old.Compartment]
	if !ok || new.Compartment != old.Compartment || !equal(cur, old) {
		return keys.ErrKeyConflict
	}
	m.keys[old.Compartment] = clone(new)
	return nil
}

// Delete removes a compartment's key (crypto-shredding in tests).
func (m *MemKeyStore) Delete(compartment string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, compartment)
}

// Set stores k unconditionally (to simulate tampering in tests).
func (m *MemKeyStore) Set(k keys.WrappedKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = make(map[string]keys.WrappedKey)
	}
	m.keys[k.Compartment] = clone(k)
}

func clone(k keys.WrappedKey) keys.WrappedKey {
	k.Wrapped = bytes.Clone(k.Wrapped)
	return k
}
