package incident

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
	"golang.org/x/mod/sumdb/note"
)

// Errors of the response service; package api maps them to statuses.
var (
	ErrNotFound = errors.New("incident: not found")
	ErrInvalid  = errors.New("incident: invalid request")
	ErrConflict = errors.New("incident: changed by someone else; read it again")
)

// Incident states.
const (
	StatusOpen      = "open"
	StatusContained = "contained"
	StatusClosed    = "closed"
)

// Incident is a security incident: the alerts it groups, the people and
// clients it concerns, who owns it, its runbook and timeline, and the
// regulatory clocks that started when it was discovered. It holds ids,
// codes and times only, never PHI: there is no free text in it.
type Incident struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Owner      string     `json:"owner,omitempty"`
	Opened     time.Time  `json:"opened"`
	OpenedBy   string     `json:"openedBy"`
	Discovered time.Time  `json:"discovered"` // the earliest alert's, or when opened
	Updated    time.Time  `json:"updated"`
	Revision   int64      `json:"revision"`
	Alerts     []string   `json:"alerts"`
	Actors     []string   `json:"actors"` // the users and clients its alerts name
	Rules      []string   `json:"rules"`
	Runbook    []Step     `json:"runbook"`
	Timeline   []Event    `json:"timeline"`
	Deadlines  []Deadline `json:"deadlines"`
}

// Step is one step of an incident's runbook; Done is set when someone
// recorded it complete.
type Step struct {
	ID     string     `json:"id"`
	Title  string     `json:"title"`
	Done   *time.Time `json:"done,omitempty"`
	DoneBy string     `json:"doneBy,omitempty"`
}

// Event is one line of an incident's timeline: who did what, when. What
// is one of Ward's own codes and Ref an id (an alert, a step, a user).
type Event struct {
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	What string    `json:"what"`
	Ref  string    `json:"ref,omitempty"`
}

// Clock is a regulatory notification clock: a deadline a period after
// discovery.
type Clock struct {
	Regime string        `json:"regime"` // "HIPAA", "GDPR"
	Clause string        `json:"clause"`
	Notify string        `json:"notify"` // whom to notify by then
	Period time.Duration `json:"-"`
}

// Deadline is a clock applied to one incident.
type Deadline struct {
	Regime string    `json:"regime"`
	Clause string    `json:"clause"`
	Notify string    `json:"notify"`
	Due    time.Time `json:"due"`
}

// DefaultClocks are the notification clocks of HIPAA (45 CFR 164.404:
// individuals without unreasonable delay and within 60 calendar days of
// discovery) and the GDPR (Art. 33: the supervisory authority within 72
// hours of becoming aware).
func DefaultClocks() []Clock {
	return []Clock{
		{Regime: "HIPAA", Clause: "45 CFR 164.404(b)", Notify: "affected individuals (and HHS, 164.408)", Period: hipaaIndividualsDays * 24 * time.Hour},
		{Regime: "GDPR", Clause: "Art. 33(1)", Notify: "the supervisory authority", Period: gdprAuthorityPeriod},
	}
}

// Config configures a Service.
type Config struct {
	Store store.Alerts
	// Ledger and Verifier let Scope scope breaches from the ledger's
	// actor index against its signed checkpoints; nil: Scope answers
	// ErrNoLedger.
	Ledger   Store
	Verifier note.Verifier
	Now      func() time.Time // nil means time.Now
	Runbooks Runbooks         // nil means DefaultRunbooks
	Clocks   []Clock          // nil means DefaultClocks
}

// Service lists and works alerts and incidents. It records nothing in
// the ledger itself: its callers (the admin API, the ward command) write
// the entry of each change, as for every other administrative action.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("incident: a store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Runbooks == nil {
		cfg.Runbooks = DefaultRunbooks()
	}
	if err := cfg.Runbooks.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clocks == nil {
		cfg.Clocks = DefaultClocks()
	}
	return &Service{cfg: cfg}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// AlertView is an alert as the admin API and ward alerts show it: ids,
