package ledger

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// transitionLog is a log of 200 entries whose checkpoint key rotates at
// tree size 101: entry 100 records the transition, the checkpoints below
// 101 are the first key's, those from 101 on the second's.
type transitionLog struct {
	log        *rawLog
	old, next  *Signer
	transition []byte
	cps        []SignedCheckpoint
}

func newTransitionLog(t *testing.T) transitionLog {
	t.Helper()
	old, next := testSigner(t, testOrigin, "log"), testSigner(t, testOrigin, "log-2")
	m := new(MemLog)
	for i := range 200 {
		e := sampleEntry(i)
		if i == 100 {
			e.Action, e.Detail = TransitionAction, next.VerifierKey()
		}
		if _, err := m.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := old.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	l := transitionLog{log: &rawLog{entries: m.entries, hashes: m.hashes}, old: old, next: next, transition: tr}
	for _, size := range []int64{1, 50, 100} {
		l.cps = append(l.cps, signAt(t, l.log, size, old))
	}
	for _, size := range []int64{101, 150, 200} {
		l.cps = append(l.cps, signAt(t, l.log, size, next))
	}
	return l
}

// TestKeyTransition: verification follows a transition from the log's
// first key: old checkpoints verify under the old key, new ones under
// the new key, and Verify accepts the whole log.
func TestKeyTransition(t *testing.T) {
	l := newTransitionLog(t)
	chain, err := NewKeyChain(l.old.Verifier(), [][]byte{l.transition})
	if err != nil {
		t.Fatal(err)
	}
	if chain.At(100).KeyHash() != l.old.KeyHash() || chain.At(101).KeyHash() != l.next.KeyHash() {
		t.Fatal("the chain puts the transition at the wrong size")
	}
	rep, err := Verify(context.Background(), l.log, l.cps, nil, VerifyOptions{Origin: testOrigin, Keys: chain})
	if err != nil || rep.Checkpoints != len(l.cps) {
		t.Fatalf("a log across a key transition: %+v, %v", rep, err)
	}
	// Without the chain, the new key's checkpoints do not verify.
	if _, err := Verify(context.Background(), l.log, l.cps, note.VerifierList(l.old.Verifier()), VerifyOptions{Origin: testOrigin}); err == nil {
		t.Error("the new key's checkpoints verify under the old key alone")
	}
	if _, err := l.old.Sign(l.transition[:bytes.Index(l.transition, []byte("\n\n"))+1]); err == nil {
		t.Error("the checkpoint signer signs a transition body through Sign")
	}
}

// TestKeyTransitionTamper: a transition that the old key did not sign,
// or that was altered in any byte, is refused; a checkpoint signed by
// the wrong key for its size is refused; a transition the ledger does
// not record at its place is refused by Verify.
func TestKeyTransitionTamper(t *testing.T) {
	ctx := context.Background()
	l := newTransitionLog(t)
	attacker := testSigner(t, testOrigin, "attacker")
	forged, err := attacker.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: l.next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	selfSigned, err := l.next.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: attacker.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string][]byte{"signed by another key": forged, "signed by the next key itself": selfSigned} {
		if _, err := NewKeyChain(l.old.Verifier(), [][]byte{tr}); err == nil {
			t.Errorf("transition %s is followed", name)
		}
	}
	for i := range len(l.transition) * 8 {
		bad := bytes.Clone(l.transition)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := NewKeyChain(l.old.Verifier(), [][]byte{bad}); err == nil {
			t.Fatalf("a transition with bit %d flipped is followed", i)
		}
	}
	// Going back in size, or back to an earlier key.
	back, _ := l.next.SignTransition(Transition{Origin: testOrigin, From: 50, NextKey: attacker.VerifierKey()})
	again, _ := l.next.SignTransition(Transition{Origin: testOrigin, From: 300, NextKey: l.old.VerifierKey()})
	for name, tr := range map[string][]byte{"backwards": back, "to an earlier key": again} {
		if _, err := NewKeyChain(l.old.Verifier(), [][]byte{l.transition, tr}); err == nil {
			t.Errorf("a transition %s is followed", name)
		}
	}
	chain, err := NewKeyChain(l.old.Verifier(), [][]byte{l.transition})
	if err != nil {
		t.Fatal(err)
	}
	// The old key signing past the transition, the new key below it.
	for name, cp := range map[string]SignedCheckpoint{
		"old key at 150": signAt(t, l.log, 150, l.old),
		"new key at 100": signAt(t, l.log, 100, l.next),
	} {
		if _, err := chain.OpenCheckpoint(cp); err == nil {
			t.Errorf("checkpoint by the %s verifies", name)
		}
		if _, err := Verify(ctx, l.log, append(l.cps, cp), nil, VerifyOptions{Origin: testOrigin, Keys: chain}); err == nil {
			t.Errorf("Verify accepts a checkpoint by the %s", name)
		}
	}
	// The entry recording the transition edited away (and every hash
	// recomputed): Verify refuses the log.
	edited := rebuilt(t, l.log.entries)
	edited.entries[100] = editEntry(t, edited.entries[100], func(e *Entry) { e.Action = "read" })
	edited = rebuilt(t, edited.entries)
	var cps []SignedCheckpoint
	for _, size := range []int64{100, 101} {
		s := l.old
		if size > 100 {
			s = l.next
		}
		cps = append(cps, signAt(t, edited, size, s))
	}
	_, err = Verify(ctx, edited, cps, nil, VerifyOptions{Origin: testOrigin, Keys: chain})
	if err == nil || !strings.Contains(err.Error(), "key transition not recorded") {
		t.Errorf("a transition the ledger does not record: %v", err)
	}
}

func FuzzOpenTransition(f *testing.F) {
	s := testSigner(f, testOrigin, "log")
	next := testSigner(f, testOrigin, "log-2")
	tr, err := s.SignTransition(Transition{Origin: testOrigin, From: 7, NextKey: next.VerifierKey()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tr)
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := OpenTransition(msg, s.Verifier())
		if err != nil {
			return
		}
		text, err := got.Marshal()
		if err != nil || !bytes.HasPrefix(msg, text) {
			t.Fatalf("accepted a transition that does not re-encode: %v", err)
		}
	})
}
