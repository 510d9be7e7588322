package policy

import "testing"

func TestDecideAdmin(t *testing.T) {
	admin := Subject{ClientID: "app", UserID: "u1", Role: "admin"}
	for _, tc := range []struct {
		name  string
		sub   Subject
		mfa   bool
		act   AdminAction
		allow bool
	}{
		{"admin with MFA", admin, true, AdminCreateUser, true},
		{"admin with MFA lists", admin, true, AdminListUsers, true},
		{"admin without MFA", admin, false, AdminChangeUser, false},
		{"unknown action", admin, true, "drop-tables", false},
		{"service with every scope", Subject{ClientID: "svc", Scopes: []Scope{{Context: "system", Type: "*", Create: true, Read: true, Update: true, Delete: true, Search: true}}}, true, AdminListUsers, false},
		{"practitioner", Subject{ClientID: "app", UserID: "u2", Role: "practitioner"}, true, AdminListUsers, false},
		{"auditor", Subject{ClientID: "app", UserID: "u3", Role: "auditor"}, true, AdminListUsers, false},
	} {
		if d := DecideAdmin(tc.sub, tc.mfa, tc.act); d.Allow != tc.allow || d.Reason == "" {
			t.Errorf("%s: %+v, want allow=%v", tc.name, d, tc.allow)
		}
	}
}
