package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

const drillSummary = `Replay an attack against a running Ward with throw-away accounts and
synthetic patients, and report which alerts fired, how long each took to be
listable, and which runbook steps and deadlines the incident then asked for.

  ward drill SCENARIO --target https://host:port --data DIR|--db URL [--ca FILE]
             [--timeout 60s] [--detect-config FILE] [--runbooks FILE]
             [--sources A,B] [--json]

Scenarios:
  snooping             a practitioner reads many related patients at once, probes
                       patients outside their care, searches for others by id, and
                       reads a VIP's record (many-patients, unrelated-patient,
                       search-snooping, vip)
  credential-stuffing  wrong passwords for many accounts from one source
                       (credential-stuffing)
  exfiltration         a service reads a few patients, then far more than the
                       detector's ceiling in one hour (service-volume)
  stolen-token         one person's token used from two networks (token-two-sources)
  all                  each of the above in turn

Accounts and clients are made offline in the data directory or database,
named drill-<run>-..., and disabled or revoked at the end; patients, care
teams and a practitioner record are created through the API with the tag
urn:ward:drill|drill-<run>-<scenario> and deleted at the end. The incident
opened from a scenario's alerts is closed as a drill. The ledger keeps every
entry, as it keeps everything. Give the drill the server's --detect-config
and --runbooks, if any, so that it sizes its traffic to the thresholds in force
and reports the runbooks the server uses.

Exit status 0 when every expected alert was listable within --timeout, 1
otherwise (the missing rules are named).`

// drillTagSystem is the tag system of everything the drill creates
// through the API (meta.tag).
const drillTagSystem = "urn:ward:drill"

// alertBound is the delay within which Ward promises an alert is
// listable after its last triggering entry (catalogue G1).
const alertBound = 10 * time.Second

var drillScenarios = []string{"snooping", "credential-stuffing", "exfiltration", "stolen-token"}

