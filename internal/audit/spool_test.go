package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, spoolPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// entriesOf returns the ledger's entries as strings, in index order.
func entriesOf(t *testing.T, st store.Store) []string {
	t.Helper()
	ctx := context.Background()
	n, err := st.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.LedgerEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r.Entry)
	}
	return out
}

// Concurrent appends through a spooled log reach the ledger, each once,
// with their columns; Flush makes them visible; Close removes the spool.
func TestSpoolFolds(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, _ := b.open(t)
			dir := t.TempDir()
			l, err := OpenSpooled(context.Background(), st, dir, Config{MaxBatch: 64})
			if err != nil {
				t.Fatal(err)
			}
			const workers, each = 16, 40
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						// 250 bytes each: the spool file grows past its
						// first extents while the test runs.
						r := rec(fmt.Sprintf("w%d-%d-%0240d", w, i, 0))
						r.Patients = []string{"p", fmt.Sprintf("q%d", w)}
						if err := l.Append(context.Background(), r); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := l.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkTree(t, st, workers*each)
			got := entriesOf(t, st)
			slices.Sort(got)
			if len(slices.Compact(got)) != workers*each {
				t.Fatalf("%d distinct entries, want %d", len(got), workers*each)
			}
			byQ, err := st.LedgerEntriesByPatient(context.Background(), "q3", time.Time{}, time.Time{}, 0, 1000)
			if err != nil || len(byQ) != each {
				t.Fatalf("entries under q3: %d, %v; want %d", len(byQ), err, each)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if f := spoolFiles(t, dir); len(f) != 0 {
				t.Fatalf("spool files left after Close: %v", f)
			}
		})
	}
}

// faultFile fails the next write, or every sync, on demand.
type faultFile struct {
	SpoolFile
	failWrite, failSync atomic.Bool
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.failWrite.CompareAndSwap(true, false) {
		n, _ := f.SpoolFile.WriteAt(p[:len(p)/2], off) // a torn write
		return n, syscall.ENOSPC
	}
	return f.SpoolFile.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.SpoolFile.Sync()
}

