package audit

// The pending table: durable entries without the ledger's lock.
//
// On a database that several Ward processes share (PostgreSQL), every
// group commit to the ledger takes the ledger's row lock, holds it through
// the commit's WAL flush, and so runs one at a time across all processes:
// reads, each waiting for its entry, are bounded by one group per commit
// latency. A Log opened with OpenPending instead makes each group durable
// in the pending table (store.Pending): one multi-row INSERT that commits
// on its own, no lock, so that the groups of every process commit side by
// side. A folder goroutine moves
// pending entries into the ledger in batches, at most FoldInterval after
// they were written: in one transaction it takes the ledger's lock, reads
// the oldest pending entries (any process's), appends them and deletes
// them. Entries a crashed process left are folded by whichever process
// folds next; nothing needs replaying, and each entry is folded exactly
// once because it is deleted in the transaction that appends it.
//
// Each pending entry carries a tag: an HMAC, under a key from the key file
// (which the database does not hold), over the entry and its columns. A
// fold refuses an entry whose tag does not verify (ErrPendingTag) and
// folds nothing until it is removed: whoever can write the database cannot
// put words into the ledger this way. What the table does not stop: a
// database administrator deleting or holding back entries in the moment
// (about FoldInterval) between their commit and their fold, as the spool
// file cannot stop someone who can write the data directory.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// ErrPendingTag is the error of a fold that found a pending entry whose
// tag does not verify: something other than a Ward process with this key
// file wrote it, or changed it.
var ErrPendingTag = errors.New("audit: a pending ledger entry's tag does not verify (written or changed outside Ward); nothing is folded until it is removed")

// Tagger computes the MAC of a pending entry. keys.MACKey is one.
type Tagger interface {
	Sum(msg []byte) []byte
}

// PendingStore is what a Log on the pending table needs of the store.
type PendingStore interface {
	Store
	store.Pending
}

// pendingDomain separates pending-entry tags from every other MAC made
// with the same key.
const pendingDomain = "ward ledger pending v1\x00"

// defaultPendingWriters is how many groups one process writes at once.
// One: while a group commits, the next one gathers every entry that
// arrives, so the entries share INSERTs and WAL flushes. With 16 readers
// on 2 cores, four groups at once gave 3,640-3,775 reads/s and one gave
// 4,363-4,450, with the lower p99 (docs/PERFORMANCE.md); it was better
// with 4 and 64 readers too.
const defaultPendingWriters = 1

type pendingTable struct {
	st          PendingStore
	tag         Tagger
	writer      string
	maxBatch    int
	maxUnfolded int
	interval    time.Duration
	obs         Observer

	foldMu sync.Mutex // one fold at a time in this process

	mu       sync.Mutex
	next     int64 // sequence number of the next entry
	unfolded int   // entries written since the last fold that drained the table
	foldErr  error

	kick, hurry chan struct{}
	stop, done  chan struct{}
	closeErr    error
}

// OpenPending folds every entry pending in st, whichever process wrote
// it, then starts a Log whose entries are made durable in the pending
// table and folded into the ledger in batches (see above). tag makes and
// checks the entries' tags; every process sharing st must use the same
// key.
func OpenPending(ctx context.Context, st PendingStore, tag Tagger, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	pt := &pendingTable{
		st: st, tag: tag, writer: hex.EncodeToString(b[:]),
		maxBatch: cfg.MaxBatch, maxUnfolded: cfg.MaxUnfolded, interval: cfg.FoldInterval, obs: cfg.Observer,
		next: 1,
		kick: make(chan struct{}, 1), hurry: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	n, err := pt.foldAll(ctx)
	if err != nil {
		return nil, err
	}
	writers := cfg.Writers
	if writers <= 0 {
		writers = defaultPendingWriters
	}
	l := newLog(st, cfg)
	l.pd, l.replayed = pt, n
	l.slots = make(chan struct{}, writers)
	go pt.foldLoop() // #nosec G118 -- the folder outlives OpenPending's context: it runs until Close, each fold bounded by commitTimeout
	go l.run()
	return l, nil
}

// tagMessage is what a pending entry's tag covers: its key, time, columns
// and encoded entry, each length-prefixed.
func tagMessage(writer string, seq int64, r Record) []byte {
	b := make([]byte, 0, len(pendingDomain)+64+len(r.Entry))
	b = append(b, pendingDomain...)
	b = appendString(b, writer)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))                // #nosec G115 -- the bits of the int64, as the MAC's input: every value maps to its own bytes
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro())) // #nosec G115 -- the bits of the int64, as the MAC's input: every value maps to its own bytes
	b = appendString(b, r.Patient)
	b = binary.AppendUvarint(b, uint64(len(r.Patients)))
	for _, p := range r.Patients {
		b = appendString(b, p)
	}
	b = appendString(b, r.Actor)
	b = appendString(b, r.Client)
	return append(b, r.Entry...)
}

