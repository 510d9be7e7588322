package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// Errors of the auditor's view that callers turn into 4xx answers.
var (
	ErrNoCheckpoint = errors.New("audit: the ledger has no checkpoint yet")
	ErrRange        = errors.New("audit: index or size out of range")
)

// MaxEntriesPerRead bounds one read of ledger entries.
const MaxEntriesPerRead = 1000

// View serves the ledger to auditors: the latest checkpoint, entries by
// range, and proofs that a third party can check against checkpoints.
type View struct {
	st store.LedgerReader
}

// NewView returns the auditor's view of st's ledger.
func NewView(st store.LedgerReader) *View { return &View{st: st} }

// Checkpoint returns the latest signed checkpoint.
func (v *View) Checkpoint(ctx context.Context) ([]byte, error) {
	_, note, err := v.st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoCheckpoint
	}
	return note, err
}

// IndexedEntry is one encoded entry at its index.
type IndexedEntry struct {
	Index int64
	Entry []byte
}

// Entries returns the entries with start <= index < end; at most
// MaxEntriesPerRead, and not past the ledger's size.
func (v *View) Entries(ctx context.Context, start, end int64) ([]IndexedEntry, error) {
	size, err := v.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	if start < 0 || end < start || start > size {
		return nil, ErrRange
	}
	end = min(end, size, start+MaxEntriesPerRead)
	rows, err := v.st.LedgerEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]IndexedEntry, len(rows))
	for i, r := range rows {
		out[i] = IndexedEntry{Index: r.Index, Entry: r.Entry}
	}
	return out, nil
}

// Inclusion proves that entry index is in the tree of the given size
// (0: the latest checkpoint's size). It returns the entry's leaf hash too.
func (v *View) Inclusion(ctx context.Context, index, size int64) (tlog.Hash, tlog.RecordProof, int64, error) {
	size, err := v.sizeOrLatest(ctx, size)
	if err != nil {
		return tlog.Hash{}, nil, 0, err
	}
	if index < 0 || index >= size {
		return tlog.Hash{}, nil, 0, ErrRange
	}
	rows, err := v.st.LedgerEntries(ctx, index, index+1)
	if err != nil {
		return tlog.Hash{}, nil, 0, err
	}
	if len(rows) != 1 {
		return tlog.Hash{}, nil, 0, fmt.Errorf("audit: entry %d missing", index)
	}
	p, err := ledger.ProveInclusion(ctx, Source(v.st), index, size)
	return ledger.LeafHash(rows[0].Entry), p, size, err
}

// Consistency proves that the tree of size old is a prefix of the tree of
// size (0: the latest checkpoint's size).
func (v *View) Consistency(ctx context.Context, old, size int64) (tlog.TreeProof, int64, error) {
	size, err := v.sizeOrLatest(ctx, size)
	if err != nil {
		return nil, 0, err
	}
	if old < 1 || old > size {
		return nil, 0, ErrRange
	}
	p, err := ledger.ProveConsistency(ctx, Source(v.st), old, size)
	return p, size, err
}

func (v *View) sizeOrLatest(ctx context.Context, size int64) (int64, error) {
	if size == 0 {
		latest, _, err := v.st.LatestCheckpoint(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return 0, ErrNoCheckpoint
		}
		return latest, err
	}
	n, err := v.st.LedgerSize(ctx)
	if err != nil {
		return 0, err
	}
	if size < 0 || size > n {
		return 0, ErrRange
	}
	return size, nil
}
