package policy

import (
	"slices"
	"strings"
	"testing"
)

// TestDecideRoles: a person's access is the intersection of the role and
// the token's scopes, reaching the role's patients only.
func TestDecideRoles(t *testing.T) {
	person := func(role, fhirUser string, scopes ...string) Subject {
		sub := subject(t, scopes...)
		sub.UserID, sub.Role, sub.FHIRUser = "u1", role, fhirUser
		return sub
	}
	related := func(sub Subject, rel, emerg []string) Subject {
		sub.Related, sub.Emergency = rel, emerg
		return sub
	}
	launch := func(sub Subject, p string) Subject { sub.Patient = p; return sub }
	type want struct {
		allow     bool
		patients  []string // nil: unrestricted
		shared    bool
		emergency []string
		reason    string
	}
	read, create := Request{ActionRead, "Observation"}, Request{ActionCreate, "Observation"}
	tests := []struct {
		name string
		sub  Subject
		req  Request
		want want
	}{
		{"patient reads own", person("patient", "Patient/a", "user/*.rs"), read, want{true, []string{"a"}, true, nil, "role patient"}},
		{"patient cannot write whatever the token", person("patient", "Patient/a", "user/*.cruds"), create, want{false, nil, false, nil, "role patient may not create"}},
		{"patient without a record", person("patient", "", "user/*.rs"), read, want{false, nil, false, nil, "no patient record"}},
		{"patient launch on self", launch(person("patient", "Patient/a", "patient/*.rs"), "a"), read, want{true, []string{"a"}, false, nil, "launch patient"}},
		{"patient launch on another", launch(person("patient", "Patient/a", "patient/*.rs"), "b"), read, want{false, nil, false, nil, "outside role patient's reach"}},
		{"practitioner reads related", related(person("practitioner", "Practitioner/p", "user/*.cruds"), []string{"a", "b"}, nil), read, want{true, []string{"a", "b"}, true, nil, "role practitioner"}},
		{"practitioner writes related, no shared", related(person("practitioner", "Practitioner/p", "user/*.cruds"), []string{"a"}, nil), create, want{true, []string{"a"}, false, nil, ""}},
		{"practitioner without relations reaches nobody", person("practitioner", "Practitioner/p", "user/*.cruds"), read, want{true, []string{}, true, nil, ""}},
		{"practitioner token narrower than role", related(person("practitioner", "Practitioner/p", "user/Observation.rs"), []string{"a"}, nil), create, want{false, nil, false, nil, "no scope grants create"}},
		{"practitioner break-the-glass", related(person("practitioner", "Practitioner/p", "user/*.rs"), []string{"a"}, []string{"c"}), read, want{true, []string{"a", "c"}, true, []string{"c"}, ""}},
		{"practitioner launch on unrelated", launch(related(person("practitioner", "Practitioner/p", "patient/*.rs"), []string{"a"}, nil), "z"), read, want{false, nil, false, nil, "outside role practitioner's reach"}},
		{"practitioner launch in emergency", launch(related(person("practitioner", "Practitioner/p", "patient/*.rs"), nil, []string{"z"}), "z"), read, want{true, []string{"z"}, false, []string{"z"}, ""}},
		{"admin has no clinical data", person("admin", "", "user/*.cruds"), read, want{false, nil, false, nil, "no access to clinical data"}},
		{"auditor has no clinical data", person("auditor", "", "user/*.rs"), read, want{false, nil, false, nil, "no access to clinical data"}},
		{"auditor reads AuditEvent", person("auditor", "", "user/AuditEvent.rs"), Request{ActionSearch, "AuditEvent"}, want{true, nil, false, nil, "reads the ledger"}},
		{"auditor cannot write AuditEvent", person("auditor", "", "user/*.cruds"), Request{ActionCreate, "AuditEvent"}, want{false, nil, false, nil, "read-only"}},
		{"auditor's wildcard token does not read AuditEvent", person("auditor", "", "user/*.rs"), Request{ActionSearch, "AuditEvent"}, want{false, nil, false, nil, "no scope grants search on AuditEvent"}},
		{"patient: no AuditEvent through the role's wildcard", person("patient", "Patient/a", "user/*.rs"), Request{ActionSearch, "AuditEvent"}, want{false, nil, false, nil, "role patient may not search AuditEvent"}},
		{"patient: no AuditEvent even when the token names it", person("patient", "Patient/a", "user/AuditEvent.rs"), Request{ActionRead, "AuditEvent"}, want{false, nil, false, nil, "role patient may not read AuditEvent"}},
		{"unknown role", person("janitor", "", "user/*.rs"), read, want{false, nil, false, nil, "unknown role"}},
		{"person with a system scope gets nothing from it", person("practitioner", "Practitioner/p", "system/*.cruds"), read, want{false, nil, false, nil, "no scope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.sub, tt.req)
			w := tt.want
			if d.Allow != w.allow || !slices.Equal(d.Patients, w.patients) || (d.Patients == nil) != (w.patients == nil) ||
				d.Shared != w.shared || !slices.Equal(d.Emergency, w.emergency) || !strings.Contains(d.Reason, w.reason) {
				t.Fatalf("Decide = %+v, want %+v", d, w)
			}
		})
	}
}

