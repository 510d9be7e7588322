package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Source is a stored ledger as read back for verification: the encoded
// entries in index order and the stored hashes.
type Source interface {
	HashReader
	// Size returns the number of entries.
	Size(ctx context.Context) (int64, error)
	// ReadEntries returns the encoded entries [start, end), in order.
	ReadEntries(ctx context.Context, start, end int64) ([][]byte, error)
}

// SignedCheckpoint is a checkpoint as a signed note, as stored or saved.
type SignedCheckpoint []byte

// VerifyOptions configures [Verify]. Origin is required.
type VerifyOptions struct {
	// Origin is the log's name, the first line of its checkpoints.
	Origin string
	// Trusted are checkpoints saved outside the database: by an auditor,
	// a witness or a write-once location. The log must extend each one;
	// this is what detects a rollback together with the stored checkpoints,
	// or a fork.
	Trusted []SignedCheckpoint
	// Batch is the number of entries read per call; 0 means 4096.
	Batch int
	// Keys, when set, is the log's key chain: each checkpoint must be
	// signed by the key in force at its size (v is then not used), and
	// each transition must be recorded by the entry below its size.
	Keys *KeyChain
}

// open opens a checkpoint with the key chain when there is one, else
// with v.
func (o VerifyOptions) open(msg []byte, v note.Verifiers) (Checkpoint, error) {
	if o.Keys != nil {
		return o.Keys.OpenCheckpoint(msg)
	}
	return OpenCheckpoint(msg, o.Origin, v)
}

// Report summarises a successful verification.
type Report struct {
	Size        int64      // entries verified
	Root        tlog.Hash  // recomputed tree hash of all Size entries
	Checkpoints int        // stored checkpoints verified
	Trusted     int        // trusted checkpoints the log was shown to extend
	Latest      Checkpoint // largest stored checkpoint; zero if none
	Unsigned    int64      // entries after Latest, not yet covered by a checkpoint
}

// VerifyError reports the first problem Verify found.
type VerifyError struct {
	// Index is the first entry that is, or may be, bad. When a checkpoint
	// does not match, the altered entry is somewhere in [Index, checkpoint
	// size). It is -1 when no entry is implicated (a bad signature).
	Index  int64
	Reason string
	Err    error // the underlying cause, if any
}

func (e *VerifyError) Error() string {
	s := "ledger: verify: "
	if e.Index >= 0 {
		s += fmt.Sprintf("index %d: ", e.Index)
	}
	s += e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *VerifyError) Unwrap() error { return e.Err }

// namedCheckpoint is an opened checkpoint and how to refer to it in errors.
type namedCheckpoint struct {
	Checkpoint
	label   string
	trusted bool
}

// Verify checks a stored ledger offline. It decodes every entry strictly,
// recomputes every leaf hash and every stored node hash and compares them
// with the stored ones, verifies the signature of every stored and trusted
// checkpoint, and checks that each checkpoint's root equals the recomputed
// tree hash at its size (so the log extends every trusted checkpoint). It
// stops at the first problem and returns it as a *VerifyError; other errors
// are failures to read src. Entries past the largest checkpoint are checked
// for internal consistency but are not covered by a signature: see
// Report.Unsigned.
func Verify(ctx context.Context, src Source, checkpoints []SignedCheckpoint, v note.Verifiers, opts VerifyOptions) (Report, error) {
	if !validOrigin(opts.Origin) {
		return Report{}, fmt.Errorf("ledger: verify: bad origin %q", opts.Origin)
	}
	if opts.Keys != nil && opts.Keys.Origin() != opts.Origin {
		return Report{}, fmt.Errorf("ledger: verify: key chain of %q for the log %q", opts.Keys.Origin(), opts.Origin)
	}
	batch := int64(opts.Batch)
	if batch <= 0 {
		batch = 4096
	}
	var cps []namedCheckpoint
	var rep Report
	open := func(list []SignedCheckpoint, kind string, trusted bool) error {
		for i, msg := range list {
			label := fmt.Sprintf("%s %d", kind, i)
			c, err := opts.open(msg, v)
			if err != nil {
				return &VerifyError{Index: -1, Reason: label + " does not verify", Err: err}
			}
			cps = append(cps, namedCheckpoint{c, label, trusted})
			if !trusted && c.Size >= rep.Latest.Size {
				rep.Latest = c
			}
		}
		return nil
	}
	if err := open(checkpoints, "checkpoint", false); err != nil {
		return Report{}, err
	}
	if err := open(opts.Trusted, "trusted checkpoint", true); err != nil {
		return Report{}, err
	}
	trusted := slices.DeleteFunc(slices.Clone(cps), func(c namedCheckpoint) bool { return !c.trusted })
	slices.SortStableFunc(cps, func(a, b namedCheckpoint) int { return cmp.Compare(a.Size, b.Size) })

	n, err := src.Size(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("ledger: verify: size: %w", err)
	}
	var f frontier
	var goodSize int64 // largest checkpoint size known to match
	// unknown is the first entry recording a key transition the chain
	// does not hold: a rotation still under way, which no checkpoint may
	// cover (the transition's note must be in the chain first).
	unknown := int64(-1)
	// check compares the checkpoints at size with the recomputed tree.
	check := func(size int64) error {
		if len(cps) == 0 || cps[0].Size != size {
			return nil
		}
		if unknown >= 0 && size > unknown {
			return &VerifyError{Index: unknown, Reason: fmt.Sprintf(
				"%s (size %d) covers an entry recording a key transition that the key chain does not hold", cps[0].label, size)}
		}
		root, err := tlog.TreeHash(size, &f)
		if err != nil {
			return fmt.Errorf("ledger: verify: tree hash at %d: %w", size, err)
		}
		for len(cps) > 0 && cps[0].Size == size {
			c := cps[0]
			cps = cps[1:]
			if root != c.Root {
				return &VerifyError{Index: goodSize, Reason: fmt.Sprintf(
					"%s (size %d) does not match the recomputed tree: an entry in [%d, %d) was altered, or the log was forked",
					c.label, c.Size, goodSize, c.Size)}
			}
			if c.trusted {
				rep.Trusted++
			} else {
				rep.Checkpoints++
			}
		}
		goodSize = size
		return nil
	}
	if err := check(0); err != nil {
		return Report{}, err
	}
	for start := int64(0); start < n; start += batch {
		if err := ctx.Err(); err != nil {
			return Report{}, fmt.Errorf("ledger: verify: %w", err)
		}
		end := min(start+batch, n)
		if err := verifyBatch(ctx, src, start, end, &f, check, opts.Keys, &unknown); err != nil {
			return Report{}, err
		}
	}
	if len(cps) > 0 {
		c := cps[len(cps)-1]
		return Report{}, &VerifyError{Index: n, Reason: fmt.Sprintf(
			"log has %d entries but %s commits to %d: entries were deleted, truncated or rolled back",
			n, c.label, c.Size)}
	}
	rep.Size = n
	if rep.Root, err = tlog.TreeHash(n, &f); err != nil {
		return Report{}, fmt.Errorf("ledger: verify: tree hash at %d: %w", n, err)
	}
	// Recomputation above already shows the log extends each trusted
	// checkpoint; also check the consistency proofs the stored hashes
	// yield, since those are what the server hands to auditors.
	head := Checkpoint{Origin: opts.Origin, Size: n, Root: rep.Root}
	for _, t := range trusted {
		p, err := ProveConsistency(ctx, src, t.Size, n)
		if err != nil {
			return Report{}, &VerifyError{Index: t.Size, Reason: "no consistency proof from " + t.label, Err: err}
		}
		if err := VerifyConsistency(t.Checkpoint, head, p); err != nil {
			return Report{}, &VerifyError{Index: t.Size, Reason: "log does not extend " + t.label, Err: err}
		}
	}
	rep.Unsigned = n - rep.Latest.Size
	return rep, nil
}

