// Package compliance maps the clauses of HIPAA (45 CFR 164.308, 164.310,
// 164.312, 164.404, 164.524, 164.528), GDPR (Art. 5, 15-17, 20, 25, 30,
// 32-34) and 21 CFR Part 11 (11.10(a)-(k), 11.50, 11.70, 11.100, 11.200,
// 11.300) to the Ward features that carry them, the live facts that show
// those features are on, and the tests that prove them (clauses.go, one
// table); it builds the compliance report from that table, reviews who has
// access (review.go), and signs documents (sign.go).
//
// What it guarantees: a report states, for every clause, met, met with a
// condition the operator must keep, not met (with what is missing), or the
// operator's; a clause the table calls met becomes not met when a fact it
// depends on does not hold in the facts given; every met clause names
// tests that exist in the repository (checked by its tests); a signature
// covers the exact bytes of a document, its kind and a domain-separation
// prefix, so it never verifies as a ledger checkpoint, a certificate or a
// token, nor as another kind of document.
//
// What it does not: it gathers no facts itself (the caller reads them
// from the data directory and the ledger), runs no tests (it reads `go
// test -json` output), and cannot show that the operator keeps the
// conditions it lists.
package compliance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Status is a clause's standing in a report.
type Status string

// Statuses.
const (
	Met              Status = "met"
	MetWithCondition Status = "met-with-condition"
	NotMet           Status = "not-met"
	// Operator marks a clause Ward cannot meet alone (training, physical
	// security, contracts): it is the operator's.
	Operator Status = "operator"
)

// Clause is one row of the clause table.
type Clause struct {
	Regulation string
	ID         string
	Title      string
	// Feature is the Ward feature that carries the clause.
	Feature string
	// Facts name the live facts that must hold for the clause to be met.
	Facts []string
	// Tests name the tests that prove the feature, "<dir>.<TestName>".
	Tests []string
	// Base is the clause's status when its facts hold.
	Base Status
	// Condition is what the operator must keep (MetWithCondition,
	// Operator).
	Condition string
	// Missing is what Ward lacks (NotMet).
	Missing string
}

// Names of the facts the clause table depends on.
const (
	FactServer       = "server-configuration"
	FactTLS          = "tls-floor"
	FactMFARoles     = "mfa-roles"
	FactKeyProvider  = "key-provider"
	FactKeyAge       = "key-age"
	FactCheckpoint   = "ledger-checkpoint"
	FactWitnesses    = "ledger-witnesses"
	FactRateLimits   = "rate-limits"
	FactRetention    = "retention-rule"
	FactSIEM         = "siem-sink"
	FactDetector     = "detector"
	FactSessions     = "session-timeouts"
	FactAccessReview = "access-review"
)

// Fact is one piece of live configuration or state, and whether it holds.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	OK    bool   `json:"ok"`
	// Note says what is missing when OK is false, or where the value was
	// read.
	Note string `json:"note,omitempty"`
}

// Build is the binary that made a report (runtime/debug build info).
type Build struct {
	Version   string `json:"version"`
	Revision  string `json:"vcs_revision"`
	Time      string `json:"vcs_time,omitempty"`
	Modified  bool   `json:"vcs_modified"`
	GoVersion string `json:"go_version"`
}

