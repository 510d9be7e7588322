package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestKeyChainDocument: the published key chain round-trips, and a
// document that does not follow from the trusted first key is refused:
// another first key, a transition signed by a key other than the one
// before it, an altered transition, a current key that is not where the
// transitions lead, unknown fields.
func TestKeyChainDocument(t *testing.T) {
	l := newTransitionLog(t)
	chain, err := OpenKeyChain(l.old.VerifierKey(), [][]byte{l.transition})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := chain.Document()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeyChain(doc, l.old.VerifierKey())
	if err != nil {
		t.Fatalf("the chain's own document: %v", err)
	}
	if got.Current().KeyHash() != l.next.KeyHash() || got.VerifierKeyAt(100) != l.old.VerifierKey() || got.VerifierKeyAt(101) != l.next.VerifierKey() {
		t.Fatal("the parsed chain puts the keys at the wrong sizes")
	}
	if !bytes.Equal(got.Notes()[0], l.transition) || got.FirstKey() != l.old.VerifierKey() {
		t.Fatal("the parsed chain lost its first key or notes")
	}
	if _, err := NewKeyChain(l.old.Verifier(), nil); err != nil {
		t.Fatal(err)
	} else if c, _ := NewKeyChain(l.old.Verifier(), nil); c.FirstKey() != "" {
		t.Fatal("a chain made from a note.Verifier claims to know its verifier key")
	}
	var d keyChainDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	forged, err := l.next.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: testSigner(t, testOrigin, "log-3").VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	other := testSigner(t, testOrigin, "other")
	byOther, err := other.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: l.next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(l.transition, []byte("\n101\n"), []byte("\n102\n"), 1)
	cases := []struct {
		name  string
		edit  func(d *keyChainDoc)
		first string
	}{
		{"another first key trusted", func(*keyChainDoc) {}, other.VerifierKey()},
		{"first key replaced", func(d *keyChainDoc) { d.First = other.VerifierKey() }, l.old.VerifierKey()},
		{"transition not signed by the key before it", func(d *keyChainDoc) { d.Transitions = []string{string(byOther)} }, ""},
		{"transition signed by the next key itself", func(d *keyChainDoc) {
			d.Transitions = []string{string(l.transition), string(forged), string(forged)}
		}, ""},
		{"altered transition", func(d *keyChainDoc) { d.Transitions = []string{string(altered)} }, ""},
		{"current key not where the transitions lead", func(d *keyChainDoc) { d.Current = d.First }, ""},
		{"transition dropped", func(d *keyChainDoc) { d.Transitions = nil }, ""},
		{"other format", func(d *keyChainDoc) { d.Format = "ward-ledger-key-chain/v0" }, ""},
		{"other origin", func(d *keyChainDoc) { d.Origin = "other.test/log" }, ""},
	}
	for _, c := range cases {
		e := d
		e.Transitions = append([]string(nil), d.Transitions...)
		c.edit(&e)
		b, _ := json.Marshal(e)
		if _, err := ParseKeyChain(b, c.first); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	unknown := strings.Replace(string(doc), `"format"`, `"extra": 1, "format"`, 1)
	if _, err := ParseKeyChain([]byte(unknown), ""); err == nil {
		t.Error("unknown field: accepted")
	}
	if _, err := ParseKeyChain(append(bytes.Clone(doc), '{', '}'), ""); err == nil {
		t.Error("trailing data: accepted")
	}
}

// TestVerifyUnrecordedTransitionEntry: an entry recording a key
// transition that the chain does not hold (a rotation under way) passes
// while no checkpoint covers it, and fails verification once one does.
func TestVerifyUnrecordedTransitionEntry(t *testing.T) {
	ctx := context.Background()
	l := newTransitionLog(t)
	first, err := NewKeyChain(l.old.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoints up to 100 do not cover entry 100.
	if _, err := Verify(ctx, l.log, l.cps[:3], nil, VerifyOptions{Origin: testOrigin, Keys: first}); err != nil {
		t.Fatalf("an uncovered pending transition: %v", err)
	}
	// A checkpoint of 150 signed by the old key covers it.
	over := signAt(t, l.log, 150, l.old)
	_, err = Verify(ctx, l.log, append(l.cps[:3:3], over), nil, VerifyOptions{Origin: testOrigin, Keys: first})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Index != 100 {
		t.Fatalf("a checkpoint over a transition the chain lacks: %v, want a failure at index 100", err)
	}
}

// TestWitnessFollowsTransition: a witness configured with a log's first
// key, which cosigned checkpoints under it, cosigns the next checkpoint
// signed by the new key only when given a valid transition to it; a
// transition signed by another key, an altered one, or none is refused
// as a bad log signature, and so is a checkpoint past the transition
// signed by the old key.
func TestWitnessFollowsTransition(t *testing.T) {
	ctx := context.Background()
	l := newTransitionLog(t)
	_, srv, cos := newTestWitness(t, &MemWitnessState{})
	proof := func(old, size int64) tlog.TreeProof {
		p, err := ProveConsistency(ctx, l.log, old, size)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The witness's log key is testSigner("log"), as l.old.
	if _, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 0, proof(0, 100), l.cps[2]); err != nil {
		t.Fatalf("the old key's checkpoint of 100: %v", err)
	}
	other := testSigner(t, testOrigin, "other")
	byOther, err := other.SignTransition(Transition{Origin: testOrigin, From: 101, NextKey: l.next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(l.transition, []byte("\n101\n"), []byte("\n99\n"), 1)
	for name, tr := range map[string][][]byte{"no transition": nil, "transition by another key": {byOther}, "altered transition": {altered}} {
		_, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 100, proof(100, 150), l.cps[4], tr...)
		if !errors.Is(err, errLogSignature) {
			t.Errorf("%s: %v, want a bad log signature", name, err)
		}
	}
	oldPast := signAt(t, l.log, 150, l.old)
	if _, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 100, proof(100, 150), oldPast, l.transition); !errors.Is(err, errLogSignature) {
		t.Errorf("the old key's checkpoint past the transition: %v, want a bad log signature", err)
	}
	cosigned, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 100, proof(100, 150), l.cps[4], l.transition)
	if err != nil {
		t.Fatalf("the new key's checkpoint with the transition: %v", err)
	}
	if _, err := note.Open(cosigned, note.VerifierList(l.next.Verifier(), cos.Verifier())); err != nil {
		t.Fatalf("the cosigned checkpoint: %v", err)
	}
}
