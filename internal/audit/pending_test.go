package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// testTagger is an HMAC-SHA256 tagger, as keys.MACKey is.
type testTagger []byte

func (k testTagger) Sum(msg []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write(msg)
	return m.Sum(nil)
}

func pendingStore(t *testing.T, st store.Store) PendingStore {
	t.Helper()
	ps, ok := st.(PendingStore)
	if !ok {
		t.Fatalf("%T has no pending table", st)
	}
	return ps
}

func pendingCount(t *testing.T, st store.Pending) int {
	t.Helper()
	n, err := st.PendingCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Concurrent appends through two logs on two handles of one database (two
// processes) reach the ledger through the pending table, each once, with
// their columns, in one valid tree; Flush makes them visible; Close leaves
// nothing pending.
func TestPendingFolds(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			a, c := b.open(t)
			key := testTagger("k")
			la, err := OpenPending(context.Background(), pendingStore(t, a), key, Config{MaxBatch: 64})
			if err != nil {
				t.Fatal(err)
			}
			lc, err := OpenPending(context.Background(), pendingStore(t, c), key, Config{MaxBatch: 64, Writers: 2})
			if err != nil {
				t.Fatal(err)
			}
			const workers, each = 16, 40
			var wg sync.WaitGroup
			for w := range workers {
				l := la
				if w%2 == 1 {
					l = lc
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						r := rec(fmt.Sprintf("w%d-%d", w, i))
						r.Patients = []string{"x", fmt.Sprintf("q%d", w)}
						r.Actor, r.Client = fmt.Sprintf("actor%d", w), "app"
						if err := l.Append(context.Background(), r); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := la.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Flush in one process folds what both wrote.
			checkTree(t, a, workers*each)
			if n := pendingCount(t, pendingStore(t, a)); n != 0 {
				t.Fatalf("%d entries still pending after Flush", n)
			}
			got := entriesOf(t, a)
			seen := map[string]bool{}
			for _, e := range got {
				if seen[e] {
					t.Fatalf("entry %s appended twice", e)
				}
				seen[e] = true
			}
			ctx := context.Background()
			rows, err := a.LedgerEntriesByActor(ctx, store.ActorQuery{Actor: "actor3", Count: 100})
			if err != nil || len(rows) != each {
				t.Fatalf("entries of actor3: %d, %v; want %d", len(rows), err, each)
			}
			if prs, err := a.LedgerEntriesByPatient(ctx, "q5", time.Time{}, time.Now(), 0, 100); err != nil || len(prs) != each {
				t.Fatalf("entries naming q5: %d, %v; want %d", len(prs), err, each)
			}
			if err := la.Close(); err != nil {
				t.Fatal(err)
			}
			if err := lc.Close(); err != nil {
				t.Fatal(err)
			}
			if st := lc.Stats(); !st.Spooled || st.FoldErr != nil {
				t.Fatalf("stats after close: %+v", st)
			}
		})
	}
}

// abandonPending stops a log as a crash would: what it wrote stays in the
// pending table, and nothing more is folded.
func abandonPending(l *Log) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	signal(l.wake)
	<-l.stopped
	l.pd.foldMu.Lock() // no fold runs again in this process
}

// Entries a crashed process wrote are folded by the next process to open
// the pending table, or by a live one, exactly once.
func TestPendingAfterCrash(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, other := b.open(t)
			ctx := context.Background()
			key := testTagger("k")
			l, err := OpenPending(ctx, pendingStore(t, st), key, Config{FoldInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := l.Append(ctx, rec(fmt.Sprintf("a%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := l.Append(ctx, rec(fmt.Sprintf("b%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			abandonPending(l) // b0..b4 are only in the pending table
			if n := pendingCount(t, pendingStore(t, st)); n != 5 {
				t.Fatalf("%d entries pending after the crash, want 5", n)
			}
			next, err := OpenPending(ctx, pendingStore(t, other), key, Config{FoldInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if n := next.Replayed(); n != 5 {
				t.Fatalf("the next process folded %d entries at start, want 5", n)
			}
			want := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3", "b4"}
			if got := entriesOf(t, st); !slices.Equal(got, want) {
				t.Fatalf("ledger after the next start %q, want %q", got, want)
			}
			if err := next.Append(ctx, rec("next")); err != nil {
				t.Fatal(err)
			}
			if err := next.Close(); err != nil {
				t.Fatal(err)
			}
			if got := entriesOf(t, st); !slices.Equal(got, append(want, "next")) {
				t.Fatalf("ledger %q, want %q", got, append(want, "next"))
			}
			checkTree(t, st, int64(len(want)+1))
		})
	}
}

// A pending entry written or changed by anyone without the key is never
// folded: the fold fails, naming it, and folds nothing until it is gone;
// a log with another key is refused at its start.
func TestPendingForgedEntryRefused(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, other := b.open(t)
			ctx := context.Background()
			ps := pendingStore(t, st)
			key := testTagger("k")
			l, err := OpenPending(ctx, ps, key, Config{FoldInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer abandonPending(l)
			if err := l.Append(ctx, rec("genuine")); err != nil {
				t.Fatal(err)
			}
			forged := rec("forged")
			tag := testTagger("not the key").Sum(tagMessage("dba", 1, forged))
			if err := ps.AddPending(ctx, []store.PendingEntry{{PendingKey: store.PendingKey{Writer: "dba", Seq: 1}, Entry: forged, Tag: tag}}); err != nil {
				t.Fatal(err)
			}
			if err := l.Flush(ctx); !errors.Is(err, ErrPendingTag) {
				t.Fatalf("flush with a forged entry pending: %v, want ErrPendingTag", err)
			}
			if st := l.Stats(); !errors.Is(st.FoldErr, ErrPendingTag) {
				t.Fatalf("stats FoldErr %v, want ErrPendingTag", st.FoldErr)
			}
			if got := entriesOf(t, st); len(got) != 0 {
				t.Fatalf("ledger %q after a refused fold, want empty", got)
			}
			if _, err := OpenPending(ctx, pendingStore(t, other), testTagger("other key"), Config{}); !errors.Is(err, ErrPendingTag) {
				t.Fatalf("a process with another key opened over pending entries: %v", err)
			}
			// A genuine entry whose entry or columns were changed is refused too.
			tx, err := st.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.LockLedger(ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.PendingEntries(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.DropPending(ctx, []store.PendingKey{rows[0].PendingKey, rows[1].PendingKey}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for _, e := range rows {
				if e.Writer == "dba" {
					continue
				}
				e.Entry.Patient = "someone-else"
				if err := ps.AddPending(ctx, []store.PendingEntry{e}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(ctx); !errors.Is(err, ErrPendingTag) {
				t.Fatalf("flush with a changed entry pending: %v, want ErrPendingTag", err)
			}
		})
	}
}
