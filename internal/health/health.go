// Package health answers Ward's readiness probe: a list of named checks
// (the database answers, the key provider unwraps, the audit ledger and
// its spool accept entries, the SIEM backlog is under its bound), run
// concurrently, each under a short timeout.
//
// What it guarantees: the answer is 200 only when every check passed
// within its timeout, else 503; the JSON body names every check and
// whether it passed, and a failing check's reason only when the check
// gave one as a Reason (fixed text written for operators): an error's own
// text, which could name a file, a host or a value, never reaches the
// body. A check that does not return is abandoned at its timeout and
// counts as failing.
//
// What it does not do: liveness (/healthz answers without checks), or
// logging: the caller logs changes of state if it wants to.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Check is one named readiness check. Fn returns nil when the dependency
// is ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Reason is a failure whose text may be shown to whoever can reach the
// probe: fixed operator-facing words, no values.
type Reason string

func (r Reason) Error() string { return string(r) }

// Warning is what a check returns for a state an operator should act on
// that does not make the server unready (a key over its maximum age):
// the check passes, and the text, fixed operator-facing words like a
// Reason's, is shown as its warning.
type Warning string

func (w Warning) Error() string { return string(w) }

// DefaultTimeout bounds each check.
const DefaultTimeout = 2 * time.Second

// Checker runs the checks.
type Checker struct {
	checks  []Check
	timeout time.Duration
}

// New returns a checker over checks; timeout <= 0 means DefaultTimeout.
func New(timeout time.Duration, checks ...Check) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Checker{checks: checks, timeout: timeout}
}

// Result is one check's outcome.
type Result struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Reason  string `json:"reason,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// Report is the readiness answer.
type Report struct {
	Ready  bool     `json:"ready"`
	Checks []Result `json:"checks"`
}

// Run runs every check concurrently and reports.
func (c *Checker) Run(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out := make([]Result, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Add(1)
		done := make(chan error, 1)
		go func() { done <- ch.Fn(ctx) }()
		go func() {
			defer wg.Done()
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				err = Reason("no answer within " + c.timeout.String())
			}
			if w := Warning(""); errors.As(err, &w) {
				out[i] = Result{Name: ch.Name, OK: true, Warning: string(w)}
				return
			}
			out[i] = Result{Name: ch.Name, OK: err == nil}
			if err != nil {
				if r := Reason(""); errors.As(err, &r) {
					out[i].Reason = string(r)
				} else if errors.Is(err, context.DeadlineExceeded) {
					out[i].Reason = "no answer within " + c.timeout.String()
				} else {
					out[i].Reason = "failing"
				}
			}
		}()
	}
	wg.Wait()
	rep := Report{Ready: true, Checks: out}
	for _, r := range out {
		rep.Ready = rep.Ready && r.OK
	}
	return rep
}

// ServeHTTP answers the probe: 200 when ready, else 503, with the report
// as JSON. Nothing is cached: each probe runs the checks.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := c.Run(r.Context())
	body, _ := json.Marshal(rep)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if rep.Ready {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(body, '\n'))
}
