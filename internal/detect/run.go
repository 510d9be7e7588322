package detect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// RunConfig configures a [Runner]. Reader and Save are required; zero
// values of the rest mean the defaults.
type RunConfig struct {
	Reader store.LedgerReader
	// From is the first ledger index whose alerts are saved: where the
	// previous run's Save left off.
	From int64
	// Warmup: entries before From, back to this much earlier than the
	// entry at From, are replayed first to learn baselines, raising
	// nothing. MaxWarmup bounds how many. Defaults 7 days, 5,000,000.
	Warmup    time.Duration
	MaxWarmup int64
	// Poll is how often the ledger is read once caught up. Default 1s.
	Poll time.Duration
	// Batch is how many entries one read fetches. Default 2000.
	Batch int
	// Save receives the alerts raised or updated since its last call
	// (the latest version of each Key) and the index up to which the
	// ledger has been read (the next run's From). It is called after
	// every read that advanced past From, with no alerts too. When it
	// fails, the same alerts (with any later updates) are offered again
	// at the next poll, and reading waits until they are saved.
	Save func(ctx context.Context, alerts []Alert, through int64) error
	// Tick, when set, replaces the poll timer: each value received starts
	// a poll (tests drive the runner with it).
	Tick <-chan time.Time
	// Now is the wall clock for Stats' lag; default time.Now.
	Now func() time.Time
}

// Stats is how far the runner is behind the ledger.
type Stats struct {
	Cursor  int64         // next index to read
	Size    int64         // ledger size at the latest poll
	Behind  int64         // Size - Cursor
	Lag     time.Duration // how old the latest entry read was when read, when Behind > 0 or at the latest read
	Warming bool          // replaying entries before From
	Alerts  int64         // alerts saved (each version counted)
	// Undecodable counts entries that did not decode and were skipped;
	// ReadErrors and SaveErrors failed calls, retried at the next poll.
	Undecodable, ReadErrors, SaveErrors int64
	LastError                           string
}

// Runner tails a ledger into a Detector. Stats may be called from any
// goroutine; Run from one.
type Runner struct {
	d   *Detector
	cfg RunConfig

	mu    sync.Mutex
	stats Stats

	pending map[string]int // Key -> position in alerts
	alerts  []Alert
	saved   int64 // the through of the latest successful Save
}

// NewRunner returns a runner feeding d from cfg.Reader.
func NewRunner(d *Detector, cfg RunConfig) (*Runner, error) {
	switch {
	case d == nil:
		return nil, errors.New("detect: runner needs a detector")
	case cfg.Reader == nil:
		return nil, errors.New("detect: runner needs a ledger reader")
	case cfg.Save == nil:
		return nil, errors.New("detect: runner needs Save")
	case cfg.From < 0:
		return nil, errors.New("detect: From must not be negative")
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = 7 * day
	}
	if cfg.MaxWarmup <= 0 {
		cfg.MaxWarmup = 5_000_000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 2000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{d: d, cfg: cfg, pending: map[string]int{}, saved: cfg.From, stats: Stats{Cursor: cfg.From}}, nil
}

// Stats returns the runner's progress.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Runner) update(fn func(s *Stats)) {
	r.mu.Lock()
	fn(&r.stats)
	r.stats.Behind = max(0, r.stats.Size-r.stats.Cursor)
	r.mu.Unlock()
}

// Run replays the warm-up, then reads the ledger to its end at every
// poll until ctx is done, and returns ctx's error. Read and save
// failures are counted in Stats and retried at the next poll.
func (r *Runner) Run(ctx context.Context) error {
	tick := r.cfg.Tick
	if tick == nil {
		t := time.NewTicker(r.cfg.Poll)
		defer t.Stop()
		tick = t.C
	}
	cursor := int64(-1) // not started: the warm-up start is not found yet
	for {
		if cursor < 0 {
			start, err := r.warmupStart(ctx)
			if err != nil {
				r.failed(err, &r.stats.ReadErrors)
			} else {
				cursor = start
				r.update(func(s *Stats) { s.Cursor, s.Warming = start, start < r.cfg.From })
			}
		}
		if cursor >= 0 {
			cursor = r.poll(ctx, cursor)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
		}
	}
}

