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
		// patient/ scopes need a launch patient (see TestDecidePatientScopes);
		// user/ scopes need care relationships: not yet.
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
				if d.Restricted() {
					t.Fatalf("Decide(%s, %s %s) = %+v: no launch patient, yet a compartment", tt.scope, a, tt.typ, d)
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
		{"patient scope is not system", subject(t, "patient/*.cruds"), Request{ActionSearch, ""}, false, "needs a patient launch context"},
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

// TestDecidePatientScopes: a patient/ scope grants what its letters say,
// only with a launch patient, and always under that patient's compartment;
// a system/ scope grants without one; a user/ scope grants nothing.
func TestDecidePatientScopes(t *testing.T) {
	withPatient := func(sub Subject, patient, role string) Subject {
		sub.Patient, sub.Role = patient, role // a service with a launch patient: roles play no part
		return sub
	}
	const pa = "pat-a"
	tests := []struct {
		name        string
		sub         Subject
		req         Request
		allow       bool
		compartment string
		reason      string
	}{
		{"patient scope without patient", subject(t, "patient/Observation.rs"), Request{ActionRead, "Observation"}, false, "", "needs a patient launch context"},
		{"patient scope without patient, user set", withPatient(subject(t, "patient/*.cruds"), "", "patient"), Request{ActionSearch, "Observation"}, false, "", "needs a patient launch context"},
		{"patient scope read", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionRead, "Observation"}, true, pa, "within the launch patient's compartment"},
		{"patient scope search", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionSearch, "Observation"}, true, pa, "patient/Observation.rs"},
		{"patient scope history", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionHistory, "Observation"}, true, pa, ""},
		{"patient scope other type", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionRead, "Condition"}, false, "", "no scope grants read on Condition"},
		{"patient scope missing letter", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionCreate, "Observation"}, false, "", "no scope grants create"},
		{"patient scope write", withPatient(subject(t, "patient/*.cu"), pa, "patient"), Request{ActionCreate, "Observation"}, true, pa, "patient/*.cu"},
		{"patient scope v1", withPatient(subject(t, "patient/*.read"), pa, "patient"), Request{ActionSearch, "Encounter"}, true, pa, ""},
		{"patient scope $everything", withPatient(subject(t, "patient/*.cruds"), pa, "patient"), Request{ActionOperation, "Patient"}, true, pa, ""},
		{"patient scope system search", withPatient(subject(t, "patient/*.s"), pa, "patient"), Request{ActionSearch, ""}, true, pa, "on *"},
		{"patient scope system history needs wildcard", withPatient(subject(t, "patient/Observation.rs"), pa, "patient"), Request{ActionHistory, ""}, false, "", "on *"},
		{"patient scope query-restricted", withPatient(subject(t, "patient/Observation.rs?category=laboratory"), pa, "patient"), Request{ActionRead, "Observation"}, false, "", "no scope"},
		{"patient scope AuditEvent write", withPatient(subject(t, "patient/*.cruds"), pa, "patient"), Request{ActionCreate, "AuditEvent"}, false, "", "read-only"},
		{"patient scope AuditEvent delete", withPatient(subject(t, "patient/AuditEvent.cruds"), pa, "patient"), Request{ActionDelete, "AuditEvent"}, false, "", "read-only"},
		{"system scope, no compartment", withPatient(subject(t, "system/Observation.rs"), pa, ""), Request{ActionRead, "Observation"}, true, "", "system/Observation.rs"},
		{"system scope wins over patient scope", withPatient(subject(t, "patient/*.cruds", "system/Observation.rs"), pa, ""), Request{ActionRead, "Observation"}, true, "", "system/Observation.rs"},
		{"patient scope where system scope lacks the letter", withPatient(subject(t, "system/Observation.rs", "patient/*.cruds"), pa, ""), Request{ActionUpdate, "Observation"}, true, pa, "patient/*.cruds"},
		{"user scope", withPatient(subject(t, "user/*.cruds"), pa, "practitioner"), Request{ActionRead, "Observation"}, false, "", "no scope"},
		{"user scope without patient", subject(t, "user/Patient.rs"), Request{ActionRead, "Patient"}, false, "", "no scope"},
		{"admin role is irrelevant", withPatient(subject(t, "user/*.cruds"), "", "admin"), Request{ActionRead, "Observation"}, false, "", "no scope"},
		{"auditor role is irrelevant", withPatient(subject(t, "patient/Observation.rs"), pa, "auditor"), Request{ActionRead, "Observation"}, true, pa, ""},
		{"auditor role grants no AuditEvent", withPatient(subject(t), "", "auditor"), Request{ActionRead, "AuditEvent"}, false, "", "no scope"},
		{"patient without subject", Subject{Patient: pa, Scopes: subject(t, "patient/*.cruds").Scopes}, Request{ActionRead, "Observation"}, false, "", "no authenticated subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.sub, tt.req)
			if d.Allow != tt.allow || compartmentOf(d) != tt.compartment || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Decide = %+v, want allow=%v compartment=%q and reason containing %q", d, tt.allow, tt.compartment, tt.reason)
			}
			if strings.Contains(d.Reason, pa) {
				t.Fatalf("reason %q names the patient", d.Reason)
			}
		})
	}
}

