package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in        string
		want      string // canonical form; "" when the scope must be rejected
		unsupport bool   // parsed, but ErrUnsupportedScope
	}{
		{"system/Patient.rs", "system/Patient.rs", false},
		{"system/*.cruds", "system/*.cruds", false},
		{"patient/Observation.r", "patient/Observation.r", false},
		{"user/Encounter.cud", "user/Encounter.cud", false},
		{"system/Patient.c", "system/Patient.c", false},
		{"system/Patient.s", "system/Patient.s", false},
		{"system/Patient.d", "system/Patient.d", false},
		{"system/Patient.cs", "system/Patient.cs", false},
		// v1 forms, normalised to v2.
		{"user/*.*", "user/*.cruds", false},
		{"system/*.read", "system/*.rs", false},
		{"system/*.write", "system/*.cud", false},
		{"system/Patient.*", "system/Patient.cruds", false},
		{"patient/Observation.read", "patient/Observation.rs", false},
		// query-restricted v2 scopes: parsed, not granted.
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory", true},
		{"system/Observation.s?category=vital-signs&status=final", "system/Observation.s?category=vital-signs&status=final", true},
		// malformed.
		{"", "", false},
		{"system", "", false},
		{"system/Patient", "", false},
		{"system/Patient.", "", false},
		{"system/.rs", "", false},
		{"admin/Patient.rs", "", false},
		{"System/Patient.rs", "", false},
		{"system/patient.rs", "", false},
		{"system/Pat-ient.rs", "", false},
		{"system/Patient.sr", "", false},  // out of order
		{"system/Patient.rr", "", false},  // repeat
		{"system/Patient.rsx", "", false}, // unknown letter
		{"system/Patient.R", "", false},   // upper case
		{"system/Patient.crudsc", "", false},
		{"system/Patient.read?x=y", "", false}, // v1 with a query
		{"system/Patient.rs?", "", false},
		{"system/Patient.rs?category", "", false},
		{"system/Patient.rs?a=b c", "", false},
		{"system/Patient.rs?a=b?c=d", "", false},
		{"system/Patient.rs.rs", "", false},
		{"system//Patient.rs", "", false},
		{"openid", "", false},
		{"launch/patient", "", false},
		{"offline_access", "", false},
		{" system/Patient.rs", "", false},
		{"system/Patient.rs ", "", false},
		{"system/" + strings.Repeat("A", 300) + ".rs", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			switch {
			case tt.unsupport:
				if !errors.Is(err, ErrUnsupportedScope) {
					t.Fatalf("ParseScope(%q) error = %v, want ErrUnsupportedScope", tt.in, err)
				}
			case tt.want == "":
				if err == nil {
					t.Fatalf("ParseScope(%q) = %v, want an error", tt.in, got)
				}
				if errors.Is(err, ErrUnsupportedScope) {
					t.Fatalf("ParseScope(%q) malformed scope reported as unsupported", tt.in)
				}
				if !strings.HasPrefix(err.Error(), "policy: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			case err != nil:
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if s := got.String(); s != tt.want {
				t.Fatalf("ParseScope(%q).String() = %q, want %q", tt.in, s, tt.want)
			}
			// The canonical form parses back to the same scope.
			again, err := ParseScope(got.String())
			if (err != nil) != tt.unsupport || again != got {
				t.Fatalf("round trip of %q: %v, %v", got, again, err)
			}
		})
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		s, o string
		want bool
	}{
		{"system/*.cruds", "system/Patient.rs", true},
		{"system/*.cruds", "system/*.cruds", true},
		{"system/Patient.rs", "system/Patient.r", true},
		{"system/Patient.rs", "system/Patient.rs", true},
		{"system/Patient.rs", "system/Patient.rus", false},
		{"system/Patient.r", "system/Patient.rs", false},
		{"system/Patient.rs", "system/Observation.r", false},
		{"system/Patient.cruds", "system/*.r", false},
		{"system/*.read", "system/Observation.rs", true},
		{"system/*.write", "system/Observation.r", false},
		{"system/*.rs", "patient/Observation.r", false},
		{"patient/*.rs", "system/Observation.r", false},
		{"user/*.*", "user/Patient.cruds", true},
		{"system/Observation.rs", "system/Observation.rs?category=laboratory", true},
		{"system/Observation.rs?category=laboratory", "system/Observation.r?category=laboratory", true},
		{"system/Observation.rs?category=laboratory", "system/Observation.r", false},
		{"system/Observation.rs?category=laboratory", "system/Observation.r?category=vital-signs", false},
		// Audit data needs a scope that names it: no wildcard covers it.
		{"system/*.rs", "system/AuditEvent.rs", false},
		{"system/*.cruds", "system/AuditEvent.r", false},
		{"system/*.read", "system/AuditEvent.r", false},
		{"system/*.*", "system/AuditEvent.s", false},
		{"user/*.rs", "user/AuditEvent.r", false},
		{"patient/*.rs", "patient/AuditEvent.r", false},
		{"system/AuditEvent.rs", "system/AuditEvent.r", true},
		{"system/AuditEvent.rs", "system/*.r", false},
	}
	for _, tt := range tests {
		t.Run(tt.s+"/"+tt.o, func(t *testing.T) {
			s, o := mustScope(t, tt.s), mustScope(t, tt.o)
			if got := s.Covers(o); got != tt.want {
				t.Fatalf("%s covers %s = %v, want %v", tt.s, tt.o, got, tt.want)
			}
		})
	}
	if (Scope{Context: "system", Type: "*", Read: true}).Covers(Scope{Context: "system", Type: "*"}) {
		t.Fatal("a scope granting nothing must not count as covered")
	}
}

func mustScope(t testing.TB, s string) Scope {
	t.Helper()
	sc, err := ParseScope(s)
	if err != nil && !errors.Is(err, ErrUnsupportedScope) {
		t.Fatalf("ParseScope(%q): %v", s, err)
	}
	return sc
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"system/Patient.rs", "user/*.*", "system/*.read", "patient/Observation.rs?category=x",
		"system/Patient.sr", "openid", "", "a/b.c", "system/*.cruds?a=b&c=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := ParseScope(in)
		if err != nil && !errors.Is(err, ErrUnsupportedScope) {
			if sc != (Scope{}) {
				t.Fatalf("rejected %q but returned %v", in, sc)
			}
			return
		}
		out := sc.String()
		if out == "" {
			t.Fatalf("accepted %q with an empty canonical form", in)
		}
		again, err2 := ParseScope(out)
		if (err2 != nil) != (err != nil) || again != sc {
			t.Fatalf("canonical form %q of %q does not round-trip: %v %v", out, in, again, err2)
		}
		if !sc.Covers(sc) {
			t.Fatalf("%q does not cover itself", out)
		}
		if strings.ContainsAny(out, " \t\n") {
			t.Fatalf("canonical form %q contains whitespace", out)
		}
	})
}
