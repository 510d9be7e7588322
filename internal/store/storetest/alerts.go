package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// alertTests are Run's tests of detection and response; each gets a
// fresh store.
var alertTests = []conformanceTest{
	{"Alerts", testAlerts},
	{"Incidents", testIncidents},
	{"ClientSuspended", testClientSuspended},
}

// testAlerts: alerts are stored once per key, keep their id, status and
// incident when the detector saves them again, take the newer evidence,
// and list newest first by filter; the detector's position only grows.
func testAlerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	if p, err := s.DetectorPosition(ctx); err != nil || p != 0 {
		t.Fatalf("initial position %d, %v", p, err)
	}
	a := store.Alert{ID: "a1", Key: "many-patients/u1/100", Rule: "many-patients", Severity: "high", Actor: "u1", Summary: "60 patients in 1h",
		Evidence: []int64{3, 5, 8}, Count: 3, First: at(1), Last: at(2), Raised: at(3)}
	b := store.Alert{ID: "b1", Key: "denial-burst/u2/100", Rule: "denial-burst", Severity: "medium", Actor: "u2", Source: "10.0.0.9",
		Evidence: []int64{9}, Count: 1, First: at(4), Last: at(4), Raised: at(5)}
	if err := s.SaveAlerts(ctx, []store.Alert{a, b}, 10); err != nil {
		t.Fatal(err)
	}
	got, err := s.Alert(ctx, "a1")
	if err != nil || got.Status != store.AlertOpen || !slices.Equal(got.Evidence, a.Evidence) || got.Count != 3 || !got.Last.Equal(at(2)) || got.Key != a.Key {
		t.Fatalf("stored alert %+v, %v", got, err)
	}
	if _, err := s.SetAlertStatus(ctx, "a1", store.AlertAcknowledged, "sec-1", at(6), "inc-1"); err != nil {
		t.Fatal(err)
	}
	// Saved again under the same key, by another detector with another id:
	// still one alert, with its id, status and incident, and the newer
	// evidence; an older save changes nothing.
	again := a
	again.ID, again.Evidence, again.Count, again.Last, again.Severity = "a2", []int64{3, 5, 8, 13}, 4, at(7), "critical"
	if err := s.SaveAlerts(ctx, []store.Alert{again}, 14); err != nil {
		t.Fatal(err)
	}
	stale := a
	stale.ID, stale.Count, stale.Last = "a3", 1, at(1)
	if err := s.SaveAlerts(ctx, []store.Alert{stale}, 12); err != nil {
		t.Fatal(err)
	}
	got, err = s.Alert(ctx, "a1")
	if err != nil || got.Count != 4 || got.Severity != "critical" || !got.Last.Equal(at(7)) || !got.Raised.Equal(at(3)) ||
		got.Status != store.AlertAcknowledged || got.StatusBy != "sec-1" || !got.StatusAt.Equal(at(6)) || got.Incident != "inc-1" {
		t.Fatalf("alert after saving again: %+v, %v", got, err)
	}
	if _, err := s.Alert(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a second alert for one key: %v", err)
	}
	if p, err := s.DetectorPosition(ctx); err != nil || p != 14 {
		t.Fatalf("position %d, %v; want 14 (never back)", p, err)
	}
	list := func(q store.AlertQuery) []string {
		t.Helper()
		q.Count = 10
		l, more, err := s.ListAlerts(ctx, q)
		if err != nil || more {
			t.Fatalf("list %+v: %v, more %v", q, err, more)
		}
		var ids []string
		for _, a := range l {
			ids = append(ids, a.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		q    store.AlertQuery
		want []string
	}{
		{store.AlertQuery{}, []string{"b1", "a1"}},
		{store.AlertQuery{Status: store.AlertOpen}, []string{"b1"}},
		{store.AlertQuery{Rule: "many-patients"}, []string{"a1"}},
		{store.AlertQuery{Actor: "u2"}, []string{"b1"}},
		{store.AlertQuery{Incident: "inc-1"}, []string{"a1"}},
		{store.AlertQuery{Status: store.AlertClosed}, nil},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("list %+v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if l, more, err := s.ListAlerts(ctx, store.AlertQuery{Count: 1}); err != nil || !more || len(l) != 1 || l[0].ID != "b1" {
		t.Fatalf("first page of one: %v, %v, %v", l, more, err)
	}
	if _, err := s.SetAlertStatus(ctx, "nope", store.AlertClosed, "x", at(8), ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("status of an unknown alert: %v", err)
	}
	if _, err := s.SetAlertStatus(ctx, "b1", "deleted", "x", at(8), ""); err == nil {
		t.Fatal("an unknown status was accepted")
	}
}

// testIncidents: an incident's update is conditional on its revision.
func testIncidents(t *testing.T, s store.Store) {
	ctx := context.Background()
	inc := store.Incident{ID: "i1", Status: "open", Opened: at(1), Updated: at(1), Body: []byte(`{"title":"x"}`)}
	if err := s.CreateIncident(ctx, inc); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateIncident(ctx, inc); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate incident: %v", err)
	}
	if err := s.CreateIncident(ctx, store.Incident{ID: "i2", Status: "closed", Opened: at(2), Updated: at(2)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Incident(ctx, "i1")
	if err != nil || got.Revision != 1 || string(got.Body) != `{"title":"x"}` || !got.Opened.Equal(at(1)) {
		t.Fatalf("incident %+v, %v", got, err)
	}
	got.Status, got.Updated, got.Body = "contained", at(3), []byte(`{"title":"y"}`)
	if err := s.UpdateIncident(ctx, got, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateIncident(ctx, got, 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update at a stale revision: %v", err)
	}
	if err := s.UpdateIncident(ctx, store.Incident{ID: "nope", Status: "open"}, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an unknown incident: %v", err)
	}
	got, err = s.Incident(ctx, "i1")
	if err != nil || got.Revision != 2 || got.Status != "contained" || string(got.Body) != `{"title":"y"}` || !got.Updated.Equal(at(3)) {
		t.Fatalf("incident after the update %+v, %v", got, err)
	}
	l, more, err := s.ListIncidents(ctx, "", 0, 10)
	if err != nil || more || len(l) != 2 || l[0].ID != "i2" || l[1].ID != "i1" {
		t.Fatalf("list %+v, %v, %v", l, more, err)
	}
	if l, _, err := s.ListIncidents(ctx, "contained", 0, 10); err != nil || len(l) != 1 || l[0].ID != "i1" {
		t.Fatalf("list contained %+v, %v", l, err)
	}
	if _, err := s.Incident(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown incident: %v", err)
	}
}

// testClientSuspended: a suspension is stored, listed and lifted.
func testClientSuspended(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateClient(ctx, store.Client{ID: "svc", Name: "Service", SecretHash: []byte{1}, Scopes: []string{"system/*.rs"}, Created: at(0)}); err != nil {
		t.Fatal(err)
	}
	for _, suspended := range []bool{true, false} {
		if err := s.SetClientSuspended(ctx, "svc", suspended); err != nil {
			t.Fatal(err)
		}
		c, err := s.Client(ctx, "svc")
		if err != nil || c.Suspended != suspended || c.Active() == suspended {
			t.Fatalf("client after suspended=%v: %+v, %v", suspended, c, err)
		}
	}
	if err := s.SetClientSuspended(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("suspend an unknown client: %v", err)
	}
}
