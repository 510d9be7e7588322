package siem

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

// rsyslogd finds rsyslogd and its GnuTLS network stream driver; without
// them the test skips, or fails when WARD_REQUIRE_RSYSLOG=1 (CI).
func rsyslogd(t *testing.T) string {
	t.Helper()
	missing := func(what string) string {
		if os.Getenv("WARD_REQUIRE_RSYSLOG") == "1" {
			t.Fatalf("%s, and WARD_REQUIRE_RSYSLOG=1: install rsyslog and rsyslog-gnutls", what)
		}
		t.Skipf("SKIP: %s (install rsyslog and rsyslog-gnutls; WARD_REQUIRE_RSYSLOG=1 makes this a failure)", what)
		return ""
	}
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		return missing("rsyslogd not found")
	}
	drivers, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	more, _ := filepath.Glob("/usr/lib/rsyslog/lmnsd_gtls.so")
	if len(drivers)+len(more) == 0 {
		return missing("rsyslog's GnuTLS driver (lmnsd_gtls.so) not found")
	}
	return bin
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const rsyslogConf = `global(
  workDirectory="%[1]s/work"
  maxMessageSize="64k"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="%[2]s"
  DefaultNetstreamDriverCertFile="%[3]s"
  DefaultNetstreamDriverKeyFile="%[4]s"
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="%[5]d")
template(name="ward-raw" type="string" string="%%msgid%% %%msg%%\n")
action(type="omfile" file="%[1]s/out.log" template="ward-raw")
`

// TestRsyslogEndToEnd sends events through Ward's syslog sink, over TLS
// with the server certificate verified, to a real rsyslogd with its TLS
// receiver, and checks that the file it writes holds each event's OCSF
// JSON intact, in order (catalogue G4).
func TestRsyslogEndToEnd(t *testing.T) {
	bin := rsyslogd(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := newTestPKI(t, dir)
	port := freePort(t)
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, rsyslogConf, dir, p.caFile, p.certFile, p.keyFile, port), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()

	// rsyslogd is ready when its TLS listener completes a handshake with
	// a verified certificate.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12})
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("rsyslogd exited (%v): %s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd's TLS listener did not come up: %v: %s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling an external process's start, not timing a property
	}

	sink, err := NewSyslog(SyslogConfig{Addr: addr, RootCAs: p.pool, Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Dir: filepath.Join(dir, "buffer"), Sinks: []Sink{sink}, Batch: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kinds := []secevent.Kind{secevent.SignInFailed, secevent.BreakGlassGranted, secevent.LedgerFault, secevent.ConfigLoaded}
	var want []secevent.Event
	for i := range 200 {
		e := secevent.New(kinds[i%len(kinds)], time.Now())
		e.Actor, e.Source = fmt.Sprintf("u-%d", i), "192.0.2.7"
		e = e.With(secevent.AttrRequestID, fmt.Sprintf("r-%d", i))
		want = append(want, e)
		s.Emit(e)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("%v: %+v", err, s.Stats())
	}
	// rsyslogd writes asynchronously: wait for the file to hold every line.
	out := filepath.Join(dir, "out.log")
	var lines []string
	for {
		data, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) >= len(want) || time.Now().After(deadline.Add(30*time.Second)) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling an external process's output
	}
	if len(lines) != len(want) {
		t.Fatalf("rsyslogd wrote %d lines, want %d: %s", len(lines), len(want), logs.String())
	}
	for i, e := range want {
		msgid, msg, _ := strings.Cut(lines[i], " ")
		if msgid != string(e.Kind) {
			t.Errorf("line %d: MSGID %q, want %q", i, msgid, e.Kind)
		}
		if msg != string(OCSF(e, "e2e")) {
			t.Fatalf("line %d is not the event's OCSF JSON intact:\n got %s\nwant %s", i, msg, OCSF(e, "e2e"))
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(msg), &o); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if st := s.Stats().Sinks[0]; st.Delivered != uint64(len(want)) || st.Backlog != 0 {
		t.Errorf("stats %+v", st)
	}
}
