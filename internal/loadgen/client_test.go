package loadgen

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDiagnostics(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"outcome", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad date"},{"severity":"warning","code":"processing"}]}`,
			"error invalid: bad date; warning processing"},
		{"not an outcome", `{"resourceType":"Patient","name":[{"family":"Doe"}]}`, ""},
		{"html", `<html>Doe</html>`, ""},
		{"control characters", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"x","diagnostics":"a\nerror: forged\u001b[31m"}]}`,
			"error x: a error: forged [31m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := diagnostics([]byte(tc.body)); got != tc.want {
				t.Errorf("diagnostics = %q, want %q", got, tc.want)
			}
		})
	}
	long := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"x","diagnostics":"` + strings.Repeat("é", 400) + `"}]}`
	got := diagnostics([]byte(long))
	if len(got) > maxDiagBytes+3 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("long diagnostics not clipped on a rune boundary: %d bytes", len(got))
	}
}

func TestValidTypeAndID(t *testing.T) {
	for _, tc := range []struct {
		s       string
		typ, id bool
	}{
		{"Patient", true, true},
		{"patient", false, true},
		{"P", false, true},
		{"Observation2", false, true},
		{"abc-DEF.1", false, true},
		{"", false, false},
		{"a/b", false, false},
		{"a%2Fb", false, false},
		{strings.Repeat("a", 64), false, true},
		{strings.Repeat("a", 65), false, false},
		{"P" + strings.Repeat("a", 63), true, true},
		{"P" + strings.Repeat("a", 64), false, false},
	} {
		if got := validType(tc.s); got != tc.typ {
			t.Errorf("validType(%q) = %v", tc.s, got)
		}
		if got := validID(tc.s); got != tc.id {
			t.Errorf("validID(%q) = %v", tc.s, got)
		}
	}
}
