package records

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// The records service is the one writer of the audit entries of the
// interactions it serves (DESIGN invariant 3). A write's entry commits in
// the write's own storage transaction; every other interaction (a read, a
// search, a refusal, a write that failed) is recorded through group
// commit before its result is returned, so that nothing the caller is
// answered leaves unrecorded. When an entry cannot be made durable the
// interaction fails with ErrUnavailable and nothing may be served.
//
// The HTTP layer records only what never reaches this service: a request
// that failed authentication, a malformed one, a route of its own. It
// learns from the Caller's Trail whether this service recorded the
// request.

// Appender appends entries to the audit ledger through group commit and
// returns once they are durable (audit.Log is one).
type Appender interface {
	Append(ctx context.Context, recs ...audit.Record) error
}

// Pseudonyms turns a value a caller chose into a keyed hash for the
// ledger, which can never be erased (catalogue E5): the entries this
// service writes name a query parameter outside the names' alphabet so.
// Sum must return a string that cannot hold the value (keys.NewPseudonyms).
type Pseudonyms interface {
	Sum(kind, value string) string
}

// Pseudonyms kinds of the values the entries of this service may hold.
const (
	PseudonymQueryName = "query-name"    // a query parameter name outside the names' alphabet (PlainName)
	PseudonymType      = "resource-type" // a path segment that is no resource type
	PseudonymToken     = "token"         // the jti of a bearer token (Caller.Token)
)

// RandomPseudonyms returns Pseudonyms under a key drawn now: HMAC-SHA256,
// so that nothing falls back to storing values as given. Its pseudonyms
// link values within one process only; ward serve configures the key
// file's (keys.NewPseudonyms).
func RandomPseudonyms() Pseudonyms {
	p := &randomPseudonyms{}
	_, _ = rand.Read(p.key[:]) // crypto/rand.Read never fails
	return p
}

type randomPseudonyms struct{ key [32]byte }

func (p *randomPseudonyms) Sum(kind, value string) string {
	m := hmac.New(sha256.New, p.key[:])
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return "hmac:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// PlainName reports whether a query parameter name is recorded as it is:
// 1 to 64 of the characters FHIR search parameter names, modifiers and
// chains are made of.
func PlainName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '$') {
			return false
		}
	}
	return true
}

