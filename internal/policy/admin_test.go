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

// Detection and response is the security officer's, with a second factor,
// and nobody else's: not an admin, an auditor, a practitioner or a
// service with every scope.
func TestDecideSecurity(t *testing.T) {
	officer := Subject{UserID: "s1", Role: RoleSecurityOfficer}
	for _, a := range []SecurityAction{SecurityReadAlerts, SecurityWork, SecurityContain, SecurityScope} {
		if d := DecideSecurity(officer, true, a); !d.Allow {
			t.Errorf("security officer with MFA, %s: %s", a, d.Reason)
		}
		for name, c := range map[string]struct {
			sub Subject
			mfa bool
		}{
			"officer without MFA": {officer, false},
			"admin":               {Subject{UserID: "a1", Role: RoleAdmin}, true},
			"auditor":             {Subject{UserID: "a2", Role: RoleAuditor}, true},
			"privacy officer":     {Subject{UserID: "a3", Role: RolePrivacyOfficer}, true},
			"practitioner":        {Subject{UserID: "a4", Role: RolePractitioner}, true},
			"service":             {Subject{ClientID: "svc", Role: RoleSecurityOfficer, Scopes: mustScopes("system/*.cruds")}, true},
		} {
			if d := DecideSecurity(c.sub, c.mfa, a); d.Allow {
				t.Errorf("%s allowed %s", name, a)
			}
		}
	}
	if d := DecideSecurity(officer, true, "delete-ledger"); d.Allow {
		t.Error("an unknown action was allowed")
	}
}
