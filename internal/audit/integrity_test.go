package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// tamperLog is a SQLite ledger and a raw handle on its database, to
// change it as a database administrator could.
type tamperLog struct {
	st     store.Store
	raw    *sql.DB
	signer *ledger.Signer
}

func newTamperLog(t *testing.T) *tamperLog {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ward.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &tamperLog{st: st, raw: raw, signer: newSigner(t)}
}

func (l *tamperLog) append(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := l.st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = entryRec(t, fmt.Sprint("entry-", i))
	}
	if err := AppendInTx(ctx, tx, recs); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (l *tamperLog) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := l.raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// checkpoints returns the number of stored checkpoints.
func (l *tamperLog) checkpoints(t *testing.T) int {
	t.Helper()
	var n int
	if err := l.raw.QueryRow(`SELECT COUNT(*) FROM ledger_checkpoints`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tamperings are changes made to the stored ledger after a checkpoint of
// its first 20 entries, each of which leaves a tree that does not extend
// that checkpoint.
var tamperings = []struct {
	name string
	do   func(t *testing.T, l *tamperLog)
}{
	{"a stored subtree hash under the checkpoint's root, then more entries built on it", func(t *testing.T, l *tamperLog) {
		l.exec(t, `UPDATE ledger_hashes SET hash = ? WHERE idx = ?`, make([]byte, 32), tlog.StoredHashIndex(4, 0))
		l.append(t, 12)
	}},
	{"truncated below the checkpoint", func(t *testing.T, l *tamperLog) {
		l.exec(t, `DELETE FROM ledger_entries WHERE idx >= 15`)
		l.exec(t, `DELETE FROM ledger_hashes WHERE idx >= ?`, tlog.StoredHashIndex(0, 15))
		l.exec(t, `UPDATE ledger_head SET size = 15`)
	}},
	{"the latest checkpoint replaced by garbage", func(t *testing.T, l *tamperLog) {
		l.exec(t, `UPDATE ledger_checkpoints SET note = ? WHERE size = 20`, []byte("ward.test/ledger\n20\nAAAA\n\n— x y\n"))
	}},
}

// Signing refuses a tree that does not extend the latest checkpoint, and
// the checkpointer then stops for good (E7).
func TestCheckpointRefusesInconsistentTree(t *testing.T) {
	ctx := context.Background()
	for _, tt := range tamperings {
		t.Run(tt.name, func(t *testing.T) {
			l := newTamperLog(t)
			l.append(t, 20)
			if _, _, err := Checkpoint(ctx, l.st, l.signer); err != nil {
				t.Fatal(err)
			}
			tt.do(t, l)
			before := l.checkpoints(t)
			if _, _, err := Checkpoint(ctx, l.st, l.signer); !errors.Is(err, ErrTampered) {
				t.Fatalf("Checkpoint = %v, want ErrTampered", err)
			}
			var halt Halt
			var reported []error
			RunCheckpoints(ctx, l.st, l.signer, time.Hour, &halt, func(err error) { reported = append(reported, err) })
			if !errors.Is(halt.Err(), ErrTampered) || len(reported) != 1 || !errors.Is(reported[0], ErrTampered) {
				t.Fatalf("the checkpointer went on: halt %v, reported %v", halt.Err(), reported)
			}
			if after := l.checkpoints(t); after != before {
				t.Fatalf("%d checkpoints stored on top of the tampered ledger", after-before)
			}
		})
	}
}

// An intact ledger goes on being signed; a halted checkpointer signs
// nothing.
func TestCheckpointExtends(t *testing.T) {
	ctx := context.Background()
	l := newTamperLog(t)
	for i := range 3 {
		l.append(t, 7)
		if size, _, err := Checkpoint(ctx, l.st, l.signer); err != nil || size != int64(7*(i+1)) {
			t.Fatalf("checkpoint %d: size %d, %v", i, size, err)
		}
	}
	l.append(t, 1)
	var halt Halt
	halt.Stop(errors.New("test"))
	RunCheckpoints(ctx, l.st, l.signer, time.Hour, &halt, func(err error) { t.Errorf("onErr: %v", err) })
	if size, _, _ := l.st.LatestCheckpoint(ctx); size != 21 {
		t.Fatalf("a halted checkpointer signed size %d", size)
	}
}

// The start check accepts an intact ledger with an unsigned tail, and
// finds each tampering, also a rollback together with the stored
// checkpoints when a published one remains.
func TestVerifyAtStart(t *testing.T) {
	ctx := context.Background()
	l := newTamperLog(t)
	l.append(t, 20)
	_, published, err := Checkpoint(ctx, l.st, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	l.append(t, 5)
	rep, err := VerifyAtStart(ctx, l.st, l.signer, []ledger.SignedCheckpoint{published})
	if err != nil || rep.Size != 25 || rep.Tail != 5 || rep.Trusted != 1 {
		t.Fatalf("intact: %+v, %v", rep, err)
	}
	for _, tt := range tamperings {
		t.Run(tt.name, func(t *testing.T) {
			l := newTamperLog(t)
			l.append(t, 20)
			if _, _, err := Checkpoint(ctx, l.st, l.signer); err != nil {
				t.Fatal(err)
			}
			tt.do(t, l)
			_, err := VerifyAtStart(ctx, l.st, l.signer, nil)
			var ve *ledger.VerifyError
			if !errors.Is(err, ErrTampered) || !errors.As(err, &ve) {
				t.Fatalf("VerifyAtStart = %v, want ErrTampered with the index", err)
			}
		})
	}
	t.Run("rolled back with its checkpoints", func(t *testing.T) {
		l := newTamperLog(t)
		l.append(t, 10)
		if _, _, err := Checkpoint(ctx, l.st, l.signer); err != nil {
			t.Fatal(err)
		}
		l.append(t, 10)
		_, published, err := Checkpoint(ctx, l.st, l.signer)
		if err != nil {
			t.Fatal(err)
		}
		l.exec(t, `DELETE FROM ledger_entries WHERE idx >= 10`)
		l.exec(t, `DELETE FROM ledger_hashes WHERE idx >= ?`, tlog.StoredHashIndex(0, 10))
		l.exec(t, `DELETE FROM ledger_checkpoints WHERE size > 10`)
		l.exec(t, `UPDATE ledger_head SET size = 10`)
		if _, err := VerifyAtStart(ctx, l.st, l.signer, nil); err != nil {
			t.Fatalf("without the published checkpoint, the rollback is consistent: %v", err)
		}
		_, err = VerifyAtStart(ctx, l.st, l.signer, []ledger.SignedCheckpoint{published})
		var ve *ledger.VerifyError
		if !errors.Is(err, ErrTampered) || !errors.As(err, &ve) || ve.Index != 10 {
			t.Fatalf("rollback below a published checkpoint: %v", err)
		}
	})
}

func TestLatestPublished(t *testing.T) {
	dir := t.TempDir()
	if size, msg, err := LatestPublished(filepath.Join(dir, "none")); size != 0 || msg != nil || err != nil {
		t.Fatalf("missing directory: %d %q %v", size, msg, err)
	}
	for name, body := range map[string]string{"7.checkpoint": "seven", "12.checkpoint": "twelve", "012.checkpoint": "padded", "99.tmp": "other", ".publish-1": "temp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if size, msg, err := LatestPublished(dir); size != 12 || string(msg) != "twelve" || err != nil {
		t.Fatalf("LatestPublished = %d %q %v", size, msg, err)
	}
}

// passes runs RunVerification in the background with the pauses between
// passes under the test's control: each value sent on next starts a pass.
type passes struct {
	next    chan struct{}
	results chan Pass
	halt    Halt
	mu      sync.Mutex
	paced   time.Duration // what the pacing asked to wait, in all
	stop    func()
}

func runPasses(t *testing.T, st store.LedgerReader, signer *ledger.Signer, pace int) *passes {
	p := &passes{next: make(chan struct{}), results: make(chan Pass, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rest := time.Hour
	cfg := VerifyConfig{Pace: pace, Rest: rest, Wait: func(ctx context.Context, d time.Duration) error {
		if d != rest {
			p.mu.Lock()
			p.paced += d
			p.mu.Unlock()
			return ctx.Err()
		}
		select {
		case <-p.next:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	go func() {
		defer close(done)
		RunVerification(ctx, st, signer, cfg, &p.halt, func(r Pass) { p.results <- r })
	}()
	p.stop = func() { cancel(); <-done }
	t.Cleanup(p.stop)
	return p
}

func (p *passes) result(t *testing.T) Pass {
	t.Helper()
	select {
	case r := <-p.results:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no verification pass within 20s")
		return Pass{}
	}
}

// The background verification re-hashes every entry, below the latest
// checkpoint too, at the pace asked for, and finds an entry edited while
// it runs: the finding stops the halt (E7).
func TestRunVerificationFindsEdit(t *testing.T) {
	ctx := context.Background()
	l := newTamperLog(t)
	l.append(t, 300)
	if _, _, err := Checkpoint(ctx, l.st, l.signer); err != nil {
		t.Fatal(err)
	}
	l.append(t, 20)
	p := runPasses(t, l.st, l.signer, 100)
	if r := p.result(t); r.Err != nil || r.Size != 320 {
		t.Fatalf("first pass: %+v", r)
	}
	p.mu.Lock()
	paced := p.paced
	p.mu.Unlock()
	if paced != 3200*time.Millisecond {
		t.Fatalf("320 entries at 100 a second waited %v, want 3.2s", paced)
	}
	if p.halt.Err() != nil {
		t.Fatalf("an intact ledger stopped the halt: %v", p.halt.Err())
	}
	// An entry below the checkpoint, edited without its hashes: the start
	// check cannot see it, the background pass does.
	edited := entryRec(t, "entry-edited").Entry
	l.exec(t, `UPDATE ledger_entries SET entry = ? WHERE idx = 123`, edited)
	if _, err := VerifyAtStart(ctx, l.st, l.signer, nil); err != nil {
		t.Fatalf("the start check reads entries below the checkpoint after all: %v", err)
	}
	p.next <- struct{}{}
	r := p.result(t)
	var ve *ledger.VerifyError
	if !errors.Is(r.Err, ErrTampered) || !errors.As(r.Err, &ve) || ve.Index != 123 {
		t.Fatalf("second pass: %+v, want the edit at 123", r)
	}
	if !errors.Is(p.halt.Err(), ErrTampered) {
		t.Fatalf("the finding did not stop the halt: %v", p.halt.Err())
	}
	p.stop() // returns: the run ended with the finding
}

// Pace 0 disables the background verification.
func TestRunVerificationDisabled(t *testing.T) {
	var halt Halt
	RunVerification(context.Background(), nil, nil, VerifyConfig{}, &halt, func(Pass) { t.Error("a pass ran") })
}