// QueryNames returns the names of query parameters as an entry records
// them: sorted, names only (never values), each outside the names'
// alphabet as its keyed hash.
func QueryNames(p Pseudonyms, v map[string][]string) []string {
	names := make([]string, 0, len(v))
	for k := range v {
		if !PlainName(k) {
			k = p.Sum(PseudonymQueryName, k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Trail is what the records service reports of one request's audit
// entries: whether it recorded them (so the HTTP layer records nothing
// more), and the patients it reached through break-the-glass grants (for
// the security events the HTTP layer raises). The zero Trail is ready; it
// is safe for concurrent use.
type Trail struct {
	mu        sync.Mutex
	recorded  bool
	emergency []string
}

// Recorded reports whether the records service recorded the request's
// entries: every interaction it served or refused for the request is in
// the ledger.
func (t *Trail) Recorded() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recorded
}

// Emergency returns the patients the request's recorded entries reached
// only through break-the-glass grants, in the order recorded.
func (t *Trail) Emergency() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.emergency)
}

// note marks the trail recorded, with the patients reached through grants.
func (t *Trail) note(reached ...string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recorded = true
	t.emergency = append(t.emergency, reached...)
}

// access is the entry of one interaction that commits no write of its own.
type access struct {
	action   string
	typ, id  string
	query    []string
	detail   string // what the entry says besides its status ("bundle entry 3")
	status   int    // the status a success answers with; default 200
	version  string // of a success
	patient  string // whose data a success disclosed
	asked    string // the patient a refusal or failure names, when the request names one
	patients []string
	criteria []string // the patients a search named in its criteria, whatever it answered
	listed   bool     // patients is the list of a search or history answer, even empty
	err      error    // how it ended; nil for a success
}

// entryOf is the ledger entry of interaction a, and the patients it
// reached only through the caller's break-the-glass grants.
func (s *Service) entryOf(c Caller, a access) (ledger.Entry, []string) {
	err := a.err
	code := Status(err)
	if err == nil {
		code = cmp.Or(a.status, http.StatusOK)
	}
	hiddenErr := errors.Is(err, ErrHidden)
	e := c.entry(s.now(), a.action)
	e.ResourceType, e.ResourceID, e.Outcome = a.typ, a.id, ledger.OutcomeOf(code, hiddenErr)
	e.Query, e.Detail = a.query, a.detail
	e.SetAsked(a.criteria)
	patient, patients, listed := a.patient, a.patients, a.listed
	if err != nil {
		patient, patients, listed = a.asked, nil, false
	}
	if hiddenErr {
		// Answered as an unknown id, recorded as what it was: a denial,
		// naming the patient whose data was asked for (catalogue H1).
		e.Detail = joinDetail(e.Detail, "outside-compartment")
		var he *HiddenError
		if errors.As(err, &he) && he.Compartment != "" {
			patient = he.Compartment
		}
	}
	if e.Detail == "" {
		e.Detail = strconv.Itoa(code)
	}
	if err == nil {
		e.Version = a.version
	}
	e.Patient = patient
	if listed {
		e.SetPatients(patients)
	}
	if patient != "" {
		patients = append([]string{patient}, patients...)
	}
	if a.action == ActionEmergencyGrant { // asking for a grant touches no data
		return e, nil
	}
	return e, c.MarkEmergency(&e, patients...)
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

// account records interaction a, which ended with err and commits no
// write of its own, and returns err: the interaction's own error, or
// ErrUnavailable when its entry could not be made durable, so that
// nothing is served unrecorded.
func (s *Service) account(ctx context.Context, c Caller, err error, a access) error {
	a.err = err
	if rerr := s.record(ctx, c, a); rerr != nil {
		return rerr
	}
	return err
}

// record appends the entries of as through group commit, in one group,
// and notes in the caller's trail that they are recorded. Its error is
// ErrUnavailable: nothing may be served.
func (s *Service) record(ctx context.Context, c Caller, as ...access) error {
	recs := make([]audit.Record, 0, len(as))
	var reached []string
	for _, a := range as {
		e, r := s.entryOf(c, a)
		rec, encErr := audit.NewRecord(e)
		if encErr != nil {
			return fmt.Errorf("%w: audit entry: %w", ErrUnavailable, encErr)
		}
		recs = append(recs, rec)
		reached = append(reached, r...)
	}
	if len(recs) > 0 {
		if aerr := s.cfg.Ledger.Append(ctx, recs...); aerr != nil {
			return fmt.Errorf("%w: audit entry not recorded: %w", ErrUnavailable, aerr)
		}
	}
	c.Trail.note(reached...)
	return nil
}

// Status is the HTTP status each outcome of the service answers with, and
// the status its audit entry records: 200 for none, 400 for bad input, and
// one for each of the errors above.
func Status(err error) int {
	var (
		fe *fhir.Error
		qe *search.QueryError
	)
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &fe), errors.As(err, &qe):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrStepUp), errors.Is(err, ErrCeremony):
		return http.StatusUnauthorized
	case errors.Is(err, ErrThrottled):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrGone):
		return http.StatusGone
	case errors.Is(err, ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooCostly):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// versionOf is e's version id as an entry records it; "" for none.
func versionOf(e Entry) string {
	if e.Version == 0 {
		return ""
	}
	return strconv.FormatInt(e.Version, 10)
}

// compartments lists the patient compartment of every resource in lists,
// "" for shared ones: whose data an answer holding them disclosed.
func compartments(lists ...[]Entry) []string {
	out := []string{}
	for _, l := range lists {
		for _, e := range l {
			out = append(out, e.Compartment)
		}
	}
	return out
}

// failed records a write that failed, with its outcome; a write that
// succeeded committed its entry with it.
func (s *Service) failed(ctx context.Context, c Caller, err error, a access) error {
	if err == nil {
		return nil
	}
	return s.account(ctx, c, err, a)
}

// answer is v when err is nil, else the zero value: a result whose
// interaction failed, or whose entry could not be recorded, is not
// handed on.
func answer[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}
