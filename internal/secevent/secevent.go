// Package secevent is Ward's one stream of typed security events: what a
// security officer's SIEM must hear about (a refused sign-in, a locked
// account, a break-the-glass grant, a ledger that fails its check), each
// with a stable kind from a catalogue, an OCSF severity and a fixed
// message.
//
// What it guarantees:
//   - an event carries no personal data by construction: its message is
//     the catalogue's fixed text for its kind, never input; its actor,
//     client and source are opaque ids or addresses; its attributes come
//     from a closed set of keys (ids, codes and counts) with values of a
//     restricted alphabet (no spaces, no free text, at most 128 bytes).
//     Validate says what an event breaks; Clean removes what breaks the
//     rules and names the keys it removed, so an emitter never passes on
//     a name a caller put in by mistake;
//   - an Emitter never fails and never holds a request for long: an event
//     that cannot be passed on is counted by the emitter, not returned.
//
// What it does not do: deliver events anywhere but the log (Log); the
// durable stream and the SIEM sinks are package siem's.
package secevent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
)

// Kind is an event's stable dotted identifier, from the catalogue (Kinds).
type Kind string

// The catalogue's kinds. Their names are stable: SIEM rules match on them.
const (
	SignInFailed      Kind = "auth.signin.failed"
	AccountLocked     Kind = "auth.account.locked"
	ClientThrottled   Kind = "auth.client.throttled"
	TokenInvalid      Kind = "auth.token.invalid"      // #nosec G101 -- a security event kind, not a credential
	CredentialSuspect Kind = "auth.credential.suspect" // #nosec G101 -- a security event kind, not a credential
	AccessDenied      Kind = "access.denied"
	BreakGlassGranted Kind = "access.break_glass.granted"
	BreakGlassUsed    Kind = "access.break_glass.used"
	RateLimited       Kind = "ratelimit.rejected"
	LedgerFault       Kind = "ledger.fault"
	KeysFault         Kind = "keys.fault"
	StoreFault        Kind = "store.fault"
	ConfigLoaded      Kind = "config.loaded"
	AccountChanged    Kind = "account.changed"
	ClientChanged     Kind = "client.changed"
	AlertRaised       Kind = "alert.raised"
	AlertChanged      Kind = "alert.changed"
	IncidentChanged   Kind = "incident.changed"
	ContainmentOn     Kind = "containment.applied"
	ContainmentOff    Kind = "containment.lifted"
	EventsDropped     Kind = "siem.events.dropped"
	SigningFailed     Kind = "esign.ceremony.failed"
	SigningThrottled  Kind = "esign.ceremony.throttled"
	SigningRight      Kind = "esign.right.changed"
)

// Severity is an event's OCSF severity_id.
type Severity int

// The OCSF severities Ward uses.
const (
	Informational Severity = 1
	Low           Severity = 2
	Medium        Severity = 3
	High          Severity = 4
	Critical      Severity = 5
)

func (s Severity) String() string {
	switch s {
	case Informational:
		return "Informational"
	case Low:
		return "Low"
	case Medium:
		return "Medium"
	case High:
		return "High"
	case Critical:
		return "Critical"
	}
	return "Unknown"
}

// Outcome says whether what the event describes succeeded.
type Outcome string

// Outcomes; the zero Outcome is unknown.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// KindInfo is one entry of the catalogue.
type KindInfo struct {
	Kind        Kind
	Severity    Severity // the default; an event may raise or lower it
	Message     string   // the fixed text every event of the kind carries
	Description string   // when Ward raises it, for the operator's documentation
}