func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(stdout, "Usage: ward drill SCENARIO [flags]\n\n%s\n\nRun 'ward drill all --help' for the flags.\n", drillSummary)
		return errHelp
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usagef("name a scenario: %s or all", strings.Join(drillScenarios, ", "))
	}
	scenario, rest := args[0], args[1:]
	var st storage
	fs := newFlagSet("drill "+scenario, drillSummary)
	st.register(fs)
	target := fs.String("target", "", "the running Ward's URL, https://host:port")
	caFile := fs.String("ca", "", "PEM CA certificates the target's certificate must chain to (default: <data>/tls/ca.pem when it exists, else the system's)")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait, after a scenario's traffic, for its alerts")
	detectConfig := fs.String("detect-config", "", "the server's --detect-config file, to size the traffic to its thresholds (default: Ward's)")
	runbooks := fs.String("runbooks", "", "the server's --runbooks file (default: Ward's)")
	var sources listFlag
	fs.Var(&sources, "sources", "two local addresses in different networks to send from (stolen-token); default 127.0.0.1,127.0.1.1 for a loopback target")
	asJSON := fs.Bool("json", false, "print the report as JSON (for schedulers)")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	var scenarios []string
	switch {
	case scenario == "all":
		scenarios = drillScenarios
	case slices.Contains(drillScenarios, scenario):
		scenarios = []string{scenario}
	default:
		return usagef("unknown scenario %q; want one of %s or all", scenario, strings.Join(drillScenarios, ", "))
	}
	base, err := drillTarget(*target)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	srcs, err := drillSources(base, sources)
	if err != nil {
		return err
	}
	if slices.Contains(scenarios, "stolen-token") && !srcs[1].IsValid() {
		return usagef("stolen-token needs --sources A,B: two local addresses in different networks that reach the target")
	}
	cfg, err := drillDetectConfig(*detectConfig)
	if err != nil {
		return err
	}
	var rb incident.Runbooks
	if *runbooks != "" {
		if rb, err = incident.LoadRunbooks(*runbooks); err != nil {
			return err
		}
	}
	roots, err := drillRoots(*caFile, st.data)
	if err != nil {
		return err
	}

	r, err := openDrill(ctx, &st, cfg, rb)
	if err != nil {
		return err
	}
	defer r.db.Close()
	r.target, r.timeout, r.progress, r.st, r.stderr = base, *timeout, stderr, &st, stderr
	r.a = newDrillHTTP(base, roots, srcs[0])
	defer r.a.close()
	if srcs[1].IsValid() {
		r.b = newDrillHTTP(base, roots, srcs[1])
		defer r.b.close()
	}
	r.logf("drill %s against %s: %s", r.id, base, strings.Join(scenarios, ", "))

	rep := drillReport{Run: r.id, Target: base, Started: time.Now().UTC(), Timeout: r.timeout.String()}
	var failures []string
	for _, name := range scenarios {
		res := r.scenario(ctx, name)
		rep.Scenarios = append(rep.Scenarios, res)
		for _, a := range res.Alerts {
			if !a.Fired {
				failures = append(failures, name+": "+a.Rule)
			}
		}
		if res.Error != "" {
			failures = append(failures, name+": "+res.Error)
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Clean up whatever happened, even after an interruption.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	rep.Cleanup = r.cleanup(cctx)
	if rep.Cleanup.Error != "" {
		failures = append(failures, "clean-up: "+rep.Cleanup.Error)
	}
	rep.Remains = []string{
		"the ledger entries of every request and change the drill made (the ledger keeps every entry)",
		"the throw-away users (disabled) and clients (revoked), named drill-" + r.id + "-...",
		"the deleted patients, care teams and practitioner record, tagged " + drillTagSystem + "|drill-" + r.id + "-<scenario>, in their history",
		"the drill's alerts (closed) and incidents (closed, with a \"drill\" action in the timeline)",
	}
	rep.OK = len(failures) == 0
	rep.Finished = time.Now().UTC()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.print(stdout); err != nil {
		return err
	}
	if len(failures) > 0 {
		return fmt.Errorf("drill failed: %s", strings.Join(failures, "; "))
	}
	return nil
}

// drillTarget checks --target: an https URL of a host and port, no path.
func drillTarget(target string) (string, error) {
	if target == "" {
		return "", usagef("--target is required: the running Ward's https://host:port")
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", usagef("--target must be https://host:port, got %q", target)
	}
	return "https://" + u.Host, nil
}

// drillSources returns the local addresses to send from: --sources, or
// for a loopback target two loopback addresses in different /24
// networks (127/8 is all loopback on Linux).
func drillSources(base string, given []string) ([2]netip.Addr, error) {
	var out [2]netip.Addr
	if len(given) > 0 {
		if len(given) != 2 {
			return out, usagef("--sources takes two addresses, A,B")
		}
		for i, s := range given {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return out, usagef("--sources: %v", err)
			}
			out[i] = a
		}
		return out, nil
	}
	u, _ := url.Parse(base)
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); (err == nil && ip.Is4() && ip.IsLoopback()) || host == "localhost" {
		out[0], out[1] = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.1.1")
	}
	return out, nil
}

// drillDetectConfig reads the detector configuration the drill sizes its
// traffic to, with Ward's defaults filled in.
func drillDetectConfig(path string) (detect.Config, error) {
	var cfg detect.Config
	if path != "" {
		f, err := os.Open(path) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
		if err != nil {
			return cfg, fmt.Errorf("--detect-config: %w", err)
		}
		cfg, err = detect.LoadConfig(f)
		_ = f.Close()
		if err != nil {
			return cfg, fmt.Errorf("--detect-config %s: %w", path, err)
		}
	}
	d, err := detect.New(cfg, &detect.MemoryFacts{})
	if err != nil {
		return cfg, err
	}
	return d.Config(), nil
}

