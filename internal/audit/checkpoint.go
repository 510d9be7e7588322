package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// Source is the store's ledger seen as a ledger.Source: for proofs, tree
// hashes and the offline verifier.
func Source(st store.LedgerReader) ledger.Source { return source{st} }

type source struct{ st store.LedgerReader }

func (s source) Size(ctx context.Context) (int64, error) { return s.st.LedgerSize(ctx) }

func (s source) ReadEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	rows, err := s.st.LedgerEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(rows))
	for i, r := range rows {
		if r.Index != start+int64(i) {
			return nil, fmt.Errorf("audit: entry %d missing from the store", start+int64(i))
		}
		out[i] = r.Entry
	}
	if int64(len(out)) != end-start {
		return nil, fmt.Errorf("audit: entries %d..%d: store returned %d", start, end, len(out))
	}
	return out, nil
}

func (s source) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	hs, err := s.st.LedgerHashes(ctx, indexes)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, nil
}

// StoredCheckpoints returns every checkpoint the store holds, smallest
// first, for the offline verifier.
func StoredCheckpoints(ctx context.Context, st store.LedgerReader) ([]ledger.SignedCheckpoint, error) {
	var out []ledger.SignedCheckpoint
	err := st.ListCheckpoints(ctx, func(_ int64, note []byte) error {
		out = append(out, note)
		return nil
	})
	return out, err
}

// CheckpointStore is what the checkpointer needs of a store.
type CheckpointStore interface {
	store.LedgerReader
	PutCheckpoint(ctx context.Context, size int64, note []byte) error
}

// Keys gives the ledger's checkpoint keys as they stand now: the chain
// that verifies them (the log's first key and the transitions recorded
// since) and the signer of its current key. It is asked again at each
// use, so that a rotation made by another process is followed. A
// *ledger.Signer is a Keys whose key never rotated.
type Keys interface {
	LedgerKeys() (*ledger.KeyChain, *ledger.Signer, error)
}

// ErrTransitionPending is returned by Checkpoint when the ledger records a
// key transition that the key chain does not hold yet: the rotation that
// appended it has not finished. No checkpoint is signed over it until
// `ward keys rotate --kind ledger` completes it (a rerun does, after a
// crash); it is not evidence of tampering.
var ErrTransitionPending = errors.New("audit: the ledger records a key transition that is not complete: no checkpoint is signed until ward keys rotate --kind ledger completes it")

// Checkpoint signs a checkpoint of the ledger's current size, unless one of
// that size exists, and stores it. It returns the size and signed note of
// the latest checkpoint. Several processes may run it at once: a size has
// one tree hash, so their checkpoints of it agree, and the first stored is
// kept.
//
// Before signing, it checks that the stored tree extends the latest stored
// checkpoint: that checkpoint must verify under the key chain, the ledger
// must be at least as long, and the stored hashes must yield a consistency
// proof from it to the current tree. Otherwise it signs nothing and returns
// an error wrapping [ErrTampered]: a checkpoint signed on top of an edited,
// truncated or rolled-back ledger would vouch for it.
//
// Key transitions: the keys are asked after the size is read, and the
// entries since the latest checkpoint are read; a checkpoint is signed
// only by the key the chain puts in force at its size, and never over an
// entry recording a transition the chain does not hold
// ([ErrTransitionPending]). So a rotation under way in another process,
// however the processes interleave, never gets a checkpoint signed by the
// wrong key.
func Checkpoint(ctx context.Context, st CheckpointStore, keys Keys) (int64, []byte, error) {
	src := Source(st)
	// The order matters. The previous checkpoint before the size: the
	// ledger only grows, so a size below the checkpoint's is a ledger
	// that lost entries, not another process's checkpoint signed in
	// between. The keys after both: they know every key that signed the
	// checkpoint, and every transition recorded below the size that is
	// complete.
	prevSize, prevNote, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		prevNote = nil
	} else if err != nil {
		return 0, nil, err
	}
	size, err := src.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	chain, signer, err := keys.LedgerKeys()
	if err != nil {
		return 0, nil, err
	}
	prev, err := openLatest(ctx, st, chain, prevSize, prevNote)
	if err != nil {
		return 0, nil, err
	}
	if size < prev.Size {
		return 0, nil, fmt.Errorf("%w: the ledger holds %d entries but the latest checkpoint commits to %d: entries were deleted, truncated or rolled back",
			ErrTampered, size, prev.Size)
	}
	if err := checkTransitions(ctx, src, chain, prev.Size, size); err != nil {
		return 0, nil, err
	}
	root, err := ledger.TreeHash(ctx, src, size)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: tree hash at %d: %w", size, err)
	}
	head := ledger.Checkpoint{Origin: chain.Origin(), Size: size, Root: root}
	proof, err := ledger.ProveConsistency(ctx, src, prev.Size, size)
	if err == nil {
		err = ledger.VerifyConsistency(prev, head, proof)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: the tree of %d entries does not extend the latest checkpoint (size %d): an entry below %d was altered, or the ledger was rolled back or forked: %w",
			ErrTampered, size, prev.Size, prev.Size, err)
	}
	if note, err := st.Checkpoint(ctx, size); err == nil {
		return size, note, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, nil, err
	}
	if signer == nil || signer.Name() != chain.Origin() || signer.KeyHash() != chain.At(size).KeyHash() {
		// The chain puts a transition after this size (recorded after
		// the size was read): the key in force here no longer signs.
		return 0, nil, fmt.Errorf("%w (the key in force at size %d is not this process's)", ErrTransitionPending, size)
	}
	note, err := ledger.SignCheckpoint(head, signer)
	if err != nil {
		return 0, nil, err
	}
	if err := st.PutCheckpoint(ctx, size, note); err != nil {
		return 0, nil, err
	}
	stored, err := st.Checkpoint(ctx, size)
	return size, stored, err
}

