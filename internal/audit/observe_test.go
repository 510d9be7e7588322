package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// observed records what a Log reports to its Observer.
type observed struct {
	mu                  sync.Mutex
	groups, folds       []int
	groupFails, foldErr int
	waits               []time.Duration
}

func (o *observed) Group(n int, wait time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.groups = append(o.groups, n)
	o.waits = append(o.waits, wait)
	if failed {
		o.groupFails++
	}
}

func (o *observed) Fold(n int, _ time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.folds = append(o.folds, n)
	if failed {
		o.foldErr++
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// The Observer sees every entry exactly once in the groups and in the
// folds, and a failed group as failed; Stats reports a broken spool.
func TestObserverAndStats(t *testing.T) {
	st, _ := backends()[0].open(t)
	var obs observed
	var ff *faultFile
	l, err := OpenSpooled(context.Background(), st, t.TempDir(), Config{Observer: &obs,
		WrapSpool: func(f SpoolFile) SpoolFile { ff = &faultFile{SpoolFile: f}; return ff }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(ctx, rec(fmt.Sprint("e", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if !s.Spooled || s.Unfolded != 0 || s.Broken != nil || s.MaxUnfolded != 1<<17 || s.Queued != 0 {
		t.Fatalf("stats after a flush: %+v", s)
	}
	obs.mu.Lock()
	if got := sum(obs.groups); got != n || obs.groupFails != 0 {
		t.Errorf("groups %v (%d failed), want %d entries in all", obs.groups, obs.groupFails, n)
	}
	if got := sum(obs.folds); got != n {
		t.Errorf("folds %v, want %d entries in all", obs.folds, n)
	}
	for _, w := range obs.waits {
		if w < 0 || w > time.Minute {
			t.Errorf("group wait %v", w)
		}
	}
	obs.mu.Unlock()

	ff.failSync.Store(true)
	if err := l.Append(ctx, rec("unsynced")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append when the sync fails: %v", err)
	}
	if s := l.Stats(); s.Broken == nil {
		t.Fatalf("stats after a failed sync: %+v, want Broken", s)
	}
	obs.mu.Lock()
	if obs.groupFails != 1 {
		t.Errorf("%d failed groups observed, want 1", obs.groupFails)
	}
	obs.mu.Unlock()
}
