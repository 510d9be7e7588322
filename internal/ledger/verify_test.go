package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// rawLog is stored ledger data that tests can mutate like an attacker with
// database access.
type rawLog struct {
	entries [][]byte
	hashes  []tlog.Hash
}

func (r *rawLog) Size(context.Context) (int64, error) { return int64(len(r.entries)), nil }

func (r *rawLog) ReadEntries(_ context.Context, start, end int64) ([][]byte, error) {
	if start < 0 || end < start || end > int64(len(r.entries)) {
		return nil, errors.New("out of range")
	}
	return r.entries[start:end], nil
}

func (r *rawLog) ReadHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(indexes))
	for _, x := range indexes {
		if x < 0 || x >= int64(len(r.hashes)) {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out = append(out, r.hashes[x])
	}
	return out, nil
}

func (r *rawLog) clone() *rawLog {
	c := &rawLog{hashes: slices.Clone(r.hashes)}
	for _, e := range r.entries {
		c.entries = append(c.entries, bytes.Clone(e))
	}
	return c
}

// rebuilt recomputes every stored hash from the entries, as an attacker
// covering their tracks would.
func rebuilt(t testing.TB, entries [][]byte) *rawLog {
	t.Helper()
	m := new(MemLog)
	for _, b := range entries {
		if err := m.appendEncoded(b); err != nil {
			t.Fatal(err)
		}
	}
	return &rawLog{entries: m.entries, hashes: m.hashes}
}

// signAt signs the checkpoint of log r at size with s.
func signAt(t testing.TB, r *rawLog, size int64, s note.Signer) SignedCheckpoint {
	t.Helper()
	root, err := TreeHash(context.Background(), r, size)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: size, Root: root}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func encodeEntry(t testing.TB, e Entry) []byte {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ledgerFixture is an intact log of 300 entries with signed checkpoints.
type ledgerFixture struct {
	log    *rawLog
	cps    []SignedCheckpoint // at sizes cpSizes
	signer *Signer
	vs     note.Verifiers
}

var cpSizes = []int64{0, 1, 64, 100, 200, 300}

func newFixture(t testing.TB) ledgerFixture {
	t.Helper()
	m := newMemLog(t, 300)
	f := ledgerFixture{log: &rawLog{entries: m.entries, hashes: m.hashes}, signer: testSigner(t, testOrigin, "log")}
	f.vs = note.VerifierList(f.signer.Verifier())
	for _, size := range cpSizes {
		f.cps = append(f.cps, signAt(t, f.log, size, f.signer))
	}
	return f
}

func TestVerifyIntact(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, batch := range []int{0, 1, 7, 64, 1000} {
		rep, err := Verify(ctx, f.log, f.cps, f.vs, VerifyOptions{Origin: testOrigin, Batch: batch, Trusted: f.cps[2:4]})
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		root, _ := TreeHash(ctx, f.log, 300)
		want := Report{Size: 300, Root: root, Checkpoints: len(cpSizes), Trusted: 2,
			Latest: Checkpoint{Origin: testOrigin, Size: 300, Root: root}}
		if rep != want {
			t.Fatalf("batch %d: report %+v, want %+v", batch, rep, want)
		}
	}
	// Entries past the last checkpoint are reported, not rejected.
	grown := f.log.clone()
	grown = rebuilt(t, append(grown.entries, encodeEntry(t, sampleEntry(999))))
	rep, err := Verify(ctx, grown, f.cps, f.vs, VerifyOptions{Origin: testOrigin})
	if err != nil || rep.Unsigned != 1 || rep.Size != 301 {
		t.Fatalf("grown log: %+v, %v", rep, err)
	}
	// An empty log verifies against the empty checkpoint.
	empty := &rawLog{}
	if _, err := Verify(ctx, empty, f.cps[:1], f.vs, VerifyOptions{Origin: testOrigin}); err != nil {
		t.Fatalf("empty log: %v", err)
	}
	if _, err := Verify(ctx, f.log, f.cps, f.vs, VerifyOptions{}); err == nil {
		t.Fatal("Verify ran without an origin")
	}
}

// mutation is one kind of tampering with stored ledger data (catalogue E3).
type mutation struct {
	name string
	// apply returns the tampered log, stored checkpoints and trusted
	// (externally saved) checkpoints.
	apply func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint)
	// index is the first bad index Verify must name (-1: none).
	index int64
}

func editEntry(t *testing.T, b []byte, edit func(*Entry)) []byte {
	t.Helper()
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(&e)
	return encodeEntry(t, e)
}

