package policy

import (
	"strings"
	"testing"
)

func TestDecideAccessLog(t *testing.T) {
	read := func(ctx, typ string) Scope { return Scope{Context: ctx, Type: typ, Read: true, Search: true} }
	person := func(role, fhirUser string, scopes ...Scope) Subject {
		return Subject{ClientID: "app", UserID: "u-" + role, Role: role, FHIRUser: fhirUser, Scopes: scopes, Related: []string{}}
	}
	patient := person(RolePatient, "Patient/p1", read("user", "*"))
	patient.Patient = "p1"
	for _, tc := range []struct {
		name    string
		sub     Subject
		mfa     bool
		patient string
		allow   bool
		reason  string
	}{
		{"the patient", patient, false, "p1", true, "own access log"},
		{"the patient, another patient's log", patient, false, "p2", false, "only the patient"},
		{"the patient through an app that may not read their Patient", func() Subject {
			s := person(RolePatient, "Patient/p1", read("user", "Observation"))
			s.Patient = "p1"
			return s
		}(), false, "p1", false, "only the patient"},
		{"privacy officer with MFA", person(RolePrivacyOfficer, "", read("user", "*")), true, "p1", true, "reads access logs"},
		{"privacy officer without MFA", person(RolePrivacyOfficer, "", read("user", "*")), false, "p1", false, "second factor"},
		{"practitioner who may read the record", person(RolePractitioner, "Practitioner/x", read("user", "*")), true, "p1", false, "only the patient"},
		{"auditor", person(RoleAuditor, "", read("user", "AuditEvent")), true, "p1", true, "may search audit events"},
		{"service with audit scope", Subject{ClientID: "svc", Scopes: []Scope{read("system", "AuditEvent")}}, false, "p1", true, "may search audit events"},
		{"service with every clinical scope", Subject{ClientID: "svc", Scopes: []Scope{read("system", "*")}}, false, "p1", false, "only the patient"},
		{"no patient", Subject{ClientID: "svc", Scopes: []Scope{read("system", "AuditEvent")}}, false, "", false, "names a patient"},
	} {
		d := Policy{}.DecideAccessLog(tc.sub, tc.mfa, tc.patient)
		if d.Allow != tc.allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v, want allow=%v reason containing %q", tc.name, d, tc.allow, tc.reason)
		}
	}
}
