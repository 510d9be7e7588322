package siem

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123_000_000, time.UTC)

// goldenEvents are one event of each OCSF class Ward maps to, with fixed
// ids so that the output is stable.
func goldenEvents() []secevent.Event {
	ev := func(k secevent.Kind, id string, edit func(*secevent.Event)) secevent.Event {
		e := secevent.New(k, t0)
		e.ID = id
		if edit != nil {
			edit(&e)
		}
		return e
	}
	return []secevent.Event{
		ev(secevent.SignInFailed, "00000000000000000000000000000001", func(e *secevent.Event) {
			e.Actor, e.Client, e.Source, e.Outcome = "u-7f3a", "ward-app", "192.0.2.10:51234", secevent.Failure
			e.Attrs = map[string]string{secevent.AttrReason: "wrong-password", secevent.AttrRequestID: "r-1"}
		}),
		ev(secevent.BreakGlassGranted, "00000000000000000000000000000002", func(e *secevent.Event) {
			e.Actor, e.Source, e.Outcome = "u-doc", "2001:db8::1", secevent.Success
			e.Attrs = map[string]string{secevent.AttrGrant: "g-1", secevent.AttrPatient: "p-42", secevent.AttrExpires: "2025-03-01T13:00:00Z"}
		}),
		ev(secevent.AccessDenied, "00000000000000000000000000000003", func(e *secevent.Event) {
			e.Actor, e.Client, e.Outcome = "svc-etl", "svc-etl", secevent.Failure
			e.Attrs = map[string]string{secevent.AttrStatus: "403", secevent.AttrAction: "read", secevent.AttrResource: "Observation"}
		}),
		ev(secevent.AccountChanged, "00000000000000000000000000000004", func(e *secevent.Event) {
			e.Actor, e.Outcome = "u-admin", secevent.Success
			e.Attrs = map[string]string{secevent.AttrUser: "u-new", secevent.AttrChange: "created", secevent.AttrRole: "clinician"}
		}),
		ev(secevent.LedgerFault, "00000000000000000000000000000005", func(e *secevent.Event) {
			e.Outcome = secevent.Failure
			e.Attrs = map[string]string{secevent.AttrCheck: "start"}
		}),
		ev(secevent.ConfigLoaded, "00000000000000000000000000000006", func(e *secevent.Event) {
			e.Actor, e.Source = "ward", "127.0.0.1:8443"
			e.Attrs = map[string]string{secevent.AttrVersion: "1.2.3", "setting.db": "sqlite", "setting.siem_format": "ocsf"}
		}),
		ev(secevent.IncidentChanged, "00000000000000000000000000000007", nil),
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestOCSFGolden(t *testing.T) {
	var out bytes.Buffer
	for _, e := range goldenEvents() {
		b := OCSF(e, "1.2.3")
		out.Write(b)
		out.WriteByte('\n')
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, b)
		}
		md := m["metadata"].(map[string]any)
		product := md["product"].(map[string]any)
		class, _ := m["class_uid"].(float64)
		activity, _ := m["activity_id"].(float64)
		if md["uid"] != e.ID || product["name"] != "Ward" || product["vendor_name"] != "Ward" ||
			m["type_uid"] != class*100+activity || m["severity_id"] != float64(e.Severity) ||
			m["time"] != float64(t0.UnixMilli()) || m["message"] != e.Message {
			t.Errorf("%s: %s", e.Kind, b)
		}
	}
	checkGolden(t, "ocsf.golden", out.Bytes())
}

