package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/compliance"
)

// TestAccessReview: ward access review lists every person and client
// with role, scopes, status, last use and second factors, in text, CSV and
// JSON; ward access confirm records a reviewer's confirmation in the
// ledger (who, when), after which the subject is not overdue as of a
// date inside the period and is again after it; refused confirmations
// record nothing.
func TestAccessReview(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv := startServe(t, "--dev", "--data", data)
	c := dial(t, data) // the bootstrap client's token request is its last use
	if status, _ := c.do(http.MethodGet, "/Patient", nil); status != http.StatusOK {
		t.Fatalf("search: %d", status)
	}
	code, out, stderr := ward(t, "user", "create", "--data", data, "--username", "rita.reviewer", "--role", "auditor")
	if code != 0 {
		t.Fatalf("create reviewer: %d %s", code, stderr)
	}
	reviewer := field(out, "id:")
	code, out, stderr = ward(t, "user", "create", "--data", data, "--username", "doc.holliday", "--role", "practitioner")
	if code != 0 {
		t.Fatalf("create practitioner: %d %s", code, stderr)
	}
	doc := field(out, "id:")

	review := func(args ...string) map[string]compliance.ReviewSubject {
		t.Helper()
		code, out, stderr := ward(t, append([]string{"access", "review", "--data", data, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("access review: %d %s", code, stderr)
		}
		var subjects []compliance.ReviewSubject
		if err := json.Unmarshal([]byte(out), &subjects); err != nil {
			t.Fatalf("access review JSON: %v\n%s", err, out)
		}
		m := map[string]compliance.ReviewSubject{}
		for _, s := range subjects {
			m[s.ID] = s
		}
		return m
	}
	// The server folds the search's ledger entry from its spool into the
	// ledger within about 100 ms; the review, another process, reads the
	// ledger. Wait for the fold rather than assume it happened.
	got := review()
	for deadline := time.Now().Add(15 * time.Second); got[c.creds.ClientID].LastUse == nil && time.Now().Before(deadline); got = review() {
		time.Sleep(100 * time.Millisecond)
	}
	boot := got[c.creds.ClientID]
	if boot.Kind != compliance.KindClient || boot.LastUse == nil || boot.Status != "active" || len(boot.Scopes) == 0 {
		t.Errorf("bootstrap client: %+v", boot)
	}
	d := got[doc]
	if d.Kind != compliance.KindPerson || d.Role != "practitioner" || d.MFA != "none" || d.MFARequired || d.LastUse != nil || d.Confirmed != nil || d.Overdue {
		t.Errorf("new practitioner: %+v", d)
	}
	if r := got[reviewer]; !r.MFARequired || r.Role != "auditor" {
		t.Errorf("auditor: %+v", r)
	}
	later := time.Now().AddDate(0, 0, 100).Format(time.DateOnly)
	if !review("--as-of", later)[doc].Overdue {
		t.Error("an unconfirmed practitioner is not overdue 100 days after creation")
	}

	// Refused confirmations: unknown subject or reviewer, self-review,
	// both or neither subject.
	for _, args := range [][]string{
		{"--user", "nosuch", "--reviewer", reviewer},
		{"--user", doc, "--reviewer", "nosuch"},
		{"--user", reviewer, "--reviewer", reviewer},
		{"--user", doc, "--client", c.creds.ClientID, "--reviewer", reviewer},
		{"--reviewer", reviewer},
		{"--user", doc},
	} {
		if code, _, _ := ward(t, append([]string{"access", "confirm", "--data", data}, args...)...); code != 2 {
			t.Errorf("confirm %v: exit %d, want 2", args, code)
		}
	}
	code, out, stderr = ward(t, "access", "confirm", "--data", data, "--user", doc, "--reviewer", reviewer)
	if code != 0 || !strings.Contains(out, "confirmed: person "+doc) {
		t.Fatalf("confirm: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := ward(t, "access", "confirm", "--data", data, "--client", c.creds.ClientID, "--reviewer", reviewer); code != 0 {
		t.Fatalf("confirm client: %d %s", code, stderr)
	}
	var confirms []string
	for _, e := range ledgerOf(t, data) {
		if e.Action == compliance.ActionConfirm {
			if !strings.HasPrefix(e.Actor, "local") || e.Client != "ward-cli" || e.Detail != "reviewer="+reviewer {
				t.Errorf("confirmation entry %+v", e)
			}
			confirms = append(confirms, e.ResourceType+"/"+e.ResourceID)
		}
	}
	if len(confirms) != 2 || confirms[0] != "User/"+doc || confirms[1] != "Client/"+c.creds.ClientID {
		t.Errorf("confirmations in the ledger: %v", confirms)
	}
	got = review("--as-of", time.Now().AddDate(0, 0, 60).Format(time.DateOnly))
	if d := got[doc]; d.Confirmed == nil || d.Confirmed.Reviewer != reviewer || d.Overdue {
		t.Errorf("confirmed practitioner 60 days on: %+v", d)
	}
	if !review("--as-of", later)[doc].Overdue {
		t.Error("a confirmation lasts past its period")
	}
	if review("--as-of", later, "--period-days", "365")[doc].Overdue {
		t.Error("--period-days is not applied")
	}

	code, out, _ = ward(t, "access", "review", "--data", data, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 4 || rows[0][0] != "kind" || rows[0][len(rows[0])-1] != "overdue" {
		t.Errorf("CSV: %d %v\n%s", code, err, out)
	}
	code, out, _ = ward(t, "access", "review", "--data", data)
	if code != 0 || !strings.Contains(out, "doc.holliday") || !strings.Contains(out, "3 people and clients, 0 overdue") {
		t.Errorf("text review: %d\n%s", code, out)
	}
	if code, _, stderr := ward(t, "access", "review", "--data", data, "--format", "xml"); code != 2 || !strings.Contains(stderr, "--format") {
		t.Errorf("bad format: %d %s", code, stderr)
	}
	srv.stopOK()
}

// TestComplianceReport: against a dev server's data directory, the report
// reads the controls the server recorded at start (detector on, no SIEM
// sink, no witness), marks named tests from go test -json output, and
// degrades the clauses whose facts do not hold or whose tests failed; it
// is written as JSON and printable HTML with detached signatures that
// ward compliance verify accepts, and rejects after any change, with
// another document's signature, or with the ledger's key.
func TestComplianceReport(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv := startServe(t, "--dev", "--data", data)
	_, ledgerKey := serveLedgerKey(t, srv.stderr.String())
	dir := t.TempDir()
	results := filepath.Join(dir, "results.json")
	if err := os.WriteFile(results, []byte(`{"Action":"pass","Package":"github.com/wardhealth/ward/internal/api","Test":"TestAuditMatrix"}
{"Action":"fail","Package":"github.com/wardhealth/ward/internal/tlsconfig","Test":"TestProtocolFloor"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rj, rh := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	code, _, stderr := ward(t, "compliance", "report", "--data", data, "--json", "--out", rj, "--test-results", results, "--test-commit", "0123456789abcdef", "--retention-years", "10")
	if code != 0 || !strings.Contains(stderr, "ward compliance verify") {
		t.Fatalf("report: %d %s", code, stderr)
	}
	raw, err := os.ReadFile(rj)
	if err != nil {
		t.Fatal(err)
	}
	var rep compliance.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TestsCommit != "0123456789abcdef" || rep.TestsFrom != results {
		t.Errorf("the report names test results %q at commit %q", rep.TestsFrom, rep.TestsCommit)
	}
	facts := map[string]compliance.Fact{}
	for _, f := range rep.Facts {
		facts[f.Name] = f
	}
	for name, ok := range map[string]bool{compliance.FactServer: true, compliance.FactTLS: true, compliance.FactDetector: true, compliance.FactSIEM: false,
		compliance.FactWitnesses: false, compliance.FactRetention: true, compliance.FactKeyAge: true, compliance.FactAccessReview: true, compliance.FactKeyProvider: true} {
		if f, found := facts[name]; !found || f.OK != ok {
			t.Errorf("fact %s: %+v, want ok=%v", name, f, ok)
		}
	}
	if v := facts[compliance.FactMFARoles].Value; !strings.Contains(v, "auditor") || !strings.Contains(v, "security-officer") {
		t.Errorf("MFA roles: %q", v)
	}
	clauses := map[string]compliance.ClauseResult{}
	for _, c := range rep.Clauses {
		clauses[c.ID] = c
	}
	if c := clauses["164.308(a)(1)(ii)(D)"]; c.Status != compliance.NotMet || !strings.Contains(c.Missing, "siem-sink") {
		t.Errorf("activity review without a SIEM sink: %s %q", c.Status, c.Missing)
	}
	if c := clauses["164.312(e)(1)"]; c.Status != compliance.NotMet || !strings.Contains(c.Missing, "TestProtocolFloor failed") {
		t.Errorf("transmission security with a failed test: %s %q", c.Status, c.Missing)
	}
	if c := clauses["164.312(b)"]; c.Status != compliance.Met || c.Tests[1].Name != "internal/api.TestAuditMatrix" || c.Tests[1].Result != compliance.TestPassed || c.Tests[0].Result != compliance.TestNotRun {
		t.Errorf("audit controls: %+v", c)
	}
	if c := clauses["11.200(a)"]; c.Status != compliance.MetWithCondition || c.Condition == "" || len(c.Tests) == 0 {
		t.Errorf("11.200(a), the signing ceremony: %+v", c)
	}
	if c := clauses["11.300(d)"]; c.Status != compliance.NotMet || !strings.Contains(c.Missing, "siem-sink") {
		t.Errorf("11.300(d), reporting failed ceremonies without a SIEM sink: %s %q", c.Status, c.Missing)
	}
	if c := clauses["164.308(b)"]; c.Status != compliance.Operator {
		t.Errorf("BAAs: %+v", c)
	}
	if rep.Ward.Revision == "" || rep.TestsFrom != results {
		t.Errorf("build and results: %+v %q", rep.Ward, rep.TestsFrom)
	}

	code, _, stderr = ward(t, "compliance", "report", "--data", data, "--format", "html", "--out", rh)
	if code != 0 {
		t.Fatalf("HTML report: %d %s", code, stderr)
	}
	page, _ := os.ReadFile(rh)
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) || !bytes.Contains(page, []byte("@page")) || bytes.Contains(page, []byte("<script")) {
		t.Errorf("HTML report:\n%.300s", page)
	}

	code, vkey, _ := ward(t, "compliance", "key", "--data", data)
	vkey = strings.TrimSpace(vkey)
	if code != 0 || !strings.HasPrefix(vkey, compliance.SignerName+"+") {
		t.Fatalf("key: %d %q", code, vkey)
	}
	keyFile := filepath.Join(dir, "ward.pub")
	if err := os.WriteFile(keyFile, []byte(vkey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{rj, rh} {
		for _, k := range []string{vkey, keyFile} {
			code, out, stderr := ward(t, "compliance", "verify", f, f+".sig", "--key", k)
			if code != 0 || !strings.Contains(out, "verified: compliance-report") {
				t.Errorf("verify %s with %s: %d %s %s", f, k, code, out, stderr)
			}
		}
	}
	tampered := filepath.Join(dir, "tampered.json")
	if err := os.WriteFile(tampered, bytes.Replace(raw, []byte(`"not-met"`), []byte(`"met"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"changed report":      {tampered, rj + ".sig", "--key", vkey},
		"another's signature": {rj, rh + ".sig", "--key", vkey},
		"the ledger's key":    {rj, rj + ".sig", "--key", ledgerKey},
	} {
		if code, out, stderr := ward(t, append([]string{"compliance", "verify"}, args...)...); code != 1 || !strings.Contains(stderr, "NOT verified") {
			t.Errorf("%s: exit %d, %s %s", name, code, out, stderr)
		}
	}
	// The report key is not the ledger's: its signature does not verify
	// as a checkpoint signer's over the same bytes.
	lv, err := note.NewVerifier(ledgerKey)
	if err != nil {
		t.Fatal(err)
	}
	sigFile, _ := os.ReadFile(rj + ".sig")
	sig := sigLine(t, sigFile)
	if lv.Verify(raw, sig) || len(sig) != ed25519.SignatureSize {
		t.Error("the report's signature verifies under the ledger key")
	}
	if code, _, stderr := ward(t, "compliance", "report", "--data", data, "--out", rj, "--test-commit", "0123456789abcdef"); code != 2 || !strings.Contains(stderr, "--test-results") {
		t.Errorf("--test-commit without --test-results: %d %s", code, stderr)
	}
	if code, _, stderr := ward(t, "compliance", "report", "--data", data); code != 2 || !strings.Contains(stderr, "--out") {
		t.Errorf("report without --out: %d %s", code, stderr)
	}
	if code, _, _ := ward(t, "compliance", "verify", rj, "--key", vkey); code != 2 {
		t.Errorf("verify without a signature file: %d", code)
	}
	srv.stopOK()
}

func sigLine(t *testing.T, file []byte) []byte {
	t.Helper()
	for _, l := range strings.Split(string(file), "\n") {
		if s, ok := strings.CutPrefix(l, "signature "); ok {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no signature line in %q", file)
	return nil
}