// ReadBuild returns the running binary's build information; Revision is
// "unknown" when the binary was built without VCS stamping (go test,
// go run).
func ReadBuild(version string) Build {
	b := Build{Version: version, Revision: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// SameCommit reports whether two commit names can be the same commit:
// equal, or one an abbreviation (a prefix of at least 7 hex digits) of the
// other. A revision that is unknown matches nothing.
func SameCommit(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(a) < 7 || strings.Trim(a, "0123456789abcdef") != "" {
		return false
	}
	return strings.HasPrefix(b, a)
}

// Test results, as a report marks each named test.
const (
	TestPassed  = "passed"
	TestFailed  = "failed"
	TestSkipped = "skipped"
	TestNotRun  = "not run"
	// TestUnknown: no results were given.
	TestUnknown = "no results given"
)

// TestResults maps "<dir>.<TestName>" to a result.
type TestResults map[string]string

// ReadTestResults reads `go test -json` output and returns the result of
// each top-level test, named as the clause table names them: the package
// path after module, ".", the test. Subtests are folded into their test.
func ReadTestResults(r io.Reader, module string) (TestResults, error) {
	out := TestResults{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go test -json also passes through build output
		}
		var ev struct {
			Action, Package, Test string
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("compliance: test results: %w", err)
		}
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		dir := strings.TrimPrefix(strings.TrimPrefix(ev.Package, module), "/")
		key := dir + "." + ev.Test
		switch ev.Action {
		case "pass":
			out[key] = TestPassed
		case "fail":
			out[key] = TestFailed
		case "skip":
			out[key] = TestSkipped
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("compliance: test results: %w", err)
	}
	return out, nil
}

// TestRef is one named test and its result.
type TestRef struct {
	Name   string `json:"name"`
	Result string `json:"result"`
}

// ClauseResult is one clause as a report states it.
type ClauseResult struct {
	Regulation string    `json:"regulation"`
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Feature    string    `json:"feature,omitempty"`
	Evidence   []Fact    `json:"evidence,omitempty"`
	Tests      []TestRef `json:"tests,omitempty"`
	Status     Status    `json:"status"`
	Condition  string    `json:"condition,omitempty"`
	Missing    string    `json:"missing,omitempty"`
}

// Report is a compliance report.
type Report struct {
	Format    string    `json:"format"`
	Generated time.Time `json:"generated"`
	Ward      Build     `json:"ward"`
	// TestsFrom says where the test results came from ("" when none were
	// given: every test is marked TestUnknown).
	TestsFrom string `json:"test_results,omitempty"`
	// TestsCommit is the commit the test results were produced at, as
	// the operator gave it ("" when not given).
	TestsCommit string          `json:"test_commit,omitempty"`
	Facts       []Fact          `json:"facts"`
	Clauses     []ClauseResult  `json:"clauses"`
	Summary     map[Status]int  `json:"summary"`
	Access      []ReviewSubject `json:"access_review_overdue,omitempty"`
}

// ReportFormat names the JSON report's format.
const ReportFormat = "ward-compliance-report/v1"

// Input is what a report is built from.
type Input struct {
	Now   time.Time
	Build Build
	Facts []Fact
	// Tests are the results of `go test -json` (ReadTestResults); nil
	// when none were given.
	Tests       TestResults
	TestsFrom   string
	TestsCommit string
	// Overdue are the people and clients whose access confirmation is
	// overdue (Review), listed in the report.
	Overdue []ReviewSubject
}

// NewReport evaluates the clause table against the input.
func NewReport(in Input) *Report {
	facts := map[string]Fact{}
	for _, f := range in.Facts {
		facts[f.Name] = f
	}
	r := &Report{Format: ReportFormat, Generated: in.Now.UTC(), Ward: in.Build, TestsFrom: in.TestsFrom, TestsCommit: in.TestsCommit,
		Facts: in.Facts, Summary: map[Status]int{}, Access: in.Overdue}
	for _, c := range Clauses {
		cr := ClauseResult{Regulation: c.Regulation, ID: c.ID, Title: c.Title, Feature: c.Feature,
			Status: c.Base, Condition: c.Condition, Missing: c.Missing}
		var missing []string
		for _, name := range c.Facts {
			f, ok := facts[name]
			if !ok {
				f = Fact{Name: name, Value: "unknown", Note: "not read"}
			}
			cr.Evidence = append(cr.Evidence, f)
			if !f.OK {
				missing = append(missing, name+": "+f.Note)
			}
		}
		if len(missing) > 0 && (c.Base == Met || c.Base == MetWithCondition) {
			cr.Status, cr.Missing = NotMet, strings.Join(missing, "; ")
		}
		for _, t := range c.Tests {
			res := TestUnknown
			if in.Tests != nil {
				res = in.Tests[t]
				if res == "" {
					res = TestNotRun
				}
			}
			cr.Tests = append(cr.Tests, TestRef{Name: t, Result: res})
			if res == TestFailed && (cr.Status == Met || cr.Status == MetWithCondition) {
				cr.Status, cr.Missing = NotMet, "test "+t+" failed"
			}
		}
		r.Clauses = append(r.Clauses, cr)
		r.Summary[cr.Status]++
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Failed lists the named tests the results mark failed.
func (r *Report) Failed() []string {
	seen := map[string]bool{}
	for _, c := range r.Clauses {
		for _, t := range c.Tests {
			if t.Result == TestFailed {
				seen[t.Name] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