// codes, counts and times, never PHI.
type AlertView struct {
	ID       string     `json:"id"`
	Rule     string     `json:"rule"`
	Severity string     `json:"severity"`
	Actor    string     `json:"actor,omitempty"`
	Client   string     `json:"client,omitempty"`
	Source   string     `json:"source,omitempty"`
	Summary  string     `json:"summary"`
	Evidence []int64    `json:"evidence"`
	Count    int64      `json:"count"`
	First    time.Time  `json:"first"`
	Last     time.Time  `json:"last"`
	Raised   time.Time  `json:"raised"`
	Status   string     `json:"status"`
	StatusBy string     `json:"statusBy,omitempty"`
	StatusAt *time.Time `json:"statusAt,omitempty"`
	Incident string     `json:"incident,omitempty"`
}

// ViewOf is a's view.
func ViewOf(a store.Alert) AlertView {
	v := AlertView{ID: a.ID, Rule: a.Rule, Severity: a.Severity, Actor: a.Actor, Client: a.Client, Source: a.Source, Summary: a.Summary,
		Evidence: a.Evidence, Count: a.Count, First: a.First, Last: a.Last, Raised: a.Raised, Status: a.Status, StatusBy: a.StatusBy, Incident: a.Incident}
	if v.Evidence == nil {
		v.Evidence = []int64{}
	}
	if !a.StatusAt.IsZero() {
		v.StatusAt = &a.StatusAt
	}
	return v
}

// ErrNoLedger: the service was configured without the ledger.
var ErrNoLedger = errors.New("incident: breach scoping is not configured here")

// MaxScopeEntries bounds the entries of one report Service.Scope builds
// in memory (about 1.5 KiB each); ward incident scope takes more.
const MaxScopeEntries = 50000

// Scope scopes a breach (see the package comment) from query
// parameters: actor or client, from, to, and optionally discovered.
// Malformed parameters are ErrInvalid.
func (s *Service) Scope(ctx context.Context, params url.Values) (*Report, error) {
	if s.cfg.Ledger == nil || s.cfg.Verifier == nil {
		return nil, ErrNoLedger
	}
	q, err := ParseQuery(params)
	if err == nil {
		err = q.Validate()
	}
	if err == nil && !ValidRef(q.Actor+q.Client) {
		err = errors.New("actor and client are ids: 1 to 128 letters, digits or -._:/@")
	}
	if err == nil && !q.From.Truncate(time.Microsecond).Before(q.To.Truncate(time.Microsecond)) {
		err = errors.New("the window must start before it ends")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "incident: "))
	}
	q.MaxEntries = MaxScopeEntries
	return Scope(ctx, s.cfg.Ledger, s.cfg.Verifier, q, s.now())
}

// Alerts lists alerts, newest first.
func (s *Service) Alerts(ctx context.Context, q store.AlertQuery) ([]store.Alert, bool, error) {
	switch q.Status {
	case "", store.AlertOpen, store.AlertAcknowledged, store.AlertClosed:
	default:
		return nil, false, fmt.Errorf("%w: status must be open, acknowledged or closed", ErrInvalid)
	}
	return s.cfg.Store.ListAlerts(ctx, q)
}

// Alert returns one alert.
func (s *Service) Alert(ctx context.Context, id string) (store.Alert, error) {
	a, err := s.cfg.Store.Alert(ctx, id)
	return a, notFound(err)
}

// SetAlertStatus acknowledges, closes or reopens an alert.
func (s *Service) SetAlertStatus(ctx context.Context, id, status, by string) (store.Alert, error) {
	switch status {
	case store.AlertOpen, store.AlertAcknowledged, store.AlertClosed:
	default:
		return store.Alert{}, fmt.Errorf("%w: status must be open, acknowledged or closed", ErrInvalid)
	}
	a, err := s.cfg.Store.SetAlertStatus(ctx, id, status, by, s.now(), "")
	return a, notFound(err)
}