func (r *Runner) failed(err error, counter *int64) {
	r.update(func(s *Stats) {
		*counter++
		s.LastError = err.Error()
	})
}

// warmupStart finds the first index whose entry is at most Warmup older
// than the entry before From (by bisection: ledger times grow with the
// index, up to small disorder), no further back than MaxWarmup.
func (r *Runner) warmupStart(ctx context.Context) (int64, error) {
	from := r.cfg.From
	if from == 0 {
		return 0, nil
	}
	size, err := r.cfg.Reader.LedgerSize(ctx)
	if err != nil {
		return 0, err
	}
	from = min(from, size)
	if from == 0 {
		return 0, nil
	}
	ref, err := r.entryTime(ctx, from-1)
	if err != nil {
		return 0, err
	}
	since := ref.Add(-r.cfg.Warmup)
	lo, hi := max(0, from-r.cfg.MaxWarmup), from-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		tm, err := r.entryTime(ctx, mid)
		if err != nil {
			return 0, err
		}
		if tm.Before(since) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func (r *Runner) entryTime(ctx context.Context, i int64) (time.Time, error) {
	rows, err := r.cfg.Reader.LedgerEntries(ctx, i, i+1)
	if err != nil {
		return time.Time{}, err
	}
	if len(rows) != 1 {
		return time.Time{}, fmt.Errorf("detect: ledger entry %d missing", i)
	}
	return rows[0].Time, nil
}

// poll saves what is pending, then reads and feeds entries until the
// end of the ledger, saving after each batch; it returns the new cursor.
func (r *Runner) poll(ctx context.Context, cursor int64) int64 {
	if !r.save(ctx, cursor) {
		return cursor
	}
	for ctx.Err() == nil {
		size, err := r.cfg.Reader.LedgerSize(ctx)
		if err != nil {
			r.failed(err, &r.stats.ReadErrors)
			return cursor
		}
		r.update(func(s *Stats) { s.Size = size })
		if cursor >= size {
			r.update(func(s *Stats) { s.Lag = 0 })
			return cursor
		}
		end := min(size, cursor+int64(r.cfg.Batch))
		rows, err := r.cfg.Reader.LedgerEntries(ctx, cursor, end)
		if err != nil {
			r.failed(err, &r.stats.ReadErrors)
			return cursor
		}
		if len(rows) == 0 {
			return cursor
		}
		var bad int64
		var last time.Time
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				bad++
				continue
			}
			last = e.Time
			as := r.d.Observe(row.Index, e)
			if row.Index >= r.cfg.From {
				r.hold(as)
			}
		}
		cursor = rows[len(rows)-1].Index + 1
		now := r.cfg.Now()
		r.update(func(s *Stats) {
			s.Cursor, s.Undecodable = cursor, s.Undecodable+bad
			s.Warming = cursor < r.cfg.From
			if !last.IsZero() {
				s.Lag = max(0, now.Sub(last))
			}
		})
		if !r.save(ctx, cursor) {
			return cursor
		}
	}
	return cursor
}

// hold keeps the latest version of each alert until it is saved.
func (r *Runner) hold(as []Alert) {
	for _, a := range as {
		if i, ok := r.pending[a.Key]; ok {
			r.alerts[i] = a
			continue
		}
		r.pending[a.Key] = len(r.alerts)
		r.alerts = append(r.alerts, a)
	}
}

// save hands pending alerts to Save, reporting whether it succeeded.
func (r *Runner) save(ctx context.Context, through int64) bool {
	if through <= r.saved && len(r.alerts) == 0 {
		return true
	}
	if err := r.cfg.Save(ctx, r.alerts, through); err != nil {
		r.failed(err, &r.stats.SaveErrors)
		return false
	}
	n := int64(len(r.alerts))
	r.saved = max(r.saved, through)
	r.alerts = nil
	clear(r.pending)
	r.update(func(s *Stats) { s.Alerts += n })
	return true
}