func TestCEFGolden(t *testing.T) {
	var out bytes.Buffer
	for _, e := range goldenEvents() {
		b := CEF(e, "1.2.3")
		if !bytes.HasPrefix(b, []byte("CEF:0|Ward|Ward|1.2.3|"+string(e.Kind)+"|"+e.Message+"|")) || bytes.ContainsAny(b, "\r\n") {
			t.Errorf("%s: %s", e.Kind, b)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	checkGolden(t, "cef.golden", out.Bytes())
}

func TestCEFEscaping(t *testing.T) {
	for _, tt := range []struct{ header, value, in string }{
		{`a\|b`, `a|b`, `a|b`}, // a pipe needs no escape in the extension
		{`a\\b`, `a\\b`, `a\b`},
		{`a=b`, `a\=b`, `a=b`},
		{`a b`, `a\nb`, "a\nb"},
		{`a b`, `a\rb`, "a\rb"},
		{`a b`, `a\nb`, "a\r\nb"},
	} {
		if got := cefHeader(tt.in); got != tt.header {
			t.Errorf("header %q = %q, want %q", tt.in, got, tt.header)
		}
		if got := cefValue(tt.in); got != tt.value {
			t.Errorf("value %q = %q, want %q", tt.in, got, tt.value)
		}
	}
	// Through CEF: a version with | and \ in the header, = in a value.
	e := secevent.New(secevent.ConfigLoaded, t0).With("setting.cors", "a=b,c")
	got := string(CEF(e, `1|2\3`))
	if !strings.HasPrefix(got, `CEF:0|Ward|Ward|1\|2\\3|config.loaded|`) || !strings.Contains(got, ` ward_setting_cors=a\=b,c`) {
		t.Errorf("escaping: %s", got)
	}
}

// TestNoPHIInFormats: a name put into an event by mistake never reaches
// a SIEM in either format: the attribute is removed and named.
func TestNoPHIInFormats(t *testing.T) {
	e := secevent.New(secevent.AccountChanged, t0)
	e.Actor = "Jane Example"
	e.Attrs = map[string]string{secevent.AttrUser: "Jane Example", "given": "Jane", secevent.AttrChange: "created"}
	for name, out := range map[string][]byte{
		"ocsf": OCSF(e, "v"), "cef": CEF(e, "v"),
		"syslog": Message(e, FormatOCSF, "h", "1", "v"),
	} {
		if bytes.Contains(out, []byte("Jane")) || bytes.Contains(out, []byte("Example")) {
			t.Errorf("%s: a name reached the output: %s", name, out)
		}
		if !bytes.Contains(out, []byte("actor,key,user")) || !bytes.Contains(out, []byte("created")) {
			t.Errorf("%s: the rejected attributes are not named, or the valid one is gone: %s", name, out)
		}
	}
}

func TestSyslogMessage(t *testing.T) {
	e := goldenEvents()[0]
	for _, f := range []Format{FormatOCSF, FormatCEF} {
		got := string(Message(e, f, "ward host", "42", "1.2.3"))
		// authpriv (10) * 8 + notice (5): a Low event.
		head := "<85>1 2025-03-01T12:00:00.123000Z wardhost ward 42 auth.signin.failed - "
		if !strings.HasPrefix(got, head) {
			t.Fatalf("%s: %q, want the header %q", f, got, head)
		}
		body := strings.TrimPrefix(got, head)
		want := string(OCSF(e, "1.2.3"))
		if f == FormatCEF {
			want = string(CEF(e, "1.2.3"))
		}
		if body != want {
			t.Errorf("%s: MSG %q, want %q", f, body, want)
		}
	}
	var buf bytes.Buffer
	s, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:6514", Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	s.frame(&buf, e)
	n, msg, ok := strings.Cut(buf.String(), " ")
	if !ok || n != strconv.Itoa(len(msg)) {
		t.Errorf("octet counting: %q", buf.String())
	}
	for _, sev := range []struct {
		s    secevent.Severity
		want string
	}{{secevent.Critical, "<82>"}, {secevent.High, "<83>"}, {secevent.Medium, "<84>"}, {secevent.Informational, "<86>"}} {
		e.Severity = sev.s
		if got := string(Message(e, FormatOCSF, "h", "1", "v")); !strings.HasPrefix(got, sev.want) {
			t.Errorf("severity %v: %q, want PRI %s", sev.s, got[:6], sev.want)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []SyslogConfig{{Addr: "nohostport"}, {Addr: ":6514"}, {Addr: "h:1", Format: "xml"}} {
		if _, err := NewSyslog(c); err == nil {
			t.Errorf("NewSyslog(%+v) accepted", c)
		}
	}
	if _, err := NewFile("", ""); err == nil {
		t.Error("NewFile without a path accepted")
	}
	if _, err := Open(Config{Dir: t.TempDir()}); err == nil {
		t.Error("Open without a sink accepted")
	}
	if _, err := Open(Config{Sinks: []Sink{&memSink{name: "m"}}}); err == nil {
		t.Error("Open without a directory accepted")
	}
	if _, err := Open(Config{Dir: t.TempDir(), Sinks: []Sink{&memSink{name: "m"}, &memSink{name: "m"}}}); err == nil {
		t.Error("Open with two sinks of one name accepted")
	}
}
