package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/compliance"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/ledger"
)

const validateSummary = `Installation and operational qualification (21 CFR Part 11 §11.10(a)):
run a scripted set of operations against a running Ward, record each
step's expected and actual result, and write a signed report.

  ward validate --target https://host:port --client-id ID
                --client-secret-file FILE --user-token-file FILE
                --out REPORT [--ca FILE] [--data DIR|--db URL] [--json]
                [--signer-password-file FILE --signer-totp-secret-file FILE]

What it needs:
  --target              the running server's URL
  --ca                  the CA its certificate chains to (default
                        <data>/tls/ca.pem when it exists, else the system's)
  --client-id, --client-secret-file
                        a service client (client credentials) with the
                        scopes system/Patient.cruds system/Group.cud
                        system/Provenance.c system/AuditEvent.rs (the dev
                        bootstrap client has them)
  --user-token-file     a file holding the access token of a person in the
                        practitioner role (or one that reaches patients
                        through care relationships) who signed in with a
                        second factor in the last ten minutes: the denied
                        access and break-the-glass steps are that person's
  --data or --db        the server's data directory or database: the key
                        file signs the report (the compliance report's
                        key: ward compliance key) and gives the ledger's
                        public key, which checks the server's checkpoints,
                        and the e-signature key, which checks signatures
  --signer-password-file, --signer-totp-secret-file
                        the password and the authenticator secret (base32,
                        as the enrolment page showed it) of the person of
                        --user-token-file, who holds the right to sign
                        (ward user signing grant): the sign steps are
                        theirs. Without them the sign steps are skipped
                        and the report says so

Steps: connect (TLS 1.2+, FHIR R4 CapabilityStatement), tls-floor (TLS 1.1
refused), service-token, checkpoint-before, create, read, correct (update
with an X-Provenance reason; history keeps version 1), export (a Group
$export of the test patient only), denied (the person without a care
relationship gets 404), break-the-glass (the person's grant, then a read),
audit-verify (a signed checkpoint covering the run, a consistency proof
from the one before it, inclusion proofs of the create and update
entries), sign (the person signs the corrected version, meaning
"Validation Signature", with password and TOTP code; waits up to 30 s for
a time step not used before the run), sign-verify ($signatures shows the
signature valid, with name, time and meaning; it verifies offline under
the key file's e-signature key, its signing proven in a checkpoint),
signed-record (a correction without a reason and a deletion are refused:
409), cleanup.

Test data: one Patient and one Group, tagged urn:ward:validate|<run>,
deleted at the end (their history and the ledger keep them, as they keep
everything), except a signed Patient: a signed record is kept, with its
signature's Provenance; the break-the-glass grant stays in the review queue with the
reason "ward validate <run>", for the privacy officer to close. A failed
step fails the command (exit 1).`

// validateTagSystem tags everything ward validate creates.
const validateTagSystem = "urn:ward:validate"

// validateStep is one step of a validation run.
type validateStep struct {
	Name     string  `json:"name"`
	Expected string  `json:"expected"`
	Actual   string  `json:"actual"`
	Result   string  `json:"result"` // passed, failed, skipped
	Seconds  float64 `json:"seconds"`
}

// validateReport is the signed validation report.
type validateReport struct {
	Format   string           `json:"format"`
	Run      string           `json:"run"`
	Target   string           `json:"target"`
	Server   string           `json:"server_version,omitempty"`
	Ward     compliance.Build `json:"ward"`
	Started  time.Time        `json:"started"`
	Finished time.Time        `json:"finished"`
	Steps    []validateStep   `json:"steps"`
	Passed   bool             `json:"passed"`
	Remains  []string         `json:"remains"`
}

// errSkipped marks a step that did not run.
type errSkipped struct{ why string }

