package policy

import (
	"slices"
	"strings"
	"testing"
)

// TestPrivacyOfficerRole: the built-in privacy-officer role reviews
// break-the-glass access and reaches no clinical data and no ledger,
// whatever the token's scopes.
func TestPrivacyOfficerRole(t *testing.T) {
	role, ok := Policy{}.Role(RolePrivacyOfficer)
	if !ok || role.Reach != ReachNone || !role.Review || role.Ledger || role.Relabel || len(role.Grants) != 0 {
		t.Fatalf("privacy-officer role = %+v, %v", role, ok)
	}
	sub := subject(t, "user/*.cruds")
	sub.UserID, sub.Role = "po", RolePrivacyOfficer
	for _, req := range []Request{{ActionRead, "Patient"}, {ActionSearch, "Observation"}, {ActionSearch, "AuditEvent"}, {ActionCreate, "Observation"}} {
		if d := Decide(sub, req); d.Allow {
			t.Errorf("privacy officer %s %s allowed: %+v", req.Action, req.Type, d)
		}
	}
	if d := (Policy{}).DecideBreakGlass(sub, "p1"); d.Allow {
		t.Errorf("privacy officer may break the glass: %+v", d)
	}
	if _, err := New([]Role{{Name: RolePrivacyOfficer, Reach: ReachAll}}); err == nil {
		t.Error("a custom role redefined privacy-officer")
	}
}

func TestDecidePrivacy(t *testing.T) {
	custom, err := New([]Role{{Name: "compliance", Reach: ReachNone, Review: true}, {Name: "registrar", Reach: ReachAll}})
	if err != nil {
		t.Fatal(err)
	}
	person := func(role string) Subject { return Subject{ClientID: "app", UserID: "u-" + role, Role: role} }
	for _, tc := range []struct {
		name   string
		sub    Subject
		mfa    bool
		act    PrivacyAction
		allow  bool
		reason string
	}{
		{"privacy officer lists", person(RolePrivacyOfficer), true, PrivacyListEmergency, true, "list-emergency"},
		{"privacy officer reviews", person(RolePrivacyOfficer), true, PrivacyReviewEmergency, true, "review-emergency"},
		{"privacy officer without MFA", person(RolePrivacyOfficer), false, PrivacyReviewEmergency, false, "second factor"},
		{"custom reviewing role", person("compliance"), true, PrivacyReviewEmergency, true, "role compliance"},
		{"custom role reaching all", person("registrar"), true, PrivacyListEmergency, false, "does not review"},
		{"practitioner", person(RolePractitioner), true, PrivacyReviewEmergency, false, "does not review"},
		{"admin", person(RoleAdmin), true, PrivacyListEmergency, false, "does not review"},
		{"auditor", person(RoleAuditor), true, PrivacyListEmergency, false, "does not review"},
		{"unknown role", person("janitor"), true, PrivacyListEmergency, false, "unknown role"},
		{"unknown action", person(RolePrivacyOfficer), true, "close-all", false, "unknown review action"},
		{"service with every scope", Subject{ClientID: "svc", Scopes: []Scope{{Context: "system", Type: "*", Create: true, Read: true, Update: true, Delete: true, Search: true}}},
			true, PrivacyListEmergency, false, "person's token"},
	} {
		d := custom.DecidePrivacy(tc.sub, tc.mfa, tc.act)
		if d.Allow != tc.allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v, want allow=%v reason containing %q", tc.name, d, tc.allow, tc.reason)
		}
	}
}

func TestDecideBreakGlass(t *testing.T) {
	custom, err := New([]Role{{Name: "nurse", Reach: ReachRelated, Grants: mustScopes("user/*.rs")}, {Name: "registrar", Reach: ReachAll}})
	if err != nil {
		t.Fatal(err)
	}
	person := func(role string, related ...string) Subject {
		return Subject{ClientID: "app", UserID: "u1", Role: role, FHIRUser: "Practitioner/p", Related: related}
	}
	for _, tc := range []struct {
		name    string
		sub     Subject
		patient string
		allow   bool
		reason  string
	}{
		{"practitioner, unrelated patient", person(RolePractitioner, "a"), "c", true, "may break the glass"},
		{"custom role reaching related", person("nurse"), "c", true, "role nurse"},
		{"already related", person(RolePractitioner, "a", "c"), "c", false, "already related"},
		{"no patient", person(RolePractitioner), "", false, "needs a patient"},
		{"patient role", Subject{ClientID: "app", UserID: "u2", Role: RolePatient, FHIRUser: "Patient/a"}, "c", false, "does not reach"},
		{"role reaching all", person("registrar"), "c", false, "does not reach"},
		{"admin", person(RoleAdmin), "c", false, "does not reach"},
		{"unknown role", person("janitor"), "c", false, "unknown role"},
		{"service", Subject{ClientID: "svc", Scopes: mustScopes("system/*.cruds")}, "c", false, "person's token"},
	} {
		d := custom.DecideBreakGlass(tc.sub, tc.patient)
		if d.Allow != tc.allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v, want allow=%v reason containing %q", tc.name, d, tc.allow, tc.reason)
		}
		if d.Allow && (!slices.Equal(d.Patients, []string{tc.patient}) || !d.InEmergency(tc.patient)) {
			t.Errorf("%s: allowed without the emergency obligation on the patient: %+v", tc.name, d)
		}
	}
}

// TestEmergencyReachEndsWithGrant: a grant widens a practitioner's reach to
// its patient only, under the emergency obligation, and without it the
// patient is out of reach again.
func TestEmergencyReachEndsWithGrant(t *testing.T) {
	sub := subject(t, "user/*.rs")
	sub.UserID, sub.Role, sub.FHIRUser, sub.Related = "u1", RolePractitioner, "Practitioner/p", []string{"a"}
	read := Request{ActionRead, "Observation"}
	sub.Emergency = []string{"c"}
	d := Decide(sub, read)
	if !d.Reaches("c") || !d.InEmergency("c") || d.InEmergency("a") || d.Reaches("z") {
		t.Fatalf("with a grant for c: %+v", d)
	}
	sub.Emergency = nil
	if d := Decide(sub, read); d.Reaches("c") || len(d.Emergency) != 0 {
		t.Fatalf("without the grant: %+v", d)
	}
}
