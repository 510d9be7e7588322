package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
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

// Checkpoint signs a checkpoint of the ledger's current size, unless one of
// that size exists, and stores it. It returns the size and signed note of
// the latest checkpoint. Several processes may run it at once: a size has
// one tree hash, so their checkpoints of it agree, and the first stored is
// kept.
//
// Before signing, it checks that the stored tree extends the latest stored
// checkpoint: that checkpoint must be signed by signer's key, the ledger
// must be at least as long, and the stored hashes must yield a consistency
// proof from it to the current tree. Otherwise it signs nothing and returns
// an error wrapping [ErrTampered]: a checkpoint signed on top of an edited,
// truncated or rolled-back ledger would vouch for it.
func Checkpoint(ctx context.Context, st CheckpointStore, signer *ledger.Signer) (int64, []byte, error) {
	src := Source(st)
	// The previous checkpoint before the size: the ledger only grows, so
	// a size below the checkpoint's is a ledger that lost entries, not
	// another process's checkpoint signed in between.
	prev, err := latestCheckpoint(ctx, st, signer)
	if err != nil {
		return 0, nil, err
	}
	size, err := src.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	if size < prev.Size {
		return 0, nil, fmt.Errorf("%w: the ledger holds %d entries but the latest checkpoint commits to %d: entries were deleted, truncated or rolled back",
			ErrTampered, size, prev.Size)
	}
	root, err := ledger.TreeHash(ctx, src, size)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: tree hash at %d: %w", size, err)
	}
	head := ledger.Checkpoint{Origin: signer.Name(), Size: size, Root: root}
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

// latestCheckpoint opens the latest stored checkpoint with signer's key;
// with none stored, it is the empty tree's.
func latestCheckpoint(ctx context.Context, st store.LedgerReader, signer *ledger.Signer) (ledger.Checkpoint, error) {
	size, msg, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		root, err := ledger.TreeHash(ctx, Source(st), 0)
		return ledger.Checkpoint{Origin: signer.Name(), Root: root}, err
	}
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	c, err := ledger.OpenCheckpoint(msg, signer.Name(), note.VerifierList(signer.Verifier()))
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
func RunCheckpoints(ctx context.Context, st CheckpointStore, signer *ledger.Signer, interval time.Duration, halt *Halt, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ran := false
		err := halt.Do(func() error {
			ran = true
			_, _, err := Checkpoint(ctx, st, signer)
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
