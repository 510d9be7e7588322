package siem

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

// TestSyslogOutage: the SIEM refuses connections, then accepts them.
// Nothing is lost, the failures and retries are counted, and the backlog
// is visible during the outage and zero after it. The retry wait is the
// injected clock's, fired by the test: no sleeping.
func TestSyslogOutage(t *testing.T) {
	p := newTestPKI(t, t.TempDir())
	rcv := newReceiver(t, p, true)
	sink, err := NewSyslog(SyslogConfig{Addr: rcv.addr(), RootCAs: p.pool, Hostname: "ward-test", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	s, err := Open(Config{Dir: t.TempDir(), Sinks: []Sink{sink}, Batch: 16, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := emitN(s, 50, secevent.ClientThrottled)
	w := clk.wait(t)
	st := s.Stats().Sinks[0]
	if st.Backlog != 50 || st.Failures == 0 || st.Delivered != 0 || st.LastError == "" {
		t.Fatalf("during the outage: %+v", st)
	}
	// Still refusing: another failure, another wait.
	w <- t0
	w = clk.wait(t)
	if st := s.Stats().Sinks[0]; st.Failures < 2 || st.Retries != 1 || st.Backlog != 50 {
		t.Fatalf("after a retry during the outage: %+v", st)
	}
	rcv.setRefuse(false)
	w <- t0
	for i, id := range want {
		select {
		case msg := <-rcv.msgs:
			head := "<84>1 "
			if !strings.HasPrefix(msg, head) || !strings.Contains(msg, " ward-test ward ") || !strings.Contains(msg, " auth.client.throttled - {") {
				t.Fatalf("message %d: %q", i, msg)
			}
			var o struct {
				Metadata struct{ UID string } `json:"metadata"`
			}
			if err := json.Unmarshal([]byte(msg[strings.Index(msg, "{"):]), &o); err != nil || o.Metadata.UID != id {
				t.Fatalf("message %d is not event %d's OCSF JSON (%v): %s", i, i, err, msg)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("received %d of %d events", i, len(want))
		}
	}
	flush(t, s)
	if st := s.Stats().Sinks[0]; st.Backlog != 0 || st.Delivered != 50 || st.Retries != 2 || st.LastError != "" || st.Oldest != 0 {
		t.Fatalf("after the outage: %+v", st)
	}
}

// TestSyslogVerifiesCertificate: a receiver whose certificate does not
// chain to the configured CA gets nothing.
func TestSyslogVerifiesCertificate(t *testing.T) {
	p := newTestPKI(t, t.TempDir())
	other := newTestPKI(t, t.TempDir())
	rcv := newReceiver(t, p, false)
	sink, err := NewSyslog(SyslogConfig{Addr: rcv.addr(), RootCAs: other.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	err = sink.Send(t.Context(), []secevent.Event{secevent.New(secevent.LedgerFault, t0)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Send to an unverified receiver: %v", err)
	}
	// The right CA, the wrong name.
	sink, err = NewSyslog(SyslogConfig{Addr: rcv.addr(), RootCAs: p.pool, ServerName: "siem.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Send(t.Context(), []secevent.Event{secevent.New(secevent.LedgerFault, t0)}); err == nil {
		t.Fatal("Send to a receiver of another name succeeded")
	}
	select {
	case m := <-rcv.msgs:
		t.Fatalf("the receiver got %q", m)
	default:
	}
}

// TestSyslogReconnects: a receiver that closed the connection between
// two batches loses nothing: the sink notices and dials again.
func TestSyslogReconnects(t *testing.T) {
	p := newTestPKI(t, t.TempDir())
	rcv := newReceiver(t, p, false)
	sink, err := NewSyslog(SyslogConfig{Addr: rcv.addr(), RootCAs: p.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	send := func(k secevent.Kind) {
		t.Helper()
		if err := sink.Send(t.Context(), []secevent.Event{secevent.New(k, t0)}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-rcv.msgs:
			if !strings.Contains(m, string(k)) {
				t.Fatalf("got %q", m)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("nothing received")
		}
	}
	send(secevent.LedgerFault)
	// The receiver restarts: the connection is closed from its side.
	rcv.closeAll()
	send(secevent.KeysFault)
}

// TestFileSink: one OCSF JSON object per line, mode 0600, appended; a
// file moved away by rotation is replaced by a new one at the path.
func TestFileSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	sink, err := NewFile(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Dir: t.TempDir(), Sinks: []Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := emitN(s, 3, secevent.AccessDenied)
	flush(t, s)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	second := emitN(s, 2, secevent.AccountChanged)
	flush(t, s)
	for file, want := range map[string][]string{path + ".1": first, path: second} {
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", file, info.Mode().Perm())
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var o struct {
				Metadata struct{ UID string } `json:"metadata"`
			}
			if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
				t.Fatalf("%s: not a JSON line: %s", file, sc.Bytes())
			}
			got = append(got, o.Metadata.UID)
		}
		f.Close()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s holds %v, want %v", file, got, want)
		}
	}
}