// write makes recs durable in the pending table. Several goroutines call
// it at once (Log.run).
func (p *pendingTable) write(recs []Record) error {
	p.mu.Lock()
	if p.unfolded+len(recs) > p.maxUnfolded {
		p.mu.Unlock()
		signal(p.hurry)
		return ErrBacklog
	}
	first := p.next
	p.next += int64(len(recs))
	p.mu.Unlock()
	entries := make([]store.PendingEntry, len(recs))
	for i, r := range recs {
		seq := first + int64(i)
		entries[i] = store.PendingEntry{
			PendingKey: store.PendingKey{Writer: p.writer, Seq: seq},
			Entry:      r,
			Tag:        p.tag.Sum(tagMessage(p.writer, seq, r)),
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := p.st.AddPending(ctx, entries); err != nil {
		return fmt.Errorf("audit: pending: %w", err)
	}
	p.mu.Lock()
	p.unfolded += len(recs)
	full := p.unfolded >= p.maxBatch
	p.mu.Unlock()
	signal(p.kick)
	if full {
		signal(p.hurry)
	}
	return nil
}

// foldLoop folds pending entries into the ledger until the Log closes.
func (p *pendingTable) foldLoop() {
	defer close(p.done)
	backoff := foldBackoff
	for {
		select {
		case <-p.kick:
		case <-p.hurry:
		case <-p.stop:
			_, p.closeErr = p.foldAll(context.Background())
			return
		}
		select {
		case <-p.hurry:
		default:
			t := time.NewTimer(p.interval)
			select {
			case <-t.C:
			case <-p.hurry:
			case <-p.stop:
			}
			t.Stop()
		}
		if _, err := p.foldAll(context.Background()); err != nil {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.hurry:
			case <-p.stop:
			}
			t.Stop()
			backoff = min(2*backoff, maxFoldBackof)
			signal(p.kick)
			continue
		}
		backoff = foldBackoff
	}
}

// foldAll folds batches until one finds fewer than maxBatch entries: then
// every entry committed before the call is in the ledger. It returns how
// many entries it folded.
func (p *pendingTable) foldAll(ctx context.Context) (int, error) {
	p.foldMu.Lock()
	defer p.foldMu.Unlock()
	p.mu.Lock()
	written := p.unfolded
	p.mu.Unlock()
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("audit: waiting for the ledger: %w", err)
		}
		began := time.Now()
		n, err := p.fold()
		if p.obs != nil && (n > 0 || err != nil) {
			p.obs.Fold(n, time.Since(began), err != nil)
		}
		p.mu.Lock()
		p.foldErr = err
		p.mu.Unlock()
		if err != nil {
			return total, err
		}
		total += n
		if n < p.maxBatch {
			break
		}
	}
	// Everything this process wrote before the fold began is folded,
	// by this fold or another process's.
	p.mu.Lock()
	p.unfolded = max(0, p.unfolded-written)
	p.mu.Unlock()
	return total, nil
}

// fold moves one batch of pending entries into the ledger, in one
// transaction, and returns its size.
func (p *pendingTable) fold() (int, error) {
	var n int
	err := commitWith(p.st, func(ctx context.Context, tx store.Tx) ([]Record, error) {
		if _, err := tx.LockLedger(ctx); err != nil {
			return nil, err
		}
		pending, err := tx.PendingEntries(ctx, p.maxBatch)
		if err != nil {
			return nil, err
		}
		recs := make([]Record, len(pending))
		keys := make([]store.PendingKey, len(pending))
		for i, e := range pending {
			if !hmac.Equal(e.Tag, p.tag.Sum(tagMessage(e.Writer, e.Seq, e.Entry))) {
				return nil, fmt.Errorf("%w (writer %s, sequence %d)", ErrPendingTag, e.Writer, e.Seq)
			}
			recs[i], keys[i] = e.Entry, e.PendingKey
		}
		n = len(recs)
		return recs, tx.DropPending(ctx, keys)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// flush folds until every entry written before the call is in the ledger.
func (p *pendingTable) flush(ctx context.Context) error {
	_, err := p.foldAll(ctx)
	return err
}

// close stops the folder after a last fold. Entries it could not fold stay
// in the table for the next fold by any process.
func (p *pendingTable) close() error {
	close(p.stop)
	<-p.done
	if p.closeErr != nil {
		return fmt.Errorf("audit: pending ledger entries stay in the database for the next fold: %w", p.closeErr)
	}
	return nil
}

func (p *pendingTable) stats(st *Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Spooled, st.Unfolded, st.MaxUnfolded, st.FoldErr = true, p.unfolded, p.maxUnfolded, p.foldErr
}
