package fhir

import (
	"regexp"
	"strings"
	"testing"
)

// patternProbes are strings built to sit on the edges of the schema's
// patterns: every string of up to three characters from an alphabet of
// whitespace, id characters, non-ASCII spaces and invalid UTF-8, and ids
// around the length limit.
func patternProbes() []string {
	alphabet := []string{"", "a", "Z", "0", "-", ".", "_", " ", "\t", "\n", "\r", "\f", "\v", "\u00a0", "\u2028", "é", "\xff"}
	var out []string
	for _, a := range alphabet {
		for _, b := range alphabet {
			for _, c := range alphabet {
				out = append(out, a+b+c)
			}
		}
	}
	for _, n := range []int{63, 64, 65} {
		out = append(out, strings.Repeat("a", n), strings.Repeat("a", n-1)+" ")
	}
	return out
}

// TestFastPatternsMatchRegexp: each hand-written matcher agrees with its
// pattern compiled as the JSON-schema library compiles it (Go regexp) on
// every probe.
func TestFastPatternsMatchRegexp(t *testing.T) {
	probes := patternProbes()
	for p, match := range fastPatterns {
		re := regexp.MustCompile(p)
		accepted := 0
		for _, s := range probes {
			want := re.MatchString(s)
			if match(s) != want {
				t.Errorf("pattern %s on %q: matcher says %v, regexp %v", p, s, !want, want)
			}
			if want {
				accepted++
			}
		}
		if accepted == 0 || accepted == len(probes) {
			t.Errorf("pattern %s: the probes do not tell matches from non-matches (%d of %d match)", p, accepted, len(probes))
		}
	}
}

// TestFastPatternsAreTheSchemas: every hand-written matcher replaces a
// pattern the schema uses; a schema update that changed one would
// otherwise leave a matcher checking a pattern nobody declares.
func TestFastPatternsAreTheSchemas(t *testing.T) {
	root, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	used := make(map[string]bool)
	for _, d := range root["definitions"].(map[string]any) {
		if p, ok := d.(map[string]any)["pattern"].(string); ok {
			used[p] = true
		}
	}
	for p := range fastPatterns {
		if !used[p] {
			t.Errorf("pattern %s has a matcher but no definition uses it", p)
		}
	}
}

func FuzzFastPatterns(f *testing.F) {
	for _, s := range patternProbes()[:200] {
		f.Add(s)
	}
	res := make(map[string]*regexp.Regexp)
	for p := range fastPatterns {
		res[p] = regexp.MustCompile(p)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for p, match := range fastPatterns {
			if got, want := match(s), res[p].MatchString(s); got != want {
				t.Errorf("pattern %s on %q: matcher says %v, regexp %v", p, s, got, want)
			}
		}
	})
}
