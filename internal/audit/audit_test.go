package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

type backend struct {
	name string
	open func(t testing.TB) (store.Store, store.Store) // two handles on one database
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) (store.Store, store.Store) {
			path := filepath.Join(t.TempDir(), "ward.db")
			return openT(t, func() (store.Store, error) { return sqlite.Open(context.Background(), path) }),
				openT(t, func() (store.Store, error) { return sqlite.Open(context.Background(), path) })
		}},
		{"postgres", func(t testing.TB) (store.Store, store.Store) {
			u := storetest.FreshSchema(t, "ward_audit_test_").URL
			return openT(t, func() (store.Store, error) { return postgres.Open(context.Background(), u) }),
				openT(t, func() (store.Store, error) { return postgres.Open(context.Background(), u) })
		}},
	}
}

func openT(t testing.TB, open func() (store.Store, error)) store.Store {
	t.Helper()
	st, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// mth is RFC 6962's Merkle tree hash over leaf hashes, computed directly
// from the definition, independently of tlog's storage layout.
func mth(leaves []tlog.Hash) tlog.Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// checkTree recomputes the tree from the stored entries and compares it
// with the stored hashes, then proves and checks every entry's inclusion.
func checkTree(t *testing.T, st store.Store, want int64) {
	t.Helper()
	ctx := context.Background()
	size, err := st.LedgerSize(ctx)
	if err != nil || size != want {
		t.Fatalf("ledger size %d, %v; want %d", size, err, want)
	}
	entries, err := st.LedgerEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([]tlog.Hash, len(entries))
	for i, e := range entries {
		if e.Index != int64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		leaves[i] = tlog.RecordHash(e.Entry)
	}
	hr := HashReader(ctx, st)
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		t.Fatal(err)
	}
	if root != mth(leaves) {
		t.Fatal("stored tree hash differs from the RFC 6962 hash of the entries")
	}
	for i := int64(0); i < size; i += max(1, size/50) {
		p, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, size, root, i, leaves[i]); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
	}
}

func rec(s string) Record {
	return Record{Entry: []byte(s), Patient: "p", Time: time.Unix(1700000000, 0).UTC()}
}

func TestAppendInTx(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, _ := b.open(t)
			ctx := context.Background()
			total := int64(0)
			for _, n := range []int{1, 1, 3, 7, 16, 1, 40} {
				tx, err := st.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				recs := make([]Record, n)
				for i := range recs {
					recs[i] = rec(fmt.Sprintf("entry-%d", total+int64(i)))
				}
				if err := AppendInTx(ctx, tx, recs); err != nil {
					t.Fatal(err)
				}
				if recs[0].Index != total {
					t.Fatalf("first index %d, want %d", recs[0].Index, total)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				total += int64(n)
				checkTree(t, st, total)
			}
			// A rolled-back append leaves the ledger as it was.
			tx, _ := st.Begin(ctx)
			if err := AppendInTx(ctx, tx, []Record{rec("gone")}); err != nil {
				t.Fatal(err)
			}
			_ = tx.Rollback()
			checkTree(t, st, total)
		})
	}
}

// Group commit: many concurrent appends through two logs on two handles
// of one database form one valid tree, in fewer transactions than entries.
func TestGroupCommit(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			a, c := b.open(t)
			la, lc := New(a, Config{}), New(c, Config{})
			defer la.Close()
			defer lc.Close()
			const workers, each = 40, 25
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				l := la
				if w%2 == 1 {
					l = lc
				}
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < each; i++ {
						if err := l.Append(context.Background(), rec(fmt.Sprintf("w%d-%d", w, i))); err != nil {
							t.Error(err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			checkTree(t, a, workers*each)
			entries, _ := a.LedgerEntries(context.Background(), 0, workers*each)
			seen := map[string]bool{}
			for _, e := range entries {
				if seen[string(e.Entry)] {
					t.Fatalf("entry %s appended twice", e.Entry)
				}
				seen[string(e.Entry)] = true
			}
		})
	}
}

// failingStore fails to begin transactions, as a store whose database is
// down or whose disk is full does.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (f *failingStore) Begin(ctx context.Context) (store.Tx, error) {
	if f.fail.Load() {
		return nil, fmt.Errorf("disk full: %w", store.ErrUnavailable)
	}
	return f.Store.Begin(ctx)
}

