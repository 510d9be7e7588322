package api

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
)

// FailureConfig bounds what requests that prove no one add to the ledger
// (catalogue E6). Zero values mean the defaults.
type FailureConfig struct {
	// Window is the period over which one source's refusals of one kind
	// share a summary entry; windows are aligned to multiples of it.
	// Default 5 minutes.
	Window time.Duration
	// Sources bounds how many (source, kind) pairs are counted apart in
	// one window; refusals beyond it are counted together, as "other
	// sources". Default 256.
	Sources int
}

// Default failure bounds: at most 2*(256+1) = 514 entries per 5 minutes
// from requests that prove no one, whatever their number.
const (
	defaultFailureWindow  = 5 * time.Minute
	defaultFailureSources = 256
)

// ActionOtherSources is the action of the summary entry that counts the
// refusals of sources beyond FailureConfig.Sources in one window.
const ActionOtherSources = "failures-other-sources"

// failures aggregates the ledger entries of refused requests that proved
// no one (a missing or invalid bearer token, a client or person that
// failed to authenticate, a malformed request to the token endpoint):
// without it anyone could grow the ledger, which is never erased, by one
// entry per request until the disk is full and the fail-closed ledger
// stops all service.
//
// Invariant 3 holds per (source, kind, window), where a kind is the
// entry's action, outcome and detail (a status or reason code of Ward's,
// such as "wrong-password" or "locked") and the account a sign-in tried:
// the first
// such refusal in a window is recorded durably before it is answered, as
// any request is; every later one is counted in memory before it is
// answered, and only once the first is durable; the count goes into one
// summary entry when the window closes (the first request after its end,
// CloseFailureWindow, or FlushFailures at a clean stop). Every request is
// accounted for, not one entry each; a crash loses at most the counts of
// the open window, never a first entry. At most Sources pairs are
// tracked, so memory is bounded too: the rest share one bucket, whose
// first refusal is recorded as itself and whose count is summarised
// under ActionOtherSources. A window therefore adds at most
// 2*(Sources+1) entries.
type failures struct {
	cfg FailureConfig
	now func() time.Time

	mu     sync.Mutex
	start  time.Time // the current window's
	counts map[failureKey]*failureCount
	other  *failureCount // sources beyond cfg.Sources; nil until one comes
	// unwritten are summaries that could not be appended, retried at the
	// next close. Counting stops while the ledger fails (a first entry
	// cannot be written), so they are at most one window's.
	unwritten []ledger.Entry
}

// failureKey is one source's kind of refusal. Every part is Ward's own
// word or a registered account's id, never what the caller chose, so a
// caller cannot make up new keys beyond its addresses.
type failureKey struct {
	source, action, outcome, detail, account string
}

// failureCount is one key's window: its first entry and the refusals
// counted after it.
type failureCount struct {
	key     failureKey
	firstID string        // request id of the first, whose entry names it
	done    chan struct{} // closed once the first entry is durable or failed
	durable bool          // the first entry is durable; valid once done is closed
	n       int64         // refusals after the first
}

func newFailures(cfg FailureConfig, now func() time.Time) *failures {
	if cfg.Window <= 0 {
		cfg.Window = defaultFailureWindow
	}
	if cfg.Sources <= 0 {
		cfg.Sources = defaultFailureSources
	}
	return &failures{cfg: cfg, now: now, counts: make(map[failureKey]*failureCount)}
}

// aggregated reports whether a request that ended with code is counted
// rather than recorded on its own: a refusal (4xx) of a request that
// proved no one. Authenticated requests, successes and server errors
// keep one entry each.
func aggregated(x *exchange, code int) bool {
	return code >= 400 && code < 500 && !x.proven() && !x.caller.Trail.Recorded()
}

