package store

import (
	"context"
	"time"
)

// Alert is one alert of the anomaly detector, as stored: one per Key, the
// detector's dedupe key, so that a detector replaying the ledger, or one
// in each of several replicas, raises each alert once. It names the
// actor, the rule and the evidence (ledger indexes), never PHI.
type Alert struct {
	ID       string
	Key      string
	Rule     string
	Severity string
	Actor    string
	Client   string
	Source   string
	Summary  string
	Evidence []int64 // ledger indexes, in order
	Count    int64   // triggering entries, of which Evidence lists the first
	First    time.Time
	Last     time.Time
	Raised   time.Time // when it was first stored
	Status   string    // AlertOpen, AlertAcknowledged or AlertClosed
	StatusBy string    // who set Status last; "" while open
	StatusAt time.Time // when; zero while open
	Incident string    // the incident it belongs to; "" for none
}

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertClosed       = "closed"
)

// AlertQuery selects alerts, newest raised first. Empty fields select all.
type AlertQuery struct {
	Status   string
	Rule     string
	Actor    string
	Incident string
	Offset   int
	Count    int // alerts to return; 0 means none
}

// Incident is one security incident as stored: its state and times for
// listing, and its Body, which package incident owns (JSON of ids, codes
// and times). Revision counts its updates, for optimistic concurrency.
type Incident struct {
	ID       string
	Status   string
	Opened   time.Time
	Updated  time.Time
	Revision int64
	Body     []byte
}

// Alerts stores what detection and response works on, shared by every
// process on the database.
type Alerts interface {
	// SaveAlerts stores the detector's alerts and the ledger position it
	// has read up to, in one transaction. An alert whose Key is new is
	// stored open, with its ID and Raised as given; one whose Key is
	// stored already keeps its ID, Raised, status and incident, and takes
	// the given Severity, Summary, Evidence, Count and Last when its Last
	// is not older. The position never moves back.
	SaveAlerts(ctx context.Context, alerts []Alert, position int64) error
	// DetectorPosition returns the ledger position the detector has read
	// up to (0 at first).
	DetectorPosition(ctx context.Context) (int64, error)
	// Alert returns one alert, or ErrNotFound.
	Alert(ctx context.Context, id string) (Alert, error)
	// ListAlerts returns a page of alerts and whether more follow it.
	ListAlerts(ctx context.Context, q AlertQuery) ([]Alert, bool, error)
	// SetAlertStatus sets an alert's Status, StatusBy and StatusAt, and its
	// Incident when incident is not empty, and returns it as stored.
	// ErrNotFound for an unknown id.
	SetAlertStatus(ctx context.Context, id, status, by string, at time.Time, incident string) (Alert, error)

	// CreateIncident stores a new incident at revision 1; ErrConflict on a
	// duplicate id.
	CreateIncident(ctx context.Context, inc Incident) error
	// Incident returns one incident, or ErrNotFound.
	Incident(ctx context.Context, id string) (Incident, error)
	// ListIncidents returns a page of incidents, newest opened first, and
	// whether more follow it; status "" selects all.
	ListIncidents(ctx context.Context, status string, offset, count int) ([]Incident, bool, error)
	// UpdateIncident replaces an incident's Status, Updated and Body if
	// it is still at revision, and moves it to revision+1. ErrConflict
	// when another update came first, ErrNotFound for an unknown id.
	UpdateIncident(ctx context.Context, inc Incident, revision int64) error
}