var catalogue = []KindInfo{
	{SignInFailed, Low, "sign-in refused",
		"a person's sign-in failed: a wrong password or second factor, or an external provider's answer Ward refused (reason names which); the first per account, source and reason in a window at once, the rest counted in one event when it closes"},
	{AccountLocked, Medium, "account throttled after repeated sign-in failures",
		"an account's sign-in is throttled after repeated failures (password guessing)"},
	{ClientThrottled, Medium, "client id throttled after repeated authentication failures",
		"a client id's secret or assertion failed too often and further attempts are refused unchecked (secret guessing); an unregistered id is named by its pseudonym"},
	{TokenInvalid, Low, "bearer tokens refused",
		"a request's bearer token was refused (expired, revoked or forged): the first per source address in a window at once, the rest counted in one event when it closes"},
	{CredentialSuspect, High, "a security key's signature counter went back; the key is refused from now on",
		"a WebAuthn authenticator's signature counter went back: the key may have been cloned"},
	{AccessDenied, Low, "access denied",
		"a caller was refused (403) by the policy, a scope or a role; counted per caller, action and window as auth.token.invalid is"},
	{BreakGlassGranted, High, "break-the-glass: emergency access granted",
		"a person granted themselves time-limited access to a patient outside their care relationships (the reason stays in the review queue)"},
	{BreakGlassUsed, Medium, "break-the-glass: a patient reached through an emergency grant",
		"a request reached a patient only through a break-the-glass grant, one event per patient"},
	{RateLimited, Low, "request rate limit exceeded",
		"a request was refused (429) by a rate limit; counted per caller (or source), action and window as auth.token.invalid is"},
	{LedgerFault, Critical, "the audit ledger failed a check",
		"the audit ledger failed its start check or disagrees with its signed checkpoints (check names which)"},
	{KeysFault, Critical, "the key provider failed",
		"the key provider could not open or seal data keys (in the catalogue for key-layer checks; a provider outage seen by requests is store.fault)"},
	{StoreFault, High, "the database is unavailable",
		"requests fail (503) because the database, the key provider or the ledger cannot be reached; one event per window, the rest counted"},
	{ConfigLoaded, Informational, "server started with this configuration",
		"ward serve started; the settings that change who may do what are attributes"},
	{AccountChanged, Medium, "a user account changed",
		"a user account was created, disabled, re-enabled, given a new password or had its second factor removed, through /admin/users or ward user (change names what)"},
	{ClientChanged, Medium, "a client registration changed",
		"a client was registered or revoked through ward client (change names what)"},
	{AlertRaised, High, "alert raised",
		"detection raised an alert"},
	{AlertChanged, Informational, "alert changed",
		"an alert was acknowledged, assigned or closed"},
	{IncidentChanged, Medium, "incident changed",
		"an incident was opened, updated or closed"},
	{ContainmentOn, High, "containment applied",
		"a user or client was suspended and its tokens and sessions revoked"},
	{ContainmentOff, Medium, "containment lifted",
		"a suspension was lifted"},
	{SigningFailed, Low, "electronic signing ceremony failed",
		"a person's signing ceremony failed: a wrong password or code, or a nonce spent, expired or not theirs (reason names which); counted per person, source and reason as auth.signin.failed is"},
	{SigningThrottled, Medium, "electronic signing throttled after repeated failures",
		"failed signing ceremonies throttled a person or a source address: further attempts are refused unchecked for a while (user names the person)"},
	{SigningRight, Medium, "a person's right to sign electronically changed",
		"an administrator granted or withdrew a person's right to sign records electronically with ward user signing (change names which)"},
	{EventsDropped, Critical, "security events were dropped: the SIEM buffer was full",
		"the on-disk buffer reached its bound while a SIEM was unreachable; count says how many events were not kept"},
}

// Kinds returns the catalogue, in a stable order.
func Kinds() []KindInfo { return slices.Clone(catalogue) }

// Lookup returns the catalogue entry of k.
func Lookup(k Kind) (KindInfo, bool) {
	for _, c := range catalogue {
		if c.Kind == k {
			return c, true
		}
	}
	return KindInfo{}, false
}

// The attribute keys an event may carry: ids, codes and counts only.
const (
	AttrRequestID = "request_id" // the request's id
	AttrUser      = "user"       // the user account an event is about (not the actor)
	AttrGrant     = "grant"      // a break-the-glass grant's id
	AttrPatient   = "patient"    // a patient's opaque resource id, only where an event is about one patient
	AttrExpires   = "expires"    // an RFC 3339 time
	AttrReason    = "reason"     // a code naming why, e.g. wrong-password
	AttrIssuer    = "issuer"     // a configured external provider's name
	AttrCount     = "count"      // how many occurrences the event stands for
	AttrWindow    = "window"     // the counting window, e.g. 30s
	AttrAction    = "action"     // the ledger's action code, e.g. read
	AttrResource  = "resource"   // a FHIR resource type
	AttrStatus    = "status"     // an HTTP status code
	AttrLimit     = "limit"      // which rate limit, e.g. principal
	AttrChange    = "change"     // what changed, a code, e.g. created
	AttrRole      = "role"       // a role name
	AttrCheck     = "check"      // which check failed, e.g. start
	AttrComponent = "component"  // which part of Ward, e.g. ledger
	AttrVersion   = "version"    // Ward's version
	AttrTarget    = "target"     // what containment acted on: "user/ID" or "client/ID"
	AttrIncident  = "incident"   // an incident's id
	AttrAlert     = "alert"      // an alert's id
	AttrRule      = "rule"       // a detection rule's id
	AttrSeverity  = "severity"   // an alert's severity, e.g. high
	// SettingPrefix starts the keys of config.loaded's settings,
	// e.g. setting.db.
	SettingPrefix = "setting."
	// AttrRejected names, comma-separated, the attributes Clean removed.
	AttrRejected = "rejected_attrs"
)

