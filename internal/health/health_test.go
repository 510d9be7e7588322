package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/health"
)

func probe(t *testing.T, c *health.Checker) (int, health.Report, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return rec.Code, rep, rec.Body.String()
}

// 200 only when every check passes; 503 naming each failing check, with a
// Reason's text and never an error's own.
func TestReadiness(t *testing.T) {
	var dbErr, keyErr error
	c := health.New(time.Second,
		health.Check{Name: "database", Fn: func(context.Context) error { return dbErr }},
		health.Check{Name: "keys", Fn: func(context.Context) error { return keyErr }},
	)
	code, rep, _ := probe(t, c)
	if code != 200 || !rep.Ready || len(rep.Checks) != 2 {
		t.Fatalf("all passing: %d %+v", code, rep)
	}
	dbErr = errors.New("dial tcp 10.0.0.7:5432: secret-host refused")
	keyErr = fmt.Errorf("%w: /etc/ward/keys.json", health.Reason("key provider cannot unwrap"))
	code, rep, body := probe(t, c)
	if code != 503 || rep.Ready {
		t.Fatalf("failing: %d %+v", code, rep)
	}
	want := []health.Result{{Name: "database", OK: false, Reason: "failing"}, {Name: "keys", OK: false, Reason: "key provider cannot unwrap"}}
	for i, r := range rep.Checks {
		if r != want[i] {
			t.Errorf("check %d: %+v, want %+v", i, r, want[i])
		}
	}
	for _, leak := range []string{"10.0.0.7", "secret-host", "/etc/ward"} {
		if strings.Contains(body, leak) {
			t.Errorf("body %q shows %q", body, leak)
		}
	}
	dbErr, keyErr = nil, nil
	if code, _, _ := probe(t, c); code != 200 {
		t.Fatalf("after recovery: %d", code)
	}
}

// A check that does not answer fails at the timeout; the probe returns.
func TestReadinessTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := health.New(10*time.Millisecond, health.Check{Name: "stuck", Fn: func(ctx context.Context) error {
		<-block // ignores ctx, as a hung driver would
		return nil
	}})
	code, rep, _ := probe(t, c)
	if code != http.StatusServiceUnavailable || rep.Checks[0].OK || !strings.HasPrefix(rep.Checks[0].Reason, "no answer within") {
		t.Fatalf("stuck check: %d %+v", code, rep)
	}
}

// A Warning passes its check (the probe stays 200) and shows its text.
func TestReadinessWarning(t *testing.T) {
	c := health.New(time.Second,
		health.Check{Name: "key-age", Fn: func(context.Context) error {
			return fmt.Errorf("%w", health.Warning("over its maximum age, rotate: token"))
		}},
	)
	code, rep, _ := probe(t, c)
	if code != 200 || !rep.Ready || len(rep.Checks) != 1 {
		t.Fatalf("a warning: %d %+v, want 200 and ready", code, rep)
	}
	if r := rep.Checks[0]; !r.OK || r.Warning != "over its maximum age, rotate: token" || r.Reason != "" {
		t.Errorf("a warning's result: %+v", r)
	}
}