func TestRoleMaskAndCustomRoles(t *testing.T) {
	sub := subject(t, "user/*.rs")
	sub.UserID, sub.Role, sub.Related = "u1", "practitioner", []string{"a"}
	if d := Decide(sub, Request{ActionRead, "Patient"}); !d.Allow || !slices.Contains(d.Mask, "Patient.identifier:"+SSN) {
		t.Fatalf("practitioner decision %+v lacks the SSN mask", d)
	}
	p, err := New([]Role{{Name: "registrar", Reach: ReachAll, Grants: mustScopes("user/Patient.cru")}})
	if err != nil {
		t.Fatal(err)
	}
	sub.Role, sub.Scopes = "registrar", subject(t, "user/*.cruds").Scopes
	if d := p.Decide(sub, Request{ActionCreate, "Patient"}); !d.Allow || d.Restricted() {
		t.Fatalf("registrar create Patient: %+v", d)
	}
	if d := p.Decide(sub, Request{ActionRead, "Observation"}); d.Allow {
		t.Fatalf("registrar reads Observation: %+v", d)
	}
	// A role reaching every patient with a wildcard grant reads no audit
	// data: only a role that reads the ledger does, with a scope naming it.
	p, err = New([]Role{{Name: "analyst", Reach: ReachAll, Grants: mustScopes("user/*.rs")},
		{Name: "reviewer", Reach: ReachNone, Ledger: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		role, scopes string
		allow        bool
	}{
		{"analyst", "user/*.rs", false}, {"analyst", "user/AuditEvent.rs", false},
		{"reviewer", "user/*.rs", false}, {"reviewer", "user/AuditEvent.rs", true},
	} {
		sub.Role, sub.Scopes = c.role, subject(t, c.scopes).Scopes
		if d := p.Decide(sub, Request{ActionSearch, "AuditEvent"}); d.Allow != c.allow {
			t.Errorf("%s with %s searches AuditEvent: %+v, want allow %v", c.role, c.scopes, d, c.allow)
		}
	}
	for _, bad := range [][]Role{
		{{Name: "patient", Reach: ReachOwn}},
		{{Name: "x", Reach: "everyone"}},
		{{Name: "x", Reach: ReachAll, Grants: mustScopes("system/*.rs")}},
		{{Name: "x", Reach: ReachAll}, {Name: "x", Reach: ReachAll}},
		{{Name: "Bad Name", Reach: ReachAll}},
		{{Name: "x", Reach: ReachAll, Mask: []string{"identifier"}}},
		{{Name: "x", Reach: ReachAll, Mask: []string{"Patient.identifier:"}}},
		{{Name: "x", Reach: ReachAll, Mask: []string{"Patient.value[x]"}}},
		{{Name: "x", Reach: ReachAll, Mask: []string{"Patient.id"}}},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func BenchmarkDecidePractitionerRead(b *testing.B) {
	sub := subject(b, "user/*.cruds")
	sub.UserID, sub.Role = "u1", "practitioner"
	for i := range 50 {
		sub.Related = append(sub.Related, "patient-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	slices.Sort(sub.Related)
	req := Request{Action: ActionRead, Type: "Observation"}
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(sub, req); !d.Allow {
			b.Fatal("denied")
		}
	}
}
