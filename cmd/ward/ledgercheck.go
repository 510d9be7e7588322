package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

// exitLedger is serve's exit code when the audit ledger fails its start
// check: the server refuses to serve and to sign (README, Operations).
const exitLedger = 3

// ledgerRefusal is the error of a start refused because the ledger failed
// its check; run maps it to exitLedger.
type ledgerRefusal struct {
	err     error
	trusted string // the file of trusted checkpoint 0, if any
}

func (e *ledgerRefusal) Error() string {
	s := "the audit ledger failed its start check; refusing to serve or to sign checkpoints (start with --read-only-investigation to investigate): " + describeFinding(e.err)
	if e.trusted != "" {
		s += " (trusted checkpoint 0 is " + e.trusted + ")"
	}
	return s
}

func (e *ledgerRefusal) Unwrap() error { return e.err }

// errReadOnlyInvestigation halts signing on a server started with
// --read-only-investigation.
var errReadOnlyInvestigation = errors.New("started with --read-only-investigation")

// checkLedger checks the stored ledger before the server serves or signs
// anything (audit.VerifyAtStart): against the latest stored checkpoint
// and, with --ledger-publish-dir, the newest checkpoint published there.
// A ledger that fails is logged as a security event and refused with a
// *ledgerRefusal, unless the server starts read-only, which gets the
// finding back. Other errors (the database cannot be read) fail the
// start as any other.
func (f *serveFlags) checkLedger(ctx context.Context, db store.Store, keys audit.Keys, publishDir string, logger *slog.Logger, events secevent.Emitter) (finding error, err error) {
	began := time.Now()
	trusted, label, err := publishedCheckpoint(publishDir)
	if err != nil {
		return nil, err
	}
	rep, err := audit.VerifyAtStart(ctx, db, keys, trusted)
	if errors.Is(err, audit.ErrTampered) {
		attrs := []any{"error", err.Error()}
		if label != "" {
			attrs = append(attrs, "trusted_checkpoint_0", label)
		}
		logger.Error("security event: the audit ledger failed its start check", attrs...)
		events.Emit(ledgerFault("start"))
		if !f.readOnly {
			return nil, &ledgerRefusal{err, label}
		}
		return err, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checking the audit ledger at start: %w", err)
	}
	logger.Info("audit ledger checked at start", "entries", rep.Size, "latest_checkpoint", rep.Latest.Size,
		"entries_after_it", rep.Tail, "published_checkpoints", rep.Trusted, "took", time.Since(began).String())
	return nil, nil
}

// publishedCheckpoint returns the newest checkpoint in the publish
// directory, as the trusted checkpoints of a check, and its file name.
func publishedCheckpoint(dir string) ([]ledger.SignedCheckpoint, string, error) {
	if dir == "" {
		return nil, "", nil
	}
	size, msg, err := audit.LatestPublished(dir)
	if err != nil || msg == nil {
		return nil, "", err
	}
	return []ledger.SignedCheckpoint{msg}, filepath.Join(dir, strconv.FormatInt(size, 10)+".checkpoint"), nil
}

// verifyLedger runs the background check of the whole ledger at
// --ledger-verify-pace until ctx ends or it finds a problem, which stops
// signing (halt) and is logged and recorded.
func (f *serveFlags) verifyLedger(ctx context.Context, db store.Store, keys audit.Keys, publishDir string, halt *audit.Halt, logger *slog.Logger, events secevent.Emitter) {
	cfg := audit.VerifyConfig{Pace: f.verifyPace, Rest: f.verifyPause, Trusted: func() ([]ledger.SignedCheckpoint, error) {
		trusted, _, err := publishedCheckpoint(publishDir)
		return trusted, err
	}}
	audit.RunVerification(ctx, db, keys, cfg, halt, func(p audit.Pass) {
		switch {
		case errors.Is(p.Err, audit.ErrTampered):
			ledgerFinding(ctx, db, logger, events, "background-check", p.Err)
		case p.Err != nil:
			logger.Warn("background check of the audit ledger could not read it; retried after a pause", "error", p.Err.Error())
		default:
			logger.Info("background check of the audit ledger passed", "entries", p.Size)
		}
	})
}

// ledgerFinding logs a ledger that disagrees with its checkpoints, found
// while the server runs, as a security event, and records it in the
// ledger (which is in question, but is where auditors look). Signing has
// already stopped. events receives ledger.fault (the log line above is
// the operator's, with the detail a SIEM event leaves out).
func ledgerFinding(ctx context.Context, db store.Store, logger *slog.Logger, events secevent.Emitter, by string, err error) {
	logger.Error("security event: the audit ledger disagrees with its signed checkpoints; no more checkpoints are signed until an investigation",
		"found_by", by, "error", err.Error())
	events.Emit(ledgerFault(by))
	rerr := appendEntry(ctx, db, ledger.Entry{Time: time.Now().UTC(), Actor: "ward", Client: "ward-serve",
		Action: "ledger-check", Outcome: "failure", Detail: "found-by=" + by + " " + describeFinding(err)})
	if rerr != nil {
		logger.Error("recording the ledger finding failed", "error", rerr.Error())
	}
}

// describeFinding says what is wrong and where, from the verifier's error.
func describeFinding(err error) string {
	var ve *ledger.VerifyError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	s := ve.Reason
	if ve.Index >= 0 {
		s = fmt.Sprintf("first bad index %d: %s", ve.Index, ve.Reason)
	}
	if ve.Err != nil {
		s += ": " + ve.Err.Error()
	}
	return s
}

// checkSummary is what a read-only start records of the ledger check.
func checkSummary(found error) string {
	if found == nil {
		return "passed"
	}
	return "failed(" + describeFinding(found) + ")"
}
