package main

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/esign"
)

// validateFiles are the files ward validate reads.
type validateFiles struct {
	secret, token        string // the service's secret, the person's token
	password, totpSecret string // the person's, for the sign steps
}

// signerArgs are the sign steps' flags.
func (f validateFiles) signerArgs() []string {
	return []string{"--signer-password-file", f.password, "--signer-totp-secret-file", f.totpSecret}
}

// validateSetup starts a dev server whose practitioners sign in with a
// second factor, and returns it with the files ward validate needs: the
// dev client's secret, a practitioner's token (signed in through the
// pages, enrolling TOTP on the way), that practitioner's password and
// authenticator secret; the practitioner holds the right to sign.
func validateSetup(t *testing.T) (srv *server, data string, files validateFiles, creds devCredentials) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	srv = startServe(t, "--dev", "--data", data, "--mfa-roles", "practitioner")
	creds = readCreds(t, data)
	dir := t.TempDir()
	files = validateFiles{secret: filepath.Join(dir, "secret"), token: filepath.Join(dir, "token"),
		password: filepath.Join(dir, "password"), totpSecret: filepath.Join(dir, "totp")}
	if err := os.WriteFile(files.secret, []byte(creds.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "kq7v-Zp2x-validation-42"
	var out, errOut syncBuffer
	if err := runUserWith(t.Context(), []string{"create", "--data", data, "--username", "val.doc", "--role", "practitioner", "--password-stdin"},
		strings.NewReader(password+"\n"), &out, &errOut); err != nil {
		t.Fatalf("user create: %v %s", err, errOut.String())
	}
	if code, stdout, stderr := ward(t, "user", "signing", "grant", "--data", data, "--id", field(out.String(), "id:"), "--name", "Vala Lidation"); code != 0 {
		t.Fatalf("signing grant: %d %s %s", code, stdout, stderr)
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
	tok, totpSecret, err := c.signInEnrol(t.Context(), drillApp{id: field(stdout, "client_id:"), redirect: redirect, scope: "openid fhirUser user/*.rs"}, "val.doc", password)
	if err != nil || totpSecret == "" {
		t.Fatalf("sign-in: %v (enrolled %q)", err, totpSecret)
	}
	for path, content := range map[string]string{files.token: tok, files.password: password + "\n", files.totpSecret: totpSecret + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return srv, data, files, creds
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
// proofs, the person's e-signature of the corrected version with password
// and TOTP code, its verification on the server and offline, the signed
// record's refusals, clean-up) and passes; the report is signed and
// verifies as a validation report, not as a compliance report; the test
// data is gone afterwards, except the signed patient, which is kept at
// its signed version with its signature valid.
func TestValidate(t *testing.T) {
	srv, data, files, creds := validateSetup(t)
	out := filepath.Join(t.TempDir(), "validation.json")
	args := append([]string{"validate", "--target", "https://" + srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", files.secret, "--user-token-file", files.token, "--out", out}, files.signerArgs()...)
	began := time.Now()
	code, stdout, stderr := ward(t, args...)
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("ward validate took %s", took.Round(time.Millisecond))
	rep := decodeValidation(t, out)
	for _, s := range rep.Steps {
		t.Logf("  %-18s %.3f s", s.Name, s.Seconds)
	}
	want := []string{"connect", "tls-floor", "service-token", "checkpoint-before", "create", "read", "correct", "export", "denied",
		"break-the-glass", "audit-verify", "sign", "sign-verify", "signed-record", "cleanup"}
	if len(rep.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(rep.Steps), len(want), rep.Steps)
	}
	var patient string
	for i, s := range rep.Steps {
		if s.Name != want[i] {
			t.Errorf("step %d is %s, want %s", i, s.Name, want[i])
		}
		if s.Result != "passed" {
			t.Errorf("%s: %s: %s (expected %s)", s.Name, s.Result, s.Actual, s.Expected)
		}
		if s.Expected == "" || s.Actual == "" {
			t.Errorf("%s records no expected or actual result", s.Name)
		}
		if s.Name == "create" {
			patient = strings.TrimSuffix(strings.TrimPrefix(s.Actual, "201, Patient/"), "/_history/1")
		}
	}
	steps := map[string]validateStep{}
	for _, s := range rep.Steps {
		steps[s.Name] = s
	}
	if a := steps["sign"].Actual; !strings.Contains(a, "Vala Lidation signed Patient/"+patient+"/_history/2 (Validation Signature)") {
		t.Errorf("sign: %s", a)
	}
	if a := steps["sign-verify"].Actual; !strings.Contains(a, "offline") || !strings.Contains(a, "proven included") {
		t.Errorf("sign-verify: %s", a)
	}
	if a := steps["cleanup"].Actual; !strings.Contains(a, "Patient/"+patient+" kept: it is electronically signed") || !strings.Contains(a, "Group/") {
		t.Errorf("cleanup: %s", a)
	}
	if !rep.Passed || rep.Run == "" || len(rep.Remains) != 4 || !strings.Contains(rep.Remains[3], "signed Patient/"+patient) {
		t.Errorf("report: passed %v run %q remains %q", rep.Passed, rep.Run, rep.Remains)
	}
	if !strings.Contains(stderr, "break-the-glass") || !strings.Contains(stdout, "ward compliance verify") {
		t.Errorf("no progress or summary:\n%s\n%s", stderr, stdout)
	}
	// The signed test patient is kept at its signed version, and its
	// signature record verifies offline with the key file's e-signature key.
	c := dial(t, data)
	if status, body := c.do(http.MethodGet, "/Patient/"+patient, nil); status != http.StatusOK || body["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("the signed test patient after the run: %d %v", status, body["meta"])
	}
	verifySignedOffline(t, data, files, srv, patient)

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

	// --json prints the same report on standard output, without progress;
	// without the signer's files the sign steps are skipped, saying why.
	code, stdout, stderr = ward(t, "validate", "--target", "https://"+srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", files.secret, "--user-token-file", files.token, "--out", out, "--json")
	var again validateReport
	if code != 0 || json.Unmarshal([]byte(stdout), &again) != nil || !again.Passed || stderr != "" {
		t.Errorf("--json: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, s := range again.Steps {
		switch s.Name {
		case "sign":
			if s.Result != "skipped" || !strings.Contains(s.Actual, "no signer given") {
				t.Errorf("sign without the signer's files: %+v", s)
			}
		case "sign-verify", "signed-record":
			if s.Result != "skipped" {
				t.Errorf("%s without a signature: %+v", s.Name, s)
			}
		}
	}
	srv.stopOK()
}

// verifySignedOffline fetches the patient's signature record as the
// signer and checks it offline with the public keys alone; a record with
// a changed byte of the signed content fails.
func verifySignedOffline(t *testing.T, data string, files validateFiles, srv *server, patient string) {
	t.Helper()
	creds := readCreds(t, data)
	roots, err := drillRoots(creds.CAFile, data)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := readLine(files.token)
	if err != nil {
		t.Fatal(err)
	}
	hc := newDrillHTTP("https://"+srv.addr, roots, netip.Addr{})
	defer hc.close()
	status, body, err := hc.call(t.Context(), http.MethodGet, "/fhir/Patient/"+patient+"/$signatures", tok, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("$signatures: %d %v %s", status, err, body)
	}
	rec, err := esign.ParseRecord(body)
	if err != nil {
		t.Fatal(err)
	}
	st := storage{data: data}
	kf, err := st.openKeys()
	if err != nil {
		t.Fatal(err)
	}
	es, err := kf.ESignSigner()
	if err != nil {
		t.Fatal(err)
	}
	ks := esign.Keys{}
	ks.Add(es.Public().(ed25519.PublicKey))
	db, err := st.openStore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ledgerSigner(t.Context(), &st, db)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	lk, err := note.NewVerifier(ls.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	f, err := esign.VerifyRecord(rec, ks, lk, nil, nil)
	if err != nil || len(f) != 1 || !f[0].OK || f[0].Version != 2 {
		t.Fatalf("offline: %+v %v", f, err)
	}
	for i := range rec.Versions {
		if rec.Versions[i].Version == 2 {
			rec.Versions[i].Resource = []byte(strings.Replace(string(rec.Versions[i].Resource), "1970-01-02", "1970-01-04", 1))
		}
	}
	if f, err := esign.VerifyRecord(rec, ks, lk, nil, nil); err == nil && (len(f) != 1 || f[0].OK) {
		t.Errorf("a changed signed content verified: %+v", f)
	}
}

// TestValidateFailingStep: a step that does not get its expected result
// fails the command (exit 1) and is named; the steps that need it are
// skipped; the report is still written and signed, and the test data
// still cleaned up. A wrong signer password fails the sign step, and
// the patient, unsigned, is deleted.
func TestValidateFailingStep(t *testing.T) {
	srv, data, files, creds := validateSetup(t)
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte("not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "validation.json")
	code, _, stderr := ward(t, append([]string{"validate", "--target", "https://" + srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", files.secret, "--user-token-file", bad, "--out", out}, files.signerArgs()...)...)
	if code != 1 || !strings.Contains(stderr, "validation failed: denied") {
		t.Fatalf("validate with a bad person token: exit %d\n%s", code, stderr)
	}
	rep := decodeValidation(t, out)
	results := map[string]string{}
	for _, s := range rep.Steps {
		results[s.Name] = s.Result
	}
	if rep.Passed || results["denied"] != "failed" || results["break-the-glass"] != "skipped" || results["sign"] != "skipped" ||
		results["cleanup"] != "passed" || results["correct"] != "passed" {
		t.Errorf("results %v, passed %v", results, rep.Passed)
	}
	if _, err := os.Stat(out + ".sig"); err != nil {
		t.Errorf("no signature of the failed run: %v", err)
	}

	wrong := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrong, []byte("not the password, but long enough\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = ward(t, "validate", "--target", "https://"+srv.addr, "--data", data, "--client-id", creds.ClientID,
		"--client-secret-file", files.secret, "--user-token-file", files.token, "--out", out,
		"--signer-password-file", wrong, "--signer-totp-secret-file", files.totpSecret)
	if code != 1 || !strings.Contains(stderr, "validation failed: sign") {
		t.Fatalf("validate with a wrong signer password: exit %d\n%s", code, stderr)
	}
	rep = decodeValidation(t, out)
	steps := map[string]validateStep{}
	for _, s := range rep.Steps {
		steps[s.Name] = s
	}
	if s := steps["sign"]; s.Result != "failed" || !strings.Contains(s.Actual, "status 401") {
		t.Errorf("sign with a wrong password: %+v", s)
	}
	if steps["sign-verify"].Result != "skipped" || steps["signed-record"].Result != "skipped" || steps["break-the-glass"].Result != "passed" {
		t.Errorf("steps after a failed signing: %+v", rep.Steps)
	}
	if s := steps["cleanup"]; s.Result != "passed" || strings.Contains(s.Actual, "kept") {
		t.Errorf("cleanup of an unsigned patient: %+v", s)
	}

	for _, args := range [][]string{
		{"validate"},
		{"validate", "--target", "https://" + srv.addr, "--data", data},
		{"validate", "--target", "http://" + srv.addr, "--data", data, "--client-id", "x", "--client-secret-file", files.secret, "--user-token-file", bad, "--out", out},
		{"validate", "--target", "https://" + srv.addr, "--data", data, "--client-id", "x", "--client-secret-file", files.secret, "--user-token-file", bad, "--out", out,
			"--signer-password-file", files.password},
	} {
		if code, _, _ := ward(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	srv.stopOK()
}
