package compliance_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/compliance"
)

func allFacts(ok bool) []compliance.Fact {
	var out []compliance.Fact
	for _, n := range []string{compliance.FactServer, compliance.FactTLS, compliance.FactMFARoles, compliance.FactKeyProvider, compliance.FactKeyAge,
		compliance.FactCheckpoint, compliance.FactWitnesses, compliance.FactRateLimits, compliance.FactRetention, compliance.FactSIEM,
		compliance.FactDetector, compliance.FactSessions, compliance.FactAccessReview} {
		out = append(out, compliance.Fact{Name: n, Value: "v", OK: ok, Note: "n-" + n})
	}
	return out
}

func clause(t *testing.T, r *compliance.Report, id string) compliance.ClauseResult {
	t.Helper()
	for _, c := range r.Clauses {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no clause %s", id)
	return compliance.ClauseResult{}
}

// TestReportStatuses: with every fact holding, each clause keeps the
// table's status; a fact that does not hold makes the clauses depending
// on it not met, naming it; a failed test does too; test results mark
// named tests passed, failed or not run.
func TestReportStatuses(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	good := compliance.NewReport(compliance.Input{Now: now, Build: compliance.Build{Revision: "abc"}, Facts: allFacts(true)})
	for i, c := range good.Clauses {
		if c.Status != compliance.Clauses[i].Base {
			t.Errorf("%s: %s, want the table's %s", c.ID, c.Status, compliance.Clauses[i].Base)
		}
		for _, tr := range c.Tests {
			if tr.Result != compliance.TestUnknown {
				t.Errorf("%s: %s marked %q without results", c.ID, tr.Name, tr.Result)
			}
		}
	}
	if c := clause(t, good, "11.70"); c.Status != compliance.Met || len(c.Tests) == 0 {
		t.Errorf("11.70: %+v", c)
	}
	if c := clause(t, good, "11.300(b)"); c.Status != compliance.NotMet || !strings.Contains(c.Missing, "password aging") {
		t.Errorf("11.300(b): %+v", c)
	}

	facts := allFacts(true)
	for i := range facts {
		if facts[i].Name == compliance.FactDetector {
			facts[i].OK, facts[i].Note = false, "the detector is off"
		}
	}
	results := compliance.TestResults{"internal/api.TestAuditMatrix": compliance.TestPassed, "internal/api.TestEveryRouteAudited": compliance.TestFailed}
	bad := compliance.NewReport(compliance.Input{Now: now, Facts: facts, Tests: results, TestsFrom: "results.json"})
	c := clause(t, bad, "164.308(a)(5)(ii)(C)")
	if c.Status != compliance.NotMet || !strings.Contains(c.Missing, "detector: the detector is off") {
		t.Errorf("log-in monitoring with the detector off: %s, missing %q", c.Status, c.Missing)
	}
	if c := clause(t, bad, "164.312(a)(2)(i)"); c.Status != compliance.Met {
		t.Errorf("a clause not depending on the detector changed: %s", c.Status)
	}
	c = clause(t, bad, "164.312(b)")
	if c.Status != compliance.NotMet || !strings.Contains(c.Missing, "TestEveryRouteAudited failed") {
		t.Errorf("audit controls with a failed test: %s, %q", c.Status, c.Missing)
	}
	got := map[string]string{}
	for _, tr := range c.Tests {
		got[tr.Name] = tr.Result
	}
	if got["internal/api.TestAuditMatrix"] != compliance.TestPassed || got["internal/api.TestAuditFailClosed"] != compliance.TestNotRun {
		t.Errorf("test results: %v", got)
	}
	if f := bad.Failed(); len(f) != 1 || f[0] != "internal/api.TestEveryRouteAudited" {
		t.Errorf("Failed() = %v", f)
	}
	if bad.Summary[compliance.NotMet] <= good.Summary[compliance.NotMet] {
		t.Errorf("summary: %v vs %v", bad.Summary, good.Summary)
	}

	var js, page bytes.Buffer
	if err := bad.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back compliance.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Format != compliance.ReportFormat || len(back.Clauses) != len(compliance.Clauses) {
		t.Fatalf("JSON round trip: %v, %+v", err, back.Format)
	}
	if err := bad.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	for _, want := range []string{"<!DOCTYPE html>", "@page", "164.312(b)", "not-met", "TestEveryRouteAudited", "results.json"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, never := range []string{"<script", "src=", "href=", "@import"} {
		if strings.Contains(h, never) {
			t.Errorf("HTML is not self-contained: %q", never)
		}
	}
}

// TestReadTestResults reads go test -json output: top-level tests by
// package directory, subtests folded, build output skipped.
func TestReadTestResults(t *testing.T) {
	in := `# github.com/x
{"Action":"run","Package":"github.com/wardhealth/ward/internal/api","Test":"TestA"}
{"Action":"pass","Package":"github.com/wardhealth/ward/internal/api","Test":"TestA/sub"}
{"Action":"pass","Package":"github.com/wardhealth/ward/internal/api","Test":"TestA"}
{"Action":"fail","Package":"github.com/wardhealth/ward/cmd/ward","Test":"TestB"}
{"Action":"skip","Package":"github.com/wardhealth/ward/internal/store/postgres","Test":"TestC"}
{"Action":"pass","Package":"github.com/wardhealth/ward/internal/api"}
`
	r, err := compliance.ReadTestResults(strings.NewReader(in), "github.com/wardhealth/ward")
	if err != nil {
		t.Fatal(err)
	}
	want := compliance.TestResults{"internal/api.TestA": "passed", "cmd/ward.TestB": "failed", "internal/store/postgres.TestC": "skipped"}
	if len(r) != len(want) {
		t.Errorf("got %v, want %v", r, want)
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s: %q, want %q", k, r[k], v)
		}
	}
	if _, err := compliance.ReadTestResults(strings.NewReader("{not json\n"), "m"); err == nil {
		t.Error("malformed JSON accepted")
	}
}

// TestSameCommit: a report refuses test results from another commit than
// its binary's; abbreviations of at least 7 hex digits match, nothing
// shorter or not hex does, and an unknown revision matches nothing.
func TestSameCommit(t *testing.T) {
	full := "37391d3a1b2c3d4e5f60718293a4b5c6d7e8f901"
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{full, full, true},
		{"37391d3", full, true},
		{full, "37391D3A1B", true},
		{"37391d", full, false},
		{"37391d4", full, false},
		{"unknown", "unknown", false},
		{"", full, false},
		{"zzzzzzzz", "zzzzzzzz", false},
	} {
		if got := compliance.SameCommit(tc.a, tc.b); got != tc.want {
			t.Errorf("SameCommit(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