// recordFailure records or counts the entry e of a refused request that
// proved no one, as the type's doc says, and returns once the request may
// be answered; an error means it must not be.
func (s *Server) recordFailure(ctx context.Context, e ledger.Entry, key failureKey) error {
	f := s.failures
	for {
		closed := f.rollover()
		if err := s.writeSummaries(ctx, closed); err != nil {
			return err
		}
		f.mu.Lock()
		fc, first := f.slot(key, e.RequestID)
		f.mu.Unlock()
		if first {
			rec, err := audit.NewRecord(e)
			if err == nil {
				err = s.ledger.Append(ctx, rec)
			}
			f.settle(fc, err)
			return err
		}
		select {
		case <-fc.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.count(fc) {
			return nil
		}
		// The first failed, or its window closed meanwhile: this request
		// starts the key's window afresh.
	}
}

// slot returns the count of key in the current window, creating it, or
// the other-sources bucket when Sources keys are tracked; first reports
// that the caller created it and so records the first entry. f.mu is held.
func (f *failures) slot(key failureKey, rid string) (fc *failureCount, first bool) {
	if fc := f.counts[key]; fc != nil {
		return fc, false
	}
	if len(f.counts) < f.cfg.Sources {
		fc = &failureCount{key: key, firstID: rid, done: make(chan struct{})}
		f.counts[key] = fc
		return fc, true
	}
	if f.other != nil {
		return f.other, false
	}
	f.other = &failureCount{firstID: rid, done: make(chan struct{})}
	return f.other, true
}

// settle records how the first entry of fc went; a failed one gives the
// key's slot up, so that the next refusal tries to record its own.
func (f *failures) settle(fc *failureCount, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc.durable = err == nil
	if err != nil {
		if f.counts[fc.key] == fc {
			delete(f.counts, fc.key)
		}
		if f.other == fc {
			f.other = nil
		}
	}
	close(fc.done)
}

// count counts one refusal in fc, if fc's first entry is durable and fc is
// still in the current window.
func (f *failures) count(fc *failureCount) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	current := f.other == fc || f.counts[fc.key] == fc
	if !fc.durable || !current {
		return false
	}
	fc.n++
	return true
}

// rollover closes the current window if the clock has left it and
// returns the summary entries to write: the closed window's and any left
// unwritten before.
func (f *failures) rollover() []ledger.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.start.IsZero() {
		f.start = now.Truncate(f.cfg.Window)
	}
	if now.Before(f.start.Add(f.cfg.Window)) {
		return f.takeUnwritten()
	}
	return f.closeLocked(now)
}

// closeLocked ends the current window at now, starting the next, and
// returns its summaries and the unwritten ones. f.mu is held.
func (f *failures) closeLocked(now time.Time) []ledger.Entry {
	out := f.takeUnwritten()
	window := fmt.Sprintf("%s/%s", f.start.UTC().Format(time.RFC3339), f.cfg.Window)
	summary := func(fc *failureCount, action, outcome string) ledger.Entry {
		return ledger.Entry{
			Time: now.UTC(), Actor: fc.key.account, Source: fc.key.source, Action: action, Outcome: outcome,
			Detail: "aggregated count=" + strconv.FormatInt(fc.n, 10) + " window=" + window + " first=" + fc.firstID + fc.key.detailSuffix(),
		}
	}
	for _, fc := range f.counts {
		if fc.n > 0 {
			out = append(out, summary(fc, fc.key.action, fc.key.outcome))
		}
	}
	if f.other != nil && f.other.n > 0 {
		out = append(out, summary(f.other, ActionOtherSources, "denied"))
	}
	// Counts whose first is still being written start afresh: their
	// waiters find them gone and record a first of their own.
	f.counts = make(map[failureKey]*failureCount, len(f.counts))
	f.other = nil
	f.start = now.Truncate(f.cfg.Window)
	return out
}

// detailSuffix is " of=" and the detail the summarised refusals share,
// or "" for the other-sources bucket.
func (k failureKey) detailSuffix() string {
	if k.detail == "" {
		return ""
	}
	return " of=" + k.detail
}

func (f *failures) takeUnwritten() []ledger.Entry {
	out := f.unwritten
	f.unwritten = nil
	return out
}

// writeSummaries appends summary entries durably; entries that could not
// be written are kept for the next attempt.
func (s *Server) writeSummaries(ctx context.Context, es []ledger.Entry) error {
	if len(es) == 0 {
		return nil
	}
	recs := make([]audit.Record, 0, len(es))
	for _, e := range es {
		rec, err := audit.NewRecord(e)
		if err != nil {
			return err // a zero time: not possible for summaries
		}
		recs = append(recs, rec)
	}
	if err := s.ledger.Append(ctx, recs...); err != nil {
		f := s.failures
		f.mu.Lock()
		f.unwritten = append(f.unwritten, es...)
		f.mu.Unlock()
		return err
	}
	return nil
}

// CloseFailureWindow writes the summary entries of the refusals counted
// in the current window, if the clock has left it (see FailureConfig):
// call it about once a window, so that counts reach the ledger even when
// no request comes to close the window.
func (s *Server) CloseFailureWindow(ctx context.Context) error {
	s.emit(s.events.roll(false)...)
	return s.writeSummaries(ctx, s.failures.rollover())
}

// FlushFailures writes the summary entries of every refusal counted so
// far, ending the current window early: at a clean stop, after the last
// request and before the ledger closes.
func (s *Server) FlushFailures(ctx context.Context) error {
	s.emit(s.events.roll(true)...)
	f := s.failures
	f.mu.Lock()
	es := f.closeLocked(f.now())
	f.mu.Unlock()
	return s.writeSummaries(ctx, es)
}