// drillRoots returns the CAs the target's certificate must chain to; nil
// for the system's.
func drillRoots(caFile, data string) (*x509.CertPool, error) {
	if caFile == "" {
		dev := filepath.Join(data, "tls", "ca.pem")
		if _, err := os.Stat(dev); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		caFile = dev
	}
	pem, err := os.ReadFile(caFile) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// drill is one run: the store it makes its accounts in and reads alerts
// from, the clients it sends from, and what it created.
type drill struct {
	id        string
	target    string
	timeout   time.Duration
	cfg       detect.Config
	db        store.Store
	users     *auth.Users
	au        *auth.Server
	incidents *incident.Service
	actor     string // who the drill's ledger entries and incident changes name
	st        *storage
	progress  io.Writer
	stderr    io.Writer

	a, b *drillHTTP // from the first and second source
	app  *drillApp  // the throw-away app people sign in to, once made

	setupID, setupSecret string // the throw-away service that writes the synthetic data

	made struct {
		users, clients []string
		resources      map[string][]string // type -> ids, in creation order
	}
}

func openDrill(ctx context.Context, st *storage, cfg detect.Config, rb incident.Runbooks) (*drill, error) {
	kf, err := st.openKeys()
	if err != nil {
		return nil, err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*drill, error) {
		_ = db.Close()
		return nil, err
	}
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{})
	if err != nil {
		return fail(err)
	}
	users, err := auth.NewUsers(auth.UsersConfig{}, db, kr)
	if err != nil {
		return fail(err)
	}
	au, err := auth.NewServer(auth.Config{Issuer: "https://ward.invalid", Audience: "https://ward.invalid/fhir"}, db, kf.TokenSigner())
	if err != nil {
		return fail(err)
	}
	inc, err := incident.New(incident.Config{Store: db, Runbooks: rb})
	if err != nil {
		return fail(err)
	}
	r := &drill{id: strings.ToLower(rand.Text()[:6]), cfg: cfg, db: db, users: users, au: au, incidents: inc, actor: localActor()}
	r.made.resources = map[string][]string{}
	return r, nil
}

func (r *drill) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "ward drill: "+format+"\n", args...)
}

// name is a throw-away account's or client's name in this run.
func (r *drill) name(suffix string) string { return "drill-" + r.id + "-" + suffix }

// scenario runs one scenario: its traffic, the wait for its alerts, and
// the incident opened from them.
func (r *drill) scenario(ctx context.Context, name string) scenarioResult {
	res := scenarioResult{Scenario: name}
	w := &watcher{db: r.db}
	var err error
	switch name {
	case "snooping":
		res.Traffic, err = r.snooping(ctx, w)
	case "credential-stuffing":
		res.Traffic, err = r.credentialStuffing(ctx, w)
	case "exfiltration":
		res.Traffic, err = r.exfiltration(ctx, w)
	case "stolen-token":
		res.Traffic, err = r.stolenToken(ctx, w)
	}
	if err != nil {
		res.Error = err.Error()
		r.logf("%s: %v", name, err)
	}
	if len(w.exps) > 0 {
		r.logf("%s: waiting up to %s for %s", name, r.timeout, strings.Join(w.rules(), ", "))
		w.wait(ctx, r.timeout)
	}
	var ids []string
	for _, e := range w.exps {
		a := alertResult{Rule: e.rule, Fired: e.found}
		if e.found {
			a.Alert, a.Evidence, a.Count, a.Summary = e.alert.ID, len(e.alert.Evidence), e.alert.Count, e.alert.Summary
			after := max(e.seen.Sub(e.lastAt()), 0)
			a.After, a.AfterMS = after.Round(time.Millisecond).String(), after.Milliseconds()
			a.WithinBound = after <= alertBound
			a.Updated = e.updated()
			ids = append(ids, e.alert.ID)
		} else if !r.cfg.Enabled(e.rule) {
			a.Note = "disabled in --detect-config"
		}
		res.Alerts = append(res.Alerts, a)
	}
	if len(ids) > 0 {
		inc, err := r.respond(ctx, ids)
		if err != nil {
			res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + "incident: " + err.Error()
		}
		res.Incident = inc
	}
	return res
}

