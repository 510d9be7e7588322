package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/health"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/metrics"
	"github.com/wardhealth/ward/internal/siem"
	"github.com/wardhealth/ward/internal/store"
)

// opsFlags configure readiness and metrics (README, Operations).
type opsFlags struct {
	metricsAddr      string
	siemReadyBacklog uint64
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "address of the Prometheus metrics listener (/metrics), never the FHIR one; default off. A loopback address is served over plain HTTP, any other over HTTPS with the server's certificate")
	fs.Uint64Var(&o.siemReadyBacklog, "siem-ready-backlog", 100000, "security events a SIEM sink may have undelivered before /readyz answers 503")
}

// readiness is what /readyz checks.
type readiness struct {
	// db answers a trivial query (the ledger's size: one row).
	db interface {
		LedgerSize(ctx context.Context) (int64, error)
	}
	// kek is the key provider; it must wrap and unwrap (keys.Probe).
	kek keys.KEKProvider
	// ledger is the audit log; halt the checkpoint signer's halt, ignored
	// by a read-only investigation (which halts it on purpose).
	ledger interface{ Stats() audit.Stats }
	halt   *audit.Halt
	// siem is nil without a stream; bound is the largest backlog a sink
	// may have.
	siem  func() siem.Stats
	bound uint64
}

// Reasons /readyz shows: fixed words, no values.
const (
	reasonDatabase   = health.Reason("the database does not answer")
	reasonKeys       = health.Reason("the key provider cannot wrap and unwrap a key")
	reasonHalted     = health.Reason("ledger checkpoint signing is halted: see the log")
	reasonClosed     = health.Reason("the audit ledger is closed")
	reasonBroken     = health.Reason("the ledger spool refuses entries until Ward restarts")
	reasonSpoolFull  = health.Reason("the ledger spool's backlog is near its bound")
	reasonForged     = health.Reason("a pending ledger entry's tag does not verify: nothing is folded until it is removed")
	reasonSIEMBehind = health.Reason("a SIEM sink's backlog is over its bound")
)

func (r readiness) checks(readOnly bool) []health.Check {
	cs := []health.Check{
		{Name: "database", Fn: func(ctx context.Context) error {
			if _, err := r.db.LedgerSize(ctx); err != nil {
				return fmt.Errorf("%w: %w", reasonDatabase, err)
			}
			return nil
		}},
		{Name: "keys", Fn: func(ctx context.Context) error {
			if err := keys.Probe(ctx, r.kek); err != nil {
				return fmt.Errorf("%w: %w", reasonKeys, err)
			}
			return nil
		}},
		{Name: "ledger", Fn: func(context.Context) error {
			if !readOnly && r.halt != nil && r.halt.Err() != nil {
				return reasonHalted
			}
			s := r.ledger.Stats()
			switch {
			case s.Closed:
				return reasonClosed
			case s.Broken != nil:
				return reasonBroken
			case s.Spooled && s.Unfolded > s.MaxUnfolded/4*3:
				return reasonSpoolFull
			case errors.Is(s.FoldErr, audit.ErrPendingTag):
				return reasonForged
			}
			return nil
		}},
	}
	if r.siem != nil {
		cs = append(cs, health.Check{Name: "siem", Fn: func(context.Context) error {
			for _, k := range r.siem().Sinks {
				if k.Backlog > r.bound {
					return reasonSIEMBehind
				}
			}
			return nil
		}})
	}
	return cs
}

// checkpointWatch notes when the checkpointer last confirmed a signed
// checkpoint covering the ledger: audit.Checkpoint reads the checkpoint
// of the ledger's size back (Checkpoint) whether it signed it or found
// it signed.
type checkpointWatch struct {
	audit.CheckpointStore
	now  func() time.Time
	last atomic.Int64 // unix nanoseconds; 0: never
}

func (w *checkpointWatch) Checkpoint(ctx context.Context, size int64) ([]byte, error) {
	note, err := w.CheckpointStore.Checkpoint(ctx, size)
	if err == nil {
		w.last.Store(w.now().UnixNano())
	}
	return note, err
}

// age is the time since the last confirmation; < 0 before the first.
func (w *checkpointWatch) age() time.Duration {
	last := w.last.Load()
	if last == 0 {
		return -1
	}
	return w.now().Sub(time.Unix(0, last))
}

// metricSources adapts the stats of the audit log, the SIEM stream and
// the detector to package metrics. The pointers are read at each scrape:
// the detector starts after the metrics are made.
type metricSources struct {
	db       store.LedgerReader
	watch    *checkpointWatch
	ledger   *audit.Log
	stream   *siem.Stream
	detector atomic.Pointer[detect.Runner]
}

func (m *metricSources) sources() metrics.Sources {
	src := metrics.Sources{
		Ledger: func(ctx context.Context) (metrics.LedgerStats, error) {
			size, err := m.db.LedgerSize(ctx)
			if err != nil {
				return metrics.LedgerStats{}, err
			}
			cp, _, err := m.db.LatestCheckpoint(ctx)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return metrics.LedgerStats{}, err
			}
			age := time.Duration(-1)
			if m.watch != nil {
				age = m.watch.age()
			}
			return metrics.LedgerStats{Entries: size, CheckpointSize: cp, CheckpointAge: age}, nil
		},
		Audit: func() metrics.AuditStats {
			s := m.ledger.Stats()
			return metrics.AuditStats{Queued: s.Queued, Unfolded: s.Unfolded, MaxUnfolded: s.MaxUnfolded, Broken: s.Broken != nil}
		},
		Detector: func() metrics.DetectorStats {
			r := m.detector.Load()
			if r == nil {
				return metrics.DetectorStats{}
			}
			s := r.Stats()
			return metrics.DetectorStats{Behind: s.Behind, Lag: s.Lag, Alerts: s.Alerts, ReadErrors: s.ReadErrors, SaveErrors: s.SaveErrors, Undecodable: s.Undecodable}
		},
	}
	if m.stream != nil {
		src.SIEM = func() metrics.SIEMStats {
			s := m.stream.Stats()
			out := metrics.SIEMStats{Emitted: s.Emitted, Dropped: s.Dropped, BufferBytes: s.BufferBytes}
			for _, k := range s.Sinks {
				out.Sinks = append(out.Sinks, metrics.SIEMSink{Name: k.Name, Delivered: k.Delivered, Failures: k.Failures, Backlog: k.Backlog, Oldest: k.Oldest})
			}
			return out
		}
	}
	return src
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// serveMetrics serves h at /metrics on its own listener: plain HTTP on a
// loopback address, HTTPS with conf anywhere else. Nothing else is served
// there, and the FHIR listener does not serve /metrics.
func serveMetrics(addr string, h http.Handler, conf *tls.Config, logger *slog.Logger) (*http.Server, <-chan error, error) {
	loop, err := isLoopback(addr)
	if err != nil {
		return nil, nil, usagef("--metrics-addr: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		MaxHeaderBytes: 16 << 10, ErrorLog: log.New(slogWriter{logger}, "", 0)}
	errc := make(chan error, 1)
	if loop {
		go func() { errc <- srv.Serve(ln) }()
	} else {
		c := conf.Clone()
		c.ClientAuth = tls.NoClientCert
		go func() { errc <- srv.Serve(tls.NewListener(ln, c)) }()
	}
	logger.Info("metrics listening", "addr", ln.Addr().String(), "tls", !loop)
	return srv, errc, nil
}