func (e errSkipped) Error() string { return "skipped: " + e.why }

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var st storage
	fs := newFlagSet("validate", validateSummary)
	st.register(fs)
	target := fs.String("target", "", "the running Ward's URL, https://host:port")
	caFile := fs.String("ca", "", "PEM CA certificates the target's certificate must chain to (default: <data>/tls/ca.pem when it exists, else the system's)")
	clientID := fs.String("client-id", "", "a service client's id")
	secretFile := fs.String("client-secret-file", "", "a file holding the service client's secret")
	tokenFile := fs.String("user-token-file", "", "a file holding a practitioner's access token (signed in with a second factor)")
	signerPasswordFile := fs.String("signer-password-file", "", "a file holding the password of the person of --user-token-file, who holds the right to sign")
	signerSecretFile := fs.String("signer-totp-secret-file", "", "a file holding that person's authenticator secret (base32)")
	out := fs.String("out", "", "the report file (JSON, mode 0600); its signature goes to FILE.sig")
	asJSON := fs.Bool("json", false, "print the report as JSON on standard output, without progress")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	base, err := drillTarget(*target)
	if err != nil {
		return err
	}
	switch {
	case *clientID == "" || *secretFile == "" || *tokenFile == "":
		return usagef("--client-id, --client-secret-file and --user-token-file are required (see ward validate --help)")
	case *out == "":
		return usagef("--out is required: the signed report")
	}
	secret, err := readLine(*secretFile)
	if err != nil {
		return fmt.Errorf("--client-secret-file: %w", err)
	}
	userToken, err := readLine(*tokenFile)
	if err != nil {
		return fmt.Errorf("--user-token-file: %w", err)
	}
	signerPassword, totpSecret, err := readSigner(*signerPasswordFile, *signerSecretFile)
	if err != nil {
		return err
	}
	roots, err := drillRoots(*caFile, st.data)
	if err != nil {
		return err
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	lk, err := openLedgerKeys(ctx, &st, db)
	_ = db.Close() // read only: nothing to lose
	if err != nil {
		return err
	}
	v := &validation{
		c: newDrillHTTP(base, roots, netip.Addr{}), base: base, run: uuid()[:8],
		clientID: *clientID, secret: secret, user: userToken, ledgerKeys: lk, origin: lk.origin,
		progress: stderr, quiet: *asJSON, signerPassword: signerPassword, totpSecret: totpSecret, esignKeys: esign.Keys{},
	}
	if es, err := kf.ESignSigner(); err == nil {
		if pub, ok := es.Public().(ed25519.PublicKey); ok {
			v.esignKeys.Add(pub)
		}
	} else {
		v.esignKeyErr = err
	}
	defer v.c.close()
	v.tlsConf = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11} // #nosec G402 -- a probe that Ward refuses TLS 1.0 and 1.1 (the validation step "tls-floor"); it carries no data
	rep := v.execute(ctx)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	vkey, err := writeSigned(*out, compliance.KindValidation, buf.Bytes(), kf.CertificateSigner())
	if err != nil {
		return err
	}
	if *asJSON {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return err
		}
	} else {
		failed := 0
		for _, s := range rep.Steps {
			if s.Result == "failed" {
				failed++
			}
		}
		fmt.Fprintf(stdout, "validation %s of %s: %d steps, %d failed, in %s\nwrote %s and %s.sig; verify with: ward compliance verify %s %s.sig --key %s\n",
			rep.Run, rep.Target, len(rep.Steps), failed, rep.Finished.Sub(rep.Started).Round(time.Millisecond), *out, *out, *out, *out, vkey)
	}
	if !rep.Passed {
		var names []string
		for _, s := range rep.Steps {
			if s.Result == "failed" {
				names = append(names, s.Name)
			}
		}
		return fmt.Errorf("validation failed: %s", strings.Join(names, ", "))
	}
	return nil
}

func readLine(path string) (string, error) {
	b, err := os.ReadFile(path) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", errors.New("want one line")
	}
	return s, nil
}

// validation is one run's state.
type validation struct {
	c         *drillHTTP
	tlsConf   *tls.Config // a client that offers only TLS 1.0 and 1.1
	base, run string
	clientID  string
	secret    string
	user      string
	// ledgerKeys is the ledger's key chain, from the key file, asked at
	// each check so that a rotation during the run is followed.
	ledgerKeys audit.Keys
	origin     string
	progress   io.Writer
	quiet      bool

	service         string // the service token
	patient, group  string
	before          ledger.Checkpoint
	createdAt       time.Time
	exportJob       string
	failed          bool
	serverVersion   string
	updateVersionID string

	// The sign steps (validate_sign.go).
	started            time.Time
	signerPassword     string
	totpSecret         string
	esignKeys          esign.Keys
	esignKeyErr        error
	signer, signerName string
	signature          string // "Provenance/<id>"
}