// respond opens an incident from a scenario's alerts, as a security
// officer would, notes what it asks for, and closes it as a drill: the
// timeline records the action "drill", each runbook step is marked done
// by the drill, and the alerts are closed.
func (r *drill) respond(ctx context.Context, alertIDs []string) (*incidentResult, error) {
	inc, err := r.incidents.Open(ctx, r.actor, alertIDs)
	if err != nil {
		return nil, err
	}
	if err := recordAdmin(ctx, r.db, "incident-open", "Incident", inc.ID, fmt.Sprintf("drill=%s alerts=%d", r.id, len(alertIDs))); err != nil {
		return nil, err
	}
	out := &incidentResult{ID: inc.ID, Runbook: inc.Runbook, Deadlines: inc.Deadlines}
	if _, err := r.incidents.Update(ctx, inc.ID, r.actor, 0, incident.Change{Action: "drill", Target: r.id}); err != nil {
		return out, err
	}
	for _, s := range inc.Runbook {
		if _, err := r.incidents.Update(ctx, inc.ID, r.actor, 0, incident.Change{Step: s.ID}); err != nil {
			return out, err
		}
	}
	if _, err := r.incidents.Update(ctx, inc.ID, r.actor, 0, incident.Change{Status: incident.StatusClosed}); err != nil {
		return out, err
	}
	for _, id := range alertIDs {
		if _, err := r.incidents.SetAlertStatus(ctx, id, store.AlertClosed, r.actor); err != nil {
			return out, err
		}
	}
	if err := recordAdmin(ctx, r.db, "incident-update", "Incident", inc.ID, fmt.Sprintf("drill=%s status=closed steps=%d", r.id, len(inc.Runbook))); err != nil {
		return out, err
	}
	out.Closed = true
	for i := range out.Runbook {
		out.Runbook[i].Done, out.Runbook[i].DoneBy = nil, ""
	}
	return out, nil
}

// expectation is an alert a scenario expects: its rule and whom it names.
type expectation struct {
	rule   string
	actor  string               // the alert's actor; "" for rules about sources
	source string               // the alert's source, when known
	before map[string]alertMark // alerts of the rule before the traffic, for rules about sources
	// since, for an alert in before, is the server's time of the last
	// triggering answer: the alert counts once it reflects an entry at
	// least that recent.
	since time.Time

	mu    sync.Mutex
	last  time.Time // when the answer to the last triggering request arrived
	seen  time.Time // when the alert was first listable
	found bool
	alert store.Alert
	retry func(context.Context) error // repeats a trigger while waiting
}

type alertMark struct {
	count int64
	last  time.Time
}

// triggered notes the answer to a triggering request.
func (e *expectation) triggered() { e.triggeredAt(time.Time{}) }

// triggeredAt notes the answer to a triggering request that the server
// dated serverTime.
func (e *expectation) triggeredAt(serverTime time.Time) {
	e.mu.Lock()
	e.last, e.since = time.Now(), serverTime
	e.mu.Unlock()
}

func (e *expectation) lastAt() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

// matches reports whether a is the alert e expects: of its rule, naming
// its actor (or source), and new or grown since the traffic began.
func (e *expectation) matches(a store.Alert) bool {
	if a.Rule != e.rule || (e.actor != "" && a.Actor != e.actor) || (e.source != "" && a.Source != e.source) {
		return false
	}
	if e.before == nil {
		return true
	}
	m, ok := e.before[a.ID]
	if !ok {
		return true
	}
	e.mu.Lock()
	since := e.since
	e.mu.Unlock()
	return !since.IsZero() && a.Count > m.count && !a.Last.Before(since)
}

