package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

var esignTests = []conformanceTest{
	{"Signatures", testSignatures},
	{"SignChallenges", testSignChallenges},
	{"SignChallengeRace", testSignChallengeRace},
}

// testSignatures: signature rows commit with their transaction (not after
// a rollback), list by resource oldest version first, and a Provenance
// holds one.
func testSignatures(t *testing.T, s store.Store) {
	ctx := t.Context()
	row := func(prov string, v int64, n int) store.SignatureRow {
		return store.SignatureRow{Type: "Observation", ID: "o1", Version: v, Provenance: prov, Signer: "u1", LedgerIndex: int64(n), Signed: at(n)}
	}
	for _, r := range []store.SignatureRow{row("p3", 2, 3), row("p1", 1, 1), row("p2", 1, 2)} {
		if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.PutSignature(ctx, r) }); err != nil {
			t.Fatal(err)
		}
	}
	errRollback := errors.New("rollback")
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error {
		if err := tx.PutSignature(ctx, row("p9", 1, 9)); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.PutSignature(ctx, row("p1", 3, 4)) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second signature row for one Provenance: %v, want ErrConflict", err)
	}
	got, err := s.Signatures(ctx, "Observation", "o1")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, g := range got {
		order = append(order, g.Provenance)
	}
	if len(got) != 3 || order[0] != "p1" || order[1] != "p2" || order[2] != "p3" {
		t.Fatalf("Signatures = %v, want p1 p2 p3", order)
	}
	if g := got[2]; g.Version != 2 || g.LedgerIndex != 3 || !g.Signed.Equal(at(3)) || g.Signer != "u1" {
		t.Fatalf("row read back as %+v", g)
	}
	if other, err := s.Signatures(ctx, "Observation", "o2"); err != nil || len(other) != 0 {
		t.Fatalf("another resource's signatures: %v %v", other, err)
	}
}

// testSignChallenges: a nonce is used once, only by its user, for its
// target and meaning, before it expires; a nonce presented with anything
// else is spent.
func testSignChallenges(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := store.SignChallenge{Nonce: "n1", UserID: "u1", Target: "Observation/o1/_history/2", Meaning: "m", Expires: at(60)}
	if err := s.CreateSignChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSignChallenge(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a duplicate nonce: %v", err)
	}
	if err := s.UseSignChallenge(ctx, c, at(10)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.UseSignChallenge(ctx, c, at(10)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second use: %v, want ErrNotFound", err)
	}
	for name, change := range map[string]func(*store.SignChallenge){
		"other user":    func(c *store.SignChallenge) { c.UserID = "u2" },
		"other version": func(c *store.SignChallenge) { c.Target = "Observation/o1/_history/1" },
		"other meaning": func(c *store.SignChallenge) { c.Meaning = "m2" },
	} {
		c := c
		c.Nonce = "n-" + name
		if err := s.CreateSignChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
		wrong := c
		change(&wrong)
		if err := s.UseSignChallenge(ctx, wrong, at(10)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound", name, err)
		}
		if err := s.UseSignChallenge(ctx, c, at(10)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the nonce still works for its owner after a misuse: %v", name, err)
		}
	}
	c.Nonce = "late"
	if err := s.CreateSignChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.UseSignChallenge(ctx, c, at(60)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired nonce: %v, want ErrNotFound", err)
	}
}

// testSignChallengeRace: of concurrent uses of one nonce, exactly one
// succeeds.
func testSignChallengeRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := store.SignChallenge{Nonce: "race", UserID: "u1", Target: "Observation/o1/_history/1", Meaning: "m", Expires: at(60)}
	if err := s.CreateSignChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := s.UseSignChallenge(ctx, c, at(1))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d uses of one nonce succeeded, want 1", ok.Load())
	}
}