func (v *validation) logf(format string, args ...any) {
	if !v.quiet {
		fmt.Fprintf(v.progress, format+"\n", args...)
	}
}

// execute runs every step in order; a step whose prerequisite failed is
// skipped, and clean-up always runs.
func (v *validation) execute(ctx context.Context) validateReport {
	rep := validateReport{Format: "ward-validation-report/v1", Run: v.run, Target: v.base, Ward: compliance.ReadBuild(version), Started: time.Now().UTC()}
	v.started = rep.Started
	v.logf("ward validate %s against %s", v.run, v.base)
	run := func(ctx context.Context, name, expected string, needs []string, fn func(ctx context.Context) (string, error)) {
		s := validateStep{Name: name, Expected: expected}
		began := time.Now()
		var err error
		for _, n := range needs {
			if !stepPassed(rep.Steps, n) {
				err = errSkipped{"needs " + n}
			}
		}
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			s.Actual, err = fn(sctx)
			cancel()
		}
		var sk errSkipped
		switch {
		case errors.As(err, &sk):
			s.Result, s.Actual = "skipped", sk.Error()
		case err != nil:
			s.Result, s.Actual, v.failed = "failed", err.Error(), true
		default:
			s.Result = "passed"
		}
		s.Seconds = time.Since(began).Seconds()
		rep.Steps = append(rep.Steps, s)
		v.logf("  %-18s %-7s %s", name, s.Result, s.Actual)
	}
	step := func(name, expected string, needs []string, fn func(ctx context.Context) (string, error)) {
		run(ctx, name, expected, needs, fn)
	}
	step("connect", "HTTPS with TLS 1.2 or later; a FHIR 4.0.1 CapabilityStatement", nil, v.connect)
	step("tls-floor", "a TLS 1.0/1.1-only client is refused in the handshake", nil, v.tlsFloor)
	step("service-token", "client credentials grant: 200 with an access token", []string{"connect"}, v.serviceToken)
	step("checkpoint-before", "a checkpoint signed by the ledger's key", []string{"service-token"}, v.checkpointBefore)
	step("create", "POST Patient: 201 with a Location of version 1", []string{"service-token"}, v.create)
	step("read", "GET Patient: 200, the values written, version 1", []string{"create"}, v.read)
	step("correct", "PUT with X-Provenance: 200 version 2; history keeps version 1; the Provenance names the reason", []string{"read"}, v.correct)
	step("export", "Group/$export of the test patient: 202, then a manifest whose Patient file holds exactly that patient", []string{"create"}, v.export)
	step("denied", "the person without a care relationship reads the patient: 404 (or 403)", []string{"create"}, v.denied)
	step("break-the-glass", "POST /emergency: 201 grant; then the person's read: 200", []string{"denied"}, v.breakGlass)
	step("audit-verify", "a later signed checkpoint, consistent with the first; the create and update entries proven included", []string{"checkpoint-before", "correct"}, v.auditVerify)
	step("sign", "the person signs the corrected version (Validation Signature): challenge 200 with a nonce, then nonce, password and TOTP code 201 with a Provenance showing name, time and meaning", []string{"break-the-glass", "correct"}, v.sign)
	step("sign-verify", "$signatures: the one signature, on version 2, valid, with signer, name, time and meaning; offline under the e-signature key, its signing proven in a signed checkpoint", []string{"sign"}, v.signVerify)
	step("signed-record", "the signed patient: a correction without a reason 409, a deletion 409; it stays at version 2", []string{"sign"}, v.signedRecord)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	run(cctx, "cleanup", "the test Group and Patient deleted (410 Gone after), a signed Patient kept; the export's files deleted", nil, v.cleanup)
	cancel()
	rep.Finished = time.Now().UTC()
	rep.Server = v.serverVersion
	rep.Passed = !v.failed
	rep.Remains = []string{
		"the ledger entries of every request the run made (the ledger keeps every entry)",
		"the deleted Patient and Group, tagged " + validateTagSystem + "|" + v.run + ", and the correction's Provenance, in their history",
		"the break-the-glass grant, in the review queue with the reason \"ward validate " + v.run + "\"",
	}
	if v.signature != "" {
		rep.Remains[1] = "the deleted Group, tagged " + validateTagSystem + "|" + v.run + ", and the correction's Provenance, in their history"
		rep.Remains = append(rep.Remains, "the signed Patient/"+v.patient+", tagged "+validateTagSystem+"|"+v.run+", and its signature's "+v.signature+": a signed record is kept")
	}
	return rep
}

