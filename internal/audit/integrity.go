package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// A server checks its own ledger three ways (catalogue E7): at start,
// VerifyAtStart checks what is needed to trust the chain of checkpoints
// before anything is served or signed; before each signature, Checkpoint
// checks that the tree extends the previous checkpoint; and while it
// runs, RunVerification re-hashes every entry at a bounded pace, so that
// an edit made under a running server is found too. A finding stops the
// process's Halt: it signs no more checkpoints, since each would vouch
// for a ledger that is not what was signed before.

// ErrTampered is wrapped when the stored ledger disagrees with a signed
// checkpoint: an entry or stored hash that does not match, fewer entries
// than a checkpoint commits to, or a tree that does not extend one. It is
// evidence of tampering (or of a database restored from an old backup).
var ErrTampered = errors.New("audit: the stored ledger disagrees with a signed checkpoint")

// ErrHistoryRewritten is wrapped when a published checkpoint disagrees
// with the ledger: a file of the same size with other content, a store
// that cannot prove it extends a published checkpoint, or a witness that
// holds another root for the same size. It wraps [ErrTampered].
var ErrHistoryRewritten error = &narrower{"audit: the ledger disagrees with a published checkpoint", ErrTampered}

// narrower is a sentinel error that is also a more general one.
type narrower struct {
	msg    string
	parent error
}

func (e *narrower) Error() string { return e.msg }
func (e *narrower) Unwrap() error { return e.parent }

// Halt records that this process must sign no more checkpoints, and why.
// The zero value is ready and not stopped. It is safe for concurrent use.
type Halt struct {
	mu   sync.Mutex // held by Do's fn: Stop waits for a signature under way
	err  error
	done chan struct{}
}

// Do runs fn, which signs, unless the halt is stopped, in which case it
// returns the reason. Stop waits for an fn under way, so once Stop has
// returned nothing more is signed. fn must not call the halt's methods.
func (h *Halt) Do(fn func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	return fn()
}

// Stop stops the halt with the reason err; only the first reason is
// kept. It reports whether this call stopped it.
func (h *Halt) Stop(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return false
	}
	if err == nil {
		err = errors.New("audit: halted")
	}
	h.err = err
	if h.done == nil {
		h.done = make(chan struct{})
	}
	close(h.done)
	return true
}

// Err returns the reason the halt was stopped, or nil.
func (h *Halt) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Done returns a channel closed when the halt is stopped.
func (h *Halt) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	return h.done
}

// VerifyAtStart runs ledger.VerifyHead over the store: the latest stored
// checkpoint, opened under the key chain, and trusted, checkpoints kept
// outside the database (the newest published one, see [LatestPublished]).
// Failures of the ledger are *ledger.VerifyError wrapped with ErrTampered;
// other errors are failures to read the store.
func VerifyAtStart(ctx context.Context, st store.LedgerReader, keys Keys, trusted []ledger.SignedCheckpoint) (ledger.HeadReport, error) {
	_, latest, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		latest = nil
	} else if err != nil {
		return ledger.HeadReport{}, fmt.Errorf("audit: latest checkpoint: %w", err)
	}
	chain, _, err := keys.LedgerKeys() // after the checkpoint: it knows its key
	if err != nil {
		return ledger.HeadReport{}, err
	}
	rep, err := ledger.VerifyHead(ctx, Source(st), latest, nil, ledger.VerifyOptions{Origin: chain.Origin(), Trusted: trusted, Keys: chain})
	var ve *ledger.VerifyError
	if errors.As(err, &ve) {
		return rep, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return rep, err
}

// LatestPublished returns the largest checkpoint published in dir as
// <size>.checkpoint (see [Publisher]), or a nil note when there is none or
// dir does not exist. It does not verify the note.
func LatestPublished(dir string) (size int64, msg []byte, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("audit: publish directory: %w", err)
	}
	largest := int64(-1)
	for _, e := range entries {
		text, ok := strings.CutSuffix(e.Name(), ".checkpoint")
		n, err := strconv.ParseInt(text, 10, 64)
		if ok && err == nil && n >= 0 && strconv.FormatInt(n, 10) == text && n > largest {
			largest = n
		}
	}
	if largest < 0 {
		return 0, nil, nil
	}
	msg, err = os.ReadFile(filepath.Join(dir, strconv.FormatInt(largest, 10)+".checkpoint")) // #nosec G304 -- a file name Ward builds from a number in the configured publication directory
	if err != nil {
		return 0, nil, fmt.Errorf("audit: publish directory: %w", err)
	}
	return largest, msg, nil
}

