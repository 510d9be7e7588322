package api_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
)

// eventLog records the security events a stack raises.
type eventLog struct {
	mu     sync.Mutex
	events []secevent.Event
}

func (l *eventLog) Emit(e secevent.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// since returns the events of kind k raised after the first n events.
func (l *eventLog) since(n int, k secevent.Kind) []secevent.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []secevent.Event
	for _, e := range l.events[min(n, len(l.events)):] {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// TestSecurityEventsOfRefusals: refused bearer tokens, denials and rate
// limits raise typed security events, counted per caller and window
// rather than one per request (catalogue G2, G4); each is valid by
// secevent's rules (ids and codes only).
func TestSecurityEventsOfRefusals(t *testing.T) {
	// The events are counted per 5-minute window: on a frozen clock no
	// window closes between two requests, however slow the run.
	s := newStackWith(t, stackOptions{clocked: true})
	s.clock.Freeze()
	n := s.events.len()
	for range 5 {
		if r := s.do("GET", "/fhir/Patient", nil, "Authorization", "Bearer not-a-token"); r.status != http.StatusUnauthorized {
			t.Fatalf("a forged token: %d", r.status)
		}
	}
	// Without a token at all: a 401, but no token was refused.
	s.do("GET", "/fhir/Patient", nil, "Authorization", "")
	got := s.events.since(n, secevent.TokenInvalid)
	if len(got) != 1 || got[0].Source != "127.0.0.1" || got[0].Actor != "" || got[0].Attrs[secevent.AttrStatus] != "401" ||
		got[0].Attrs[secevent.AttrCount] != "" {
		t.Fatalf("events of 5 forged tokens before the window closes: %+v", got)
	}
	if err := s.api.FlushFailures(t.Context()); err != nil {
		t.Fatal(err)
	}
	got = s.events.since(n, secevent.TokenInvalid)
	if len(got) != 2 || got[1].Attrs[secevent.AttrCount] != "4" || got[1].Attrs[secevent.AttrWindow] == "" || got[1].ID == got[0].ID {
		t.Fatalf("the window's summary: %+v", got)
	}

	// A client whose scopes do not permit a create is denied.
	readOnly := s.newToken("system/Patient.r")
	n = s.events.len()
	if r := s.do("POST", "/fhir/Patient", `{"resourceType":"Patient"}`, "Authorization", "Bearer "+readOnly,
		"Content-Type", "application/fhir+json"); r.status != http.StatusForbidden {
		t.Fatalf("a create without the scope: %d", r.status)
	}
	got = s.events.since(n, secevent.AccessDenied)
	if len(got) != 1 || got[0].Actor == "" || got[0].Client == "" || got[0].Attrs[secevent.AttrAction] != "create" ||
		got[0].Attrs[secevent.AttrResource] != "Patient" || got[0].Outcome != secevent.Failure {
		t.Fatalf("the denial's event: %+v", got)
	}
	s.events.mu.Lock()
	all := slices.Clone(s.events.events)
	s.events.mu.Unlock()
	for _, e := range all {
		if err := e.Validate(); err != nil {
			t.Errorf("an invalid event was raised: %v", err)
		}
	}
}

// TestSecurityEventsOfAccountChanges: changes through /admin/users raise
// account.changed naming the admin, the account and the change, and no
// user name.
func TestSecurityEventsOfAccountChanges(t *testing.T) {
	s := newStack(t)
	admin := s.adminToken("admin.g4")
	n := s.events.len()
	r := s.do("POST", "/admin/users", map[string]any{"username": "new.person.g4", "role": policy.RolePractitioner, "password": testPassword},
		"Authorization", "Bearer "+admin, "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	if r := s.do("POST", "/admin/users/"+id+"/disable", nil, "Authorization", "Bearer "+admin); r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	got := s.events.since(n, secevent.AccountChanged)
	if len(got) != 2 {
		t.Fatalf("%d account.changed events, want 2: %+v", len(got), got)
	}
	for i, change := range []string{"created", "disabled"} {
		e := got[i]
		if e.Actor == "" || e.Actor == id || e.Attrs[secevent.AttrUser] != id || e.Attrs[secevent.AttrChange] != change {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if got[0].Attrs[secevent.AttrRole] != policy.RolePractitioner {
		t.Errorf("the creation does not name the role: %+v", got[0])
	}
	if strings.Contains(s.logs.String(), "new.person.g4") {
		t.Error("a user name reached the log")
	}
}