var attrKeys = map[string]bool{
	AttrRequestID: true, AttrUser: true, AttrGrant: true, AttrPatient: true, AttrExpires: true,
	AttrReason: true, AttrIssuer: true, AttrCount: true, AttrWindow: true, AttrAction: true,
	AttrResource: true, AttrStatus: true, AttrLimit: true, AttrChange: true, AttrRole: true,
	AttrCheck: true, AttrComponent: true, AttrVersion: true, AttrRejected: true,
	AttrTarget: true, AttrIncident: true, AttrAlert: true, AttrRule: true, AttrSeverity: true,
}

// Event is one security event. Build it with New, so that its id, time,
// severity and message come from the catalogue.
type Event struct {
	ID       string    // random, unique per event: a SIEM's deduplication key
	Kind     Kind      // from the catalogue
	Severity Severity  // OCSF severity_id
	Time     time.Time // when it happened
	Actor    string    // who acted: a user id or client id, opaque
	Client   string    // the OAuth2 client acted through, if any
	Source   string    // the caller's network address, if any
	Outcome  Outcome
	Message  string            // the catalogue's text for Kind
	Attrs    map[string]string // AttrXxx keys only
}

// New returns an event of kind k at t, with a fresh random id and the
// catalogue's severity and message. An unknown kind gets severity
// Medium and the kind itself as message; Validate refuses it.
func New(k Kind, t time.Time) Event {
	e := Event{ID: NewID(), Kind: k, Time: t.UTC(), Severity: Medium, Message: string(k)}
	if c, ok := Lookup(k); ok {
		e.Severity, e.Message = c.Severity, c.Message
	}
	return e
}

// With returns e with the attribute key set to value (e's map is not
// shared with the result's).
func (e Event) With(key, value string) Event {
	attrs := make(map[string]string, len(e.Attrs)+1)
	maps.Copy(attrs, e.Attrs)
	attrs[key] = value
	e.Attrs = attrs
	return e
}

// NewID returns a random event id: 32 hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ErrInvalid is what Validate's errors wrap.
var ErrInvalid = errors.New("secevent: invalid event")

// maxValue bounds every id and attribute value.
const maxValue = 128