// A denial never carries an obligation, and an allow under a patient/
// scope always carries the launch patient, across every action.
func TestDecideCompartmentAcrossActions(t *testing.T) {
	sub := subject(t, "patient/*.cruds")
	sub.Patient = "pat-a"
	for _, a := range []Action{ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionSearch, ActionHistory, ActionOperation, "bogus"} {
		for _, typ := range []string{"Observation", "Patient", "Organization", "AuditEvent", "", "bad type"} {
			d := Decide(sub, Request{Action: a, Type: typ})
			if d.Allow != (compartmentOf(d) == "pat-a") {
				t.Errorf("Decide(%s %q) = %+v: allow and compartment disagree", a, typ, d)
			}
		}
	}
}

// BenchmarkDecidePatientRead is a typical person's decision: a patient app
// with a handful of patient/ scopes reads an Observation.
func BenchmarkDecidePatientRead(b *testing.B) {
	sub := subject(b, "patient/Patient.rs", "patient/Condition.rs", "patient/Observation.rs", "patient/MedicationRequest.rs")
	sub.UserID, sub.Role, sub.Patient, sub.FHIRUser = "u1", "patient", "pat-a", "Patient/pat-a"
	req := Request{Action: ActionRead, Type: "Observation"}
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(sub, req); !d.Allow || compartmentOf(d) != "pat-a" {
			b.Fatal("denied")
		}
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

// The ledger's AuditEvent view is read-only whatever the scopes, and read
// only with a scope that names it (A8: separation of duties): a wildcard,
// v1 or v2, grants every type but AuditEvent.
func TestAuditEventReadOnly(t *testing.T) {
	for _, scopes := range [][]string{{"system/AuditEvent.cruds"}, {"system/*.cruds", "system/AuditEvent.rs"}} {
		sub := subject(t, scopes...)
		for _, a := range []Action{ActionCreate, ActionUpdate, ActionDelete} {
			if d := Decide(sub, Request{Action: a, Type: "AuditEvent"}); d.Allow {
				t.Errorf("%v: %s AuditEvent allowed", scopes, a)
			}
		}
		for _, a := range []Action{ActionRead, ActionSearch} {
			if d := Decide(sub, Request{Action: a, Type: "AuditEvent"}); !d.Allow {
				t.Errorf("%v: %s AuditEvent denied: %s", scopes, a, d.Reason)
			}
		}
	}
	for _, scope := range []string{"system/*.rs", "system/*.cruds", "system/*.read", "system/*.*", "system/Patient.rs"} {
		sub := subject(t, scope)
		for _, a := range []Action{ActionRead, ActionSearch, ActionHistory} {
			if d := Decide(sub, Request{Action: a, Type: "AuditEvent"}); d.Allow {
				t.Errorf("%s: %s AuditEvent allowed: %s", scope, a, d.Reason)
			}
		}
		if scope != "system/Patient.rs" && !Decide(sub, Request{Action: ActionRead, Type: "Observation"}).Allow {
			t.Errorf("%s no longer reads Observation", scope)
		}
	}
}

// compartmentOf is the single patient a Decision is limited to, "" when
// it is not limited, "?" when it reaches several or none.
func compartmentOf(d Decision) string {
	switch {
	case d.Patients == nil:
		return ""
	case len(d.Patients) == 1:
		return d.Patients[0]
	}
	return "?"
}
