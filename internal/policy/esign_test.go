package policy

import "testing"

// Only a person who may read the resource and holds the signing right
// signs: not a service with every scope, not a person without the right,
// not a person whose scopes do not reach the type.
func TestDecideSign(t *testing.T) {
	all := []Scope{{Context: "user", Type: "*", Read: true, Search: true}}
	person := Subject{ClientID: "app", UserID: "u1", Role: RolePractitioner, Scopes: all}
	for _, tc := range []struct {
		name  string
		sub   Subject
		right bool
		allow bool
	}{
		{"practitioner with the right", person, true, true},
		{"practitioner without the right", person, false, false},
		{"service with every scope", Subject{ClientID: "svc", Scopes: []Scope{{Context: "system", Type: "*", Create: true, Read: true, Update: true, Delete: true, Search: true}}}, true, false},
		{"person whose scopes do not read the type", Subject{ClientID: "app", UserID: "u1", Role: RolePractitioner, Scopes: []Scope{{Context: "user", Type: "Patient", Read: true}}}, true, false},
		{"admin (no clinical access)", Subject{ClientID: "app", UserID: "u2", Role: RoleAdmin, Scopes: all}, true, false},
	} {
		d := Policy{}.DecideSign(tc.sub, "Observation", tc.right)
		if d.Allow != tc.allow || d.Reason == "" {
			t.Errorf("%s: %+v, want allow=%v", tc.name, d, tc.allow)
		}
	}
}