// updated reports whether e's alert was raised before the traffic and
// updated by it (an alert stays one alert within its rule's dedupe period).
func (e *expectation) updated() bool {
	_, ok := e.before[e.alert.ID]
	return ok
}

// watcher polls the store for a scenario's expected alerts while its
// traffic runs and after, so that each alert's delay is measured from
// its own trigger.
type watcher struct {
	db   store.Alerts
	mu   sync.Mutex
	exps []*expectation
	stop chan struct{}
	done chan struct{}
}

const (
	watchEvery = 100 * time.Millisecond
	retryEvery = 15 * time.Second
)

// expect registers an expectation, taking the snapshot of alerts about
// sources first, and starts polling at the first one.
func (w *watcher) expect(ctx context.Context, e *expectation) (*expectation, error) {
	if e.actor == "" {
		e.before = map[string]alertMark{}
		as, _, err := w.db.ListAlerts(ctx, store.AlertQuery{Rule: e.rule, Count: 1000})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			e.before[a.ID] = alertMark{a.Count, a.Last}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exps = append(w.exps, e)
	if w.stop == nil {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.run(context.WithoutCancel(ctx))
	}
	return e, nil
}

func (w *watcher) rules() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.exps {
		out = append(out, e.rule)
	}
	return out
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// poll looks once for every expected alert not yet seen.
func (w *watcher) poll(ctx context.Context) {
	w.mu.Lock()
	exps := slices.Clone(w.exps)
	w.mu.Unlock()
	for _, e := range exps {
		e.mu.Lock()
		found := e.found
		e.mu.Unlock()
		if found {
			continue
		}
		q := store.AlertQuery{Rule: e.rule, Actor: e.actor, Count: 50}
		if e.actor == "" {
			q.Count = 1000
		}
		as, _, err := w.db.ListAlerts(ctx, q)
		if err != nil {
			continue // tried again at the next tick
		}
		now := time.Now()
		for _, a := range as {
			if e.matches(a) {
				e.mu.Lock()
				e.found, e.seen, e.alert = true, now, a
				e.mu.Unlock()
				break
			}
		}
	}
}

// all reports whether every expectation was met.
func (w *watcher) all() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.exps {
		e.mu.Lock()
		found := e.found
		e.mu.Unlock()
		if !found {
			return false
		}
	}
	return true
}

// wait waits until every expected alert is listable or timeout has
// passed, repeating retryable triggers meanwhile, then stops polling.
func (w *watcher) wait(ctx context.Context, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	nextRetry := time.Now().Add(retryEvery)
loop:
	for !w.all() {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline.C:
			break loop
		case now := <-tick.C:
			if now.Before(nextRetry) {
				continue
			}
			nextRetry = now.Add(retryEvery)
			w.mu.Lock()
			exps := slices.Clone(w.exps)
			w.mu.Unlock()
			for _, e := range exps {
				e.mu.Lock()
				retry := !e.found && e.retry != nil
				e.mu.Unlock()
				if retry {
					_ = e.retry(ctx) // a failed repeat leaves the alert missing, which the report shows
				}
			}
		}
	}
	close(w.stop)
	<-w.done
	w.poll(context.WithoutCancel(ctx)) // a last look, so that an alert listed at the deadline counts
}

