package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// clientKeyTests are Run's tests of how services authenticate without a
// secret: key sets, certificate thumbprints and assertion ids.
var clientKeyTests = []conformanceTest{
	{"ClientKeys", testClientKeys},
	{"AssertionIDs", testAssertionIDs},
	{"AssertionIDRace", func(t *testing.T, s store.Store) { testAssertionIDRace(t, s, s) }},
	{"ClientAttempts", testClientAttempts},
	{"ClientAttemptsRace", func(t *testing.T, s store.Store) { testClientAttemptsRace(t, s, s) }},
}

// testClientKeys checks that a key set and certificate thumbprints round
// trip, and that a client without them reads back nil and empty.
func testClientKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	jwks := []byte(`{"keys":[{"kty":"EC","crv":"P-384","kid":"k1","x":"AQ","y":"Ag"}]}`)
	keyed := store.Client{ID: "jwt", Name: "Key set", Scopes: []string{"system/*.rs"}, Created: at(0), JWKS: jwks}
	certs := store.Client{ID: "tls", Name: "Certificates", Scopes: []string{"system/*.rs"}, Created: at(1),
		CertThumbprints: []string{"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA", "AAAA"}}
	plain := store.Client{ID: "sec", Name: "Secret", SecretHash: []byte{7}, Scopes: []string{"system/*.rs"}, Created: at(2)}
	for _, c := range []store.Client{keyed, certs, plain} {
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatalf("CreateClient(%s) = %v", c.ID, err)
		}
	}
	check := func(got, want store.Client) {
		t.Helper()
		if !sameClient(got, want) || !bytes.Equal(got.JWKS, want.JWKS) || (got.JWKS == nil) != (want.JWKS == nil) ||
			!slices.Equal(got.CertThumbprints, want.CertThumbprints) || got.SecretHash != nil && want.SecretHash == nil {
			t.Errorf("client %s = %+v; want %+v", want.ID, got, want)
		}
	}
	for _, want := range []store.Client{keyed, certs, plain} {
		got, err := s.Client(ctx, want.ID)
		if err != nil {
			t.Fatalf("Client(%s) = %v", want.ID, err)
		}
		check(got, want)
	}
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListClients = %+v, %v", list, err)
	}
	check(list[0], keyed)
	check(list[1], plain)
	check(list[2], certs)

	bad := []store.Client{
		{ID: "bad1", Name: "Bad", Created: at(3), CertThumbprints: []string{"a b"}},
		{ID: "bad2", Name: "Bad", Created: at(3), CertThumbprints: []string{""}},
		{ID: "bad3", Name: "Bad", Created: at(3), JWKS: []byte("{\"keys\":[]}\x00")},
		{ID: "bad4", Name: "Bad", Created: at(3), JWKS: []byte{'{', 0xff, '}'}},
	}
	for _, c := range bad {
		if err := s.CreateClient(ctx, c); err == nil {
			t.Errorf("CreateClient(%s) with thumbprints %q and key set %q succeeded, want an error", c.ID, c.CertThumbprints, c.JWKS)
		}
		if _, err := s.Client(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused CreateClient stored %s: %v", c.ID, err)
		}
	}
}

// testAssertionIDs checks that an id is accepted once per client, that
// other clients and ids are independent, and that DeleteAssertionIDs
// forgets exactly the ids that expired.
func testAssertionIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.UseAssertionID(ctx, "c1", "j1", at(300)); err != nil {
		t.Fatalf("first use = %v", err)
	}
	if err := s.UseAssertionID(ctx, "c1", "j1", at(300)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use = %v, want ErrConflict", err)
	}
	if err := s.UseAssertionID(ctx, "c1", "j1", at(900)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use with a later expiry = %v, want ErrConflict", err)
	}
	for _, u := range []struct{ client, jti string }{{"c2", "j1"}, {"c1", "j2"}, {"c1", "J1"}, {"c1", "j1 "}} {
		if err := s.UseAssertionID(ctx, u.client, u.jti, at(100)); err != nil {
			t.Errorf("UseAssertionID(%q, %q) = %v; ids are per client and exact", u.client, u.jti, err)
		}
	}
	if err := s.UseAssertionID(ctx, "", "j", at(100)); err == nil {
		t.Error("UseAssertionID without a client id succeeded")
	}
	if err := s.UseAssertionID(ctx, "c1", "", at(100)); err == nil {
		t.Error("UseAssertionID without a jti succeeded")
	}

	// Ids expiring at 100 go; the one kept until 300 stays.
	if err := s.DeleteAssertionIDs(ctx, at(200)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseAssertionID(ctx, "c1", "j1", at(300)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteAssertionIDs forgot an id before its expiry: reuse = %v", err)
	}
	if err := s.UseAssertionID(ctx, "c2", "j1", at(400)); err != nil {
		t.Errorf("DeleteAssertionIDs kept an expired id: %v", err)
	}
	// The bound is exclusive: an id expiring exactly at before stays.
	if err := s.DeleteAssertionIDs(ctx, at(300)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseAssertionID(ctx, "c1", "j1", at(300)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteAssertionIDs(before=expiry) forgot the id: reuse = %v", err)
	}
}

// testAssertionIDRace presents one assertion id from many goroutines on a
// and b at once: exactly one may use it.
func testAssertionIDRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const rounds, n = 5, 8
	for r := range rounds {
		jti := fmt.Sprint("race-", r)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.UseAssertionID(ctx, "svc", jti, at(60))
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d, user %d: %v, want nil or ErrConflict", r, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d callers used assertion id %s, want exactly 1", r, wins, jti)
		}
	}
}