// checkTransitions reads the entries [from, to): each recording a key
// transition must be one the chain holds, at its place.
func checkTransitions(ctx context.Context, src ledger.Source, chain *ledger.KeyChain, from, to int64) error {
	const batch = 4096
	for start := from; start < to; start += batch {
		end := min(start+batch, to)
		entries, err := src.ReadEntries(ctx, start, end)
		if err != nil {
			return err
		}
		for i, data := range entries {
			index := start + int64(i)
			e, err := ledger.DecodeEntry(data)
			if err != nil {
				return fmt.Errorf("%w: entry %d is malformed: %w", ErrTampered, index, err)
			}
			if err := chain.CheckEntry(index, e); err != nil {
				return fmt.Errorf("%w: %w", ErrTampered, err)
			}
			if e.Action == ledger.TransitionAction && !chain.Recorded(index) {
				return fmt.Errorf("%w (entry %d)", ErrTransitionPending, index)
			}
		}
	}
	return nil
}

// openLatest opens the latest stored checkpoint (msg, stored for size)
// under the key chain; with none stored (msg nil), it is the empty
// tree's.
func openLatest(ctx context.Context, st store.LedgerReader, chain *ledger.KeyChain, size int64, msg []byte) (ledger.Checkpoint, error) {
	if msg == nil {
		root, err := ledger.TreeHash(ctx, Source(st), 0)
		return ledger.Checkpoint{Origin: chain.Origin(), Root: root}, err
	}
	c, err := chain.OpenCheckpoint(msg)
	if err == nil && c.Size != size {
		err = fmt.Errorf("stored as size %d, signed for %d", size, c.Size)
	}
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: the latest stored checkpoint does not verify: %w", ErrTampered, err)
	}
	return c, nil
}

// RunCheckpoints signs a checkpoint every interval while entries arrive,
// until ctx ends or halt is stopped. Failures are reported to onErr and
// retried at the next tick, except a ledger that no longer extends its
// checkpoints ([ErrTampered]): that stops halt, and with it this
// checkpointer and every other signer that consults halt.
func RunCheckpoints(ctx context.Context, st CheckpointStore, keys Keys, interval time.Duration, halt *Halt, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ran := false
		err := halt.Do(func() error {
			ran = true
			_, _, err := Checkpoint(ctx, st, keys)
			return err
		})
		switch {
		case !ran:
			return // halted
		case err != nil && ctx.Err() == nil:
			if errors.Is(err, ErrTampered) {
				halt.Stop(err)
			}
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-halt.Done():
			return
		case <-t.C:
		}
	}
}
