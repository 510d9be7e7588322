package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeSIEMFile: ward serve --siem-file writes config.loaded at start
// and the security events of requests (a forged bearer token) as OCSF
// JSON lines, buffered under <data>/siem; the log keeps its security
// event lines; a stop delivers what is buffered.
func TestServeSIEMFile(t *testing.T) {
	data := t.TempDir()
	out := filepath.Join(t.TempDir(), "events.jsonl")
	s := startServe(t, "--dev", "--data", data, "--siem-file", out)
	c := dial(t, data)
	req, _ := http.NewRequest(http.MethodGet, c.creds.BaseURL+"/Patient", nil)
	req.Header.Set("Authorization", "Bearer forged")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged token: %d", resp.StatusCode)
	}
	s.stopOK()
	// ward user, beside the server (here: after it), queues its change
	// for the stream, which takes it in at its next start.
	var uout, uerr strings.Builder
	if err := runUserWith(t.Context(), []string{"create", "--data", data, "--username", "siem.person", "--role", "practitioner", "--password-stdin"},
		strings.NewReader("correct horse battery staple 42\n"), &uout, &uerr); err != nil {
		t.Fatalf("ward user create: %v: %s", err, uerr.String())
	}
	userID := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(uout.String(), "\n", 2)[0], "id:"))
	startServe(t, "--dev", "--data", data, "--siem-file", out).stopOK()
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	if info.Mode().Perm() != 0o600 {
		t.Errorf("--siem-file mode %v, want 0600", info.Mode().Perm())
	}
	kinds := map[string]map[string]any{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var o struct {
			Metadata struct {
				EventCode string         `json:"event_code"`
				Product   map[string]any `json:"product"`
			} `json:"metadata"`
			Unmapped map[string]any `json:"unmapped"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("not an OCSF JSON line: %s", sc.Bytes())
		}
		kinds[o.Metadata.EventCode] = o.Unmapped
	}
	if cfg := kinds["config.loaded"]; cfg == nil || cfg["setting.dev"] != "true" || cfg["setting.siem_file"] != "true" {
		t.Errorf("config.loaded: %v (all: %v)", cfg, kinds)
	}
	if acct := kinds["account.changed"]; acct == nil || acct["user"] != userID || acct["change"] != "created" {
		t.Errorf("account.changed of ward user: %v (all: %v)", acct, kinds)
	}
	if tok := kinds["auth.token.invalid"]; tok == nil || tok["status"] != "401" {
		t.Errorf("auth.token.invalid: %v (all: %v)", tok, kinds)
	}
	if !strings.Contains(s.stderr.String(), `"msg":"security event: bearer tokens refused"`) {
		t.Errorf("the log lacks the security event line:\n%s", s.stderr.String())
	}
	if segs, _ := filepath.Glob(filepath.Join(data, "siem", "*.seg")); len(segs) != 1 {
		t.Errorf("buffer segments after a clean stop: %v", segs)
	}
}

// TestServeSIEMFlagsRefused: a bad format or a CA without a receiver
// stops the start with a usage error.
func TestServeSIEMFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--siem-format", "xml", "--siem-file", "x"},
		{"--siem-ca", "ca.pem"},
		{"--siem-syslog", "no-port"},
	} {
		var stdout, stderr strings.Builder
		err := runServe(t.Context(), append([]string{"--dev", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}, args...), &stdout, &stderr)
		var ue usageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
