package sqldb

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestLikeEscape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"%", `\%`},
		{"_", `\_`},
		{`\`, `\\`},
		{`a\%_b`, `a\\\%\_b`},
		{"' OR 1=1 --", "' OR 1=1 --"},
	}
	for _, tc := range cases {
		if got := likeEscape(tc.in); got != tc.want {
			t.Errorf("likeEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMicros(t *testing.T) {
	cases := []struct {
		sec  float64
		want int64
	}{
		{0, 0},
		{1.5, 1500000},
		{1709294402.123456, 1709294402123456},
		{-1.25, -1250000},
		{math.Inf(1), math.MaxInt64},
		{math.Inf(-1), math.MinInt64},
		{1e300, math.MaxInt64},
	}
	for _, tc := range cases {
		got, err := micros(tc.sec)
		if err != nil || got != tc.want {
			t.Errorf("micros(%v) = %d, %v; want %d", tc.sec, got, err, tc.want)
		}
	}
	if _, err := micros(math.NaN()); err == nil {
		t.Error("micros(NaN) succeeded")
	}
}

func TestRebind(t *testing.T) {
	db := &DB{d: Dialect{Numbered: true}}
	if got, want := db.rebind("a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)"; got != want {
		t.Errorf("rebind = %q, want %q", got, want)
	}
	db.d.Numbered = false
	if got := db.rebind("a = ?"); got != "a = ?" {
		t.Errorf("rebind without numbering = %q", got)
	}
}

func TestBuilderBindsValues(t *testing.T) {
	for _, numbered := range []bool{false, true} {
		b := &builder{numbered: numbered}
		b.w("x = ")
		b.arg("'; DROP TABLE resources; --")
		b.w(" AND y = ")
		b.arg(int64(7))
		sqlText := b.sb.String()
		if strings.Contains(sqlText, "DROP") || len(b.args) != 2 {
			t.Fatalf("builder put a value into SQL: %q %v", sqlText, b.args)
		}
	}
}

// A page query's LIMIT and OFFSET are parameters 1 and 2 whatever else it
// binds (see builder.paged), on both dialects.
func TestPageBuilderNumbersLimitFirst(t *testing.T) {
	for _, c := range []struct {
		numbered bool
		want     string
	}{{false, "a = ?3 AND b = ?4 LIMIT ?1 OFFSET ?2"}, {true, "a = $3 AND b = $4 LIMIT $1 OFFSET $2"}} {
		b := newPageBuilder(Dialect{Numbered: c.numbered})
		b.w("a = ")
		b.arg("x")
		b.w(" AND b = ")
		b.arg(int64(7))
		b.w(" LIMIT ")
		b.placeholder(1)
		b.w(" OFFSET ")
		b.placeholder(2)
		if got := b.sb.String(); got != c.want {
			t.Errorf("page query %q, want %q", got, c.want)
		}
	}
}

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("migrations = %v", ms)
	}
	for _, m := range ms {
		for _, st := range statements(m.sql) {
			if !strings.HasSuffix(st, ";") || strings.Contains(st, "--") {
				t.Errorf("%s: malformed statement %q", m.name, st)
			}
		}
	}
}

func TestStatements(t *testing.T) {
	got := statements("-- c\nCREATE TABLE a (\n  x INT\n);\n\nCREATE INDEX i ON a (x);\nSELECT 1")
	want := []string{"CREATE TABLE a (\n  x INT\n);", "CREATE INDEX i ON a (x);", "SELECT 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("statements = %q, want %q", got, want)
	}
}

// FuzzStatements checks that splitting never loses or invents text: the
// statements, joined, hold every non-comment line of the input.
func FuzzStatements(f *testing.F) {
	f.Add("CREATE TABLE a (x INT);\n-- note\nCREATE INDEX i ON a (x);")
	f.Add(";;\n;\n")
	f.Fuzz(func(t *testing.T, in string) {
		var kept []string
		for _, line := range strings.Split(in, "\n") {
			tl := strings.TrimSpace(line)
			if tl != "" && !strings.HasPrefix(tl, "--") {
				kept = append(kept, tl)
			}
		}
		var out []string
		for _, st := range statements(in) {
			if st == "" {
				t.Fatalf("empty statement from %q", in)
			}
			for _, line := range strings.Split(st, "\n") {
				out = append(out, strings.TrimSpace(line))
			}
		}
		if !slices.Equal(kept, out) {
			t.Fatalf("statements(%q) lines = %q, want %q", in, out, kept)
		}
	})
}