// verifyBatch checks entries [start, end) against their stored hashes and
// extends f, calling check after each entry with the new tree size. With
// a key chain, it checks that each transition is recorded at its place,
// and sets *unknown (when -1) to the first entry recording a transition
// the chain does not hold.
func verifyBatch(ctx context.Context, src Source, start, end int64, f *frontier, check func(int64) error, keys *KeyChain, unknown *int64) error {
	entries, err := src.ReadEntries(ctx, start, end)
	if err != nil {
		return fmt.Errorf("ledger: verify: read entries [%d, %d): %w", start, end, err)
	}
	if int64(len(entries)) != end-start {
		return &VerifyError{Index: start + int64(len(entries)), Reason: fmt.Sprintf(
			"storage returned %d entries for [%d, %d)", len(entries), start, end)}
	}
	lo, hi := tlog.StoredHashIndex(0, start), tlog.StoredHashIndex(0, end)
	indexes := make([]int64, 0, hi-lo)
	for x := lo; x < hi; x++ {
		indexes = append(indexes, x)
	}
	stored, err := src.ReadHashes(ctx, indexes)
	if err == nil && len(stored) != len(indexes) {
		err = fmt.Errorf("read %d of %d", len(stored), len(indexes))
	}
	if err != nil {
		return &VerifyError{Index: start, Reason: fmt.Sprintf(
			"stored hashes of entries [%d, %d) cannot be read", start, end), Err: err}
	}
	for i, data := range entries {
		index := start + int64(i)
		e, err := DecodeEntry(data)
		if err != nil {
			return &VerifyError{Index: index, Reason: "entry is malformed", Err: err}
		}
		if keys != nil {
			if err := keys.CheckEntry(index, e); err != nil {
				return &VerifyError{Index: index, Reason: "key transition not recorded", Err: err}
			}
			if e.Action == TransitionAction && !keys.Recorded(index) && unknown != nil && *unknown < 0 {
				*unknown = index
			}
		}
		hs, err := tlog.StoredHashesForRecordHash(index, tlog.RecordHash(data), f)
		if err != nil {
			return fmt.Errorf("ledger: verify: hashes of %d: %w", index, err)
		}
		at := tlog.StoredHashIndex(0, index) - lo
		for level, h := range hs {
			if stored[at+int64(level)] == h {
				continue
			}
			reason := "stored leaf hash does not match the entry"
			if level > 0 {
				reason = fmt.Sprintf("stored tree hash at level %d does not match the entries", level)
			}
			return &VerifyError{Index: index, Reason: reason}
		}
		f.add(index, hs)
		if err := check(index + 1); err != nil {
			return err
		}
	}
	return nil
}

// frontier holds, per level, the hash of the most recent complete subtree:
// all that tlog needs to extend the tree by one record or to hash the tree
// so far. It keeps Verify's memory constant in the log size.
type frontier struct {
	index [64]int64 // storage index + 1 of the hash held per level; 0 = none
	hash  [64]tlog.Hash
}

// add records the stored hashes of record n.
func (f *frontier) add(n int64, hs []tlog.Hash) {
	base := tlog.StoredHashIndex(0, n)
	for level, h := range hs {
		f.index[level] = base + int64(level) + 1
		f.hash[level] = h
	}
}

// ReadHashes implements tlog.HashReader over the frontier.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, _ := tlog.SplitStoredHashIndex(x)
		if level >= len(f.index) || f.index[level] != x+1 {
			return nil, fmt.Errorf("ledger: hash %d is not on the frontier", x)
		}
		out[i] = f.hash[level]
	}
	return out, nil
}