// Open opens an incident grouping alerts (at least one), with the runbook
// of its first alert's rule, and acknowledges the alerts. Discovery, from
// which the regulatory clocks run, is the earliest alert's raising.
func (s *Service) Open(ctx context.Context, by string, alertIDs []string) (Incident, error) {
	if len(alertIDs) == 0 || len(alertIDs) > MaxIncidentAlerts {
		return Incident{}, fmt.Errorf("%w: an incident groups 1 to 1000 alerts", ErrInvalid)
	}
	now := s.now()
	inc := Incident{ID: newID(), Status: StatusOpen, Opened: now, OpenedBy: by, Discovered: now, Updated: now, Revision: 1}
	alerts, err := s.loadAlerts(ctx, alertIDs)
	if err != nil {
		return Incident{}, err
	}
	for _, a := range alerts {
		if a.Raised.Before(inc.Discovered) {
			inc.Discovered = a.Raised
		}
	}
	inc.addAlerts(alerts)
	inc.Runbook = s.cfg.Runbooks.For(alerts[0].Rule)
	inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: "opened"})
	for _, c := range s.cfg.Clocks {
		inc.Deadlines = append(inc.Deadlines, Deadline{Regime: c.Regime, Clause: c.Clause, Notify: c.Notify, Due: inc.Discovered.Add(c.Period)})
	}
	body, err := json.Marshal(inc)
	if err != nil {
		return Incident{}, err
	}
	if err := s.cfg.Store.CreateIncident(ctx, store.Incident{ID: inc.ID, Status: inc.Status, Opened: now, Updated: now, Body: body}); err != nil {
		return Incident{}, err
	}
	for _, a := range alerts {
		if _, err := s.cfg.Store.SetAlertStatus(ctx, a.ID, store.AlertAcknowledged, by, now, inc.ID); err != nil {
			return Incident{}, err
		}
	}
	return inc, nil
}

