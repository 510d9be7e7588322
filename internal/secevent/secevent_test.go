package secevent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCatalogue(t *testing.T) {
	seen := map[secevent.Kind]bool{}
	for _, c := range secevent.Kinds() {
		if seen[c.Kind] {
			t.Errorf("%s listed twice", c.Kind)
		}
		seen[c.Kind] = true
		// RFC 5424 MSGID: at most 32 printable characters.
		if len(c.Kind) == 0 || len(c.Kind) > 32 || strings.ContainsAny(string(c.Kind), " \t\n") {
			t.Errorf("%q cannot be a syslog MSGID", c.Kind)
		}
		if c.Message == "" || c.Description == "" || c.Severity < secevent.Informational || c.Severity > secevent.Critical {
			t.Errorf("%s: incomplete entry %+v", c.Kind, c)
		}
		if err := secevent.New(c.Kind, t0).Validate(); err != nil {
			t.Errorf("New(%s) is not valid: %v", c.Kind, err)
		}
	}
	for _, k := range []secevent.Kind{secevent.SignInFailed, secevent.AccountLocked, secevent.ClientThrottled, secevent.TokenInvalid,
		secevent.AccessDenied, secevent.BreakGlassGranted, secevent.BreakGlassUsed, secevent.RateLimited, secevent.LedgerFault,
		secevent.KeysFault, secevent.ConfigLoaded, secevent.AccountChanged, secevent.ClientChanged, secevent.AlertRaised,
		secevent.AlertChanged, secevent.IncidentChanged, secevent.ContainmentOn, secevent.ContainmentOff,
		secevent.SigningFailed, secevent.SigningThrottled, secevent.SigningRight} {
		if !seen[k] {
			t.Errorf("%s missing from the catalogue", k)
		}
	}
	if a, b := secevent.New(secevent.LedgerFault, t0), secevent.New(secevent.LedgerFault, t0); a.ID == b.ID || len(a.ID) != 32 {
		t.Errorf("event ids %q and %q: want distinct random ids", a.ID, b.ID)
	}
}

// TestNoFreeText: what could carry a person's name or a typed reason (a
// space, an unknown key, a long value, a control character, a foreign
// message) is refused by Validate and removed by Clean, key named, value
// never repeated.
func TestNoFreeText(t *testing.T) {
	ok := secevent.New(secevent.SignInFailed, t0)
	ok.Actor, ok.Source, ok.Outcome = "u-123", "192.0.2.1", secevent.Failure
	ok = ok.With(secevent.AttrReason, "wrong-password").With(secevent.AttrRequestID, "r-1").With("setting.db", "sqlite")
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid event: %v", err)
	}
	if c, changed := secevent.Clean(ok, t0); changed || c.Attrs[secevent.AttrRejected] != "" {
		t.Fatalf("Clean changed a valid event: %+v", c)
	}
	const name = "Jane Example"
	tests := []struct {
		name     string
		edit     func(*secevent.Event)
		rejected string
	}{
		{"a name as a value", func(e *secevent.Event) { e.Attrs = map[string]string{secevent.AttrReason: name} }, "reason"},
		{"an unknown key", func(e *secevent.Event) { e.Attrs = map[string]string{"family": "Example"} }, "key"},
		{"a name as the actor", func(e *secevent.Event) { e.Actor = name }, "actor"},
		{"a newline", func(e *secevent.Event) { e.Attrs = map[string]string{secevent.AttrUser: "u\nJane"} }, "user"},
		{"a long value", func(e *secevent.Event) { e.Attrs = map[string]string{secevent.AttrUser: strings.Repeat("a", 129)} }, "user"},
		{"a setting with a bad name", func(e *secevent.Event) { e.Attrs = map[string]string{"setting.Jane Example": "x"} }, "key"},
		{"a message of the caller's", func(e *secevent.Event) { e.Message = "sign-in refused for " + name }, ""},
		{"an unknown kind", func(e *secevent.Event) { e.Kind = "user.named.jane" }, "kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := secevent.New(secevent.SignInFailed, t0)
			tt.edit(&e)
			if err := e.Validate(); !errors.Is(err, secevent.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			c, changed := secevent.Clean(e, t0)
			if !changed {
				t.Fatal("Clean left it unchanged")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Clean's result is not valid: %v", err)
			}
			if got := c.Attrs[secevent.AttrRejected]; got != tt.rejected {
				t.Errorf("rejected_attrs %q, want %q", got, tt.rejected)
			}
			out, _ := json.Marshal(c)
			if strings.Contains(string(out), "Jane") || strings.Contains(string(out), "Example") {
				t.Errorf("the name survived Clean: %s", out)
			}
		})
	}
}

func TestLogEmitter(t *testing.T) {
	var buf bytes.Buffer
	var seen []secevent.Event
	rec := recorder(func(e secevent.Event) { seen = append(seen, e) })
	em := secevent.Multi(secevent.Log(slog.New(slog.NewJSONHandler(&buf, nil))), nil, rec, secevent.Discard)
	e := secevent.New(secevent.ClientThrottled, t0)
	e.Client = "c-1"
	em.Emit(e.With(secevent.AttrRequestID, "r-9").With(secevent.AttrReason, "Jane Example"))
	var line map[string]string
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	want := map[string]string{"level": "WARN", "msg": "security event: client id throttled after repeated authentication failures",
		"kind": "auth.client.throttled", "event_id": e.ID, "severity": "Medium", "client": "c-1", "request_id": "r-9", "rejected_attrs": "reason"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %q, want %q (%s)", k, line[k], v, buf.Bytes())
		}
	}
	if strings.Contains(buf.String(), "Jane") {
		t.Errorf("free text reached the log: %s", buf.Bytes())
	}
	if len(seen) != 1 || seen[0].ID != e.ID {
		t.Errorf("Multi passed on %v", seen)
	}
}

type recorder func(secevent.Event)

func (r recorder) Emit(e secevent.Event) { r(e) }