func stepPassed(steps []validateStep, name string) bool {
	for _, s := range steps {
		if s.Name == name {
			return s.Result == "passed"
		}
	}
	return false
}

// do sends one request with optional headers (name, value pairs) and
// returns the response (body read and closed) and body.
func (v *validation) do(ctx context.Context, method, path, bearer string, body any, hdr ...string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = v.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := v.c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDrillBody))
	return resp, b, err
}

// want checks a status and says what came instead.
func want(resp *http.Response, b []byte, statuses ...int) error {
	for _, s := range statuses {
		if resp.StatusCode == s {
			return nil
		}
	}
	return fmt.Errorf("status %d (%s)", resp.StatusCode, outcomeOf(b))
}

func (v *validation) connect(ctx context.Context) (string, error) {
	resp, b, err := v.do(ctx, http.MethodGet, "/fhir/metadata", "", nil)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return "", err
	}
	var cs struct {
		FHIRVersion string `json:"fhirVersion"`
		Software    struct {
			Version string `json:"version"`
		} `json:"software"`
	}
	if err := json.Unmarshal(b, &cs); err != nil || cs.FHIRVersion != "4.0.1" {
		return "", fmt.Errorf("no FHIR 4.0.1 CapabilityStatement (fhirVersion %q)", cs.FHIRVersion)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		return "", errors.New("the connection is not TLS 1.2 or later")
	}
	v.serverVersion = cs.Software.Version
	return fmt.Sprintf("%s, FHIR %s, Ward %s", tls.VersionName(resp.TLS.Version), cs.FHIRVersion, cs.Software.Version), nil
}

func (v *validation) tlsFloor(ctx context.Context) (string, error) {
	u, _ := url.Parse(v.base)
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: v.tlsConf.Clone()}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err == nil {
		ver := conn.(*tls.Conn).ConnectionState().Version
		_ = conn.Close() // the probe connection is dropped either way
		return "", fmt.Errorf("a %s handshake succeeded", tls.VersionName(ver))
	}
	return "refused: " + err.Error(), nil
}

func (v *validation) serviceToken(ctx context.Context) (string, error) {
	tok, err := v.c.serviceToken(ctx, v.clientID, v.secret)
	if err != nil {
		return "", err
	}
	v.service = tok
	return "200, a token for client " + v.clientID, nil
}

// checkpoint fetches the latest checkpoint and checks its signature.
func (v *validation) checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	resp, b, err := v.do(ctx, http.MethodGet, "/ledger/checkpoint", v.service, nil)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return ledger.Checkpoint{}, err
	}
	chain, _, err := v.ledgerKeys.LedgerKeys()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return chain.OpenCheckpoint(b)
}

func (v *validation) checkpointBefore(ctx context.Context) (string, error) {
	cp, err := v.checkpoint(ctx)
	if err != nil {
		return "", err
	}
	v.before = cp
	return fmt.Sprintf("size %d, signed by %s", cp.Size, v.origin), nil
}

func (v *validation) testPatient() map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"meta":         map[string]any{"tag": []any{map[string]any{"system": validateTagSystem, "code": v.run}}},
		"name":         []any{map[string]any{"family": "Validation-" + v.run, "given": []any{"Test"}}},
		"birthDate":    "1970-01-01",
	}
}

func (v *validation) create(ctx context.Context) (string, error) {
	v.createdAt = time.Now()
	resp, b, err := v.do(ctx, http.MethodPost, "/fhir/Patient", v.service, v.testPatient())
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusCreated); err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	typ, id, ver, err := splitLocation(loc)
	if err != nil || typ != "Patient" || ver != 1 {
		return "", fmt.Errorf("201 with Location %q, want Patient/<id>/_history/1", loc)
	}
	v.patient = id
	return "201, Patient/" + id + "/_history/1", nil
}

func (v *validation) readPatient(ctx context.Context, bearer string) (*http.Response, map[string]any, error) {
	resp, b, err := v.do(ctx, http.MethodGet, "/fhir/Patient/"+v.patient, bearer, nil)
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, err
		}
	} else {
		m = map[string]any{"outcome": outcomeOf(b)}
	}
	return resp, m, nil
}

