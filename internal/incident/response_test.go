package incident_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*incident.Service, store.Store, *clock) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	s, err := incident.New(incident.Config{Store: db, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, c
}

func raise(t *testing.T, st store.Store, id, rule, actor string, raised time.Time) {
	t.Helper()
	a := store.Alert{ID: id, Key: rule + "/" + actor + "/" + id, Rule: rule, Severity: "high", Actor: actor, Evidence: []int64{1, 2}, Count: 2,
		First: raised, Last: raised, Raised: raised}
	if err := st.SaveAlerts(context.Background(), []store.Alert{a}, 3); err != nil {
		t.Fatal(err)
	}
}

// An incident groups alerts and acknowledges them, takes the runbook of
// its first alert's rule, runs the HIPAA and GDPR clocks from the
// earliest alert, records each change in its timeline, refuses a change
// made on a stale revision, and cannot close with steps left.
func TestIncidentLifecycle(t *testing.T) {
	s, st, c := newService(t)
	ctx := context.Background()
	discovered := c.t.Add(-2 * time.Hour)
	raise(t, st, "al-1", "token-two-sources", "u-1", c.t.Add(-time.Hour))
	raise(t, st, "al-2", "many-patients", "u-1", discovered)
	raise(t, st, "al-3", "denial-burst", "svc-9", c.t)

	if _, err := s.Open(ctx, "sec-1", nil); !errors.Is(err, incident.ErrInvalid) {
		t.Fatalf("an incident without alerts: %v", err)
	}
	if _, err := s.Open(ctx, "sec-1", []string{"al-1", "nope"}); !errors.Is(err, incident.ErrInvalid) {
		t.Fatalf("an incident with an unknown alert: %v", err)
	}
	inc, err := s.Open(ctx, "sec-1", []string{"al-1", "al-2"})
	if err != nil {
		t.Fatal(err)
	}
	if !inc.Discovered.Equal(discovered) || len(inc.Deadlines) != 2 ||
		!inc.Deadlines[0].Due.Equal(discovered.Add(60*24*time.Hour)) || !inc.Deadlines[1].Due.Equal(discovered.Add(72*time.Hour)) {
		t.Fatalf("discovery and deadlines: %+v", inc)
	}
	if inc.Runbook[1].ID != "contain" || inc.Runbook[1].Title != incident.DefaultRunbooks()["token-two-sources"][1].Title {
		t.Fatalf("runbook of the first alert's rule: %+v", inc.Runbook)
	}
	if len(inc.Actors) != 1 || inc.Actors[0] != "u-1" || len(inc.Rules) != 2 {
		t.Fatalf("actors and rules: %+v", inc)
	}
	for _, id := range []string{"al-1", "al-2"} {
		a, err := s.Alert(ctx, id)
		if err != nil || a.Status != store.AlertAcknowledged || a.Incident != inc.ID || a.StatusBy != "sec-1" {
			t.Fatalf("alert %s after opening: %+v, %v", id, a, err)
		}
	}
	clocks := inc.Clocks(c.t)
	if clocks[1].Overdue || clocks[1].Remaining != "2d 22h" {
		t.Fatalf("GDPR clock two hours after discovery: %+v", clocks[1])
	}
	if v := inc.Clocks(discovered.Add(75 * time.Hour)); !v[1].Overdue || v[1].Remaining != "overdue by 3h 0m" || v[0].Overdue {
		t.Fatalf("clocks 75 hours after discovery: %+v", v)
	}

	c.t = c.t.Add(time.Minute)
	inc, err = s.Update(ctx, inc.ID, "sec-1", inc.Revision, incident.Change{Owner: "sec-2"})
	if err != nil || inc.Owner != "sec-2" || inc.Revision != 2 {
		t.Fatalf("assign: %+v, %v", inc, err)
	}
	if _, err := s.Update(ctx, inc.ID, "sec-1", 1, incident.Change{Status: incident.StatusContained}); !errors.Is(err, incident.ErrConflict) {
		t.Fatalf("a change on a stale revision: %v", err)
	}
	for name, ch := range map[string]incident.Change{
		"two fields":    {Owner: "x", Status: incident.StatusOpen},
		"none":          {},
		"unknown step":  {Step: "nope"},
		"bad status":    {Status: "resolved"},
		"unknown alert": {AddAlert: []string{"nope"}},
		"bad owner":     {Owner: "Dr. Jane Doe"},
	} {
		if _, err := s.Update(ctx, inc.ID, "sec-1", 0, ch); !errors.Is(err, incident.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	inc, err = s.Update(ctx, inc.ID, "sec-2", 0, incident.Change{AddAlert: []string{"al-3"}})
	if err != nil || len(inc.Alerts) != 3 || len(inc.Actors) != 2 {
		t.Fatalf("add an alert: %+v, %v", inc, err)
	}
	if _, err := s.Update(ctx, inc.ID, "sec-2", 0, incident.Change{Status: incident.StatusClosed}); !errors.Is(err, incident.ErrInvalid) {
		t.Fatalf("closing with steps left: %v", err)
	}
	for _, st := range inc.Runbook {
		if inc, err = s.Update(ctx, inc.ID, "sec-2", 0, incident.Change{Step: st.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, inc.ID, "sec-2", 0, incident.Change{Step: inc.Runbook[0].ID}); !errors.Is(err, incident.ErrInvalid) {
		t.Fatalf("a step completed twice: %v", err)
	}
	inc, err = s.Update(ctx, inc.ID, "sec-2", 0, incident.Change{Status: incident.StatusClosed})
	if err != nil || inc.Status != incident.StatusClosed {
		t.Fatalf("close: %+v, %v", inc, err)
	}
	got, err := s.Get(ctx, inc.ID)
	if err != nil || got.Status != incident.StatusClosed || got.Revision != inc.Revision {
		t.Fatalf("get: %+v, %v", got, err)
	}
	var whats []string
	for _, e := range got.Timeline {
		whats = append(whats, e.What)
	}
	want := []string{"opened", "assigned", "alert"}
	for range got.Runbook {
		want = append(want, "step")
	}
	want = append(want, "status")
	if len(whats) != len(want) {
		t.Fatalf("timeline %v, want %v", whats, want)
	}
	for i := range want {
		if whats[i] != want[i] {
			t.Fatalf("timeline %v, want %v", whats, want)
		}
	}
	for _, st := range got.Runbook {
		if st.Done == nil || st.DoneBy != "sec-2" {
			t.Fatalf("step not recorded: %+v", st)
		}
	}
	if l, _, err := s.List(ctx, incident.StatusClosed, 0, 10); err != nil || len(l) != 1 || l[0].ID != inc.ID {
		t.Fatalf("list closed: %v, %v", l, err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("unknown incident: %v", err)
	}
}

func TestRunbooksValidate(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		json string
		ok   bool
	}{
		"good":           {`{"default":[{"id":"a","title":"A"}],"vip":[{"id":"call","title":"Call the privacy officer"}]}`, true},
		"no default":     {`{"vip":[{"id":"a","title":"A"}]}`, false},
		"duplicate step": {`{"default":[{"id":"a","title":"A"},{"id":"a","title":"B"}]}`, false},
		"no title":       {`{"default":[{"id":"a"}]}`, false},
		"bad id":         {`{"default":[{"id":"a b","title":"A"}]}`, false},
		"unknown field":  {`{"default":[{"id":"a","title":"A","owner":"x"}]}`, false},
		"done":           {`{"default":[{"id":"a","title":"A","doneBy":"x"}]}`, false},
	} {
		p := filepath.Join(dir, name+".json")
		if err := writeFile(p, tc.json); err != nil {
			t.Fatal(err)
		}
		r, err := incident.LoadRunbooks(p)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
		if tc.ok && r.For("other")[0].ID != "a" {
			t.Errorf("%s: default runbook not used for another rule", name)
		}
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

// An incident's body is rewritten at each change, so it is bounded: past
// MaxIncidentAlerts alerts a change is refused and nothing is stored.
func TestIncidentBounded(t *testing.T) {
	s, st, c := newService(t)
	ctx := context.Background()
	raise(t, st, "al-1", "vip", "u-1", c.t)
	inc, err := s.Open(ctx, "sec-1", []string{"al-1"})
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, incident.MaxIncidentAlerts)
	for i := range many {
		many[i] = "al-1"
	}
	if _, err := s.Update(ctx, inc.ID, "sec-1", 0, incident.Change{AddAlert: many}); !errors.Is(err, incident.ErrInvalid) {
		t.Fatalf("adding past the bound: %v", err)
	}
	if got, err := s.Get(ctx, inc.ID); err != nil || got.Revision != inc.Revision || len(got.Alerts) != 1 {
		t.Fatalf("after a refused change: %+v, %v", got, err)
	}
}
