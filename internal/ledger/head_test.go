package ledger

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// latestOf returns the largest of the stored checkpoints, as a store's
// LatestCheckpoint does, or nil.
func latestOf(t *testing.T, cps []SignedCheckpoint) SignedCheckpoint {
	t.Helper()
	var best SignedCheckpoint
	bestSize := int64(-1)
	for _, msg := range cps {
		text, _, _ := bytes.Cut(msg, []byte("\n\n"))
		c, _, err := parseCheckpoint(append(text, '\n'))
		if err != nil {
			t.Fatal(err)
		}
		if c.Size > bestSize {
			best, bestSize = msg, c.Size
		}
	}
	return best
}

func TestVerifyHeadIntact(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	root, _ := TreeHash(ctx, f.log, 300)
	for i, size := range cpSizes {
		for _, batch := range []int{0, 1, 7} {
			rep, err := VerifyHead(ctx, f.log, f.cps[i], f.vs, VerifyOptions{Origin: testOrigin, Batch: batch, Trusted: f.cps[:i+1]})
			if err != nil {
				t.Fatalf("latest at %d, batch %d: %v", size, batch, err)
			}
			if rep.Size != 300 || rep.Root != root || rep.Latest.Size != size || rep.Tail != 300-size || rep.Trusted != i+1 {
				t.Fatalf("latest at %d: report %+v", size, rep)
			}
		}
	}
	// No checkpoint yet: every entry is the tail.
	rep, err := VerifyHead(ctx, f.log, nil, f.vs, VerifyOptions{Origin: testOrigin})
	if err != nil || rep.Tail != 300 || rep.Root != root {
		t.Fatalf("no checkpoint: %+v, %v", rep, err)
	}
	if rep, err := VerifyHead(ctx, &rawLog{}, nil, f.vs, VerifyOptions{Origin: testOrigin}); err != nil || rep.Size != 0 {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
	// A trusted checkpoint beyond the latest stored one, within the log.
	if _, err := VerifyHead(ctx, f.log, f.cps[2], f.vs, VerifyOptions{Origin: testOrigin, Trusted: f.cps[4:5]}); err != nil {
		t.Fatalf("trusted beyond latest: %v", err)
	}
	if _, err := VerifyHead(ctx, f.log, f.cps[5], f.vs, VerifyOptions{}); err == nil {
		t.Fatal("VerifyHead ran without an origin")
	}
}

// The head check finds every mutation of the catalogue (E3) that touches
// what a server trusts at start: the latest checkpoint, the stored hashes
// making up its root, the log's length, and outside checkpoints. What it
// leaves to the full Verify are edits below the latest checkpoint whose
// stored hashes were left alone.
func TestVerifyHeadDetectsTampering(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	fullOnly := []string{
		"flip a byte inside an entry's value",
		"flip a structural byte of an entry",
		"edit a field",
		"reorder two entries",
		"flip a stored leaf hash",
		"flip a stored interior hash",
		"flip a bit of a stored checkpoint signature", // not the latest
	}
	detected, want := 0, 0
	for _, m := range mutations() {
		t.Run(m.name, func(t *testing.T) {
			r, cps, trusted := m.apply(t, f)
			_, err := VerifyHead(ctx, r, latestOf(t, cps), f.vs, VerifyOptions{Origin: testOrigin, Trusted: trusted, Batch: 64})
			if slices.Contains(fullOnly, m.name) {
				if err != nil {
					t.Fatalf("the head check should leave this to Verify, got %v", err)
				}
				return
			}
			want++
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Reason == "" {
				t.Fatalf("not detected: err = %v", err)
			}
			t.Logf("%v", err)
			detected++
		})
	}
	t.Logf("head check: %d/%d mutations it must find detected", detected, want)
}

// Entries after the latest checkpoint are re-hashed: an edit there is
// found and named by its index, with or without its hashes.
func TestVerifyHeadTail(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	latest := f.cps[4] // size 200
	for _, tt := range []struct {
		name  string
		apply func(r *rawLog) *rawLog
		index int64 // the index named; -1: accepted
	}{
		{"edit an entry after the checkpoint", func(r *rawLog) *rawLog {
			r.entries[250] = editEntry(t, r.entries[250], func(e *Entry) { e.Outcome = "denied" })
			return r
		}, 250},
		{"flip its stored leaf hash", func(r *rawLog) *rawLog {
			r.hashes[tlog.StoredHashIndex(0, 260)][0] ^= 1
			return r
		}, 260},
		{"flip a stored interior hash after the checkpoint", func(r *rawLog) *rawLog {
			r.hashes[tlog.StoredHashIndex(2, 263>>2)][0] ^= 1 // stored with entry 263
			return r
		}, 263},
		{"edit an entry after the checkpoint and recompute", func(r *rawLog) *rawLog {
			r.entries[250] = editEntry(t, r.entries[250], func(e *Entry) { e.Outcome = "denied" })
			return rebuilt(t, r.entries)
		}, -1}, // consistent with checkpoint 200 and signed by nobody past it: nothing to detect
		{"edit the subtree root of the checkpoint", func(r *rawLog) *rawLog {
			r.hashes[tlog.StoredHashIndex(6, 2)][0] ^= 1 // [128, 192), part of root 200
			return r
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyHead(ctx, tt.apply(f.log.clone()), latest, f.vs, VerifyOptions{Origin: testOrigin, Batch: 16})
			var ve *VerifyError
			switch {
			case tt.index == -1 && err != nil:
				t.Fatalf("an unsigned, consistent tail was rejected: %v", err)
			case tt.index == -1:
			case !errors.As(err, &ve) || ve.Index != tt.index:
				t.Fatalf("err = %v, want a VerifyError at %d", err, tt.index)
			}
		})
	}
}