func familyOf(p map[string]any) string {
	names, _ := p["name"].([]any)
	if len(names) == 0 {
		return ""
	}
	n, _ := names[0].(map[string]any)
	f, _ := n["family"].(string)
	return f
}

func (v *validation) read(ctx context.Context) (string, error) {
	resp, p, err := v.readPatient(ctx, v.service)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d (%v)", resp.StatusCode, p["outcome"])
	}
	meta, _ := p["meta"].(map[string]any)
	if familyOf(p) != "Validation-"+v.run || p["birthDate"] != "1970-01-01" || meta["versionId"] != "1" {
		return "", fmt.Errorf("200 with other values: family %q, birthDate %v, version %v", familyOf(p), p["birthDate"], meta["versionId"])
	}
	return "200, the values written, version 1", nil
}

func (v *validation) correct(ctx context.Context) (string, error) {
	p := v.testPatient()
	p["id"], p["birthDate"] = v.patient, "1970-01-02"
	prov, _ := json.Marshal(map[string]any{
		"resourceType": "Provenance",
		"recorded":     time.Now().UTC().Format(time.RFC3339),
		"reason": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "PATRQT"}}}},
		"agent": []any{map[string]any{"who": map[string]any{"display": "ward validate " + v.run}}},
	})
	resp, b, err := v.do(ctx, http.MethodPut, "/fhir/Patient/"+v.patient, v.service, p, "X-Provenance", string(prov))
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return "", err
	}
	if resp.Header.Get("ETag") != `W/"2"` {
		return "", fmt.Errorf("200 with ETag %q, want version 2", resp.Header.Get("ETag"))
	}
	resp, b, err = v.do(ctx, http.MethodGet, "/fhir/Patient/"+v.patient+"/_history/1", v.service, nil)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return "", fmt.Errorf("version 1 after the correction: %w", err)
	}
	var old map[string]any
	if err := json.Unmarshal(b, &old); err != nil || old["birthDate"] != "1970-01-01" {
		return "", fmt.Errorf("version 1 no longer holds the earlier value (%v)", old["birthDate"])
	}
	resp, b, err = v.do(ctx, http.MethodGet, "/fhir/Provenance?target=Patient/"+v.patient, v.service, nil)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return "", fmt.Errorf("the correction's Provenance: %w", err)
	}
	var bundle struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil || bundle.Total != 1 {
		return "", fmt.Errorf("%d Provenances name the patient, want 1", bundle.Total)
	}
	v.updateVersionID = "2"
	return "200 version 2; version 1 keeps birthDate 1970-01-01; one Provenance with reason PATRQT", nil
}

