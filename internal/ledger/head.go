package ledger

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// HeadReport summarises a successful [VerifyHead].
type HeadReport struct {
	Size    int64      // entries in the log
	Root    tlog.Hash  // tree hash of all Size entries, from the stored hashes
	Latest  Checkpoint // the latest signed checkpoint; size 0 if there was none
	Tail    int64      // entries after Latest, re-hashed
	Trusted int        // trusted checkpoints the log was shown to extend
}

// VerifyHead is the check a server makes before it serves from a stored
// log and signs on top of it. It costs O(Tail + log Size) rather than
// [Verify]'s O(Size):
//
//   - latest, the largest stored checkpoint (nil: none yet, the empty
//     tree), must be signed by a key in v for opts.Origin;
//   - the log must hold at least latest's size, and the stored hashes
//     that make up latest's root (one per complete subtree) must hash to
//     it;
//   - every entry after latest is decoded and re-hashed, and its leaf and
//     tree hashes compared with the stored ones;
//   - the current tree must extend latest and every checkpoint in
//     opts.Trusted: a consistency proof from the stored hashes.
//
// What it does not check: that entries below latest's size still match
// their stored leaf hashes. An entry edited without its hashes, or a
// stored hash off the path to latest's root, is found by a full [Verify]
// only. Problems are reported as a *VerifyError.
func VerifyHead(ctx context.Context, src Source, latest SignedCheckpoint, v note.Verifiers, opts VerifyOptions) (HeadReport, error) {
	if !validOrigin(opts.Origin) {
		return HeadReport{}, fmt.Errorf("ledger: verify head: bad origin %q", opts.Origin)
	}
	batch := int64(opts.Batch)
	if batch <= 0 {
		batch = 4096
	}
	var rep HeadReport
	label := "no checkpoint"
	rep.Latest = Checkpoint{Origin: opts.Origin, Root: emptyRoot()}
	if latest != nil {
		c, err := opts.open(latest, v)
		if err != nil {
			return HeadReport{}, &VerifyError{Index: -1, Reason: "the latest stored checkpoint does not verify", Err: err}
		}
		rep.Latest = c
		label = fmt.Sprintf("the latest stored checkpoint (size %d)", c.Size)
	}
	var trusted []namedCheckpoint
	for i, msg := range opts.Trusted {
		name := fmt.Sprintf("trusted checkpoint %d", i)
		c, err := opts.open(msg, v)
		if err != nil {
			return HeadReport{}, &VerifyError{Index: -1, Reason: name + " does not verify", Err: err}
		}
		trusted = append(trusted, namedCheckpoint{c, fmt.Sprintf("%s (size %d)", name, c.Size), true})
	}

	n, serr := src.Size(ctx)
	if serr != nil {
		return HeadReport{}, fmt.Errorf("ledger: verify head: size: %w", serr)
	}
	for _, c := range append([]namedCheckpoint{{Checkpoint: rep.Latest, label: label}}, trusted...) {
		if n < c.Size {
			return HeadReport{}, &VerifyError{Index: n, Reason: fmt.Sprintf(
				"log has %d entries but %s commits to %d: entries were deleted, truncated or rolled back", n, c.label, c.Size)}
		}
	}

	// The stored roots of latest's complete subtrees: they must hash to
	// its root, and they are where re-hashing the tail starts from.
	var f frontier
	base := rep.Latest.Size
	subtrees := subtreeRoots(base)
	var stored []tlog.Hash
	var err error
	if len(subtrees) > 0 {
		stored, err = src.ReadHashes(ctx, subtrees)
	}
	if err == nil && len(stored) != len(subtrees) {
		err = fmt.Errorf("read %d of %d", len(stored), len(subtrees))
	}
	if err != nil {
		return HeadReport{}, &VerifyError{Index: base, Reason: "the stored tree hashes of " + label + " cannot be read", Err: err}
	}
	for i, x := range subtrees {
		level, _ := tlog.SplitStoredHashIndex(x)
		f.index[level], f.hash[level] = x+1, stored[i]
	}
	if root, err := tlog.TreeHash(base, &f); err != nil {
		return HeadReport{}, fmt.Errorf("ledger: verify head: tree hash at %d: %w", base, err)
	} else if root != rep.Latest.Root {
		return HeadReport{}, &VerifyError{Index: 0, Reason: fmt.Sprintf(
			"the stored tree hashes do not match %s: an entry in [0, %d) was altered and its hashes recomputed, or the log was forked", label, base)}
	}

	for start := base; start < n; start += batch {
		if err := ctx.Err(); err != nil {
			return HeadReport{}, fmt.Errorf("ledger: verify head: %w", err)
		}
		end := min(start+batch, n)
		if err := verifyBatch(ctx, src, start, end, &f, func(int64) error { return nil }, opts.Keys, nil); err != nil {
			return HeadReport{}, err
		}
	}
	rep.Size, rep.Tail = n, n-base
	if rep.Root, err = tlog.TreeHash(n, &f); err != nil {
		return HeadReport{}, fmt.Errorf("ledger: verify head: tree hash at %d: %w", n, err)
	}
	head := Checkpoint{Origin: opts.Origin, Size: n, Root: rep.Root}
	for _, c := range append([]namedCheckpoint{{Checkpoint: rep.Latest, label: label}}, trusted...) {
		p, err := ProveConsistency(ctx, src, c.Size, n)
		if err == nil {
			err = VerifyConsistency(c.Checkpoint, head, p)
		}
		if err != nil {
			return HeadReport{}, &VerifyError{Index: 0, Reason: fmt.Sprintf(
				"the log of %d entries does not extend %s: an entry in [0, %d) was altered, or the log was rolled back or forked", n, c.label, c.Size), Err: err}
		}
		if c.trusted {
			rep.Trusted++
		}
	}
	return rep, nil
}

// subtreeRoots returns the stored hash indexes of the roots of the
// complete subtrees a tree of size n is made of, largest first: the
// hashes tlog.TreeHash reads.
func subtreeRoots(n int64) []int64 {
	var out []int64
	for l := 62; l >= 0; l-- {
		if (n>>l)&1 == 1 {
			out = append(out, tlog.StoredHashIndex(l, n>>l-1))
		}
	}
	return out
}
