package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

// newLocal creates a key file with cheap argon2 parameters and opens it.
func newLocal(t testing.TB, passphrase []byte) (*keys.LocalFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ward.keys")
	p := keys.LocalParams{Passphrase: passphrase, ArgonTime: 1, ArgonMemoryKiB: 64, ArgonThreads: 1}
	if err := keys.CreateLocalFile(path, p, nil); err != nil {
		t.Fatal(err)
	}
	f, err := keys.OpenLocalFile(path, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return f, path
}

func newKeyring(t testing.TB, p keys.KEKProvider, ks keys.KeyStore, cfg keys.Config) *keys.Keyring {
	t.Helper()
	k, err := keys.NewKeyring(p, ks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func dataKey(t testing.TB, k *keys.Keyring, compartment string) *keys.DataKey {
	t.Helper()
	dk, err := k.DataKey(context.Background(), compartment)
	if err != nil {
		t.Fatalf("DataKey(%q): %v", compartment, err)
	}
	return dk
}

var body = []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Greenfelder","given":["Angele"]}],"birthDate":"1961-03-04"}`)

func TestSealOpen(t *testing.T) {
	f, _ := newLocal(t, nil)
	k := newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{})
	for _, comp := range []string{"p1", ""} {
		dk := dataKey(t, k, comp)
		aad := keys.AAD{Type: "Patient", ID: "p1", Version: 1, Compartment: comp}
		for _, pt := range [][]byte{body, {}, bytes.Repeat([]byte{0}, 5000)} {
			sealed, err := dk.Seal(aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(pt)+keys.SealOverhead || sealed[0] != 1 {
				t.Fatalf("sealed body has length %d and version %d", len(sealed), sealed[0])
			}
			if len(pt) > 8 && bytes.Contains(sealed, pt[:8]) {
				t.Fatal("sealed body contains plaintext")
			}
			got, err := dk.Open(aad, sealed)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, %v", got, err)
			}
		}
	}
	one, _ := dataKey(t, k, "p1").Seal(keys.AAD{Compartment: "p1"}, body)
	two, _ := dataKey(t, k, "p1").Seal(keys.AAD{Compartment: "p1"}, body)
	if bytes.Equal(one, two) {
		t.Fatal("two seals of the same body are equal: nonce reused")
	}
}

// TestSealRealResources round-trips the official R4 examples.
func TestSealRealResources(t *testing.T) {
	files := fhirtest.Files(t, "examples", "*.json")
	f, _ := newLocal(t, nil)
	k := newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{})
	for i, name := range files {
		pt, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		comp := fmt.Sprint("patient-", i%5)
		dk := dataKey(t, k, comp)
		aad := keys.AAD{Type: "Resource", ID: filepath.Base(name), Version: int64(i), Compartment: comp}
		sealed, err := dk.Seal(aad, pt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dk.Open(aad, sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: round trip failed: %v", name, err)
		}
	}
}

// D1: every flipped bit of a sealed body (version, nonce, ciphertext, tag)
// is detected and releases no plaintext.
func TestOpenFlipEveryBit(t *testing.T) {
	f, _ := newLocal(t, nil)
	dk := dataKey(t, newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{}), "p1")
	aad := keys.AAD{Type: "Patient", ID: "p1", Version: 3, Compartment: "p1"}
	sealed, err := dk.Seal(aad, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(sealed) * 8 {
		s := bytes.Clone(sealed)
		s[i/8] ^= 1 << (i % 8)
		pt, err := dk.Open(aad, s)
		if !errors.Is(err, keys.ErrDecrypt) || pt != nil {
			t.Fatalf("bit %d flipped: Open = %q, %v; want ErrDecrypt and nil", i, pt, err)
		}
	}
	for _, s := range [][]byte{nil, sealed[:keys.SealOverhead-1], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if pt, err := dk.Open(aad, s); !errors.Is(err, keys.ErrDecrypt) || pt != nil {
			t.Fatalf("Open(%d bytes) = %q, %v; want ErrDecrypt", len(s), pt, err)
		}
	}
}

// D2: a body opened in another place does not decrypt.
func TestOpenOtherPlace(t *testing.T) {
	f, _ := newLocal(t, nil)
	k := newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{})
	dk := dataKey(t, k, "p1")
	aad := keys.AAD{Type: "Observation", ID: "o1", Version: 2, Compartment: "p1"}
	sealed, err := dk.Seal(aad, body)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  *keys.DataKey
		aad  keys.AAD
	}{
		{"other type", dk, keys.AAD{Type: "Condition", ID: "o1", Version: 2, Compartment: "p1"}},
		{"other id", dk, keys.AAD{Type: "Observation", ID: "o2", Version: 2, Compartment: "p1"}},
		{"other version", dk, keys.AAD{Type: "Observation", ID: "o1", Version: 1, Compartment: "p1"}},
		{"other compartment, same key", dk, keys.AAD{Type: "Observation", ID: "o1", Version: 2, Compartment: "p2"}},
		{"other compartment and key", dataKey(t, k, "p2"), keys.AAD{Type: "Observation", ID: "o1", Version: 2, Compartment: "p2"}},
		{"shared key", dataKey(t, k, ""), keys.AAD{Type: "Observation", ID: "o1", Version: 2}},
		{"fields shifted", dk, keys.AAD{Type: "Observationo1", ID: "", Version: 2, Compartment: "p1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.key.Open(tt.aad, sealed)
			if !errors.Is(err, keys.ErrDecrypt) || pt != nil {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", pt, err)
			}
		})
	}
}