func (v *validation) export(ctx context.Context) (string, error) {
	group := map[string]any{
		"resourceType": "Group", "type": "person", "actual": true,
		"meta":   map[string]any{"tag": []any{map[string]any{"system": validateTagSystem, "code": v.run}}},
		"member": []any{map[string]any{"entity": map[string]any{"reference": "Patient/" + v.patient}}},
	}
	resp, b, err := v.do(ctx, http.MethodPost, "/fhir/Group", v.service, group)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusCreated); err != nil {
		return "", fmt.Errorf("creating the test Group: %w", err)
	}
	_, gid, _, err := splitLocation(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	v.group = gid
	resp, b, err = v.do(ctx, http.MethodGet, "/fhir/Group/"+gid+"/$export?_type=Patient", v.service, nil, "Prefer", "respond-async")
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusAccepted); err != nil {
		return "", fmt.Errorf("kick-off: %w", err)
	}
	status := resp.Header.Get("Content-Location")
	if i := strings.Index(status, "/fhir/$export-status/"); i >= 0 {
		v.exportJob = status[i:]
	} else {
		return "", fmt.Errorf("kick-off without a status URL (%q)", status)
	}
	var manifest struct {
		Output []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"output"`
	}
	for {
		resp, b, err = v.do(ctx, http.MethodGet, v.exportJob, v.service, nil)
		if err != nil {
			return "", err
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &manifest); err != nil {
				return "", fmt.Errorf("manifest: %w", err)
			}
			break
		}
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("status of the export: %d (%s)", resp.StatusCode, outcomeOf(b))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the export did not complete: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	var ids []string
	for _, o := range manifest.Output {
		resp, b, err := v.do(ctx, http.MethodGet, o.URL, v.service, nil, "Accept", "application/fhir+ndjson")
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusOK); err != nil {
			return "", fmt.Errorf("export file: %w", err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r struct{ ResourceType, ID string }
			if err := json.Unmarshal(line, &r); err != nil {
				return "", fmt.Errorf("export file: %w", err)
			}
			ids = append(ids, r.ResourceType+"/"+r.ID)
		}
	}
	if len(ids) != 1 || ids[0] != "Patient/"+v.patient {
		return "", fmt.Errorf("the export holds %v, want only Patient/%s", ids, v.patient)
	}
	return fmt.Sprintf("202, then a manifest of %d file(s) holding exactly Patient/%s", len(manifest.Output), v.patient), nil
}

func (v *validation) denied(ctx context.Context) (string, error) {
	resp, p, err := v.readPatient(ctx, v.user)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden {
		return "", fmt.Errorf("status %d, want 404 or 403 (%v)", resp.StatusCode, p["outcome"])
	}
	return strconv.Itoa(resp.StatusCode) + " " + fmt.Sprint(p["outcome"]), nil
}

func (v *validation) breakGlass(ctx context.Context) (string, error) {
	resp, b, err := v.do(ctx, http.MethodPost, "/emergency", v.user,
		map[string]any{"patient": v.patient, "reason": "ward validate " + v.run, "purposeOfUse": "BTG"}, "Content-Type", "application/json", "Accept", "application/json")
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusCreated); err != nil {
		return "", fmt.Errorf("the grant: %w", err)
	}
	var g struct {
		ID      string    `json:"id"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(b, &g); err != nil || g.ID == "" {
		return "", fmt.Errorf("the grant: %s", b)
	}
	resp, p, err := v.readPatient(ctx, v.user)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || familyOf(p) != "Validation-"+v.run {
		return "", fmt.Errorf("the read under the grant: status %d (%v)", resp.StatusCode, p["outcome"])
	}
	return fmt.Sprintf("201 grant %s until %s; the read: 200", g.ID, g.Expires.UTC().Format(time.RFC3339)), nil
}

func (v *validation) auditVerify(ctx context.Context) (string, error) {
	// The server signs a checkpoint every second: wait for one that
	// covers the run's writes.
	var after ledger.Checkpoint
	var entries []json.RawMessage
	for {
		cp, err := v.checkpoint(ctx)
		if err != nil {
			return "", err
		}
		if cp.Size > v.before.Size {
			es, err := v.entries(ctx, v.before.Size, cp.Size)
			if err != nil {
				return "", err
			}
			if createAt, updateAt := findWrites(es, v.patient); createAt >= 0 && updateAt >= 0 {
				after, entries = cp, es
				break
			}
		}
		select {
		case <-ctx.Done():
			return "", errors.New("no signed checkpoint covers the run's writes")
		case <-time.After(250 * time.Millisecond):
		}
	}
	// An empty tree (a server that had signed no entry when the run
	// began) is a prefix of every tree: there is no consistency proof to
	// ask for, and the server refuses a proof from size 0.
	if v.before.Size > 0 {
		if err := v.consistent(ctx, after); err != nil {
			return "", err
		}
	}
	createAt, updateAt := findWrites(entries, v.patient)
	for _, i := range []int{createAt, updateAt} {
		index := v.before.Size + int64(i)
		resp, b, err := v.do(ctx, http.MethodGet, fmt.Sprintf("/ledger/proof/inclusion?index=%d&size=%d", index, after.Size), v.service, nil)
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusOK); err != nil {
			return "", err
		}
		var inc struct {
			Proof []string `json:"proof"`
		}
		if err := json.Unmarshal(b, &inc); err != nil {
			return "", err
		}
		rp, err := decodeHashes(inc.Proof)
		if err != nil {
			return "", err
		}
		if err := ledger.VerifyInclusion(after, index, ledger.LeafHash(entries[i]), tlog.RecordProof(rp)); err != nil {
			return "", fmt.Errorf("inclusion of entry %d: %w", index, err)
		}
	}
	return fmt.Sprintf("checkpoint %d -> %d consistent; create (entry %d) and update (entry %d) proven included",
		v.before.Size, after.Size, v.before.Size+int64(createAt), v.before.Size+int64(updateAt)), nil
}