func mutations() []mutation {
	keep := func(f ledgerFixture, r *rawLog) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
		return r, f.cps, nil
	}
	attacker := func(t *testing.T) note.Signer { return rawSigner(t, testOrigin, "attacker") }
	return []mutation{
		{"flip a byte inside an entry's value", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			i := bytes.Index(r.entries[150], []byte(`"actor":"`)) + len(`"actor":"`)
			r.entries[150][i] ^= 0x01
			return keep(f, r)
		}, 150},
		{"flip a structural byte of an entry", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries[150][0] ^= 0x01
			return keep(f, r)
		}, 150},
		{"edit a field", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries[150] = editEntry(t, r.entries[150], func(e *Entry) { e.Outcome = "denied" })
			return keep(f, r)
		}, 150},
		{"delete an entry", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries = slices.Delete(r.entries, 150, 151)
			return keep(f, r)
		}, 150},
		{"reorder two entries", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries[150], r.entries[151] = r.entries[151], r.entries[150]
			return keep(f, r)
		}, 150},
		{"insert an entry", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries = slices.Insert(r.entries, 150, encodeEntry(t, sampleEntry(777)))
			return keep(f, r)
		}, 150},
		{"truncate the log", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries = r.entries[:250]
			r.hashes = r.hashes[:tlog.StoredHashIndex(0, 250)]
			return keep(f, r)
		}, 250},
		{"flip a stored leaf hash", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.hashes[tlog.StoredHashIndex(0, 77)][5] ^= 0x80
			return keep(f, r)
		}, 77},
		{"flip a stored interior hash", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.hashes[tlog.StoredHashIndex(3, 127>>3)][0] ^= 0x01 // stored with entry 127
			return keep(f, r)
		}, 127},
		{"delete stored hashes", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.hashes = r.hashes[:tlog.StoredHashIndex(0, 290)]
			return keep(f, r)
		}, 256},
		{"edit an entry and recompute its leaf and all parents", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries
			es[150] = editEntry(t, es[150], func(e *Entry) { e.Actor = "someone-else" })
			return keep(f, rebuilt(t, es))
		}, 100},
		{"edit the first entry and recompute", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries
			es[0] = editEntry(t, es[0], func(e *Entry) { e.Patient = "pat-other" })
			return keep(f, rebuilt(t, es))
		}, 0},
		{"delete an entry and recompute", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			return keep(f, rebuilt(t, slices.Delete(f.log.clone().entries, 150, 151)))
		}, 100},
		{"reorder entries and recompute", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries
			es[150], es[151] = es[151], es[150]
			return keep(f, rebuilt(t, es))
		}, 100},
		{"insert an entry and recompute", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			return keep(f, rebuilt(t, slices.Insert(f.log.clone().entries, 150, encodeEntry(t, sampleEntry(777)))))
		}, 100},
		{"flip a bit of a stored checkpoint signature", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			cps := slices.Clone(f.cps)
			cps[3] = bytes.Clone(cps[3])
			cps[3][len(cps[3])-10] ^= 0x01
			return f.log, cps, nil
		}, -1},
		{"recompute the tree and re-sign checkpoints with another key", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries
			es[150] = editEntry(t, es[150], func(e *Entry) { e.Actor = "someone-else" })
			r := rebuilt(t, es)
			var cps []SignedCheckpoint
			for _, size := range cpSizes {
				cps = append(cps, signAt(t, r, size, attacker(t)))
			}
			return r, cps, nil
		}, -1},
		{"roll back entries together with the latest checkpoint", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			r := f.log.clone()
			r.entries = r.entries[:200]
			r.hashes = r.hashes[:tlog.StoredHashIndex(0, 200)]
			// The auditor saved checkpoint 300 outside the database.
			return r, f.cps[:5], f.cps[5:]
		}, 200},
		{"roll back and fork, signed with the log key", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries[:200]
			for i := range 120 {
				es = append(es, encodeEntry(t, sampleEntry(5000+i)))
			}
			r := rebuilt(t, es)
			cps := append(slices.Clone(f.cps[:5]), signAt(t, r, 320, f.signer))
			return r, cps, f.cps[5:]
		}, 200},
		{"fork at the same size, signed with the log key", func(t *testing.T, f ledgerFixture) (*rawLog, []SignedCheckpoint, []SignedCheckpoint) {
			es := f.log.clone().entries
			es[250] = editEntry(t, es[250], func(e *Entry) { e.Action = "delete" })
			r := rebuilt(t, es)
			cps := append(slices.Clone(f.cps[:5]), signAt(t, r, 300, f.signer))
			return r, cps, f.cps[5:]
		}, 200},
	}
}

// TestVerifyDetectsTampering is catalogue E3: every kind of mutation of
// stored ledger data is detected and the first bad index is named.
func TestVerifyDetectsTampering(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ms := mutations()
	detected := 0
	for _, m := range ms {
		t.Run(m.name, func(t *testing.T) {
			r, cps, trusted := m.apply(t, f)
			_, err := Verify(ctx, r, cps, f.vs, VerifyOptions{Origin: testOrigin, Trusted: trusted, Batch: 64})
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("not detected: err = %v", err)
			}
			if ve.Index != m.index || ve.Reason == "" {
				t.Fatalf("named index %d (%v), want %d", ve.Index, err, m.index)
			}
			t.Logf("%v", err)
			detected++
		})
	}
	t.Logf("E3: %d/%d mutations of stored ledger data detected", detected, len(ms))
	if detected != len(ms) {
		t.Fail()
	}
	// The original is untouched by the mutations above.
	if _, err := Verify(ctx, f.log, f.cps, f.vs, VerifyOptions{Origin: testOrigin}); err != nil {
		t.Fatalf("fixture was modified: %v", err)
	}
}

// TestRollbackNeedsAnOutsideCheckpoint documents the limit of the stored
// data alone: a rollback together with the checkpoints that cover it
// verifies, until a checkpoint saved elsewhere is presented.
func TestRollbackNeedsAnOutsideCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.log.clone()
	r.entries = r.entries[:200]
	r.hashes = r.hashes[:tlog.StoredHashIndex(0, 200)]
	if _, err := Verify(ctx, r, f.cps[:5], f.vs, VerifyOptions{Origin: testOrigin}); err != nil {
		t.Fatalf("consistent rolled-back log without a trusted checkpoint: %v", err)
	}
	_, err := Verify(ctx, r, f.cps[:5], f.vs, VerifyOptions{Origin: testOrigin, Trusted: f.cps[5:]})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Index != 200 {
		t.Fatalf("rollback below a trusted checkpoint: %v", err)
	}
}