// testClientAttempts checks the compare-and-swap of throttling state:
// insert from nothing, update and delete from the stored state only,
// microseconds kept, keys independent, and DeleteClientAttempts forgets
// exactly the keys unlocked before its time.
func testClientAttempts(t *testing.T, s store.Store) {
	ctx := t.Context()
	get := func(key string) store.Attempts {
		t.Helper()
		a, err := s.ClientAttempts(ctx, key)
		if err != nil {
			t.Fatalf("ClientAttempts(%s) = %v", key, err)
		}
		return a
	}
	swap := func(key string, old, new store.Attempts, want error) {
		t.Helper()
		err := s.SwapClientAttempts(ctx, key, old, new)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("SwapClientAttempts(%s, %+v, %+v) = %v, want %v", key, old, new, err, want)
		}
	}
	same := func(a, b store.Attempts) bool { return a.Failures == b.Failures && a.LockedUntil.Equal(b.LockedUntil) }
	zero := store.Attempts{}
	if a := get("k1"); !a.IsZero() {
		t.Fatalf("unknown key has state %+v", a)
	}
	one := store.Attempts{Failures: 1, LockedUntil: at(10)}
	two := store.Attempts{Failures: 2, LockedUntil: at(20)}
	swap("k1", zero, zero, nil) // nothing to nothing
	swap("k1", zero, one, nil)
	if a := get("k1"); !same(a, one) || a.LockedUntil.Location() != time.UTC {
		t.Fatalf("after insert: %+v, want %+v in UTC", a, one)
	}
	swap("k1", zero, two, store.ErrConflict) // a row exists: not from nothing
	swap("k1", zero, zero, store.ErrConflict)
	swap("k1", two, one, store.ErrConflict) // stale old
	swap("k1", store.Attempts{Failures: 1, LockedUntil: at(11)}, two, store.ErrConflict)
	swap("k1", get("k1"), two, nil)
	if a := get("k1"); !same(a, two) {
		t.Fatalf("after update: %+v, want %+v", a, two)
	}
	swap("k2", zero, one, nil) // keys are independent
	swap("k1", one, zero, store.ErrConflict)
	swap("k1", two, zero, nil)
	if a := get("k1"); !a.IsZero() {
		t.Fatalf("after delete: %+v", a)
	}
	if a := get("k2"); !same(a, one) {
		t.Fatalf("k2 = %+v, want %+v", a, one)
	}
	if err := s.SwapClientAttempts(ctx, "", zero, one); err == nil {
		t.Error("SwapClientAttempts with an empty key succeeded")
	}
	swap("k3", zero, two, nil)
	if err := s.DeleteClientAttempts(ctx, at(15)); err != nil {
		t.Fatal(err)
	}
	if a := get("k2"); !a.IsZero() {
		t.Errorf("k2, locked until %v, survived DeleteClientAttempts(%v)", one.LockedUntil, at(15))
	}
	if a := get("k3"); !same(a, two) {
		t.Errorf("k3, locked until %v, was deleted by DeleteClientAttempts(%v)", two.LockedUntil, at(15))
	}
}

// testClientAttemptsRace counts failures from many goroutines on a and b
// at once, each reading the state and swapping in one more failure until
// it wins: none is lost.
func testClientAttemptsRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for {
				old, err := s.ClientAttempts(ctx, "race")
				if err != nil {
					errs[i] = err
					return
				}
				next := store.Attempts{Failures: old.Failures + 1, LockedUntil: at(old.Failures + 1)}
				err = s.SwapClientAttempts(ctx, "race", old, next)
				if !errors.Is(err, store.ErrConflict) {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("counter %d: %v", i, err)
		}
	}
	got, err := a.ClientAttempts(ctx, "race")
	if err != nil || got.Failures != n {
		t.Fatalf("after %d concurrent failures the count is %+v, %v", n, got, err)
	}
}
