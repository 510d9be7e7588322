package detect

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

type saveCall struct {
	alerts  []Alert
	through int64
}

// runFixture is a Runner over a real SQLite ledger written through
// audit.Log, driven by a tick channel.
type runFixture struct {
	t      *testing.T
	log    *audit.Log
	tick   chan time.Time
	calls  chan saveCall
	answer chan error
	st     store.LedgerReader
	r      *Runner
	done   chan error
}

func newRunFixture(t *testing.T) *runFixture {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := audit.New(st, audit.Config{})
	t.Cleanup(func() { log.Close() })
	return &runFixture{t: t, log: log, st: st, tick: make(chan time.Time), calls: make(chan saveCall), answer: make(chan error)}
}

func (f *runFixture) append(es ...ledger.Entry) {
	f.t.Helper()
	recs := make([]audit.Record, len(es))
	for i, e := range es {
		rec, err := audit.NewRecord(e)
		if err != nil {
			f.t.Fatal(err)
		}
		recs[i] = rec
	}
	if err := f.log.Append(context.Background(), recs...); err != nil {
		f.t.Fatal(err)
	}
}

func (f *runFixture) start(cfg RunConfig) {
	f.t.Helper()
	d, err := New(Config{}, &MemoryFacts{})
	if err != nil {
		f.t.Fatal(err)
	}
	cfg.Tick, cfg.Reader = f.tick, f.st
	cfg.Save = func(ctx context.Context, alerts []Alert, through int64) error {
		select {
		case f.calls <- saveCall{alerts, through}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-f.answer:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.r, err = NewRunner(d, cfg); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.done = make(chan error, 1)
	go func() { f.done <- f.r.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-f.done; !errors.Is(err, context.Canceled) {
			f.t.Errorf("Run returned %v", err)
		}
	})
}

// save waits for the next Save call and answers it with err.
func (f *runFixture) save(err error) saveCall {
	f.t.Helper()
	c := <-f.calls
	f.answer <- err
	return c
}

// poll starts a poll and fails if a Save comes before the runner is
// back waiting for the next tick.
func (f *runFixture) pollQuiet() {
	f.t.Helper()
	for range 2 { // the second tick is taken only once the first poll is over
		select {
		case f.tick <- time.Time{}:
		case c := <-f.calls:
			f.t.Fatalf("unexpected Save through %d with %d alerts", c.through, len(c.alerts))
		}
	}
}

// The runner warms up on history without saving its alerts, then saves
// what the new entries raise, with the same key a detector fed the whole
// ledger gives; it saves nothing when nothing is new, and offers a
// failed save again.
func TestRunnerSQLite(t *testing.T) {
	f := newRunFixture(t)
	var es []ledger.Entry
	for i := range 120 {
		es = append(es, read("nurse-1", t0.Add(time.Duration(i)*20*time.Second), pid(i)))
	}
	f.append(es[:60]...) // 60 patients: an alert during the warm-up
	f.start(RunConfig{From: 60, Warmup: time.Hour})
	f.pollQuiet() // nothing past From yet: no Save
	if s := f.r.Stats(); s.Cursor != 60 || s.Behind != 0 || s.Warming {
		t.Fatalf("after warm-up: %+v", s)
	}

	f.append(es[60:90]...)
	f.tick <- time.Time{}
	c := f.save(errors.New("database away"))
	if c.through != 90 || len(c.alerts) != 1 {
		t.Fatalf("save %+v", c)
	}
	f.append(es[90:]...)
	f.tick <- time.Time{}
	c = f.save(nil) // the failed alerts again, updated, before reading on
	if c.through != 90 || len(c.alerts) != 1 || c.alerts[0].Count != 90 {
		t.Fatalf("retry %+v", c)
	}
	c = f.save(nil)
	if c.through != 120 || len(c.alerts) != 1 {
		t.Fatalf("save %+v", c)
	}
	got := c.alerts[0]

	// A detector fed the whole ledger from the start agrees.
	d, _ := New(Config{}, &MemoryFacts{})
	var want Alert
	for i, e := range es {
		for _, a := range d.Observe(int64(i), e) {
			want = a
		}
	}
	if got.Key != want.Key || got.Count != want.Count || got.Last != want.Last || got.Summary != want.Summary {
		t.Fatalf("runner alert %+v\nwhole-ledger alert %+v", got, want)
	}
	f.pollQuiet() // and the runner is back waiting: its stats are settled
	if s := f.r.Stats(); s.Cursor != 120 || s.Size != 120 || s.Behind != 0 || s.Lag != 0 || s.SaveErrors != 1 || s.Alerts != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// The warm-up replays back to Warmup before the entry at From, and no
// further than MaxWarmup entries.
func TestRunnerWarmupStart(t *testing.T) {
	f := newRunFixture(t)
	for i := range 100 {
		f.append(read("nurse-1", t0.Add(time.Duration(i)*time.Minute), pid(i)))
	}
	d, _ := New(Config{}, &MemoryFacts{})
	for _, tc := range []struct {
		from, max int64
		warmup    time.Duration
		want      int64
	}{
		{80, 0, 10 * time.Minute, 69}, // entry 79 at minute 79: back to minute 69
		{80, 5, 10 * time.Minute, 75},
		{80, 0, 24 * time.Hour, 0},
		{0, 0, time.Hour, 0},
		{500, 0, 30 * time.Minute, 69}, // From past the end: from the last entry
	} {
		r, err := NewRunner(d, RunConfig{Reader: f.st, From: tc.from, Warmup: tc.warmup, MaxWarmup: tc.max, Save: func(context.Context, []Alert, int64) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.warmupStart(context.Background())
		if err != nil || got != tc.want {
			t.Errorf("%+v: start %d, %v", tc, got, err)
		}
	}
}