// validValue accepts an id, code, count or address: at most 128 bytes of
// letters, digits and . _ : / @ + = , - [ ] (no spaces, so no free text).
func validValue(s string) bool {
	if len(s) > maxValue {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._:/@+=,-[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validKey accepts the catalogue's attribute keys and setting.<name>.
func validKey(k string) bool {
	if attrKeys[k] {
		return true
	}
	name, ok := strings.CutPrefix(k, SettingPrefix)
	if !ok || name == "" || len(name) > 40 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate reports what breaks the rules in e: an unknown kind, a message
// other than the catalogue's, an id, address or attribute value outside
// the restricted alphabet, or an attribute key outside the closed set.
func (e Event) Validate() error {
	c, ok := Lookup(e.Kind)
	if !ok {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	}
	if e.Message != c.Message {
		return fmt.Errorf("%w: %s: the message is not the catalogue's", ErrInvalid, e.Kind)
	}
	if e.ID == "" || e.Time.IsZero() || e.Severity < Informational || e.Severity > Critical {
		return fmt.Errorf("%w: %s: no id, time or severity", ErrInvalid, e.Kind)
	}
	if e.Outcome != "" && e.Outcome != Success && e.Outcome != Failure {
		return fmt.Errorf("%w: %s: outcome", ErrInvalid, e.Kind)
	}
	for name, v := range map[string]string{"id": e.ID, "actor": e.Actor, "client": e.Client, "source": e.Source} {
		if !validValue(v) {
			return fmt.Errorf("%w: %s: %s is not an id", ErrInvalid, e.Kind, name)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		if !validKey(k) {
			return fmt.Errorf("%w: %s: attribute key %q is not in the catalogue", ErrInvalid, e.Kind, k)
		}
		if !validValue(e.Attrs[k]) {
			return fmt.Errorf("%w: %s: attribute %s is not an id, code or count", ErrInvalid, e.Kind, k)
		}
	}
	return nil
}

// Clean returns e made valid, and whether it had to change anything: a
// field or attribute that breaks the rules is removed (its key, never its
// value, listed in AttrRejected); an unknown kind or a foreign message is
// replaced by the catalogue's (an unknown kind, a programming error, is
// reported as alert.raised with "kind" rejected, so that it is seen); a
// missing id, time or severity is filled in. Emitters pass on Clean's result, so that what a caller put in by
// mistake never leaves the process.
func Clean(e Event, now time.Time) (Event, bool) {
	if e.Validate() == nil {
		return e, false
	}
	var rejected []string
	c, ok := Lookup(e.Kind)
	if !ok {
		rejected = append(rejected, "kind")
		c, _ = Lookup(AlertRaised)
		e.Kind = c.Kind
	}
	if e.Message != c.Message {
		e.Message = c.Message
	}
	if e.ID == "" || !validValue(e.ID) {
		e.ID = NewID()
	}
	if e.Time.IsZero() {
		e.Time = now.UTC()
	}
	if e.Severity < Informational || e.Severity > Critical {
		e.Severity = c.Severity
	}
	if e.Outcome != "" && e.Outcome != Success && e.Outcome != Failure {
		e.Outcome = ""
		rejected = append(rejected, "outcome")
	}
	for name, v := range map[string]*string{"actor": &e.Actor, "client": &e.Client, "source": &e.Source} {
		if !validValue(*v) {
			*v = ""
			rejected = append(rejected, name)
		}
	}
	attrs := map[string]string{}
	for k, v := range e.Attrs {
		if k == AttrRejected || !validKey(k) || !validValue(v) {
			if validKey(k) {
				rejected = append(rejected, k)
			} else {
				rejected = append(rejected, "key")
			}
			continue
		}
		attrs[k] = v
	}
	if len(rejected) > 0 {
		slices.Sort(rejected)
		attrs[AttrRejected] = strings.Join(slices.Compact(rejected), ",")
	}
	e.Attrs = attrs
	return e, true
}

// Emitter passes security events on. Emit never fails and never blocks
// a request for long; an event it cannot pass on is counted, not
// returned.
type Emitter interface {
	Emit(Event)
}

// Discard drops every event.
var Discard Emitter = discard{}

type discard struct{}

func (discard) Emit(Event) {}

// Multi passes each event to every emitter in turn. Nil emitters are
// skipped.
func Multi(emitters ...Emitter) Emitter {
	var out multi
	for _, e := range emitters {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

type multi []Emitter

func (m multi) Emit(e Event) {
	for _, x := range m {
		x.Emit(e)
	}
}

// Log returns an emitter that writes each event to logger as a warning,
// "security event: <message>", with its kind, id, severity, actor,
// client, source, outcome and attributes. A nil logger discards.
func Log(logger *slog.Logger) Emitter {
	if logger == nil {
		return Discard
	}
	return logEmitter{logger}
}

type logEmitter struct{ l *slog.Logger }

func (l logEmitter) Emit(e Event) {
	e, _ = Clean(e, time.Now())
	attrs := []slog.Attr{
		slog.String("kind", string(e.Kind)), slog.String("event_id", e.ID),
		slog.String("severity", e.Severity.String()),
	}
	for _, f := range [][2]string{{"actor", e.Actor}, {"client", e.Client}, {"source", e.Source}, {"outcome", string(e.Outcome)}} {
		if f[1] != "" {
			attrs = append(attrs, slog.String(f[0], f[1]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		attrs = append(attrs, slog.String(k, e.Attrs[k]))
	}
	l.l.LogAttrs(context.Background(), slog.LevelWarn, "security event: "+e.Message, attrs...)
}