// drillReport is what a drill prints.
type drillReport struct {
	Run       string           `json:"run"`
	Target    string           `json:"target"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Timeout   string           `json:"timeout"`
	OK        bool             `json:"ok"`
	Scenarios []scenarioResult `json:"scenarios"`
	Cleanup   cleanupResult    `json:"cleanup"`
	Remains   []string         `json:"remains"`
}

type scenarioResult struct {
	Scenario string          `json:"scenario"`
	Traffic  string          `json:"traffic"`
	Alerts   []alertResult   `json:"alerts"`
	Incident *incidentResult `json:"incident,omitempty"`
	Error    string          `json:"error,omitempty"`
}

type alertResult struct {
	Rule        string `json:"rule"`
	Fired       bool   `json:"fired"`
	Alert       string `json:"alert,omitempty"`
	After       string `json:"after,omitempty"`   // from the last triggering request's answer to the alert being listable
	AfterMS     int64  `json:"afterMs,omitempty"` // the same, in milliseconds
	WithinBound bool   `json:"withinBound"`       // After is at most alertBound
	Evidence    int    `json:"evidence,omitempty"`
	Count       int64  `json:"count,omitempty"`
	Summary     string `json:"summary,omitempty"`
	Note        string `json:"note,omitempty"`
	// Updated: the alert was raised before the drill, within its rule's
	// dedupe period, and the drill's traffic updated it.
	Updated bool `json:"updated,omitempty"`
}

type incidentResult struct {
	ID        string              `json:"id"`
	Runbook   []incident.Step     `json:"runbook"`
	Deadlines []incident.Deadline `json:"deadlines"`
	Closed    bool                `json:"closed"`
}

type cleanupResult struct {
	UsersDisabled    int    `json:"usersDisabled"`
	ClientsRevoked   int    `json:"clientsRevoked"`
	ResourcesDeleted int    `json:"resourcesDeleted"`
	Error            string `json:"error,omitempty"`
}

func (rep drillReport) print(out io.Writer) error {
	fmt.Fprintf(out, "Drill %s against %s (alerts awaited up to %s; Ward's bound is %s)\n\n", rep.Run, rep.Target, rep.Timeout, alertBound)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRULE\tRESULT\tAFTER\tEVIDENCE\tALERT")
	for _, s := range rep.Scenarios {
		for _, a := range s.Alerts {
			result, after, ev := "MISSING", "-", "-"
			if a.Fired {
				result, after, ev = "fired", a.After, fmt.Sprintf("%d of %d", a.Evidence, a.Count)
				if a.Updated {
					result = "fired (an earlier alert, updated)"
				}
				if !a.WithinBound {
					after += " (over the bound)"
				}
			} else if a.Note != "" {
				result += " (" + a.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Scenario, a.Rule, result, after, ev, a.Alert)
		}
		if len(s.Alerts) == 0 {
			fmt.Fprintf(tw, "%s\t-\tnot run\t-\t-\t\n", s.Scenario)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Scenarios {
		fmt.Fprintf(out, "\n%s: %s\n", s.Scenario, s.Traffic)
		if s.Error != "" {
			fmt.Fprintf(out, "  error: %s\n", s.Error)
		}
		inc := s.Incident
		if inc == nil {
			continue
		}
		state := "left open (see error)"
		if inc.Closed {
			state = "closed as a drill"
		}
		fmt.Fprintf(out, "  incident %s, %s; its runbook asks for:\n", inc.ID, state)
		for _, st := range inc.Runbook {
			fmt.Fprintf(out, "    - %s: %s\n", st.ID, st.Title)
		}
		for _, d := range inc.Deadlines {
			fmt.Fprintf(out, "  deadline: %s %s, notify %s by %s\n", d.Regime, d.Clause, d.Notify, d.Due.UTC().Format(time.RFC3339))
		}
	}
	c := rep.Cleanup
	fmt.Fprintf(out, "\nClean-up: %d users disabled, %d clients revoked, %d synthetic resources deleted.\n", c.UsersDisabled, c.ClientsRevoked, c.ResourcesDeleted)
	if c.Error != "" {
		fmt.Fprintf(out, "Clean-up error: %s\n", c.Error)
	}
	fmt.Fprintln(out, "What stays:")
	for _, s := range rep.Remains {
		fmt.Fprintf(out, "  - %s\n", s)
	}
	verdict := "PASSED: every expected alert fired."
	if !rep.OK {
		verdict = "FAILED."
	}
	_, err := fmt.Fprintln(out, "\n"+verdict)
	return err
}
