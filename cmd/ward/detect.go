package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

// detectFlags configure the anomaly detector ward serve runs.
type detectFlags struct {
	off         bool
	config      string
	poll        time.Duration
	autoSuspend string
}

func (d *detectFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&d.off, "detect-off", false, "do not run the anomaly detector in this process (another replica runs it, or none)")
	fs.StringVar(&d.config, "detect-config", "", "JSON file of the detector's rules and thresholds (see docs/DETECTION.md); default: Ward's")
	fs.DurationVar(&d.poll, "detect-poll", time.Second, "how often the detector reads the ledger's new entries")
	fs.StringVar(&d.autoSuspend, "detect-auto-suspend", "", "comma-separated rules whose alerts about a service client suspend it at once (e.g. service-volume); lift with /admin/contain/lift")
}

// detector is the anomaly detector of a running server: it tails the
// ledger, stores its alerts once per key, raises alert.raised for each
// new one, and suspends the clients of the auto-suspend rules.
type detector struct {
	db     store.Store
	ledger interface {
		Append(context.Context, ...audit.Record) error
	}
	auth    *auth.Server
	events  secevent.Emitter
	log     *slog.Logger
	suspend map[string]bool

	mu   sync.Mutex
	seen map[string]bool // alert keys this process raised an event for
}

// start builds the detector from its flags and runs it until ctx
// ends; it returns the runner, whose Stats say how far behind it is.
func (d detectFlags) start(ctx context.Context, db store.Store, appender interface {
	Append(context.Context, ...audit.Record) error
}, rec *records.Service, users *auth.Users, au *auth.Server, events secevent.Emitter, log *slog.Logger) (*detect.Runner, error) {
	if d.off {
		return nil, nil
	}
	cfg := detect.Config{}
	if d.config != "" {
		f, err := os.Open(d.config)
		if err != nil {
			return nil, fmt.Errorf("--detect-config: %w", err)
		}
		cfg, err = detect.LoadConfig(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("--detect-config %s: %w", d.config, err)
		}
	}
	suspend := map[string]bool{}
	for _, r := range strings.Split(d.autoSuspend, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		known := false
		for _, k := range detect.Rules {
			known = known || k == r
		}
		if !known {
			return nil, usagef("--detect-auto-suspend: unknown rule %q", r)
		}
		suspend[r] = true
	}
	facts := rec.DetectionFacts(func(ctx context.Context, actor string) (string, error) {
		u, err := users.User(ctx, actor)
		if errors.Is(err, auth.ErrUnknownUser) || errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return u.FHIRUser, err
	})
	det, err := detect.New(cfg, facts)
	if err != nil {
		return nil, err
	}
	from, err := db.DetectorPosition(ctx)
	if err != nil {
		return nil, err
	}
	dt := &detector{db: db, ledger: appender, auth: au, events: events, log: log, suspend: suspend, seen: map[string]bool{}}
	runner, err := detect.NewRunner(det, detect.RunConfig{Reader: db, From: from, Poll: d.poll, Save: dt.save})
	if err != nil {
		return nil, err
	}
	go func() {
		if err := runner.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("the anomaly detector stopped", "error", err.Error())
		}
	}()
	return runner, nil
}

// save stores the detector's alerts with its position, then raises an
// event for each alert new to this process and applies auto-suspension.
func (dt *detector) save(ctx context.Context, alerts []detect.Alert, through int64) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]store.Alert, 0, len(alerts))
	for _, a := range alerts {
		rows = append(rows, store.Alert{ID: newAlertID(), Key: a.Key, Rule: a.Rule, Severity: a.Severity, Actor: a.Actor, Client: a.Client,
			Source: a.Source, Summary: a.Summary, Evidence: a.Evidence, Count: int64(a.Count), First: a.First, Last: a.Last, Raised: now})
	}
	if err := dt.db.SaveAlerts(ctx, rows, through); err != nil {
		return err
	}
	dt.mu.Lock()
	defer dt.mu.Unlock()
	if len(dt.seen) > 100000 {
		clear(dt.seen)
	}
	for _, a := range alerts {
		if dt.seen[a.Key] {
			continue
		}
		dt.seen[a.Key] = true
		e := secevent.New(secevent.AlertRaised, now)
		e.Actor, e.Client, e.Source, e.Outcome = a.Actor, a.Client, a.Source, secevent.Success
		e.Attrs = map[string]string{secevent.AttrRule: a.Rule, secevent.AttrSeverity: a.Severity, secevent.AttrCount: fmt.Sprint(a.Count)}
		dt.events.Emit(e)
		if dt.suspend[a.Rule] && a.Client != "" && a.Actor == a.Client {
			dt.autoSuspend(ctx, a, now)
		}
	}
	return nil
}

// autoSuspend suspends the service client an alert names, records it in
// the ledger as the detector's containment, and raises its event.
func (dt *detector) autoSuspend(ctx context.Context, a detect.Alert, now time.Time) {
	if err := dt.auth.SuspendClient(ctx, a.Client, true); err != nil {
		dt.log.Error("automatic suspension failed", "client", a.Client, "rule", a.Rule, "error", err.Error())
		return
	}
	entry := ledger.Entry{Time: now, Actor: "ward-detector", Client: "ward-detector", Action: "contain", ResourceType: "Client",
		ResourceID: a.Client, Outcome: "success", Detail: "suspend rule=" + a.Rule}
	rec, err := audit.NewRecord(entry)
	if err == nil {
		err = dt.ledger.Append(ctx, rec)
	}
	if err != nil {
		dt.log.Error("automatic suspension not recorded in the ledger", "client", a.Client, "error", err.Error())
	}
	e := secevent.New(secevent.ContainmentOn, now)
	e.Actor, e.Client, e.Outcome = "ward-detector", a.Client, secevent.Success
	e.Attrs = map[string]string{secevent.AttrTarget: "client/" + a.Client, secevent.AttrChange: "suspend", secevent.AttrRule: a.Rule}
	dt.events.Emit(e)
}

func newAlertID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "al-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
