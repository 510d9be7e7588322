package main

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validateSetup starts a dev server whose practitioners sign in with a
// second factor, and returns it with the files ward validate needs: the
// dev client's secret and a practitioner's token (signed in through the
// pages, enrolling TOTP on the way).
func validateSetup(t *testing.T) (srv *server, data, secretFile, tokenFile string, creds devCredentials) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	srv = startServe(t, "--dev", "--data", data, "--mfa-roles", "practitioner")
	creds = readCreds(t, data)
	dir := t.TempDir()
	secretFile, tokenFile = filepath.Join(dir, "secret"), filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte(creds.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "kq7v-Zp2x-validation-42"
	var out, errOut syncBuffer
	if err := runUserWith(t.Context(), []string{"create", "--data", data, "--username", "val.doc", "--role", "practitioner", "--password-stdin"},
		strings.NewReader(password+"\n"), &out, &errOut); err != nil {
		t.Fatalf("user create: %v %s", err, errOut.String())
	}
	const redirect = "http://127.0.0.1/validate-callback"
	code, stdout, stderr := ward(t, "client", "create", "--data", data, "--name", "validation app", "--public", "--redirect-uri", redirect, "--scope", "openid fhirUser user/*.rs")
	if code != 0 {
		t.Fatalf("app create: %d %s", code, stderr)
	}
	roots, err := drillRoots(creds.CAFile, data)
	if err != nil {
		t.Fatal(err)
	}
	c := newDrillHTTP("https://"+srv.addr, roots, netip.Addr{})
	defer c.close()
	tok, err := c.signIn(t.Context(), drillApp{id: field(stdout, "client_id:"), redirect: redirect, scope: "openid fhirUser user/*.rs"}, "val.doc", password)
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, data, secretFile, tokenFile, creds
}

func decodeValidation(t *testing.T, path string) validateReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep validateReport
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("validation report: %v", err)
	}
	return rep
}

// TestValidate: ward validate against ward serve --dev runs every step
// (create, read, correct, export, denied access, break-the-glass, audit
// proofs, clean-up) and passes; the e-signature step says it is not
// available; the report is signed and verifies as a validation report,
// not as a compliance report; the test data is gone afterwards.
func TestValidate(t *testing.T) {
	srv, data, secretFile, tokenFile, creds := validateSetup(t)
	out := filepath.Join(t.TempDir(), "validation.json")
	began := time.Now()
	code, stdout, stderr := ward(t, "validate", "--target", "https://"+srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", secretFile, "--user-token-file", tokenFile, "--out", out)
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("ward validate took %s", took.Round(time.Millisecond))
	rep := decodeValidation(t, out)
	for _, s := range rep.Steps {
		t.Logf("  %-18s %.3f s", s.Name, s.Seconds)
	}
	want := []string{"connect", "tls-floor", "service-token", "checkpoint-before", "create", "read", "correct", "export", "denied", "break-the-glass", "audit-verify", "sign", "cleanup"}
	if len(rep.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(rep.Steps), len(want), rep.Steps)
	}
	var patient string
	for i, s := range rep.Steps {
		if s.Name != want[i] {
			t.Errorf("step %d is %s, want %s", i, s.Name, want[i])
		}
		switch {
		case s.Name == "sign":
			if s.Result != "skipped" || s.Actual != "skipped: not available in this build" {
				t.Errorf("sign: %+v", s)
			}
		case s.Result != "passed":
			t.Errorf("%s: %s: %s (expected %s)", s.Name, s.Result, s.Actual, s.Expected)
		}
		if s.Expected == "" || (s.Actual == "" && s.Name != "sign") {
			t.Errorf("%s records no expected or actual result", s.Name)
		}
		if s.Name == "create" {
			patient = strings.TrimSuffix(strings.TrimPrefix(s.Actual, "201, Patient/"), "/_history/1")
		}
	}
	if !rep.Passed || rep.Run == "" || len(rep.Remains) == 0 {
		t.Errorf("report: passed %v run %q", rep.Passed, rep.Run)
	}
	if !strings.Contains(stderr, "break-the-glass") || !strings.Contains(stdout, "ward compliance verify") {
		t.Errorf("no progress or summary:\n%s\n%s", stderr, stdout)
	}
	// The test patient is gone.
	c := dial(t, data)
	if status, _ := c.do(http.MethodGet, "/Patient/"+patient, nil); status != http.StatusGone {
		t.Errorf("the test patient after the run: %d, want 410", status)
	}
	_, vkey, _ := ward(t, "compliance", "key", "--data", data)
	vkey = strings.TrimSpace(vkey)
	code, stdout, _ = ward(t, "compliance", "verify", out, out+".sig", "--key", vkey)
	if code != 0 || !strings.Contains(stdout, "verified: validation-report") {
		t.Errorf("verify: %d %s", code, stdout)
	}
	sig, _ := os.ReadFile(out + ".sig")
	asCompliance := filepath.Join(t.TempDir(), "as-compliance.sig")
	if err := os.WriteFile(asCompliance, []byte(strings.Replace(string(sig), "kind validation-report", "kind compliance-report", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ward(t, "compliance", "verify", out, asCompliance, "--key", vkey); code != 1 {
		t.Errorf("a validation report's signature passed as a compliance report's: exit %d", code)
	}

	// --json prints the same report on standard output, without progress.
	code, stdout, stderr = ward(t, "validate", "--target", "https://"+srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", secretFile, "--user-token-file", tokenFile, "--out", out, "--json")
	var again validateReport
	if code != 0 || json.Unmarshal([]byte(stdout), &again) != nil || !again.Passed || stderr != "" {
		t.Errorf("--json: %d\n%s\n%s", code, stdout, stderr)
	}
	srv.stopOK()
}

// TestValidateFailingStep: a step that does not get its expected result
// fails the command (exit 1) and is named; the steps that need it are
// skipped; the report is still written and signed, and the test data
// still cleaned up.
func TestValidateFailingStep(t *testing.T) {
	srv, data, secretFile, _, creds := validateSetup(t)
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte("not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "validation.json")
	code, _, stderr := ward(t, "validate", "--target", "https://"+srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", secretFile, "--user-token-file", bad, "--out", out)
	if code != 1 || !strings.Contains(stderr, "validation failed: denied") {
		t.Fatalf("validate with a bad person token: exit %d\n%s", code, stderr)
	}
	rep := decodeValidation(t, out)
	results := map[string]string{}
	for _, s := range rep.Steps {
		results[s.Name] = s.Result
	}
	if rep.Passed || results["denied"] != "failed" || results["break-the-glass"] != "skipped" || results["cleanup"] != "passed" || results["correct"] != "passed" {
		t.Errorf("results %v, passed %v", results, rep.Passed)
	}
	if _, err := os.Stat(out + ".sig"); err != nil {
		t.Errorf("no signature of the failed run: %v", err)
	}
	for _, args := range [][]string{
		{"validate"},
		{"validate", "--target", "https://" + srv.addr, "--data", data},
		{"validate", "--target", "http://" + srv.addr, "--data", data, "--client-id", "x", "--client-secret-file", secretFile, "--user-token-file", bad, "--out", out},
	} {
		if code, _, _ := ward(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	srv.stopOK()
}