// consistent checks the server's consistency proof from the run's first
// checkpoint to after.
func (v *validation) consistent(ctx context.Context, after ledger.Checkpoint) error {
	resp, b, err := v.do(ctx, http.MethodGet, fmt.Sprintf("/ledger/proof/consistency?old=%d&size=%d", v.before.Size, after.Size), v.service, nil)
	if err != nil {
		return err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return err
	}
	var cons struct {
		Proof []string `json:"proof"`
	}
	if err := json.Unmarshal(b, &cons); err != nil {
		return err
	}
	tp, err := decodeHashes(cons.Proof)
	if err != nil {
		return err
	}
	if err := ledger.VerifyConsistency(v.before, after, tlog.TreeProof(tp)); err != nil {
		return fmt.Errorf("consistency proof %d -> %d: %w", v.before.Size, after.Size, err)
	}
	return nil
}

// entries reads ledger entries [start, end) as the server encoded them.
func (v *validation) entries(ctx context.Context, start, end int64) ([]json.RawMessage, error) {
	resp, b, err := v.do(ctx, http.MethodGet, fmt.Sprintf("/ledger/entries?start=%d&end=%d", start, end), v.service, nil)
	if err != nil {
		return nil, err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return nil, err
	}
	var out struct {
		Entries []struct {
			Index int64           `json:"index"`
			Entry json.RawMessage `json:"entry"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	es := make([]json.RawMessage, len(out.Entries))
	for i, e := range out.Entries {
		if e.Index != start+int64(i) {
			return nil, fmt.Errorf("ledger entries out of order at %d", e.Index)
		}
		es[i] = e.Entry
	}
	if int64(len(es)) != end-start {
		return nil, fmt.Errorf("%d ledger entries, asked for %d", len(es), end-start)
	}
	return es, nil
}

// findWrites returns the positions of the patient's successful create and
// update entries, or -1.
func findWrites(es []json.RawMessage, patient string) (create, update int) {
	create, update = -1, -1
	for i, raw := range es {
		e, err := ledger.DecodeEntry(raw)
		if err != nil || e.ResourceType != "Patient" || e.ResourceID != patient || e.Outcome != "success" {
			continue
		}
		switch e.Action {
		case "create":
			create = i
		case "update":
			update = i
		}
	}
	return create, update
}

func decodeHashes(in []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != len(tlog.Hash{}) {
			return nil, errors.New("a malformed proof hash")
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func (v *validation) cleanup(ctx context.Context) (string, error) {
	var did []string
	if v.service == "" {
		return "", errSkipped{"nothing was created"}
	}
	if v.exportJob != "" {
		resp, b, err := v.do(ctx, http.MethodDelete, v.exportJob, v.service, nil)
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusAccepted, http.StatusNotFound); err != nil {
			return "", fmt.Errorf("deleting the export: %w", err)
		}
		did = append(did, "export files deleted")
	}
	for _, ref := range []string{"Group/" + v.group, "Patient/" + v.patient} {
		if strings.HasSuffix(ref, "/") {
			continue
		}
		if ref == "Patient/"+v.patient && v.signature != "" {
			did = append(did, ref+" kept: it is electronically signed ("+v.signature+")")
			continue
		}
		resp, b, err := v.do(ctx, http.MethodDelete, "/fhir/"+ref, v.service, nil)
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusOK, http.StatusNoContent); err != nil {
			return "", fmt.Errorf("deleting %s: %w", ref, err)
		}
		resp, b, err = v.do(ctx, http.MethodGet, "/fhir/"+ref, v.service, nil)
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusGone); err != nil {
			return "", fmt.Errorf("%s after its deletion: %w", ref, err)
		}
		did = append(did, ref+" deleted (410)")
	}
	if len(did) == 0 {
		return "nothing to clean up", nil
	}
	return strings.Join(did, "; "), nil
}

// splitLocation reads a Location header: <base>/fhir/<type>/<id>/_history/<version>.
func splitLocation(loc string) (typ, id string, version int64, err error) {
	i := strings.Index(loc, "/fhir/")
	if i < 0 {
		return "", "", 0, fmt.Errorf("location %q", loc)
	}
	parts := strings.Split(loc[i+len("/fhir/"):], "/")
	if len(parts) != 4 || parts[2] != "_history" {
		return "", "", 0, fmt.Errorf("location %q", loc)
	}
	version, err = strconv.ParseInt(parts[3], 10, 64)
	return parts[0], parts[1], version, err
}
