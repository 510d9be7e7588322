package policy

import (
	"strings"
	"testing"
)

func subject(t testing.TB, scopes ...string) Subject {
	t.Helper()
	sub := Subject{ClientID: "ward-test"}
	for _, s := range scopes {
		sub.Scopes = append(sub.Scopes, mustScope(t, s))
	}
	return sub
}

// TestDecideMatrix crosses every action with a set of scopes and types and
// checks the decision against the documented letter mapping.
func TestDecideMatrix(t *testing.T) {
	letter := map[Action]string{
		ActionCreate: "c", ActionRead: "r", ActionUpdate: "u", ActionDelete: "d",
		ActionSearch: "s", ActionHistory: "r", ActionOperation: "cruds",
	}
	actions := []Action{ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionSearch, ActionHistory, ActionOperation}
	tests := []struct {
		scope   string
		typ     string
		granted string // letters the scope grants on typ
	}{
		{"system/Patient.rs", "Patient", "rs"},
		{"system/Patient.rs", "Observation", ""},
		{"system/*.cruds", "Observation", "cruds"},
		{"system/*.read", "Encounter", "rs"}, // v1
		{"system/*.write", "Encounter", "cud"},
		{"system/Patient.*", "Patient", "cruds"},
		{"system/Patient.*", "Practitioner", ""},
		{"system/Observation.c", "Observation", "c"},
		{"system/Observation.d", "Observation", "d"},
		{"system/Observation.u", "Observation", "u"},
		{"system/Observation.s", "Observation", "s"},
		// patient/ and user/ scopes need a compartment or a user: not yet.
		{"patient/Observation.rs", "Observation", ""},
		{"patient/*.cruds", "Observation", ""},
		{"user/*.*", "Patient", ""},
		// query-restricted scopes grant nothing yet.
		{"system/Observation.rs?category=laboratory", "Observation", ""},
	}
	for _, tt := range tests {
		for _, a := range actions {
			t.Run(tt.scope+"/"+string(a)+"/"+tt.typ, func(t *testing.T) {
				want := true
				for _, c := range letter[a] {
					if !strings.ContainsRune(tt.granted, c) {
						want = false
					}
				}
				d := Decide(subject(t, tt.scope), Request{Action: a, Type: tt.typ})
				if d.Allow != want {
					t.Fatalf("Decide(%s, %s %s) = %+v, want allow=%v", tt.scope, a, tt.typ, d, want)
				}
				wantPrefix := "deny: "
				if want {
					wantPrefix = "allow: "
				}
				if !strings.HasPrefix(d.Reason, wantPrefix) {
					t.Fatalf("reason %q, want prefix %q", d.Reason, wantPrefix)
				}
			})
		}
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		sub    Subject
		req    Request
		allow  bool
		reason string // substring expected in Reason
	}{
		{"B2 scope not covering type", subject(t, "system/Patient.rs"), Request{ActionRead, "Observation"}, false, "no scope grants read on Observation"},
		{"B2 scope not covering action", subject(t, "system/Patient.rs"), Request{ActionUpdate, "Patient"}, false, "no scope grants update on Patient"},
		{"second scope grants", subject(t, "system/Patient.rs", "system/Observation.cu"), Request{ActionCreate, "Observation"}, true, "system/Observation.cu"},
		{"no scopes", subject(t), Request{ActionRead, "Patient"}, false, "no scope"},
		{"no subject", Subject{Scopes: subject(t, "system/*.cruds").Scopes}, Request{ActionRead, "Patient"}, false, "no authenticated subject"},
		{"unknown action", subject(t, "system/*.cruds"), Request{"vread", "Patient"}, false, "unknown action"},
		{"empty action", subject(t, "system/*.cruds"), Request{"", "Patient"}, false, "unknown action"},
		{"malformed type", subject(t, "system/*.cruds"), Request{ActionRead, "patient"}, false, "malformed resource type"},
		{"wildcard as request type", subject(t, "system/*.cruds"), Request{ActionRead, "*"}, false, "malformed resource type"},
		{"system search needs wildcard", subject(t, "system/Patient.rs"), Request{ActionSearch, ""}, false, "on *"},
		{"system search with wildcard", subject(t, "system/*.s"), Request{ActionSearch, ""}, true, "system/*.s"},
		{"system history needs wildcard", subject(t, "system/Patient.rs", "system/Observation.rs"), Request{ActionHistory, ""}, false, "on *"},
		{"system history with wildcard", subject(t, "system/*.read"), Request{ActionHistory, ""}, true, "history on *"},
		{"system operation needs cruds", subject(t, "system/*.rs"), Request{ActionOperation, ""}, false, "operation"},
		{"system operation with cruds", subject(t, "system/*.cruds"), Request{ActionOperation, ""}, true, "operation"},
		{"create without type", subject(t, "system/*.cruds"), Request{ActionCreate, ""}, false, "needs a resource type"},
		{"read without type", subject(t, "system/*.cruds"), Request{ActionRead, ""}, false, "needs a resource type"},
		{"patient scope is not system", subject(t, "patient/*.cruds"), Request{ActionSearch, ""}, false, "no scope"},
		{"zero scope grants nothing", Subject{ClientID: "c", Scopes: []Scope{{}}}, Request{ActionRead, "Patient"}, false, "no scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.sub, tt.req)
			if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Decide = %+v, want allow=%v and reason containing %q", d, tt.allow, tt.reason)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	sub := subject(b, "system/Patient.rs", "system/Observation.rs", "system/Encounter.cruds")
	req := Request{Action: ActionRead, Type: "Encounter"}
	b.ReportAllocs()
	for b.Loop() {
		if !Decide(sub, req).Allow {
			b.Fatal("denied")
		}
	}
}

// The ledger's AuditEvent view is read-only whatever the scopes.
func TestAuditEventReadOnly(t *testing.T) {
	sub := subject(t, "system/*.cruds")
	for _, a := range []Action{ActionCreate, ActionUpdate, ActionDelete} {
		if d := Decide(sub, Request{Action: a, Type: "AuditEvent"}); d.Allow {
			t.Errorf("%s AuditEvent allowed", a)
		}
	}
	for _, a := range []Action{ActionRead, ActionSearch} {
		if d := Decide(sub, Request{Action: a, Type: "AuditEvent"}); !d.Allow {
			t.Errorf("%s AuditEvent denied: %s", a, d.Reason)
		}
	}
}
