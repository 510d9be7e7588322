package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// server is a `ward serve` running in process in a goroutine.
type server struct {
	t      *testing.T
	addr   string
	cancel context.CancelFunc
	done   chan int
	code   int
	exited bool
	stdout *syncBuffer
	stderr *syncBuffer
}

// startServe runs `ward serve --addr <free port> args...` and waits until
// dev mode has printed its greeting, which it does once the listener is up
// and the bootstrap client exists. It stops the server when t ends.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, addr: freeAddr(t), cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	args = append([]string{"serve", "--addr", s.addr}, args...)
	go func() { s.done <- run(ctx, args, s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stdout.String(), "Ward is running in dev mode") {
		select {
		case code := <-s.done:
			s.exited, s.code = true, code
			t.Fatalf("ward serve exited with %d before it was ready; log:\n%s", code, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ward serve not ready after 20s; log:\n%s", s.stderr.String())
		}
	}
	return s
}

// stop cancels the server's context, as SIGINT does, and returns run's
// exit code.
func (s *server) stop() int {
	if s.exited {
		return s.code
	}
	s.cancel()
	select {
	case s.code = <-s.done:
		s.exited = true
	case <-time.After(20 * time.Second):
		s.t.Fatalf("ward serve did not stop within 20s of cancellation")
	}
	return s.code
}

// stopOK stops the server and fails the test unless it shut down cleanly.
func (s *server) stopOK() {
	s.t.Helper()
	if code := s.stop(); code != 0 {
		s.t.Fatalf("ward serve exited with %d after cancellation, want 0; log:\n%s", code, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), `"msg":"shutting down"`) {
		s.t.Errorf("no shutdown log line; log:\n%s", s.stderr.String())
	}
}

// fhirClient calls a server using only what dev-credentials.json and the CA
// file it names provide.
type fhirClient struct {
	t     *testing.T
	http  *http.Client
	creds devCredentials
	token string
}

func readCreds(t *testing.T, dataDir string) devCredentials {
	t.Helper()
	var c devCredentials
	data, err := os.ReadFile(filepath.Join(dataDir, "dev-credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("dev-credentials.json: %v", err)
	}
	for name, v := range map[string]string{"base_url": c.BaseURL, "token_url": c.TokenURL, "ca_file": c.CAFile, "client_id": c.ClientID, "client_secret": c.ClientSecret} {
		if v == "" {
			t.Errorf("dev-credentials.json: %s is empty", name)
		}
	}
	return c
}

// httpsClient trusts only the CA in caFile.
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("CA file named in the credentials: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// dial reads the credentials in dataDir and gets a token with them.
func dial(t *testing.T, dataDir string) *fhirClient {
	t.Helper()
	c := &fhirClient{t: t, creds: readCreds(t, dataDir)}
	c.http = httpsClient(t, c.creds.CAFile)
	status, tok := requestToken(t, c.http, c.creds.TokenURL, c.creds.ClientID, c.creds.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("token request with the dev credentials: status %d", status)
	}
	c.token = tok
	return c
}

// requestToken asks for a client credentials token with client_secret_basic
// and returns the status and, on success, the access token.
func requestToken(t *testing.T, hc *http.Client, tokenURL, id, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL, strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	if body.AccessToken == "" || !strings.EqualFold(body.TokenType, "bearer") {
		t.Fatalf("token response without a bearer token (type %q)", body.TokenType)
	}
	return resp.StatusCode, body.AccessToken
}

// do sends a FHIR request; body, when not nil, is sent as JSON. It returns
// the status and the decoded JSON response.
func (c *fhirClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.creds.BaseURL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.t.Fatalf("%s %s: status %d, body is not JSON: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, out
}

// create posts a resource and returns its server-assigned id.
func (c *fhirClient) create(resource map[string]any) string {
	c.t.Helper()
	status, body := c.do(http.MethodPost, "/"+resource["resourceType"].(string), resource)
	if status != http.StatusCreated {
		c.t.Fatalf("create %s: status %d: %s", resource["resourceType"], status, issues(body))
	}
	id, _ := body["id"].(string)
	if id == "" {
		c.t.Fatalf("create %s: response has no id", resource["resourceType"])
	}
	return id
}

// read gets type/id and fails unless it answers 200 with that resource.
func (c *fhirClient) read(typ, id string) map[string]any {
	c.t.Helper()
	status, body := c.do(http.MethodGet, "/"+typ+"/"+id, nil)
	if status != http.StatusOK {
		c.t.Fatalf("read %s/%s: status %d: %s", typ, id, status, issues(body))
	}
	if body["resourceType"] != typ || body["id"] != id {
		c.t.Fatalf("read %s/%s returned %v/%v", typ, id, body["resourceType"], body["id"])
	}
	return body
}

// searchIDs runs a search and returns the ids of the matches.
func (c *fhirClient) searchIDs(query string) []string {
	c.t.Helper()
	status, body := c.do(http.MethodGet, "/"+query, nil)
	if status != http.StatusOK {
		c.t.Fatalf("search %s: status %d: %s", query, status, issues(body))
	}
	if body["resourceType"] != "Bundle" || body["type"] != "searchset" {
		c.t.Fatalf("search %s: got %v of type %v, want a searchset Bundle", query, body["resourceType"], body["type"])
	}
	var ids []string
	entries, _ := body["entry"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		if s, _ := m["search"].(map[string]any); s != nil && s["mode"] != nil && s["mode"] != "match" {
			continue
		}
		r, _ := m["resource"].(map[string]any)
		id, _ := r["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// issues summarises an OperationOutcome for a failure message. Outcomes
// carry no resource content.
func issues(body map[string]any) string {
	if body["resourceType"] != "OperationOutcome" {
		return fmt.Sprintf("(a %v)", body["resourceType"])
	}
	b, _ := json.Marshal(body["issue"])
	return string(b)
}

// family returns a surname unique to this run, so searches match only what
// the test wrote.
func family(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "Testfamily" + hex.EncodeToString(b[:])
}

func patient(family, given string) map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{given}}},
		"birthDate":    "1970-01-01",
	}
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestServeDev is the first-run story of the README: serve --dev on an
// empty directory, call it with nothing but the credentials file and the
// CA, stop it, start it again and find everything as it was.
func TestServeDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	srv := startServe(t, "--dev", "--data", dir)

	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(dir, "tls", "ca.pem"), 0},
		{filepath.Join(dir, "keys.json"), 0o600},
		{filepath.Join(dir, "dev-credentials.json"), 0o600},
	} {
		mode := fileMode(t, f.path)
		if f.mode != 0 && mode != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, mode, f.mode)
		}
	}
	creds := readCreds(t, dir)
	if want := "https://" + srv.addr + "/fhir"; creds.BaseURL != want {
		t.Errorf("base_url %q, want %q", creds.BaseURL, want)
	}
	if want := "https://" + srv.addr + "/oauth2/token"; creds.TokenURL != want {
		t.Errorf("token_url %q, want %q", creds.TokenURL, want)
	}
	if abs, _ := filepath.Abs(filepath.Join(dir, "tls", "ca.pem")); creds.CAFile != abs {
		t.Errorf("ca_file %q, want %q", creds.CAFile, abs)
	}
	out := srv.stdout.String()
	for _, want := range []string{"curl -s --cacert " + creds.CAFile, "-d grant_type=client_credentials " + creds.TokenURL,
		"-u '" + creds.ClientID + ":", creds.BaseURL + "/Patient", `Authorization: Bearer $TOKEN`} {
		if !strings.Contains(out, want) {
			t.Errorf("the curl example on stdout lacks %q", want)
		}
	}

	c := dial(t, dir)
	fam := family(t)
	id := c.create(patient(fam, "Ada"))
	got := c.read("Patient", id)
	if names, _ := got["name"].([]any); len(names) != 1 || names[0].(map[string]any)["family"] != fam {
		t.Errorf("read back a Patient whose name is not the one written")
	}
	if ids := c.searchIDs("Patient?family=" + fam); len(ids) != 1 || ids[0] != id {
		t.Errorf("search by family found %v, want [%s]", ids, id)
	}
	if ids := c.searchIDs("Patient?family=" + fam[:len(fam)-2]); len(ids) != 0 {
		t.Errorf("search by a prefix of the family found %v, want nothing", ids)
	}
	// Without a token, or with a bad one, the API answers 401.
	c2 := *c
	c2.token = "not-a-token"
	if status, _ := c2.do(http.MethodGet, "/Patient/"+id, nil); status != http.StatusUnauthorized {
		t.Errorf("read with a bad token: status %d, want 401", status)
	}
	if status, _ := requestToken(t, c.http, creds.TokenURL, creds.ClientID, creds.ClientSecret+"x"); status == http.StatusOK {
		t.Errorf("a wrong client secret got a token")
	}

	// An operator adds a narrower client while the server runs.
	code, stdout, stderr := ward(t, "client", "create", "--data", dir, "--name", "reader", "--scope", "system/Patient.rs")
	if code != 0 {
		t.Fatalf("client create while serving: exit %d: %s", code, stderr)
	}
	readerID, readerSecret := parseCreated(t, stdout)

	srv.stopOK()
	keysBefore, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}

	// Restart on another port: same client, same keys, same data; the
	// credentials file follows the new address.
	srv2 := startServe(t, "--dev", "--data", dir)
	creds2 := readCreds(t, dir)
	if creds2.ClientID != creds.ClientID || creds2.ClientSecret != creds.ClientSecret {
		t.Errorf("restart replaced the bootstrap client (%s -> %s)", creds.ClientID, creds2.ClientID)
	}
	if want := "https://" + srv2.addr + "/fhir"; creds2.BaseURL != want {
		t.Errorf("after a restart on %s, base_url is %q, want %q", srv2.addr, creds2.BaseURL, want)
	}
	if keysAfter, _ := os.ReadFile(filepath.Join(dir, "keys.json")); string(keysAfter) != string(keysBefore) {
		t.Errorf("restart rewrote keys.json")
	}
	c = dial(t, dir)
	c.read("Patient", id)
	if ids := c.searchIDs("Patient?family=" + fam); len(ids) != 1 || ids[0] != id {
		t.Errorf("after restart, search by family found %v, want [%s]", ids, id)
	}

	// The reader client may read Patients but not write them.
	reader := *c
	status, tok := requestToken(t, c.http, creds2.TokenURL, readerID, readerSecret)
	if status != http.StatusOK {
		t.Fatalf("token for the CLI-created client: status %d", status)
	}
	reader.token = tok
	reader.read("Patient", id)
	if status, _ := reader.do(http.MethodPost, "/Patient", patient(fam, "Eve")); status != http.StatusForbidden {
		t.Errorf("create with a read-only scope: status %d, want 403", status)
	}
	if status, _ := reader.do(http.MethodGet, "/Observation?subject=Patient/"+id, nil); status != http.StatusForbidden {
		t.Errorf("search outside the client's scope: status %d, want 403", status)
	}

	// Revoked while the server runs: no new token.
	if code, _, stderr := ward(t, "client", "revoke", "--data", dir, "--id", readerID); code != 0 {
		t.Fatalf("client revoke while serving: exit %d: %s", code, stderr)
	}
	if status, _ := requestToken(t, c.http, creds2.TokenURL, readerID, readerSecret); status == http.StatusOK {
		t.Errorf("a revoked client still gets tokens")
	}
	// The README promises its tokens stop working within 5 seconds.
	revoked := time.Now()
	for {
		status, _ := reader.do(http.MethodGet, "/Patient/"+id, nil)
		if status == http.StatusUnauthorized {
			break
		}
		if status != http.StatusOK {
			t.Fatalf("read with a revoked client's token: status %d, want 200 or 401", status)
		}
		if time.Since(revoked) > 7*time.Second {
			t.Fatalf("a revoked client's token still reads after %v", time.Since(revoked).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("a revoked client's token stopped working after %v", time.Since(revoked).Round(100*time.Millisecond))
	srv2.stopOK()

	// Both starts, with their configuration, and the CLI's client changes
	// are in the ledger.
	counts := map[string]int{}
	for _, e := range ledgerOf(t, dir) {
		counts[e.Action]++
		if e.Action == "server-start" && (!strings.Contains(e.Detail, "dev=true") || !strings.Contains(e.Detail, "token-ttl=")) {
			t.Errorf("server-start entry detail %q", e.Detail)
		}
	}
	if counts["server-start"] != 2 || counts["client-create"] < 1 || counts["client-revoke"] != 1 {
		t.Errorf("ledger actions %v: want two server-start, the CLI's client-create and client-revoke", counts)
	}
}

// parseCreated reads the id and secret from `ward client create` output.
func parseCreated(t *testing.T, stdout string) (id, secret string) {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "client_id":
			id = strings.TrimSpace(v)
		case "client_secret":
			secret = strings.TrimSpace(v)
		}
	}
	if id == "" || secret == "" {
		t.Fatalf("client create printed no client_id and client_secret (%d bytes of output)", len(stdout))
	}
	return id, secret
}

