package ledger

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// MemLog is a ledger held in memory: encoded entries and their stored
// hashes. It is the reference implementation of [HashReader] and [Source]
// for tests and benchmarks; it is not durable. It is safe for concurrent
// use, and a single MemLog is trivially one sequence.
type MemLog struct {
	mu      sync.RWMutex
	entries [][]byte
	hashes  []tlog.Hash // indexed by tlog storage index
}

// Append encodes and appends entries, computing their stored hashes
// incrementally. It returns the index of the first appended entry. Nothing
// is appended if any entry fails to encode.
func (m *MemLog) Append(entries ...Entry) (int64, error) {
	encoded := make([][]byte, len(entries))
	for i, e := range entries {
		b, err := e.Encode()
		if err != nil {
			return 0, err
		}
		encoded[i] = b
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	first := int64(len(m.entries))
	for _, b := range encoded {
		if err := m.appendEncoded(b); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// appendEncoded appends one encoded entry; m.mu must be held.
func (m *MemLog) appendEncoded(b []byte) error {
	n := int64(len(m.entries))
	hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(b), m.reader())
	if err != nil {
		return fmt.Errorf("ledger: append %d: %w", n, err)
	}
	m.entries = append(m.entries, b)
	m.hashes = append(m.hashes, hs...)
	return nil
}

// reader reads m.hashes without locking; m.mu must be held.
func (m *MemLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(m.hashes)) {
				return nil, fmt.Errorf("ledger: no stored hash %d", x)
			}
			out[i] = m.hashes[x]
		}
		return out, nil
	})
}

// Size returns the number of entries.
func (m *MemLog) Size(context.Context) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.entries)), nil
}

// ReadHashes implements [HashReader].
func (m *MemLog) ReadHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.reader().ReadHashes(indexes)
}

// ReadEntries returns copies of the encoded entries [start, end).
func (m *MemLog) ReadEntries(_ context.Context, start, end int64) ([][]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if start < 0 || end < start || end > int64(len(m.entries)) {
		return nil, fmt.Errorf("ledger: no entries [%d, %d) in a log of %d", start, end, len(m.entries))
	}
	out := make([][]byte, 0, end-start)
	for _, b := range m.entries[start:end] {
		out = append(out, append([]byte(nil), b...))
	}
	return out, nil
}
