package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// HashReader reads stored hashes of the tree by their tlog storage index
// (see tlog.StoredHashIndex). It must return exactly one hash per index, in
// the order asked, or an error. A storage backend implements it over its
// ledger hash table.
type HashReader interface {
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// tlogReader adapts a HashReader to tlog's context-free interface.
func tlogReader(ctx context.Context, hr HashReader) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := hr.ReadHashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		if len(hs) != len(indexes) {
			return nil, fmt.Errorf("ledger: read %d hashes, asked for %d", len(hs), len(indexes))
		}
		return hs, nil
	})
}

// LeafHash returns the RFC 6962 leaf hash of an encoded entry.
func LeafHash(encoded []byte) tlog.Hash { return tlog.RecordHash(encoded) }

// StoredHashes returns the hashes to store when the entry with leaf hash
// leaf is appended at index; they go at tlog.StoredHashIndex(0, index)
// onwards, consecutively. The caller must hold the sequencing lock (see the
// package documentation) so that hr sees every earlier stored hash.
func StoredHashes(ctx context.Context, hr HashReader, index int64, leaf tlog.Hash) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashesForRecordHash(index, leaf, tlogReader(ctx, hr))
	if err != nil {
		return nil, fmt.Errorf("ledger: stored hashes for %d: %w", index, err)
	}
	return hs, nil
}

// TreeHash returns the root hash of the tree of the first size entries.
func TreeHash(ctx context.Context, hr HashReader, size int64) (tlog.Hash, error) {
	if size < 0 {
		return tlog.Hash{}, fmt.Errorf("ledger: negative tree size %d", size)
	}
	h, err := tlog.TreeHash(size, tlogReader(ctx, hr))
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("ledger: tree hash at %d: %w", size, err)
	}
	return h, nil
}

// ProveInclusion returns the RFC 6962 audit path for the entry at index in
// the tree of size entries: at most ceil(log2 size) hashes.
func ProveInclusion(ctx context.Context, hr HashReader, index, size int64) (tlog.RecordProof, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("ledger: no entry %d in a tree of size %d", index, size)
	}
	p, err := tlog.ProveRecord(size, index, tlogReader(ctx, hr))
	if err != nil {
		return nil, fmt.Errorf("ledger: inclusion proof for %d in %d: %w", index, size, err)
	}
	return p, nil
}

// ProveConsistency returns the RFC 6962 consistency proof that the tree of
// size entries extends the tree of oldSize entries. For 0 < oldSize == size
// the proof is empty; oldSize 0 is consistent with everything and needs no
// proof.
func ProveConsistency(ctx context.Context, hr HashReader, oldSize, size int64) (tlog.TreeProof, error) {
	if oldSize < 0 || oldSize > size {
		return nil, fmt.Errorf("ledger: no consistency proof from size %d to %d", oldSize, size)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(size, oldSize, tlogReader(ctx, hr))
	if err != nil {
		return nil, fmt.Errorf("ledger: consistency proof from %d to %d: %w", oldSize, size, err)
	}
	return p, nil
}

// ErrProof is wrapped by every proof verification failure: the proof, the
// entry or the checkpoint is not what the log committed to.
var ErrProof = errors.New("ledger: proof rejected")

// VerifyInclusion checks that the entry with leaf hash leaf is at index in
// the tree that c commits to. c must come from [OpenCheckpoint].
func VerifyInclusion(c Checkpoint, index int64, leaf tlog.Hash, p tlog.RecordProof) error {
	if index < 0 || index >= c.Size {
		return fmt.Errorf("%w: index %d outside checkpoint of size %d", ErrProof, index, c.Size)
	}
	if err := tlog.CheckRecord(p, c.Size, c.Root, index, leaf); err != nil {
		return fmt.Errorf("%w: entry %d not included in tree of size %d: %w", ErrProof, index, c.Size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree newer commits to extends the tree
// older commits to: same origin, newer.Size >= older.Size, and the proof
// holds. Equal sizes need equal roots and an empty proof; an older size of
// 0 needs an empty proof.
func VerifyConsistency(older, newer Checkpoint, p tlog.TreeProof) error {
	switch {
	case older.Origin != newer.Origin:
		return fmt.Errorf("%w: checkpoints of different logs", ErrProof)
	case older.Size < 0 || newer.Size < older.Size:
		return fmt.Errorf("%w: size %d does not extend size %d", ErrProof, newer.Size, older.Size)
	case older.Size == 0:
		if len(p) != 0 || older.Root != emptyRoot() {
			return fmt.Errorf("%w: bad proof from the empty tree", ErrProof)
		}
		return nil
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("%w: tree of size %d does not extend tree of size %d: %w", ErrProof, newer.Size, older.Size, err)
	}
	return nil
}

// emptyRoot is the RFC 6962 hash of the empty tree.
func emptyRoot() tlog.Hash {
	h, _ := tlog.TreeHash(0, nil) // reads nothing for size 0
	return h
}