// E2 for the spool: an entry that cannot be made durable is an error for
// its caller and never reaches the ledger; a failed sync refuses every
// later entry until the log is opened again.
func TestSpoolFailsClosed(t *testing.T) {
	st, _ := backends()[0].open(t)
	dir := t.TempDir()
	var ff *faultFile
	l, err := OpenSpooled(context.Background(), st, dir, Config{WrapSpool: func(f SpoolFile) SpoolFile { ff = &faultFile{SpoolFile: f}; return ff }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Append(ctx, rec("ok-1")); err != nil {
		t.Fatal(err)
	}
	ff.failWrite.Store(true)
	if err := l.Append(ctx, rec("torn")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append while the disk is full: %v, want ENOSPC", err)
	}
	if err := l.Append(ctx, rec("ok-2")); err != nil {
		t.Fatalf("append once the disk has room again: %v", err)
	}
	ff.failSync.Store(true)
	if err := l.Append(ctx, rec("unsynced")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append when the sync fails: %v, want EIO", err)
	}
	ff.failSync.Store(false)
	if err := l.Append(ctx, rec("after-eio")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append after a failed sync: %v, want the spool to stay broken", err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := entriesOf(t, st); !slices.Equal(got, []string{"ok-1", "ok-2"}) {
		t.Fatalf("ledger %q, want only the acknowledged entries", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The broken spool's file stays; replaying it adds nothing that was
	// refused, and removes it.
	l2, err := OpenSpooled(ctx, st, dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := entriesOf(t, st); !slices.Equal(got, []string{"ok-1", "ok-2"}) {
		t.Fatalf("ledger after replay %q, want only the acknowledged entries", got)
	}
}

// abandon stops a spooled log as a crash would: the spool file stays with
// what was synced, and its lock is released, but nothing more is folded.
func abandon(l *Log) {
	l.sp.mu.Lock()
	l.sp.unfolded = nil // what a crash loses from memory
	l.sp.mu.Unlock()
	close(l.sp.stop)
	<-l.sp.done
	l.sp.file.Close()
}

// Replay after a crash folds every acknowledged entry that was not folded
// yet, exactly once, also when the crash came between a fold and the
// removal of the spool, and leaves a spool another process holds alone.
func TestSpoolReplay(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, other := b.open(t)
			ctx := context.Background()
			dir := t.TempDir()
			l, err := OpenSpooled(ctx, st, dir, Config{FoldInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := l.Append(ctx, rec(fmt.Sprintf("a%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(ctx); err != nil { // folds a0..a9, marks 10
				t.Fatal(err)
			}
			for i := range 5 {
				if err := l.Append(ctx, rec(fmt.Sprintf("b%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			// A live process's spool is not replayed.
			live, err := OpenSpooled(ctx, other, dir, Config{FoldInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if err := live.Append(ctx, rec("live")); err != nil {
				t.Fatal(err)
			}
			abandon(l) // b0..b4 are only in the file
			n, err := ReplaySpools(ctx, st, dir)
			if err != nil || n != 5 {
				t.Fatalf("replay folded %d entries, %v; want 5", n, err)
			}
			want := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3", "b4"}
			if got := entriesOf(t, st); !slices.Equal(got, want) {
				t.Fatalf("ledger after replay %q, want %q", got, want)
			}
			if f := spoolFiles(t, dir); len(f) != 1 {
				t.Fatalf("spool files after replay: %v, want the live one", f)
			}
			if n, err := ReplaySpools(ctx, st, dir); err != nil || n != 0 {
				t.Fatalf("second replay folded %d, %v", n, err)
			}
			if err := live.Close(); err != nil {
				t.Fatal(err)
			}
			if got := entriesOf(t, st); !slices.Equal(got, append(want, "live")) {
				t.Fatalf("ledger %q, want %q", got, append(want, "live"))
			}
			checkTree(t, st, int64(len(want)+1))
		})
	}
}

// Frames cut short or corrupted end the spool; what precedes them is read.
func TestSpoolTornTail(t *testing.T) {
	var b []byte
	for i := range 3 {
		r := rec(fmt.Sprintf("e%d", i))
		r.Patients = []string{"x", "y"}
		b = appendFrame(b, int64(i+1), r)
	}
	whole := len(b)
	for cut := 0; cut <= whole; cut++ {
		frames, err := readFrames(bytes.NewReader(b[:cut]), 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			if string(f.rec.Entry) != fmt.Sprintf("e%d", i) || f.rec.Patient != "p" || !slices.Equal(f.rec.Patients, []string{"x", "y"}) || !f.rec.Time.Equal(rec("").Time) {
				t.Fatalf("cut at %d: frame %d read back as %+v", cut, i, f)
			}
		}
		if cut == whole && len(frames) != 3 {
			t.Fatalf("whole spool: %d frames, want 3", len(frames))
		}
	}
	for i := frameHeader; i < whole; i++ {
		c := slices.Clone(b)
		c[i] ^= 0x40
		frames, _ := readFrames(bytes.NewReader(c), 0)
		if len(frames) == 3 {
			t.Fatalf("a flipped bit at %d went unnoticed", i)
		}
	}
	// A frame that does not rise in sequence is left over from before the
	// file started over, and ends it.
	stale := appendFrame(slices.Clone(b), 2, rec("stale"))
	if frames, _ := readFrames(bytes.NewReader(stale), 0); len(frames) != 3 {
		t.Fatalf("%d frames with a stale tail, want 3", len(frames))
	}
	if frames, _ := readFrames(bytes.NewReader(b), 2); len(frames) != 1 || frames[0].seq != 3 {
		t.Fatalf("frames after mark 2: %+v", frames)
	}
}
