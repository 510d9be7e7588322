package api

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

// Security events (package secevent) the HTTP layer raises:
//
//   - auth.signin.failed: a person's sign-in, second factor or external
//     sign-in failed (reason: the sign-in entry's detail code);
//   - auth.account.locked: that failure locked the account;
//   - auth.token.invalid: a request with a bearer token that proved no one
//     was refused (401);
//   - access.denied: an authenticated caller was refused (403);
//   - ratelimit.rejected: a request was refused by a rate limit (429);
//   - store.fault: a request failed because the database, the key
//     provider or the ledger could not be reached (503);
//   - auth.client.throttled: a client id locked after repeated failures
//     (oauth.go);
//   - access.break_glass.granted and .used (emergency.go);
//   - account.changed: /admin/users changed an account (admin.go).
//
// All but the lock, the client's throttle, break-the-glass and account
// changes come from whoever sends requests, so they are counted
// rather than raised one per request: the first of a kind per caller (or
// source) and window is raised at once, the rest counted and raised as one
// event with count when the window closes (CloseFailureWindow,
// FlushFailures), as the ledger's refusals are (failures.go).

// eventKey is one caller's kind of event in a window.
type eventKey struct {
	kind                          secevent.Kind
	actor, client, source, action string
}

// eventCounts aggregates frequent events per key and window, with at most
// max keys; the rest of a window's events are counted per kind.
type eventCounts struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu       sync.Mutex
	start    time.Time
	counts   map[eventKey]*eventCount
	overflow map[secevent.Kind]int64
}

type eventCount struct {
	first secevent.Event
	n     int64 // events after the first
}

func newEventCounts(window time.Duration, max int, now func() time.Time) *eventCounts {
	return &eventCounts{window: window, max: max, now: now, counts: map[eventKey]*eventCount{}, overflow: map[secevent.Kind]int64{}}
}

// note returns the events to raise now: those of a window that closed,
// and e if it is the first of its key in the current window.
func (c *eventCounts) note(k eventKey, e secevent.Event) []secevent.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.rollLocked(false)
	if ec := c.counts[k]; ec != nil {
		ec.n++
		return out
	}
	if len(c.counts) >= c.max {
		c.overflow[k.kind]++
		return out
	}
	c.counts[k] = &eventCount{first: e}
	return append(out, e)
}

// roll closes the window if it is over (or now, with force) and returns
// its summary events.
func (c *eventCounts) roll(force bool) []secevent.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rollLocked(force)
}

func (c *eventCounts) rollLocked(force bool) []secevent.Event {
	now := c.now()
	if c.start.IsZero() {
		c.start = now.Truncate(c.window)
	}
	if !force && now.Before(c.start.Add(c.window)) {
		return nil
	}
	window := strconv.FormatInt(int64(c.window/time.Second), 10) + "s"
	var out []secevent.Event
	for _, ec := range c.counts {
		if ec.n == 0 {
			continue
		}
		e := ec.first
		e.ID, e.Time = secevent.NewID(), now.UTC()
		e = e.With(secevent.AttrCount, strconv.FormatInt(ec.n, 10)).With(secevent.AttrWindow, window)
		delete(e.Attrs, secevent.AttrRequestID) // the count stands for many requests
		out = append(out, e)
	}
	for kind, n := range c.overflow {
		out = append(out, secevent.New(kind, now).With(secevent.AttrCount, strconv.FormatInt(n, 10)).With(secevent.AttrWindow, window).
			With(secevent.AttrReason, "other-sources"))
	}
	c.start = now.Truncate(c.window)
	c.counts = map[eventKey]*eventCount{}
	c.overflow = map[secevent.Kind]int64{}
	return out
}

// emit passes events on.
func (s *Server) emit(events ...secevent.Event) {
	for _, e := range events {
		s.cfg.Events.Emit(e)
	}
}

// requestEvents raises the counted events of a request that ended with
// code (see above).
func (s *Server) requestEvents(r *http.Request, x *exchange, code int) {
	applySignIn(x)
	var kind secevent.Kind
	switch {
	case signInAction(x.action) && x.detail == "locked":
		actor, client, _, _, _ := s.callerFields(x)
		e := secevent.New(secevent.AccountLocked, s.cfg.Now())
		e.Actor, e.Client, e.Source, e.Outcome = actor, client, x.caller.Source, secevent.Failure
		s.emit(e.With(secevent.AttrRequestID, x.caller.RequestID))
		return
	case signInAction(x.action) && code >= 400 && !strings.HasPrefix(x.detail, "ok") && x.detail != "redirect":
		kind = secevent.SignInFailed
	case code == http.StatusUnauthorized && !x.proven() && bearerSent(r) && !strings.HasPrefix(r.URL.Path, "/oauth2/"):
		kind = secevent.TokenInvalid
	case code == http.StatusForbidden:
		kind = secevent.AccessDenied
	case code == http.StatusTooManyRequests:
		kind = secevent.RateLimited
	case code == http.StatusServiceUnavailable:
		kind = secevent.StoreFault
	default:
		return
	}
	actor, client, typ, _, _ := s.callerFields(x)
	e := secevent.New(kind, s.cfg.Now())
	e.Source, e.Outcome = x.caller.Source, secevent.Failure
	if kind == secevent.StoreFault {
		// One event per window for the whole server, whoever asked.
		e.Source = ""
		s.emit(s.events.note(eventKey{kind: kind}, e.With(secevent.AttrComponent, "store-or-keys"))...)
		return
	}
	if x.proven() || kind == secevent.SignInFailed {
		// A failed sign-in names the account tried, or the keyed hash of
		// a user name no account has (callerFields).
		e.Actor, e.Client = actor, client
	}
	e.Attrs = map[string]string{secevent.AttrStatus: strconv.Itoa(code), secevent.AttrRequestID: x.caller.RequestID}
	if x.action != "" {
		e.Attrs[secevent.AttrAction] = x.action
	}
	if typ != "" && x.proven() {
		e.Attrs[secevent.AttrResource] = typ
	}
	if kind == secevent.SignInFailed && x.detail != "" {
		e.Attrs[secevent.AttrReason] = x.detail
	}
	k := eventKey{kind: kind, actor: e.Actor, client: e.Client, source: e.Source}
	if kind != secevent.TokenInvalid {
		k.action = x.action + " " + x.detail
	}
	s.emit(s.events.note(k, e)...)
}

// signInAction reports whether a ledger action is a person's sign-in step.
func signInAction(action string) bool {
	switch action {
	case "signin", "signin-federated", "mfa", "mfa-enrol":
		return true
	}
	return false
}

// bearerSent reports whether a request carried a bearer token.
func bearerSent(r *http.Request) bool {
	scheme, _, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer")
}

// outcomeOf maps a ledger outcome to an event's.
func outcomeOf(ledgerOutcome string) secevent.Outcome {
	if ledgerOutcome == "success" {
		return secevent.Success
	}
	return secevent.Failure
}
