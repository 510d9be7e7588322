// Package audit writes Ward's audit ledger into the store: it appends
// encoded entries together with the Merkle tree hashes they add, inside
// the caller's storage transaction (so a write and its entry commit
// together), or through group commit (so many concurrent reads share one
// transaction and one sync, and each waits until its entry is durable).
// A Log opened with OpenSpooled makes each group durable in a spool file
// instead and folds it into the ledger in batches (spool.go explains why
// and how).
//
// Guarantees: Append returns nil only after the entry is durable (committed,
// or synced to the spool, whose entries reach the ledger exactly once, also
// across crashes); any failure (database down, disk full, I/O error) is
// returned to every waiter, so the caller can refuse to serve (DESIGN
// invariant 3). Entries get their indexes from the store's ledger lock, so
// several processes sharing a database append to one sequence with no gaps
// and no forks.
//
// What it does not do: decide what an entry says (package ledger defines
// the encoding), or sign checkpoints.
package audit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// Store is what the ledger writer needs of the storage contract:
// transactions to append in, the ledger to read back, and the marks of
// spools. Every store.Store is one.
type Store interface {
	store.Beginner
	store.LedgerReader
	store.Spools
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: log closed")

// Record is one encoded entry and the columns stored beside it.
type Record = store.LedgerEntry

// NewRecord encodes e and copies out the columns the store finds it by:
// its patient, the patients of its list exactly as encoded (so the entry
// is found under each patient it names, see ledger.Entry.SetPatients),
// its actor and client exactly as encoded, and its time to the
// microsecond.
func NewRecord(e ledger.Entry) (Record, error) {
	enc, err := e.Encode()
	if err != nil {
		return Record{}, err
	}
	return Record{
		Entry: enc, Patient: ledger.Clean(e.Patient), Patients: ledger.CanonicalPatients(e.Patients),
		Time:  e.Time.UTC().Truncate(time.Microsecond),
		Actor: ledger.StoredField(e.Actor), Client: ledger.StoredField(e.Client),
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
	hr := &overlayReader{ctx: ctx, tx: tx, added: make(map[int64]tlog.Hash, 2*len(recs)+64)}
	// Every hash the new entries need is a root of the tree's complete
	// subtrees at this size (its frontier) or one they add themselves:
	// read the frontier in one query rather than one per entry.
	if err := hr.prefetch(frontier(size)); err != nil {
		return fmt.Errorf("audit: tree hashes at size %d: %w", size, err)
	}
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

// frontier returns the stored hash indexes of the roots of the complete
// subtrees a tree of size n is made of, one per set bit of n.
func frontier(n int64) []int64 {
	var out []int64
	for l := 0; n>>l > 0; l++ {
		if (n>>l)&1 == 1 {
			out = append(out, tlog.StoredHashIndex(l, n>>l-1))
		}
	}
	return out
}

func (r *overlayReader) prefetch(indexes []int64) error {
	if len(indexes) == 0 {
		return nil
	}
	hs, err := r.tx.LedgerHashes(r.ctx, indexes)
	if err != nil {
		return err
	}
	for i, x := range indexes {
		r.added[x] = hs[i]
	}
	return nil
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

	// For a Log with a spool (OpenSpooled):
	FoldInterval time.Duration // longest a spooled entry waits for a fold to start; default 100ms
	MaxUnfolded  int           // spooled entries that may wait to be folded; default 1<<17
	// WrapSpool wraps the spool's file, to inject faults in tests.
	WrapSpool func(SpoolFile) SpoolFile
	// For a Log on the pending table (OpenPending): how many groups are
	// written at once; default 1.
	Writers int
	// Observer receives the committer's measurements (Ward's metrics);
	// nil: none are taken.
	Observer Observer
}

// Observer receives a Log's measurements. Its methods are called from the
// committer's and the folder's goroutines and must return quickly.
type Observer interface {
	// Group reports one group of entries written (committed, or synced
	// to the spool): how many, how long its oldest entry waited from
	// Append until the group was durable or failed, and whether it failed.
	Group(entries int, wait time.Duration, failed bool)
	// Fold reports one batch of spooled entries folded into the ledger:
	// how many, how long the fold's transaction took, whether it failed.
	Fold(entries int, took time.Duration, failed bool)
}

// Stats is the state of a Log's queue and spool, for readiness checks
// and metrics.
type Stats struct {
	Queued int // entries waiting for the committer
	// For a Log with a spool:
	Spooled     bool
	Unfolded    int   // spooled entries waiting to be folded
	MaxUnfolded int   // the bound past which Append fails with ErrBacklog
	Broken      error // the spool refuses entries until Ward restarts
	FoldErr     error // the latest fold failed (it is retried); nil after a success
	Closed      bool
}

func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4096
	}
	if c.FoldInterval <= 0 {
		// Each fold is a database commit, and on SQLite every commit makes
		// each reader connection drop its page cache: folding ten times a
		// second instead of a hundred measured 10% more closed-loop reads
		// (BenchmarkClosedLoop), at no cost to durability (the spool holds
		// the entries) or to auditors (the ledger's readers flush first).
		c.FoldInterval = 100 * time.Millisecond
	}
	if c.MaxUnfolded <= 0 {
		c.MaxUnfolded = 1 << 17
	}
	return c
}

// Log appends entries through group commit.
type Log struct {
	st       Store
	maxBatch int
	sp       *spool        // nil: each group commits to the store
	pd       *pendingTable // nil: no pending table
	replayed int           // entries OpenSpooled or OpenPending folded at the start
	obs      Observer

	// With a pending table, groups are written at once, up to one per
	// slot; the writes in flight are counted so that Close waits for them.
	slots    chan struct{}
	inflight sync.WaitGroup

	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	closed  bool
	stopped chan struct{}
}

type pending struct {
	rec    Record
	done   chan error
	queued time.Time // when Append queued it; zero without an Observer
}

// New starts a group committer over st that commits each group of entries
// to the store. Close stops it.
func New(st Store, cfg Config) *Log {
	l := newLog(st, cfg.withDefaults())
	go l.run()
	return l
}

func newLog(st Store, cfg Config) *Log {
	return &Log{st: st, maxBatch: cfg.MaxBatch, obs: cfg.Observer, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// Stats returns the state of the log's queue and spool.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	st := Stats{Queued: len(l.queue), Closed: l.closed}
	l.mu.Unlock()
	if s := l.sp; s != nil {
		s.mu.Lock()
		st.Spooled, st.Unfolded, st.MaxUnfolded = true, len(s.unfolded), s.maxUnfolded
		st.Broken, st.FoldErr = s.broken, s.foldErr
		s.mu.Unlock()
	}
	if l.pd != nil {
		l.pd.stats(&st)
	}
	return st
}

// Append adds entries and returns once all are committed, or with the
// error that kept one from being committed. Concurrent calls are batched
// into one transaction. The context bounds the wait; an entry whose wait
// was abandoned may still be committed.
func (l *Log) Append(ctx context.Context, recs ...Record) error {
	ps := make([]*pending, len(recs))
	var queued time.Time
	if l.obs != nil {
		queued = time.Now()
	}
	for i, rec := range recs {
		ps[i] = &pending{rec: rec, done: make(chan error, 1), queued: queued}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, ps...)
	l.mu.Unlock()
	signal(l.wake)
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

// Flush waits until every entry whose Append returned before the call is
// in the store's ledger, where readers of the ledger find it. Without a
// spool that holds already.
func (l *Log) Flush(ctx context.Context) error {
	switch {
	case l.sp != nil:
		return l.sp.flush(ctx)
	case l.pd != nil:
		return l.pd.flush(ctx)
	}
	return nil
}

// Close stops the committer after it has committed what is queued. With a
// spool, it folds what is spooled and removes the spool file; when that
// fails, the file stays for the next OpenSpooled to replay.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	signal(l.wake)
	<-l.stopped
	switch {
	case l.sp != nil:
		return l.sp.close()
	case l.pd != nil:
		return l.pd.close()
	}
	return nil
}

func (l *Log) run() {
	defer close(l.stopped)
	defer l.inflight.Wait()
	for {
		if l.slots != nil {
			// Wait for a free slot before taking a group, so that the
			// queue grows into a larger group meanwhile.
			l.slots <- struct{}{}
		}
		l.mu.Lock()
		batch := l.queue
		if len(batch) > l.maxBatch {
			batch = batch[:l.maxBatch]
		}
		l.queue = l.queue[len(batch):]
		closed := l.closed
		l.mu.Unlock()
		if len(batch) == 0 {
			if l.slots != nil {
				<-l.slots
			}
			if closed {
				return
			}
			<-l.wake
			continue
		}
		recs := make([]Record, len(batch))
		for i, p := range batch {
			recs[i] = p.rec
		}
		if l.pd != nil {
			l.inflight.Add(1)
			go func() {
				defer l.inflight.Done()
				l.deliver(batch, l.pd.write(recs))
				<-l.slots
			}()
			continue
		}
		var err error
		if l.sp != nil {
			err = l.sp.write(recs)
		} else {
			err = commit(l.st, recs, nil)
		}
		l.deliver(batch, err)
		// Let the appenders just woken run on this processor now. Without
		// this the committer goes straight on to the next group's write
		// and sync, holding the processor in system calls while the
		// goroutines it woke wait in its run queue, often for
		// milliseconds: the wake-up would cost more than the sync.
		runtime.Gosched()
	}
}

// deliver reports a group's outcome to its appenders.
func (l *Log) deliver(batch []*pending, err error) {
	if l.obs != nil {
		l.obs.Group(len(batch), time.Since(batch[0].queued), err != nil)
	}
	for _, p := range batch {
		p.done <- err
	}
}

// commitWith runs take in one transaction and appends the records it
// returns to the ledger in the same transaction.
func commitWith(st Store, take func(context.Context, store.Tx) ([]Record, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := store.ReadWrite(ctx, st, func(tx store.Tx) error {
		recs, err := take(ctx, tx)
		if err != nil {
			return err
		}
		return AppendInTx(ctx, tx, recs)
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// commit appends recs to the ledger in one transaction, with whatever
// else also does in it.
func commit(st Store, recs []Record, also func(context.Context, store.Tx) error) error {
	// A database that stops answering (a network partition drops packets
	// rather than resetting connections) must fail the batch, not hold
	// every appender behind it until the operating system gives up.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := store.ReadWrite(ctx, st, func(tx store.Tx) error {
		if err := AppendInTx(ctx, tx, recs); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