// VerifyConfig configures RunVerification.
type VerifyConfig struct {
	// Pace is the most entries re-hashed per second; 0 or less disables
	// the background verification.
	Pace int
	// Rest is the pause between two passes; 0 means one minute.
	Rest time.Duration
	// Trusted are checkpoints kept outside the database that each pass
	// checks the ledger against, besides the latest stored one. It is
	// called at the start of each pass; nil means none.
	Trusted func() ([]ledger.SignedCheckpoint, error)
	// Wait pauses for d or until ctx ends; nil means a timer. Tests
	// replace it to run passes without waiting.
	Wait func(ctx context.Context, d time.Duration) error
}

// Pass is the outcome of one background verification pass.
type Pass struct {
	Size int64 // entries verified
	Err  error // nil, or the finding (wrapping ErrTampered) or read failure
}

// RunVerification verifies the whole ledger in the background, pass after
// pass, until ctx ends or it finds a problem: each pass re-hashes every
// entry from index 0 and compares it with the stored leaf and tree hashes,
// and checks the recomputed tree against the latest stored checkpoint and
// the trusted ones (ledger.Verify). It reads at most cfg.Pace entries a
// second. A pass keeps its position in memory only: each process starts
// again from 0, so nothing the database holds can make it skip entries.
//
// A finding (an error wrapping ErrTampered) stops halt, is given to onPass
// and ends the run; a failure to read is given to onPass and the pass is
// retried after the rest. Each completed pass is given to onPass too.
func RunVerification(ctx context.Context, st store.LedgerReader, keys Keys, cfg VerifyConfig, halt *Halt, onPass func(Pass)) {
	if cfg.Pace <= 0 {
		return
	}
	if cfg.Rest <= 0 {
		cfg.Rest = time.Minute
	}
	if cfg.Wait == nil {
		cfg.Wait = sleep
	}
	for ctx.Err() == nil {
		p := verifyPass(ctx, st, keys, cfg)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(p.Err, ErrTampered) {
			halt.Stop(p.Err) // before anyone hears of it: signing stops first
			onPass(p)
			return
		}
		onPass(p)
		if cfg.Wait(ctx, cfg.Rest) != nil {
			return
		}
	}
}

// verifyPass runs one paced pass of ledger.Verify.
func verifyPass(ctx context.Context, st store.LedgerReader, keys Keys, cfg VerifyConfig) Pass {
	// The checkpoint before the size: every checkpoint is then within
	// the entries the pass reads.
	var cps []ledger.SignedCheckpoint
	if _, latest, err := st.LatestCheckpoint(ctx); err == nil {
		cps = append(cps, latest)
	} else if !errors.Is(err, store.ErrNotFound) {
		return Pass{Err: fmt.Errorf("audit: latest checkpoint: %w", err)}
	}
	var trusted []ledger.SignedCheckpoint
	if cfg.Trusted != nil {
		var err error
		if trusted, err = cfg.Trusted(); err != nil {
			return Pass{Err: err}
		}
	}
	// The keys after the checkpoints: they know every key that signed one.
	chain, _, err := keys.LedgerKeys()
	if err != nil {
		return Pass{Err: err}
	}
	src := pacedSource{Source: Source(st), pace: cfg.Pace, wait: cfg.Wait}
	rep, err := ledger.Verify(ctx, src, cps, nil, ledger.VerifyOptions{Origin: chain.Origin(), Trusted: trusted, Batch: min(cfg.Pace, 4096), Keys: chain})
	var ve *ledger.VerifyError
	if errors.As(err, &ve) {
		err = fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return Pass{Size: rep.Size, Err: err}
}

// pacedSource reads entries no faster than pace a second: after each
// batch it waits as long as the batch is worth at that pace.
type pacedSource struct {
	ledger.Source
	pace int
	wait func(context.Context, time.Duration) error
}

func (p pacedSource) ReadEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	out, err := p.Source.ReadEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	d := time.Duration(len(out)) * time.Second / time.Duration(p.pace)
	if err := p.wait(ctx, d); err != nil {
		return nil, err
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
