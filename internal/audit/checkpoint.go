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

// Checkpoint signs a checkpoint of the ledger's current size, unless one of
// that size exists, and stores it. It returns the size and signed note of
// the latest checkpoint. Several processes may run it at once: a size has
// one tree hash, so their checkpoints of it agree, and the first stored is
// kept.
func Checkpoint(ctx context.Context, st CheckpointStore, signer *ledger.Signer) (int64, []byte, error) {
	src := Source(st)
	size, err := src.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	if note, err := st.Checkpoint(ctx, size); err == nil {
		return size, note, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, nil, err
	}
	root, err := ledger.TreeHash(ctx, src, size)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: tree hash at %d: %w", size, err)
	}
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: signer.Name(), Size: size, Root: root}, signer)
	if err != nil {
		return 0, nil, err
	}
	if err := st.PutCheckpoint(ctx, size, note); err != nil {
		return 0, nil, err
	}
	stored, err := st.Checkpoint(ctx, size)
	return size, stored, err
}

// RunCheckpoints signs a checkpoint every interval while entries arrive,
// until ctx ends. Failures are reported to onErr and retried at the next
// tick.
func RunCheckpoints(ctx context.Context, st CheckpointStore, signer *ledger.Signer, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, _, err := Checkpoint(ctx, st, signer); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