// An entry that cannot be committed is an error for its caller, never a
// silent success.
func TestAppendFailsClosed(t *testing.T) {
	st, _ := backends()[0].open(t)
	fs := &failingStore{Store: st}
	l := New(fs, Config{})
	defer l.Close()
	if err := l.Append(context.Background(), rec("ok")); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	err := l.Append(context.Background(), rec("lost"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append while the store fails: %v, want ErrUnavailable", err)
	}
	fs.fail.Store(false)
	if err := l.Append(context.Background(), rec("again")); err != nil {
		t.Fatal(err)
	}
	checkTree(t, st, 2)
	l.Close()
	if err := l.Append(context.Background(), rec("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
}

// BenchmarkGroupCommit appends entries from 64 concurrent callers through
// group commit, each call waiting until its entry is durable, and reports
// entries/s: committed to the database, or (sqlite-spooled) synced to the
// spool and folded into the ledger behind it.
func BenchmarkGroupCommit(b *testing.B) {
	for _, be := range append(backends(), backend{name: "sqlite-spooled", open: backends()[0].open}) {
		b.Run(be.name, func(b *testing.B) {
			st, _ := be.open(b)
			var l *Log
			if be.name == "sqlite-spooled" {
				var err error
				if l, err = OpenSpooled(context.Background(), st, b.TempDir(), Config{}); err != nil {
					b.Fatal(err)
				}
			} else {
				l = New(st, Config{})
			}
			defer l.Close()
			entry := make([]byte, 300)
			b.SetParallelism(32)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Append(context.Background(), Record{Entry: entry, Time: time.Now()}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
		})
	}
}

// BenchmarkClosedLoop bounds what durable read entries can cost a server
// whose clients each wait for their answer before sending the next
// request. Each client spends closedLoopWork of CPU per request (about what
// a read by id costs in package api's BenchmarkReadByID, client included),
// then waits for its entry: none (no ledger), sync (the least any durable
// ledger can do: a bare group commit, one write and fdatasync of a file
// per group) or spool (this package's spool, folding into SQLite). Nothing
// else is shared, so sync/none is the most any design that syncs before it
// answers can keep of the throughput on this machine at this many clients,
// and spool/sync what the spool's own work costs.
// WARD_BENCH_READ_PARALLELISM sets clients per core, as in package api.
func BenchmarkClosedLoop(b *testing.B) {
	perCore := 8
	if n, err := strconv.Atoi(os.Getenv("WARD_BENCH_READ_PARALLELISM")); err == nil && n > 0 {
		perCore = n
	}
	entry := make([]byte, 300)
	for _, name := range []string{"none", "sync", "spool"} {
		b.Run(name, func(b *testing.B) {
			var wait func() error
			switch name {
			case "none":
				wait = func() error { return nil }
			case "sync":
				g := newBareSync(b, len(entry))
				wait = g.append
			case "spool":
				st, _ := backends()[0].open(b)
				l, err := OpenSpooled(context.Background(), st, b.TempDir(), Config{})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				wait = func() error { return l.Append(context.Background(), Record{Entry: entry, Time: time.Now()}) }
			}
			b.SetParallelism(perCore)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					busy(closedLoopWork)
					if err := wait(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
		})
	}
}

const closedLoopWork = 150 * time.Microsecond

var busySink atomic.Int64

// busy spends about d of CPU, yielding halfway as a request does when it
// waits for the network.
func busy(d time.Duration) {
	x := int64(0)
	for half := range 2 {
		end := time.Now().Add(d / 2)
		for time.Now().Before(end) {
			for j := range int64(256) {
				x += j ^ int64(half)
			}
		}
		runtime.Gosched()
	}
	busySink.Add(x)
}

// bareSync is the least a durable group commit does: a committer writes
// one record per waiter to a preallocated file and syncs it, then wakes
// the group.
type bareSync struct {
	f     *os.File
	rec   int
	mu    sync.Mutex
	queue []chan error
	wake  chan struct{}
}

func newBareSync(b *testing.B, rec int) *bareSync {
	f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
	if err != nil {
		b.Fatal(err)
	}
	const size = 16 << 20
	if _, err := f.WriteAt(make([]byte, size), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	g := &bareSync{f: f, rec: rec, wake: make(chan struct{}, 1)}
	stop := make(chan struct{})
	go g.run(stop, size)
	b.Cleanup(func() { close(stop); f.Close() })
	return g
}

func (g *bareSync) run(stop chan struct{}, size int64) {
	var off int64
	buf := make([]byte, 0, 1<<20)
	for {
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-g.wake:
				continue
			case <-stop:
				return
			}
		}
		buf = buf[:min(len(batch)*g.rec, cap(buf))]
		if off+int64(len(buf)) > size {
			off = 0
		}
		_, err := g.f.WriteAt(buf, off)
		off += int64(len(buf))
		if err == nil {
			err = datasync(g.f)
		}
		for _, c := range batch {
			c <- err
		}
		runtime.Gosched()
	}
}

func (g *bareSync) append() error {
	c := make(chan error, 1)
	g.mu.Lock()
	g.queue = append(g.queue, c)
	g.mu.Unlock()
	signal(g.wake)
	return <-c
}
