package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// pubLog is an in-memory ledger and its signer.
type pubLog struct {
	t      *testing.T
	m      *ledger.MemLog
	signer *ledger.Signer
}

func keyFrom(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// newPubLog returns a ledger of n entries; entries from forkAt on carry
// another detail, so two logs with different forkAt share a prefix.
func newPubLog(t *testing.T, n, forkAt int) *pubLog {
	t.Helper()
	s, err := ledger.NewSigner("ward.test/ledger", keyFrom("ledger"))
	if err != nil {
		t.Fatal(err)
	}
	l := &pubLog{t: t, m: new(ledger.MemLog), signer: s}
	for i := range n {
		d := "main"
		if i >= forkAt {
			d = "fork"
		}
		if _, err := l.m.Append(ledger.Entry{Time: fixedTime, Action: "read", Outcome: "success", Detail: fmt.Sprint(d, i)}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *pubLog) checkpoint(size int64) []byte {
	l.t.Helper()
	root, err := ledger.TreeHash(context.Background(), l.m, size)
	if err != nil {
		l.t.Fatal(err)
	}
	msg, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: l.signer.Name(), Size: size, Root: root}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return msg
}

func (l *pubLog) publisher(cfg PublishConfig) *Publisher {
	l.t.Helper()
	cfg.Keys = l.signer
	p, err := NewPublisher(cfg, l.m)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func TestPublishDirWriteOnce(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "published")
	l := newPubLog(t, 20, 20)
	p := l.publisher(PublishConfig{Dir: dir})
	for _, size := range []int64{5, 5, 9, 3, 20} {
		if _, err := p.Publish(ctx, size, l.checkpoint(size)); err != nil {
			t.Fatalf("publish %d: %v", size, err)
		}
	}
	for _, size := range []int64{5, 9, 20} {
		name := filepath.Join(dir, fmt.Sprintf("%d.checkpoint", size))
		b, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(b, l.checkpoint(size)) {
			t.Fatalf("%s: %v", name, err)
		}
		if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o444 {
			t.Errorf("%s mode %v, want 0444", name, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "3.checkpoint")); err == nil {
		t.Error("an older checkpoint was published after a newer one")
	}
	if _, err := p.Publish(ctx, 9, l.checkpoint(10)); err == nil {
		t.Error("Publish accepted a size that is not the checkpoint's")
	}
	snapshot := dirContents(t, dir)

	// After a restart, a ledger that disagrees with the directory is
	// caught, and nothing published is replaced.
	fork := newPubLog(t, 30, 12)  // rewrote entries 12.. and grew
	short := newPubLog(t, 15, 15) // rolled back below the published 20
	for _, tc := range []struct {
		name string
		l    *pubLog
		size int64
	}{
		{"same size, other root", fork, 20},
		{"larger, inconsistent", fork, 30},
		{"rolled back", short, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.l.publisher(PublishConfig{Dir: dir}).Publish(ctx, tc.size, tc.l.checkpoint(tc.size))
			if !errors.Is(err, ErrHistoryRewritten) {
				t.Fatalf("err = %v, want ErrHistoryRewritten", err)
			}
		})
	}
	// The running publisher, too, refuses a rewritten ledger.
	if _, err := p.Publish(ctx, 30, fork.checkpoint(30)); err == nil {
		t.Fatal("publisher accepted a checkpoint its ledger does not extend to")
	}
	if got := dirContents(t, dir); !equalMaps(got, snapshot) {
		t.Fatalf("directory changed: %v", got)
	}
	// The honest ledger carries on after a restart.
	more := newPubLog(t, 25, 25)
	if _, err := more.publisher(PublishConfig{Dir: dir}).Publish(ctx, 25, more.checkpoint(25)); err != nil {
		t.Fatal(err)
	}
}

func TestWriteOnceDetectsRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "7.checkpoint")
	if err := writeOnce(path, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if err := writeOnce(path, []byte("first\n")); err != nil {
		t.Fatalf("same content again: %v", err)
	}
	if err := writeOnce(path, []byte("second\n")); !errors.Is(err, ErrHistoryRewritten) {
		t.Fatalf("other content: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first\n" {
		t.Fatalf("file now holds %q", b)
	}
	if got := dirContents(t, filepath.Dir(path)); len(got) != 1 {
		t.Fatalf("temporary files left: %v", got)
	}
}

func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// testWitness runs a ledger.Witness of the test ledger over HTTP.
func testWitness(t *testing.T, l *pubLog) (*httptest.Server, *ledger.Cosigner, *ledger.MemWitnessState) {
	t.Helper()
	cos, err := ledger.NewCosigner("witness.test/w", keyFrom("witness"), nil)
	if err != nil {
		t.Fatal(err)
	}
	state := &ledger.MemWitnessState{}
	w, err := ledger.NewWitness(ledger.WitnessConfig{
		Cosigner: cos, State: state,
		Logs: map[string]note.Verifier{l.signer.Name(): l.signer.Verifier()},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /add-checkpoint", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, cos, state
}

func TestPublishWitness(t *testing.T) {
	ctx := context.Background()
	l := newPubLog(t, 30, 30)
	srv, cos, state := testWitness(t, l)
	target := WitnessTarget{URL: srv.URL, Key: cos.Verifier()}
	p := l.publisher(PublishConfig{Witnesses: []WitnessTarget{target}, HTTPClient: srv.Client()})
	for _, size := range []int64{3, 7, 7, 20} {
		cosigned, err := p.Publish(ctx, size, l.checkpoint(size))
		if err != nil {
			t.Fatalf("publish %d: %v", size, err)
		}
		if size == 7 && len(cosigned) == 0 {
			continue // already acknowledged: not sent again
		}
		if len(cosigned) != 1 || cosigned[0].Size != size {
			t.Fatalf("publish %d: %d cosigned", size, len(cosigned))
		}
		if _, err := note.Open(cosigned[0].Note, note.VerifierList(l.signer.Verifier(), cos.Verifier())); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := state.Latest(ctx, l.signer.Name()); got != size {
			t.Fatalf("witness at %d, want %d", got, size)
		}
	}
	// A restarted publisher learns the witness's size from its 409.
	p2 := l.publisher(PublishConfig{Witnesses: []WitnessTarget{target}, HTTPClient: srv.Client()})
	if c, err := p2.Publish(ctx, 25, l.checkpoint(25)); err != nil || len(c) != 1 {
		t.Fatalf("after restart: %v", err)
	}
	// An older checkpoint than the witness holds is skipped, once the
	// ledger proves it is part of the witness's tree.
	p3 := l.publisher(PublishConfig{Witnesses: []WitnessTarget{target}, HTTPClient: srv.Client()})
	if c, err := p3.Publish(ctx, 22, l.checkpoint(22)); err != nil || len(c) != 0 {
		t.Fatalf("older checkpoint: %d cosigned, %v", len(c), err)
	}

	// A rewritten ledger cannot get its checkpoints cosigned.
	fork := newPubLog(t, 30, 10)
	for _, size := range []int64{25, 30} {
		pf := fork.publisher(PublishConfig{Witnesses: []WitnessTarget{target}, HTTPClient: srv.Client()})
		if _, err := pf.Publish(ctx, size, fork.checkpoint(size)); !errors.Is(err, ErrHistoryRewritten) {
			t.Fatalf("fork at %d: %v, want ErrHistoryRewritten", size, err)
		}
	}
	// A witness answering with another key's cosignature is refused.
	other, _ := ledger.NewCosigner("witness.test/w", keyFrom("someone else"), nil)
	bad := l.publisher(PublishConfig{Witnesses: []WitnessTarget{{URL: srv.URL, Key: other.Verifier()}}, HTTPClient: srv.Client()})
	if _, err := bad.Publish(ctx, 30, l.checkpoint(30)); err == nil {
		t.Fatal("cosignature by an unexpected key accepted")
	}
}

func TestNewPublisherValidates(t *testing.T) {
	l := newPubLog(t, 1, 1)
	for _, cfg := range []PublishConfig{
		{Keys: l.signer},
		{Dir: t.TempDir()},
		{Keys: l.signer, Witnesses: []WitnessTarget{{URL: "ftp://witness"}}},
	} {
		if _, err := NewPublisher(cfg, l.m); err == nil {
			t.Errorf("NewPublisher accepted %+v", cfg)
		}
	}
}

// RunPublishing publishes what the checkpointer stores, to a directory
// and a witness.
func TestRunPublishing(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := ledger.NewSigner("ward.test/ledger", keyFrom("ledger"))
	if err != nil {
		t.Fatal(err)
	}
	l := &pubLog{t: t, signer: s}
	srv, cos, state := testWitness(t, l)
	dir := filepath.Join(t.TempDir(), "published")
	p, err := NewPublisher(PublishConfig{Keys: s, Dir: dir,
		Witnesses: []WitnessTarget{{URL: srv.URL, Key: cos.Verifier()}}, HTTPClient: srv.Client()}, Source(st))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	cosigned := make(chan Cosigned, 100)
	go RunPublishing(runCtx, st, p, 10*time.Millisecond, new(Halt),
		func(c Cosigned) { cosigned <- c },
		func(err error) { t.Errorf("publishing: %v", err) })
	var size int64
	for round := range 3 {
		tx, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := AppendInTx(ctx, tx, []Record{entryRec(t, fmt.Sprint("a", round)), entryRec(t, fmt.Sprint("b", round))}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if size, _, err = Checkpoint(ctx, st, s); err != nil {
			t.Fatal(err)
		}
		for c := range cosigned {
			if c.Size == size {
				break
			}
		}
	}
	stop()
	if got, _, _ := state.Latest(ctx, s.Name()); got != size {
		t.Fatalf("witness at %d, want %d", got, size)
	}
	stored, err := st.Checkpoint(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.checkpoint", size))); err != nil || !bytes.Equal(b, stored) {
		t.Fatalf("published file: %v", err)
	}
}

// TestPublishAcrossKeyTransition: the publisher sends a witness that
// knows the log's first key the transition notes with each checkpoint,
// so that the witness cosigns the new key's checkpoints; the directory
// takes them too, after the old key's.
func TestPublishAcrossKeyTransition(t *testing.T) {
	ctx := context.Background()
	l := newPubLog(t, 20, 20)
	srv, cos, state := testWitness(t, l) // the witness knows the first key
	old := l.signer
	next, err := ledger.NewSigner(old.Name(), keyFrom("ledger-2"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.m.Append(ledger.Entry{Time: fixedTime, Action: ledger.TransitionAction, Outcome: "success", Detail: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := l.m.Append(ledger.Entry{Time: fixedTime, Action: "read", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := old.SignTransition(ledger.Transition{Origin: old.Name(), From: idx + 1, NextKey: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ledger.OpenKeyChain(old.VerifierKey(), [][]byte{tr})
	if err != nil {
		t.Fatal(err)
	}
	before := l.checkpoint(20)
	l.signer = next
	after := l.checkpoint(26)
	p, err := NewPublisher(PublishConfig{Keys: &testKeys{chain, next}, Dir: filepath.Join(t.TempDir(), "published"),
		Witnesses: []WitnessTarget{{URL: srv.URL, Key: cos.Verifier()}}, HTTPClient: srv.Client()}, l.m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		size int64
		msg  []byte
	}{{20, before}, {26, after}} {
		got, err := p.Publish(ctx, c.size, c.msg)
		if err != nil || len(got) != 1 {
			t.Fatalf("publishing the checkpoint of %d: %v %v", c.size, got, err)
		}
	}
	if size, _, err := state.Latest(ctx, old.Name()); err != nil || size != 26 {
		t.Fatalf("the witness holds size %d (%v), want the new key's 26", size, err)
	}
	// Without the transition, the same witness refuses the new key.
	p2, err := NewPublisher(PublishConfig{Keys: next, Witnesses: []WitnessTarget{{URL: srv.URL, Key: cos.Verifier()}}, HTTPClient: srv.Client()}, l.m)
	if err != nil {
		t.Fatal(err)
	}
	l.m.Append(ledger.Entry{Time: fixedTime, Action: "read", Outcome: "success"})
	if _, err := p2.Publish(ctx, 27, l.checkpoint(27)); err == nil {
		t.Error("a witness cosigned the new key's checkpoint without the transition")
	}
}
