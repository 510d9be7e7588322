package policy

import (
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	roles, err := ParseRoles([]byte(`{"roles":[{"name":"registrar","reach":"all","grants":["user/Patient.cru"],"mask":["Patient.identifier:` + SSN + `"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(roles)
	if err != nil {
		t.Fatal(err)
	}
	sub := subject(t, "user/*.cruds")
	sub.UserID, sub.Role = "u1", "registrar"
	if d := p.Decide(sub, Request{ActionUpdate, "Patient"}); !d.Allow || d.Restricted() || len(d.Mask) != 1 {
		t.Fatalf("registrar update Patient: %+v", d)
	}
	if d := p.Decide(sub, Request{ActionDelete, "Patient"}); d.Allow {
		t.Fatalf("registrar delete Patient: %+v", d)
	}
	for _, bad := range []string{
		`{"roles":[{"name":"x","reach":"all","grants":["user/Patient.xyz"]}]}`,
		`{"roles":[{"name":"x","reach":"all","colour":"red"}]}`,
		`{"roles":[]} {}`,
		`not json`,
	} {
		if _, err := ParseRoles([]byte(bad)); err == nil {
			t.Errorf("ParseRoles(%s) accepted", bad)
		} else if strings.Contains(err.Error(), "password") {
			t.Errorf("odd error %v", err)
		}
	}
}