func TestSealRefusesOtherCompartment(t *testing.T) {
	f, _ := newLocal(t, nil)
	dk := dataKey(t, newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{}), "p1")
	if out, err := dk.Seal(keys.AAD{Type: "Patient", ID: "p2", Version: 1, Compartment: "p2"}, body); err == nil || out != nil {
		t.Fatalf("Seal with another compartment's AAD = %x, %v; want error", out, err)
	}
}

// D2 and D1 for wrapped keys: a wrapped key moved to another compartment or
// altered in any bit does not unwrap.
func TestWrappedKeyTamper(t *testing.T) {
	ctx := context.Background()
	f, _ := newLocal(t, nil)
	ks := &keystest.MemKeyStore{}
	dataKey(t, newKeyring(t, f, ks, keys.Config{}), "p1")
	orig, err := ks.LoadKey(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}

	moved := orig
	moved.Compartment = "p2"
	ks.Set(moved)
	if _, err := newKeyring(t, f, ks, keys.Config{}).DataKey(ctx, "p2"); !errors.Is(err, keys.ErrDecrypt) {
		t.Fatalf("DataKey with a key moved from p1 to p2: %v, want ErrDecrypt", err)
	}

	for i := range len(orig.Wrapped) * 8 {
		bad := orig
		bad.Wrapped = bytes.Clone(orig.Wrapped)
		bad.Wrapped[i/8] ^= 1 << (i % 8)
		ks.Set(bad)
		dk, err := newKeyring(t, f, ks, keys.Config{}).DataKey(ctx, "p1")
		if !errors.Is(err, keys.ErrDecrypt) || dk != nil {
			t.Fatalf("bit %d of the wrapped key flipped: DataKey = %v, %v; want ErrDecrypt", i, dk, err)
		}
	}
	ks.Set(orig)
	dataKey(t, newKeyring(t, f, ks, keys.Config{}), "p1")
}

// failingProvider is a KEK provider whose backend is down.
type failingProvider struct{}

func (failingProvider) Wrap(context.Context, []byte, []byte) ([]byte, string, error) {
	return nil, "", fmt.Errorf("hsm: connection refused: %w", keys.ErrUnavailable)
}

func (failingProvider) Unwrap(context.Context, []byte, string, []byte) ([]byte, error) {
	return nil, fmt.Errorf("hsm: connection refused: %w", keys.ErrUnavailable)
}

func (failingProvider) CurrentKEK() string { return "hsm-1" }

