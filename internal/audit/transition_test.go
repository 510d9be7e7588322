package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// testKeys is a Keys whose chain and signer a test changes, as a key
// file changes under a rotation.
type testKeys struct {
	chain  *ledger.KeyChain
	signer *ledger.Signer
}

func (k *testKeys) LedgerKeys() (*ledger.KeyChain, *ledger.Signer, error) {
	return k.chain, k.signer, nil
}

// TestCheckpointFollowsKeyTransition: the checkpointer signs nothing
// over an entry recording a transition the keys do not hold yet
// (ErrTransitionPending, not tampering), signs from the transition's
// size with the new key once they do, and refuses to sign with a key
// the chain does not put in force at the size. The start check and the
// background pass follow the chain; a process that knows the old key
// alone finds the new key's checkpoint does not verify.
func TestCheckpointFollowsKeyTransition(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, Config{})
	defer l.Close()
	appendN := func(n int) {
		t.Helper()
		for i := range n {
			if err := l.Append(ctx, entryRec(t, fmt.Sprintf("e-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, next := newSigner(t), newSigner(t)
	appendN(10)
	if _, _, err := Checkpoint(ctx, st, old); err != nil {
		t.Fatal(err)
	}
	appendN(3)
	// The rotation records its entry at 13...
	rec, err := NewRecord(ledger.Entry{Time: fixedTime, Action: ledger.TransitionAction, Outcome: "success", Detail: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	appendN(2)
	// ... and has not completed: nothing is signed over it.
	_, _, err = Checkpoint(ctx, st, old)
	if !errors.Is(err, ErrTransitionPending) || errors.Is(err, ErrTampered) {
		t.Fatalf("a checkpoint over an incomplete transition: %v, want ErrTransitionPending", err)
	}
	tr, err := old.SignTransition(ledger.Transition{Origin: old.Name(), From: 14, NextKey: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ledger.OpenKeyChain(old.VerifierKey(), [][]byte{tr})
	if err != nil {
		t.Fatal(err)
	}
	// The old key no longer signs at a size past the transition.
	if _, _, err := Checkpoint(ctx, st, &testKeys{chain, old}); !errors.Is(err, ErrTransitionPending) {
		t.Fatalf("the old key signing past the transition: %v", err)
	}
	keys := &testKeys{chain, next}
	size, msg, err := Checkpoint(ctx, st, keys)
	if err != nil || size != 16 {
		t.Fatalf("the new key's checkpoint: %d, %v", size, err)
	}
	if _, err := ledger.OpenCheckpoint(msg, old.Name(), note.VerifierList(next.Verifier())); err != nil {
		t.Fatalf("the checkpoint is not the new key's: %v", err)
	}
	appendN(4)
	if _, _, err := Checkpoint(ctx, st, keys); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAtStart(ctx, st, keys, nil); err != nil {
		t.Errorf("the start check across the transition: %v", err)
	}
	if p := verifyPass(ctx, st, keys, VerifyConfig{Pace: 1 << 20, Wait: func(context.Context, time.Duration) error { return nil }}); p.Err != nil || p.Size != 20 {
		t.Errorf("the background pass across the transition: %+v", p)
	}
	cps, err := StoredCheckpoints(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(ctx, Source(st), cps, nil, ledger.VerifyOptions{Origin: old.Name(), Keys: chain}); err != nil {
		t.Errorf("the offline verifier across the transition: %v", err)
	}
	if _, err := VerifyAtStart(ctx, st, old, nil); !errors.Is(err, ErrTampered) {
		t.Errorf("the old key alone accepts the new key's checkpoint: %v", err)
	}
	// A transition note the ledger does not record at its place.
	wrong, err := old.SignTransition(ledger.Transition{Origin: old.Name(), From: 12, NextKey: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	wchain, err := ledger.OpenKeyChain(old.VerifierKey(), [][]byte{wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(ctx, Source(st), cps, nil, ledger.VerifyOptions{Origin: old.Name(), Keys: wchain}); err == nil {
		t.Error("a transition the ledger does not record at its size verifies")
	}
}
