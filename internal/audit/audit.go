// Package audit writes Ward's audit ledger into the store: it appends
// encoded entries together with the Merkle tree hashes they add, inside
// the caller's storage transaction (so a write and its entry commit
// together), or through group commit (so many concurrent reads share one
// transaction and one sync, and each waits until its entry is durable).
//
// Guarantees: Append returns nil only after the entry is committed; any
// failure (database down, disk full, I/O error) is returned to every
// waiter, so the caller can refuse to serve (DESIGN invariant 3). Entries
// get their indexes from the store's ledger lock, so several processes
// sharing a database append to one sequence with no gaps and no forks.
//
// What it does not do: decide what an entry says (package ledger defines
// the encoding), or sign checkpoints.
package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: log closed")

// Record is one encoded entry and the columns stored beside it.
type Record = store.LedgerEntry

// NewRecord encodes e and copies out the columns the store finds it by:
// its patient, the patients of its list exactly as encoded (so the entry
// is found under each patient it names, see ledger.Entry.SetPatients),
// and its time to the microsecond.
func NewRecord(e ledger.Entry) (Record, error) {
	enc, err := e.Encode()
	if err != nil {
		return Record{}, err
	}
	return Record{
		Entry: enc, Patient: e.Patient, Patients: ledger.CanonicalPatients(e.Patients),
		Time: e.Time.UTC().Truncate(time.Microsecond),
	}, nil
}

// AppendInTx appends records to the ledger inside tx, after taking the
// ledger lock; their Index fields are assigned here. It computes the
// stored tree hashes each record adds (RFC 6962, tlog storage layout).
func AppendInTx(ctx context.Context, tx store.Tx, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	size, err := tx.LockLedger(ctx)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	hr := &overlayReader{ctx: ctx, tx: tx, added: make(map[int64]tlog.Hash, 2*len(recs))}
	var hashes []store.LedgerHash
	for i := range recs {
		n := size + int64(i)
		recs[i].Index = n
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(recs[i].Entry), hr)
		if err != nil {
			return fmt.Errorf("audit: tree hashes of entry %d: %w", n, err)
		}
		first := tlog.StoredHashIndex(0, n)
		for k, h := range hs {
			idx := first + int64(k)
			hr.added[idx] = h
			hashes = append(hashes, store.LedgerHash{Index: idx, Hash: h})
		}
	}
	if err := tx.AppendLedger(ctx, recs, hashes); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// overlayReader reads stored hashes from the transaction, and those added
// earlier in the same batch from memory.
type overlayReader struct {
	ctx   context.Context
	tx    store.Tx
	added map[int64]tlog.Hash
}

func (r *overlayReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for i, x := range indexes {
		if h, ok := r.added[x]; ok {
			out[i] = h
		} else {
			missing = append(missing, x)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	got, err := r.tx.LedgerHashes(r.ctx, missing)
	if err != nil {
		return nil, err
	}
	j := 0
	for i, x := range indexes {
		if _, ok := r.added[x]; !ok {
			out[i] = got[j]
			j++
		}
	}
	return out, nil
}

// HashReader reads the stored tree hashes of a store, for proofs and tree
// hashes outside a transaction.
func HashReader(ctx context.Context, st store.LedgerReader) tlog.HashReader {
	src := source{st}
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) { return src.ReadHashes(ctx, indexes) })
}

// commitTimeout bounds one group commit.
const commitTimeout = 30 * time.Second

// Config sets the group committer's limits. Zero values mean the defaults.
type Config struct {
	MaxBatch int // entries per transaction; default 4096
}

// Log appends entries through group commit.
type Log struct {
	st       store.Store
	maxBatch int

	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	closed  bool
	stopped chan struct{}
}

type pending struct {
	rec  Record
	done chan error
}

// New starts a group committer over st. Close stops it.
func New(st store.Store, cfg Config) *Log {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	l := &Log{st: st, maxBatch: cfg.MaxBatch, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go l.run()
	return l
}

// Append adds entries and returns once all are committed, or with the
// error that kept one from being committed. Concurrent calls are batched
// into one transaction. The context bounds the wait; an entry whose wait
// was abandoned may still be committed.
func (l *Log) Append(ctx context.Context, recs ...Record) error {
	ps := make([]*pending, len(recs))
	for i, rec := range recs {
		ps[i] = &pending{rec: rec, done: make(chan error, 1)}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, ps...)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	for _, p := range ps {
		select {
		case err := <-p.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("audit: waiting for the ledger: %w", ctx.Err())
		}
	}
	return nil
}

// Close stops the committer after it has committed what is queued.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.stopped
	return nil
}

func (l *Log) run() {
	defer close(l.stopped)
	for {
		l.mu.Lock()
		batch := l.queue
		if len(batch) > l.maxBatch {
			batch = batch[:l.maxBatch]
		}
		l.queue = l.queue[len(batch):]
		closed := l.closed
		l.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-l.wake
			continue
		}
		err := l.commit(batch)
		for _, p := range batch {
			p.done <- err
		}
	}
}

func (l *Log) commit(batch []*pending) error {
	// A database that stops answering (a network partition drops packets
	// rather than resetting connections) must fail the batch, not hold
	// every appender behind it until the operating system gives up.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	recs := make([]Record, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	tx, err := l.st.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := AppendInTx(ctx, tx, recs); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	return nil
}