func (s *Service) loadAlerts(ctx context.Context, ids []string) ([]store.Alert, error) {
	var out []store.Alert
	for _, id := range ids {
		a, err := s.cfg.Store.Alert(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: no alert %q", ErrInvalid, id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (inc *Incident) addAlerts(alerts []store.Alert) {
	for _, a := range alerts {
		if !slices.Contains(inc.Alerts, a.ID) {
			inc.Alerts = append(inc.Alerts, a.ID)
		}
		for _, who := range []string{a.Actor, a.Client} {
			if who != "" && !slices.Contains(inc.Actors, who) {
				inc.Actors = append(inc.Actors, who)
			}
		}
		if !slices.Contains(inc.Rules, a.Rule) {
			inc.Rules = append(inc.Rules, a.Rule)
		}
	}
}

// Get returns one incident.
func (s *Service) Get(ctx context.Context, id string) (Incident, error) {
	row, err := s.cfg.Store.Incident(ctx, id)
	if err != nil {
		return Incident{}, notFound(err)
	}
	return decode(row)
}

func decode(row store.Incident) (Incident, error) {
	var inc Incident
	if err := json.Unmarshal(row.Body, &inc); err != nil {
		return Incident{}, fmt.Errorf("incident %s: stored body: %w", row.ID, err)
	}
	inc.Revision, inc.Status, inc.Updated = row.Revision, row.Status, row.Updated
	return inc, nil
}

// List lists incidents, newest first; status "" lists all.
func (s *Service) List(ctx context.Context, status string, offset, count int) ([]Incident, bool, error) {
	switch status {
	case "", StatusOpen, StatusContained, StatusClosed:
	default:
		return nil, false, fmt.Errorf("%w: status must be open, contained or closed", ErrInvalid)
	}
	rows, more, err := s.cfg.Store.ListIncidents(ctx, status, offset, count)
	if err != nil {
		return nil, false, err
	}
	out := make([]Incident, 0, len(rows))
	for _, row := range rows {
		inc, err := decode(row)
		if err != nil {
			return nil, false, err
		}
		out = append(out, inc)
	}
	return out, more, nil
}

// Change is one change to an incident; exactly one field is set.
type Change struct {
	Owner    string   `json:"owner,omitempty"`     // assign to this user id
	Status   string   `json:"status,omitempty"`    // open, contained or closed
	Step     string   `json:"step,omitempty"`      // a runbook step completed
	AddAlert []string `json:"addAlerts,omitempty"` // alerts to group in it
	// Action records a containment action taken for the incident (set by
	// the containment endpoints, not by callers): a code and its target.
	Action, Target string `json:"-"`
}

// Bounds on one incident, whose body is rewritten at each change.
const (
	MaxTimeline       = 5000 // events
	MaxIncidentAlerts = 1000
)

// Update applies a change by a person, at the revision the caller read
// (0: the current one), and returns the incident as stored.
func (s *Service) Update(ctx context.Context, id, by string, revision int64, c Change) (Incident, error) {
	row, err := s.cfg.Store.Incident(ctx, id)
	if err != nil {
		return Incident{}, notFound(err)
	}
	if revision == 0 {
		revision = row.Revision
	}
	if row.Revision != revision {
		return Incident{}, ErrConflict
	}
	inc, err := decode(row)
	if err != nil {
		return Incident{}, err
	}
	if len(inc.Timeline) >= MaxTimeline || len(inc.Alerts)+len(c.AddAlert) > MaxIncidentAlerts {
		return Incident{}, fmt.Errorf("%w: the incident is full (%d events, %d alerts at most): open another", ErrInvalid, MaxTimeline, MaxIncidentAlerts)
	}
	now := s.now()
	set := 0
	for _, f := range []bool{c.Owner != "", c.Status != "", c.Step != "", len(c.AddAlert) > 0, c.Action != ""} {
		if f {
			set++
		}
	}
	if set != 1 {
		return Incident{}, fmt.Errorf("%w: a change sets exactly one of owner, status, step and addAlerts", ErrInvalid)
	}
	switch {
	case c.Owner != "":
		if !ValidRef(c.Owner) {
			return Incident{}, fmt.Errorf("%w: owner must be a user id", ErrInvalid)
		}
		inc.Owner = c.Owner
		inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: "assigned", Ref: c.Owner})
	case c.Status != "":
		switch c.Status {
		case StatusOpen, StatusContained, StatusClosed:
		default:
			return Incident{}, fmt.Errorf("%w: status must be open, contained or closed", ErrInvalid)
		}
		if c.Status == StatusClosed {
			for _, st := range inc.Runbook {
				if st.Done == nil {
					return Incident{}, fmt.Errorf("%w: runbook step %q is not complete", ErrInvalid, st.ID)
				}
			}
		}
		inc.Status = c.Status
		inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: "status", Ref: c.Status})
	case c.Step != "":
		i := slices.IndexFunc(inc.Runbook, func(st Step) bool { return st.ID == c.Step })
		if i < 0 {
			return Incident{}, fmt.Errorf("%w: the runbook has no step %q", ErrInvalid, c.Step)
		}
		if inc.Runbook[i].Done != nil {
			return Incident{}, fmt.Errorf("%w: step %q is complete already", ErrInvalid, c.Step)
		}
		inc.Runbook[i].Done, inc.Runbook[i].DoneBy = &now, by
		inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: "step", Ref: c.Step})
	case len(c.AddAlert) > 0:
		alerts, err := s.loadAlerts(ctx, c.AddAlert)
		if err != nil {
			return Incident{}, err
		}
		inc.addAlerts(alerts)
		for _, a := range alerts {
			if _, err := s.cfg.Store.SetAlertStatus(ctx, a.ID, store.AlertAcknowledged, by, now, inc.ID); err != nil {
				return Incident{}, err
			}
			inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: "alert", Ref: a.ID})
		}
	case c.Action != "":
		inc.Timeline = append(inc.Timeline, Event{At: now, By: by, What: c.Action, Ref: c.Target})
	}
	inc.Updated = now
	body, err := json.Marshal(inc)
	if err != nil {
		return Incident{}, err
	}
	err = s.cfg.Store.UpdateIncident(ctx, store.Incident{ID: inc.ID, Status: inc.Status, Updated: now, Body: body}, revision)
	if errors.Is(err, store.ErrConflict) {
		return Incident{}, ErrConflict
	}
	if err != nil {
		return Incident{}, err
	}
	inc.Revision = revision + 1
	return inc, nil
}

// Clock is how an incident's deadlines stand at now.
type ClockView struct {
	Deadline
	Remaining string `json:"remaining"` // e.g. "59d 23h"; "overdue by 2h" once past
	Overdue   bool   `json:"overdue"`
}

// Clocks returns the incident's deadlines as they stand at now.
func (inc Incident) Clocks(now time.Time) []ClockView {
	out := make([]ClockView, 0, len(inc.Deadlines))
	for _, d := range inc.Deadlines {
		left := d.Due.Sub(now)
		v := ClockView{Deadline: d, Overdue: left < 0}
		if left < 0 {
			v.Remaining = "overdue by " + span(-left)
		} else {
			v.Remaining = span(left)
		}
		out = append(out, v)
	}
	return out
}

func span(d time.Duration) string {
	d = d.Truncate(time.Minute)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd %dh", days, d/time.Hour)
	}
	return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// ValidRef reports whether s can be an id of this package's world (an
// alert, incident, runbook step, user or client): 1 to 128 letters,
// digits and -._:/@ characters. Anything else a caller sends is no id,
// and is not recorded as one.
func ValidRef(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._:/@", r))
	})
}

func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "inc-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
