package search

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	for raw, want := range map[string]url.Values{
		"":                       {},
		"patient=X":              {"patient": {"X"}},
		"code=a%7Cb&code=c&&":    {"code": {"a|b", "c"}},
		"name=Ada+Lovelace":      {"name": {"Ada Lovelace"}},
		"family:exact=%C3%96zil": {"family:exact": {"Özil"}},
		"note=a%3Bb":             {"note": {"a;b"}},
		"_include=Observation:subject&_include=Observation:encounter": {"_include": {"Observation:subject", "Observation:encounter"}},
		"_count=5&date=ge2020&date=le2021":                            {"_count": {"5"}, "date": {"ge2020", "le2021"}},
		"empty=":                                                      {"empty": {""}},
		"bare":                                                        {"bare": {""}},
		"subject:Patient.name=x":                                      {"subject:Patient.name": {"x"}},
		"text=line%0Aline%09tab":                                      {"text": {"line\nline\ttab"}},
	} {
		got, err := ParseParams(raw)
		if err != nil {
			t.Errorf("ParseParams(%q): %v", raw, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseParams(%q) = %v, want %v", raw, got, want)
		}
	}
}

// C9: everything net/url would drop, read differently, or that FHIR allows
// only once is refused, naming the parameter.
func TestParseParamsRejects(t *testing.T) {
	for _, c := range []struct{ raw, param string }{
		{"patient=X;", "patient"},
		{"patient=X;code=1", "patient"},
		{"a;b=1", "a;b"},
		{"code=x%zz", "code"},
		{"code=x%", "code"},
		{"code=x%4", "code"},
		{"co%zde=1", "co%zde"},
		{"=5", ""},
		{"pa tient=X", "pa tient"},
		{"pa%00tient=X", "pa\x00tient"},
		{"name[0]=x", "name[0]"},
		{"%E2%80%AEname=x", "\u202ename"},
		{"family=a%00b", "family"},
		{"family=%1B%5B31m", "family"},
		{"family=%E2%80%AEevil", "family"},
		{"family=%E2%81%A6x%E2%81%A9", "family"},
		{"family=%FF", "family"},
		{"family=%C3", "family"},
		{"_count=1&_count=2", "_count"},
		{"_count=&_count=2", "_count"},
		{"_sort=a&_sort=b", "_sort"},
		{"_sort:desc=a&_sort=b", "_sort"},
		{"_total=none&_total=accurate", "_total"},
		{"_summary=true&_summary=false", "_summary"},
		{"_elements=id&_elements=name", "_elements"},
		{"_format=json&_format=xml", "_format"},
		{"_page=a&_page=b", "_page"},
		{"_since=2020-01-01T00:00:00Z&_since=2021-01-01T00:00:00Z", "_since"},
		{"_at=2020-01-01T00:00:00Z&_at=2021-01-01T00:00:00Z", "_at"},
		{strings.Repeat("a=1&", MaxParams) + "a=1", ""},
	} {
		_, err := ParseParams(c.raw)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("ParseParams(%.60q): err = %v, want a *QueryError", c.raw, err)
			continue
		}
		if qe.Param != c.param {
			t.Errorf("ParseParams(%.60q): Param %q, want %q (%v)", c.raw, qe.Param, c.param, err)
		}
		checkSafeDiagnostics(t, qe)
	}
}

// checkSafeDiagnostics: what a client sees is printable ASCII, bounded,
// and never holds the value.
func checkSafeDiagnostics(t *testing.T, qe *QueryError) {
	t.Helper()
	d := qe.Diagnostics()
	for i := 0; i < len(d); i++ {
		if d[i] < 0x20 || d[i] >= 0x7f {
			t.Errorf("diagnostics %q hold a byte outside printable ASCII", d)
			break
		}
	}
	if len(d) > 300 {
		t.Errorf("diagnostics of %d bytes", len(d))
	}
}

func TestQueryErrorQuotesName(t *testing.T) {
	long := "x" + strings.Repeat("é", 20) // 41 bytes: byte 32 is inside an é, cut before it
	for name, want := range map[string]string{
		"_count":        `parameter "_count": r`,
		"a\u202eb\x00c": `parameter "a\u202eb\x00c": r`,
		long:            `parameter "x` + strings.Repeat(`\u00e9`, 15) + `"...: r`,
	} {
		if got := (&QueryError{Param: name, Reason: "r"}).Diagnostics(); got != want {
			t.Errorf("Diagnostics for %q = %s, want %s", name, got, want)
		}
	}
}

// FuzzParseParams: any query string either fails with a *QueryError whose
// message is safe to show, or parses into exactly the pairs it holds, as
// net/url reads them: no pair is dropped or read differently, and no
// single-valued parameter repeats.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{
		"code=http://loinc.org|8302-2,1234&date=ge2020-01&_count=10",
		"patient=X;", "code=x%zz", "_count=1&_count=2", "a=%C3%96&b=+c+&&", "=x", "name:exact=a%2Cb",
		"family=%E2%80%AE", "_sort:desc=a&_sort=b", "x=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ParseParams(raw)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %T %v is not a *QueryError", err, err)
			}
			checkSafeDiagnostics(t, qe)
			return
		}
		want, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("accepted %q, which net/url refuses: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseParams(%q) = %v, net/url reads %v", raw, got, want)
		}
		pairs := 0
		for _, p := range strings.Split(raw, "&") {
			if p != "" {
				pairs++
			}
		}
		n := 0
		for k, vs := range got {
			n += len(vs)
			if base, _, _ := strings.Cut(k, ":"); SingleValued(base) && len(vs) > 1 {
				t.Fatalf("%s repeats", k)
			}
		}
		if n != pairs {
			t.Fatalf("ParseParams(%q) kept %d of %d pairs", raw, n, pairs)
		}
	})
}