// D4: a provider that fails gives ErrUnavailable, and no key to seal with.
func TestProviderUnavailable(t *testing.T) {
	ctx := context.Background()
	ks := &keystest.MemKeyStore{}
	k := newKeyring(t, failingProvider{}, ks, keys.Config{})
	for _, name := range []string{"new compartment", "existing compartment"} {
		if name == "existing compartment" {
			ks.Set(keys.WrappedKey{Compartment: "p1", KEKID: "hsm-0", Wrapped: make([]byte, 60)})
		}
		dk, err := k.DataKey(ctx, "p1")
		if !errors.Is(err, keys.ErrUnavailable) || dk != nil {
			t.Fatalf("%s: DataKey = %v, %v; want ErrUnavailable and no key", name, dk, err)
		}
	}
	if _, err := k.Rewrap(ctx); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Rewrap: %v; want ErrUnavailable", err)
	}

	dbDown := errors.New("database down")
	f, _ := newLocal(t, nil)
	k = newKeyring(t, f, &keystest.MemKeyStore{Err: dbDown}, keys.Config{})
	if _, err := k.DataKey(ctx, "p1"); !errors.Is(err, dbDown) {
		t.Fatalf("DataKey with a failing store: %v", err)
	}
}

// D5: rotation, rewrap and retirement keep every record readable, also for
// a second process sharing the key file and the key store.
func TestRotateRewrapRetire(t *testing.T) {
	ctx := context.Background()
	f, path := newLocal(t, []byte("correct horse"))
	ks := &keystest.MemKeyStore{}
	k := newKeyring(t, f, ks, keys.Config{})
	oldKEK := f.CurrentKEK()

	type rec struct {
		aad    keys.AAD
		sealed []byte
	}
	var recs []rec
	for i := range 10 {
		comp := fmt.Sprint("p", i)
		if i == 9 {
			comp = ""
		}
		aad := keys.AAD{Type: "Observation", ID: fmt.Sprint("o", i), Version: 1, Compartment: comp}
		sealed, err := dataKey(t, k, comp).Seal(aad, body)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec{aad, sealed})
	}

	// The other process opened the file before the rotation.
	other, err := keys.OpenLocalFile(path, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}

	newKEK, err := f.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newKEK == oldKEK || f.CurrentKEK() != newKEK {
		t.Fatalf("after Rotate: current %q, old %q, new %q", f.CurrentKEK(), oldKEK, newKEK)
	}
	n, err := k.Rewrap(ctx)
	if err != nil || n != len(recs) {
		t.Fatalf("Rewrap = %d, %v; want %d", n, err, len(recs))
	}
	if n, err := k.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("second Rewrap = %d, %v; want 0", n, err)
	}
	used, err := k.KEKsInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	retired, err := f.Retire(ctx, func(id string) bool { return used[id] })
	if err != nil || len(retired) != 1 || retired[0] != oldKEK {
		t.Fatalf("Retire = %v, %v; want [%s]", retired, err, oldKEK)
	}

	check := func(name string, k *keys.Keyring) {
		for _, r := range recs {
			pt, err := dataKey(t, k, r.aad.Compartment).Open(r.aad, r.sealed)
			if err != nil || !bytes.Equal(pt, body) {
				t.Fatalf("%s: record %s unreadable after rotation: %v", name, r.aad.ID, err)
			}
		}
	}
	check("rotating process, cached keys", k)
	check("rotating process, fresh keyring", newKeyring(t, f, ks, keys.Config{}))
	check("other process", newKeyring(t, other, ks, keys.Config{}))
	if other.CurrentKEK() != newKEK {
		t.Fatalf("other process did not pick up the new KEK: %q", other.CurrentKEK())
	}
	reopened, err := keys.OpenLocalFile(path, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	check("reopened file", newKeyring(t, reopened, ks, keys.Config{}))

	// The retired KEK is gone from the file: a key still wrapped under it
	// (for example restored from an old backup) no longer unwraps.
	w, _, err := f.Wrap(ctx, make([]byte, 32), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reopened.Unwrap(ctx, w, oldKEK, []byte("x")); err == nil {
		t.Fatal("Unwrap under a retired KEK succeeded")
	}
}

// opaqueConflicts reports lost ReplaceKey races with its own error rather
// than ErrKeyConflict, as an adapter over another storage contract may.
type opaqueConflicts struct{ *keystest.MemKeyStore }

var errStoreConflict = errors.New("store: conflict")

func (s opaqueConflicts) ReplaceKey(ctx context.Context, old, new keys.WrappedKey) error {
	if err := s.MemKeyStore.ReplaceKey(ctx, old, new); err != nil {
		return errStoreConflict
	}
	return nil
}

// brokenReplace fails every ReplaceKey without any race.
type brokenReplace struct{ *keystest.MemKeyStore }

var errDiskFull = errors.New("disk full")

func (brokenReplace) ReplaceKey(context.Context, keys.WrappedKey, keys.WrappedKey) error {
	return errDiskFull
}

// Rewrap in two keyrings at once (two processes) converges without errors,
// whether or not the store reports lost races as ErrKeyConflict.
func TestRewrapConcurrent(t *testing.T) {
	ctx := context.Background()
	stores := []struct {
		name string
		ks   func(*keystest.MemKeyStore) keys.KeyStore
	}{
		{"ErrKeyConflict", func(m *keystest.MemKeyStore) keys.KeyStore { return m }},
		{"opaque conflict error", func(m *keystest.MemKeyStore) keys.KeyStore { return opaqueConflicts{m} }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			f, _ := newLocal(t, nil)
			ks := st.ks(&keystest.MemKeyStore{})
			k1 := newKeyring(t, f, ks, keys.Config{})
			k2 := newKeyring(t, f, ks, keys.Config{})
			for i := range 30 {
				dataKey(t, k1, fmt.Sprint("p", i))
			}
			if _, err := f.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			var n1, n2 int
			var e1, e2 error
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); n1, e1 = k1.Rewrap(ctx) }()
			go func() { defer wg.Done(); n2, e2 = k2.Rewrap(ctx) }()
			wg.Wait()
			if e1 != nil || e2 != nil || n1+n2 != 30 {
				t.Fatalf("Rewrap = (%d, %v), (%d, %v); want 30 rewrapped in total", n1, e1, n2, e2)
			}
			used, _ := k1.KEKsInUse(ctx)
			if len(used) != 1 || !used[f.CurrentKEK()] {
				t.Fatalf("KEKs in use after Rewrap: %v", used)
			}
		})
	}
	t.Run("store failure", func(t *testing.T) {
		f, _ := newLocal(t, nil)
		mem := &keystest.MemKeyStore{}
		dataKey(t, newKeyring(t, f, mem, keys.Config{}), "p1")
		if _, err := f.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := newKeyring(t, f, brokenReplace{mem}, keys.Config{}).Rewrap(ctx)
		if !errors.Is(err, errDiskFull) || n != 0 {
			t.Fatalf("Rewrap over a failing store = %d, %v; want the store's error", n, err)
		}
	})
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingProvider counts unwraps, to observe cache hits and misses.
type countingProvider struct {
	keys.KEKProvider
	mu      sync.Mutex
	unwraps int
}