// TestServeRateLimits: --rate-limits reaches the server; a client over its
// limit gets 429 with Retry-After and the RateLimit fields while
// /healthz stays unlimited, and the limits are in the start-up log.
func TestServeRateLimits(t *testing.T) {
	dir := t.TempDir()
	limits := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(limits, []byte(`{"principal": {"rate": 0.01, "burst": 3}, "roles": {"patient": {"rate": 1, "burst": 10}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--dev", "--data", dir, "--rate-limits", limits)
	c := dial(t, dir)
	codes := []int{}
	for range 4 {
		code, _ := c.do(http.MethodGet, "/Patient?_count=1", nil)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Fatalf("4 requests with a burst of 3: %v", codes)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.creds.BaseURL+"/Patient?_count=1", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("RateLimit-Policy") != `"principal";q=3;w=300` || !strings.HasPrefix(resp.Header.Get("RateLimit"), `"principal";r=0;t=`) {
		t.Errorf("over the limit: %d, Retry-After %q, RateLimit-Policy %q, RateLimit %q", resp.StatusCode,
			resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}
	h, err := c.http.Get("https://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	h.Body.Close()
	if h.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", h.StatusCode)
	}
	if !strings.Contains(s.stderr.String(), `"rate_limits":"principal=0.01/s burst 3 roles=1 clients=0 address=20/s burst 200`) {
		t.Errorf("the start-up log does not describe the limits:\n%s", s.stderr.String())
	}
	s.stopOK()
}

// A clean stop writes the counts of refused requests that proved no one
// (api.FailureConfig, catalogue E6): the first refusal of the open window
// has its own entry, the others a summary that counts them.
func TestServeStopWritesFailureCounts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	c.token = "not-a-token"
	for range 5 {
		if status, _ := c.do(http.MethodGet, "/Patient", nil); status != http.StatusUnauthorized {
			t.Fatalf("bad token: status %d, want 401", status)
		}
	}
	srv.stopOK()
	// The five may straddle a window's end (the server's clock is the
	// real one): then two windows share them.
	firsts, summaries, accounted := 0, 0, 0
	for _, e := range ledgerOf(t, dir) {
		if e.Action != "search" || e.Outcome != "denied" {
			continue
		}
		rest, ok := strings.CutPrefix(e.Detail, "aggregated count=")
		if !ok {
			firsts++
			accounted++
			continue
		}
		count, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(count)
		if err != nil {
			t.Fatalf("summary %q", e.Detail)
		}
		summaries++
		accounted += n
	}
	if accounted != 5 || firsts > 2 || summaries < 1 || summaries > firsts {
		t.Fatalf("%d first entries and %d summaries accounting for %d of 5 refusals", firsts, summaries, accounted)
	}
}
