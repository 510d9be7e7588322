package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// memClients is an in-memory store.Clients that keeps the contract:
// ErrConflict on a duplicate id, ErrNotFound for unknown ids, and copies in
// and out so callers cannot alias stored rows.
type memClients struct {
	mu    sync.Mutex
	m     map[string]store.Client
	used  map[[2]string]time.Time // assertion ids: (client, jti) -> until
	tries map[string]store.Attempts
	reads int
	fail  error // returned by every method when set
}

func newMemClients() *memClients {
	return &memClients{m: map[string]store.Client{}, used: map[[2]string]time.Time{}, tries: map[string]store.Attempts{}}
}

func clone(c store.Client) store.Client {
	c.SecretHash = slices.Clone(c.SecretHash)
	c.Scopes = slices.Clone(c.Scopes)
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.JWKS = slices.Clone(c.JWKS)
	c.CertThumbprints = slices.Clone(c.CertThumbprints)
	return c
}

func (m *memClients) UseAssertionID(_ context.Context, clientID, jti string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	k := [2]string{clientID, jti}
	if _, ok := m.used[k]; ok {
		return store.ErrConflict
	}
	m.used[k] = until
	return nil
}

func (m *memClients) DeleteAssertionIDs(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for k, until := range m.used {
		if until.Before(before) {
			delete(m.used, k)
		}
	}
	return nil
}

func (m *memClients) ClientAttempts(_ context.Context, key string) (store.Attempts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return store.Attempts{}, m.fail
	}
	return m.tries[key], nil
}

func (m *memClients) SwapClientAttempts(_ context.Context, key string, old, new store.Attempts) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	cur := m.tries[key]
	if cur.Failures != old.Failures || !cur.LockedUntil.Equal(old.LockedUntil) {
		return store.ErrConflict
	}
	if new.IsZero() {
		delete(m.tries, key)
	} else {
		new.LockedUntil = new.LockedUntil.UTC().Truncate(time.Microsecond)
		m.tries[key] = new
	}
	return nil
}

func (m *memClients) DeleteClientAttempts(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for k, a := range m.tries {
		if a.LockedUntil.Before(before) {
			delete(m.tries, k)
		}
	}
	return nil
}

func (m *memClients) CreateClient(_ context.Context, c store.Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if _, ok := m.m[c.ID]; ok {
		return store.ErrConflict
	}
	m.m[c.ID] = clone(c)
	return nil
}

func (m *memClients) Client(_ context.Context, id string) (store.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.fail != nil {
		return store.Client{}, m.fail
	}
	c, ok := m.m[id]
	if !ok {
		return store.Client{}, store.ErrNotFound
	}
	return clone(c), nil
}

func (m *memClients) ListClients(context.Context) ([]store.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]store.Client, 0, len(m.m))
	for _, c := range m.m {
		out = append(out, clone(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memClients) RevokeClient(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	c, ok := m.m[id]
	if !ok {
		return store.ErrNotFound
	}
	c.Revoked = true
	m.m[id] = c
	return nil
}

func (m *memClients) SetClientSuspended(_ context.Context, id string, suspended bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	c, ok := m.m[id]
	if !ok {
		return store.ErrNotFound
	}
	c.Suspended = suspended
	m.m[id] = c
	return nil
}

func (m *memClients) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads
}

// clock is an injectable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	testIssuer   = "https://127.0.0.1:8443"
	testAudience = "https://127.0.0.1:8443/fhir"
)

type fixture struct {
	srv    *Server
	store  *memClients
	clock  *clock
	key    ed25519.PrivateKey
	id     string
	secret Secret
	token  string
}

// newFixture builds a server with one client holding system/Patient.rs and
// system/Observation.cruds, and one token for it.
func newFixture(t testing.TB, mutate ...func(*Config)) *fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: newMemClients(), clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, key: key}
	cfg := Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	if f.srv, err = NewServer(cfg, f.store, key); err != nil {
		t.Fatal(err)
	}
	c, sec, err := f.srv.CreateClient(context.Background(), "lab feed", []string{"system/Patient.rs", "system/Observation.*"})
	if err != nil {
		t.Fatal(err)
	}
	f.id, f.secret = c.ID, sec
	resp, err := f.srv.Token(context.Background(), TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: sec.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	f.token = resp.AccessToken
	return f
}

// otherChar returns s with its first character replaced by a different one.
func otherChar(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func (m *memClients) attemptCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tries)
}