func (p *countingProvider) Unwrap(ctx context.Context, w []byte, id string, aad []byte) ([]byte, error) {
	p.mu.Lock()
	p.unwraps++
	p.mu.Unlock()
	return p.KEKProvider.Unwrap(ctx, w, id, aad)
}

func (p *countingProvider) count() int { p.mu.Lock(); defer p.mu.Unlock(); return p.unwraps }

func TestCacheBoundAndTTL(t *testing.T) {
	f, _ := newLocal(t, nil)
	ks := &keystest.MemKeyStore{}
	for i := range 4 {
		dataKey(t, newKeyring(t, f, ks, keys.Config{}), fmt.Sprint("p", i))
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := &countingProvider{KEKProvider: f}
	k := newKeyring(t, p, ks, keys.Config{CacheSize: 2, CacheTTL: time.Minute, Now: clock.Now})

	steps := []struct {
		name        string
		advance     time.Duration
		compartment string
		wantUnwraps int
	}{
		{"first use of p0 unwraps", 0, "p0", 1},
		{"p0 is cached", 0, "p0", 1},
		{"p1 unwraps", 0, "p1", 2},
		{"p0 still cached", 30 * time.Second, "p0", 2},
		{"p2 evicts the least recent (p1)", 0, "p2", 3},
		{"p0 survived", 0, "p0", 3},
		{"p1 was evicted", 0, "p1", 4},
		{"p1 cached, not yet expired", 59 * time.Second, "p1", 4},
		{"p0 expired after its TTL", 30 * time.Second, "p0", 5},
	}
	for _, s := range steps {
		clock.Add(s.advance)
		dataKey(t, k, s.compartment)
		if got := p.count(); got != s.wantUnwraps {
			t.Fatalf("%s: %d unwraps, want %d", s.name, got, s.wantUnwraps)
		}
	}
	k.Evict("p0")
	dataKey(t, k, "p0")
	if p.count() != 6 {
		t.Fatalf("Evict did not drop p0 from the cache")
	}
}

// Erasure: once the wrapped key is deleted and evicted, old data does not
// open with the compartment's (new) key.
func TestShredding(t *testing.T) {
	ctx := context.Background()
	f, _ := newLocal(t, nil)
	ks := &keystest.MemKeyStore{}
	k := newKeyring(t, f, ks, keys.Config{})
	aad := keys.AAD{Type: "Patient", ID: "p1", Version: 1, Compartment: "p1"}
	sealed, err := dataKey(t, k, "p1").Seal(aad, body)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := dataKey(t, k, "p2").Seal(keys.AAD{Compartment: "p2"}, body)
	ks.Delete("p1")
	k.Evict("p1")
	if pt, err := dataKey(t, k, "p1").Open(aad, sealed); !errors.Is(err, keys.ErrDecrypt) || pt != nil {
		t.Fatalf("Open after shredding = %q, %v; want ErrDecrypt", pt, err)
	}
	if _, err := dataKey(t, k, "p2").Open(keys.AAD{Compartment: "p2"}, kept); err != nil {
		t.Fatalf("other compartment unreadable after shredding p1: %v", err)
	}
	_ = ctx
}

// Concurrent first use of one compartment, from many goroutines in two
// keyrings sharing a key store, converges on one key.
func TestConcurrentFirstUse(t *testing.T) {
	f, _ := newLocal(t, nil)
	ks := &keystest.MemKeyStore{}
	rings := []*keys.Keyring{newKeyring(t, f, ks, keys.Config{}), newKeyring(t, f, ks, keys.Config{})}
	const n = 32
	sealed := make([][]byte, n)
	aad := keys.AAD{Type: "Patient", ID: "new", Version: 1, Compartment: "new"}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dk, err := rings[i%2].DataKey(context.Background(), "new")
			if err != nil {
				t.Error(err)
				return
			}
			sealed[i], err = dk.Seal(aad, body)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, r := range rings {
		dk := dataKey(t, r, "new")
		for i, s := range sealed {
			if _, err := dk.Open(aad, s); err != nil {
				t.Fatalf("body %d sealed under a different key: %v", i, err)
			}
		}
	}
}

func TestNewKeyringConfig(t *testing.T) {
	f, _ := newLocal(t, nil)
	tests := []struct {
		name string
		p    keys.KEKProvider
		ks   keys.KeyStore
		cfg  keys.Config
	}{
		{"nil provider", nil, &keystest.MemKeyStore{}, keys.Config{}},
		{"nil store", f, nil, keys.Config{}},
		{"negative size", f, &keystest.MemKeyStore{}, keys.Config{CacheSize: -1}},
		{"negative ttl", f, &keystest.MemKeyStore{}, keys.Config{CacheTTL: -time.Second}},
	}
	for _, tt := range tests {
		if _, err := keys.NewKeyring(tt.p, tt.ks, tt.cfg); err == nil {
			t.Errorf("%s: NewKeyring succeeded", tt.name)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	dk, aad, pt := benchKey(b)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dk.Seal(aad, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	dk, aad, pt := benchKey(b)
	sealed, err := dk.Seal(aad, pt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dk.Open(aad, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDataKeyCached is a cached data key, with the key file's
// erasure register checked on each call (a stat of the file) and, as the
// baseline, with no register.
func BenchmarkDataKeyCached(b *testing.B) {
	for name, hide := range map[string]bool{"register": false, "no-register": true} {
		b.Run(name, func(b *testing.B) {
			f, _ := newLocal(b, nil)
			var p keys.KEKProvider = f
			if hide {
				p = struct{ keys.KEKProvider }{f} // hides the register
			}
			k := newKeyring(b, p, &keystest.MemKeyStore{}, keys.Config{})
			ctx := context.Background()
			dataKey(b, k, "p1")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.DataKey(ctx, "p1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchKey(b *testing.B) (*keys.DataKey, keys.AAD, []byte) {
	f, _ := newLocal(b, nil)
	dk := dataKey(b, newKeyring(b, f, &keystest.MemKeyStore{}, keys.Config{}), "8f0c2a6e-4f0e-4d36-9a55-0c2b3b7f1d11")
	aad := keys.AAD{Type: "Observation", ID: "b3f1c1d2-5d2e-4c1a-8a77-2f5c9e0d3a41", Version: 7, Compartment: "8f0c2a6e-4f0e-4d36-9a55-0c2b3b7f1d11"}
	return dk, aad, bytes.Repeat([]byte(`{"resourceType":"Observation"}`), 2048/30+1)[:2048]
}

// BenchmarkDataKeyUnwrap is the baseline for BenchmarkDataKeyCached: every
// call misses the cache and unwraps.
func BenchmarkDataKeyUnwrap(b *testing.B) {
	f, _ := newLocal(b, nil)
	k := newKeyring(b, f, &keystest.MemKeyStore{}, keys.Config{})
	ctx := context.Background()
	dataKey(b, k, "p1")
	b.ReportAllocs()
	for b.Loop() {
		k.Evict("p1")
		if _, err := k.DataKey(ctx, "p1"); err != nil {
			b.Fatal(err)
		}
	}
}

// gatedStore holds LoadKey calls until the gate opens or their context ends.
type gatedStore struct {
	*keystest.MemKeyStore
	entered chan struct{} // receives once per LoadKey call
	gate    chan struct{}
}

func (s *gatedStore) LoadKey(ctx context.Context, compartment string) (keys.WrappedKey, error) {
	s.entered <- struct{}{}
	select {
	case <-s.gate:
		return s.MemKeyStore.LoadKey(ctx, compartment)
	case <-ctx.Done():
		return keys.WrappedKey{}, ctx.Err()
	}
}

// A goroutine waiting on a load that its leader's context cancelled loads
// the key itself instead of failing.
func TestDataKeyLeaderCancelled(t *testing.T) {
	f, _ := newLocal(t, nil)
	ks := &gatedStore{MemKeyStore: &keystest.MemKeyStore{}, entered: make(chan struct{}, 8), gate: make(chan struct{})}
	k := newKeyring(t, f, ks, keys.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() { _, err := k.DataKey(ctx, "p1"); leader <- err }()
	<-ks.entered
	follower := make(chan error, 1)
	go func() { _, err := k.DataKey(context.Background(), "p1"); follower <- err }()
	time.Sleep(10 * time.Millisecond) // let the follower wait on the leader
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	close(ks.gate)
	select {
	case err := <-follower:
		if err != nil {
			t.Fatalf("follower inherited the leader's cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follower did not finish")
	}
}

// Evict during a load keeps the loaded key out of the cache, so erasure
// cannot race with a concurrent first use.
func TestEvictDuringLoad(t *testing.T) {
	f, _ := newLocal(t, nil)
	mem := &keystest.MemKeyStore{}
	dataKey(t, newKeyring(t, f, mem, keys.Config{}), "p1")
	ks := &gatedStore{MemKeyStore: mem, entered: make(chan struct{}, 8), gate: make(chan struct{})}
	p := &countingProvider{KEKProvider: f}
	k := newKeyring(t, p, ks, keys.Config{})
	done := make(chan error, 1)
	go func() { _, err := k.DataKey(context.Background(), "p1"); done <- err }()
	<-ks.entered
	k.Evict("p1")
	close(ks.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dataKey(t, k, "p1")
	if p.count() != 2 {
		t.Fatalf("%d unwraps; the key loaded during Evict was cached", p.count())
	}
}
