package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on the values of an [Entry]. Longer values are truncated by
// [Entry.Encode] and end with [TruncatedMarker]; the bounds are in bytes of
// UTF-8 before JSON escaping.
const (
	MaxField     = 256 // any string field
	MaxQueryName = 64  // one query parameter name
	MaxQuery     = 32  // number of query parameter names
	MaxPatientID = 64  // one id in Patients (a FHIR id has at most 64 characters)
	// MaxPatients bounds the number of ids in Patients. A page of search
	// results can hold more (the page size and _include caps are the
	// server's configuration); see [Entry.SetPatients].
	MaxPatients = 1000
	// MaxAsked bounds the number of ids in Asked.
	MaxAsked = 100
	// MaxEntrySize bounds an encoded entry; DecodeEntry rejects larger input
	// before parsing. Every input byte takes at most 6 bytes escaped, so an
	// entry with every field at its bound and MaxPatients ids fits.
	MaxEntrySize = 1 << 19
)

// TruncatedMarker ends a string value that Encode shortened to its bound.
const TruncatedMarker = "...[truncated]"

// The "v" field of an encoded entry: version 2 is version 1 with a
// "patients" list after "patient"; version 3 is version 2 with the list
// always present (it may be empty), an "asked" list after it and a "token"
// after "requestId". Encode writes version 3 exactly when Asked or Token
// is not empty, else version 2 exactly when Patients is not empty, so
// every entry written before a field existed keeps its bytes, and every
// entry has one encoding.
const (
	formatV1 = 1
	formatV2 = 2
	formatV3 = 3
)

// timeLayout is the only accepted time form: UTC, nanoseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Entry is one audit event. It carries opaque identifiers only, never PHI
// values: callers put ids, codes and parameter names in it.
//
// Patient and Patients say whose data the access touched, for the
// accounting of disclosures and breach scoping: a read or a write names
// its resource's patient compartment in Patient; a search, history or
// other answer holding several patients' data names all of them in
// Patients (set through [Entry.SetPatients]), so that one entry per
// request is findable under each patient.
type Entry struct {
	Time         time.Time // when the access was decided; stored as UTC
	Actor        string    // authenticated subject (user or service id)
	Client       string    // OAuth2 client id or certificate identity
	Source       string    // network address of the caller
	Action       string    // e.g. "read", "search", "create", "login"
	ResourceType string    // FHIR resource type, if any
	ResourceID   string    // resource id, if any
	Version      string    // resource version id, if any
	Patient      string    // patient compartment id, when the access concerned one patient
	Patients     []string  // patient compartment ids, when it concerned several (see SetPatients)
	Outcome      string    // e.g. "allowed", "denied", "error"
	Purpose      string    // purpose of use
	RequestID    string    // request id, to join with operational logs
	Query        []string  // search parameter NAMES only, never values
	Detail       string    // short machine-readable code
	// Asked are the patient ids a request named in its criteria (a search's
	// patient or subject), whatever its answer held: a search the caller's
	// reach emptied still shows whom it was about (see SetAsked).
	Asked []string
	// Token identifies the bearer token the request presented: a keyed
	// hash of its jti, never the token, so that one token's uses can be
	// correlated across sources.
	Token string
}

// field names in their fixed order; the position in this list is the order
// in the encoding. query is handled separately between request and detail,
// and patients (version 2) right after patient.
var stringKeys = [...]string{
	"actor", "client", "source", "action", "resourceType", "resourceId",
	"version", "patient", "outcome", "purpose", "requestId",
}

// patientKey and requestKey are the positions of "patient" and
// "requestId" in stringKeys.
const (
	patientKey = 7
	requestKey = 10
)

func (e *Entry) stringFields() [len(stringKeys)]*string {
	return [...]*string{
		&e.Actor, &e.Client, &e.Source, &e.Action, &e.ResourceType, &e.ResourceID,
		&e.Version, &e.Patient, &e.Outcome, &e.Purpose, &e.RequestID,
	}
}

// Encode returns the canonical encoding of e: one JSON object with the keys
// v, time, actor, client, source, action, resourceType, resourceId,
// version, patient, outcome, purpose, requestId, query, detail in that
// order, no insignificant whitespace, every key present; when Patients
// names anyone, v is 2 and the key patients follows patient, holding
// [CanonicalPatients] of Patients. Strings are made valid UTF-8 and
// bounded (see [MaxField]), and every control, line-separator,
// bidirectional-formatting or byte-order character in them is replaced by
// U+FFFD: whatever a caller put in an entry, no such character is stored,
// so none can rewrite what a terminal, log viewer or report shows when the
// entry is read back. Encode fails only for a zero time or a year outside
// 1..9999.
func (e Entry) Encode() ([]byte, error) {
	return e.cleaned().appendEncoding(make([]byte, 0, 512))
}

// cleaned returns e with every string passed through [Clean].
func (e Entry) cleaned() Entry {
	for _, p := range e.stringFields() {
		*p = Clean(*p)
	}
	e.Detail = Clean(e.Detail)
	e.Query = cleanAll(e.Query)
	e.Patients = cleanAll(e.Patients)
	e.Asked = cleanAll(e.Asked)
	e.Token = Clean(e.Token)
	return e
}

// Clean returns s as [Entry.Encode] stores it, before bounding: each
// control character (C0, DEL, C1), line or paragraph separator,
// bidirectional formatting character and byte order mark replaced by
// U+FFFD. s itself comes back when it has none.
func Clean(s string) string {
	i := strings.IndexFunc(s, mustEscape)
	if i < 0 {
		return s
	}
	return s[:i] + strings.Map(func(r rune) rune {
		if mustEscape(r) {
			return utf8.RuneError
		}
		return r
	}, s[i:])
}

// StoredField returns a string field's value as [Entry.Encode] writes it
// and [DecodeEntry] reads it back: passed through [Clean], made valid
// UTF-8 and bounded to [MaxField].
func StoredField(s string) string { return bound(Clean(s), MaxField) }

// cleanAll is Clean for each string of l, copying l only when one changes.
func cleanAll(l []string) []string {
	for i, s := range l {
		if c := Clean(s); c != s {
			out := slices.Clone(l)
			for k := i; k < len(out); k++ {
				out[k] = Clean(out[k])
			}
			return out
		}
	}
	return l
}

func (e Entry) appendEncoding(b []byte) ([]byte, error) {
	if e.Time.IsZero() {
		return nil, errors.New("ledger: entry has no time")
	}
	t := e.Time.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("ledger: entry time year %d out of range", y)
	}
	patients, _ := canonicalPatients(e.Patients)
	asked := canonicalAsked(e.Asked)
	token := bound(e.Token, MaxField)
	version := formatV1
	switch {
	case len(asked) > 0 || token != "":
		version = formatV3
	case len(patients) > 0:
		version = formatV2
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, timeLayout)
	b = append(b, '"')
	for i, p := range e.stringFields() {
		b = append(b, ',', '"')
		b = append(b, stringKeys[i]...)
		b = append(b, '"', ':')
		b = appendString(b, bound(*p, MaxField))
		if i == patientKey && version >= formatV2 {
			b = appendList(append(b, `,"patients":`...), patients)
			if version == formatV3 {
				b = appendList(append(b, `,"asked":`...), asked)
			}
		}
		if i == requestKey && version == formatV3 {
			b = appendString(append(b, `,"token":`...), token)
		}
	}
	b = append(b, `,"query":[`...)
	for i, q := range boundQuery(e.Query) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, q)
	}
	b = append(b, `],"detail":`...)
	b = appendString(b, bound(e.Detail, MaxField))
	b = append(b, '}')
	return b, nil
}

// appendList appends l as a JSON array of strings.
func appendList(b []byte, l []string) []byte {
	b = append(b, '[')
	for k, s := range l {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// bound makes s valid UTF-8 and at most max bytes long, cutting at a rune
// boundary and ending a cut value with TruncatedMarker.
func bound(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max - len(TruncatedMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMarker
}

// boundQuery bounds each name and the number of names; a cut list ends with
// a marker naming how many names were dropped.
func boundQuery(q []string) []string {
	out := make([]string, 0, min(len(q), MaxQuery))
	for i, name := range q {
		if i == MaxQuery-1 && len(q) > MaxQuery {
			out = append(out, fmt.Sprintf("%s%d more", TruncatedMarker, len(q)-i))
			break
		}
		out = append(out, bound(name, MaxQueryName))
	}
	return out
}

// CanonicalPatients returns the list of patient ids that [Entry.Encode]
// writes for ids: each id passed through [Clean], made valid UTF-8 and cut
// to [MaxPatientID] bytes like other strings, empty ids dropped, sorted bytewise, duplicates
// dropped, and at most the first [MaxPatients]. It returns nil for an empty
// list, and ids itself when ids is already canonical.
func CanonicalPatients(ids []string) []string {
	out, _ := canonicalPatients(cleanAll(ids))
	return out
}

// canonicalPatients is CanonicalPatients, also returning the number of
// distinct ids before the cut to MaxPatients.
func canonicalPatients(ids []string) ([]string, int) {
	if len(ids) == 0 {
		return nil, 0
	}
	if isCanonicalPatients(ids) {
		return ids, len(ids)
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = bound(id, MaxPatientID); id != "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	n := len(out)
	if n == 0 {
		return nil, 0
	}
	return out[:min(n, MaxPatients)], n
}

func isCanonicalPatients(ids []string) bool {
	if len(ids) > MaxPatients {
		return false
	}
	for i, id := range ids {
		if id == "" || len(id) > MaxPatientID || !utf8.ValidString(id) || (i > 0 && ids[i-1] >= id) {
			return false
		}
	}
	return true
}

// canonicalAsked is Asked as Encode writes it: like CanonicalPatients, at
// most MaxAsked ids.
func canonicalAsked(ids []string) []string {
	out, _ := canonicalPatients(ids)
	return out[:min(len(out), MaxAsked)]
}

// SetAsked records the patient ids a request named in its criteria, in any
// order, with repeats and empty ids; Encode keeps the first [MaxAsked] in
// sort order.
func (e *Entry) SetAsked(ids []string) {
	e.Asked = slices.Clone(canonicalAsked(cleanAll(ids)))
}

// PatientsTruncated starts the flag that [Entry.SetPatients] adds to
// Detail when an access disclosed more than [MaxPatients] patients'
// data; the number of distinct patients follows it.
const PatientsTruncated = "patients-truncated:"

// SetPatients records whose data an access disclosed, from the patient
// compartment ids of everything in its answer, in any order, with repeats,
// and with "" for resources outside any compartment. It sets Patient and
// Patients (both are replaced): no patient leaves both empty; one patient
// goes to Patient, as for a read; two or more go to Patients as
// [CanonicalPatients] puts them, with Patient empty. An entry is then
// findable under every patient it names. Beyond [MaxPatients] patients the
// first MaxPatients in sort order are kept and Detail gets the flag
// [PatientsTruncated] followed by the number of distinct patients, after
// a space when Detail is not empty.
func (e *Entry) SetPatients(ids []string) {
	ps, n := canonicalPatients(ids)
	e.Patient, e.Patients = "", nil
	switch {
	case n == 1:
		e.Patient = ps[0]
	case n > 1:
		e.Patients = slices.Clone(ps)
	}
	if n > MaxPatients {
		flag := PatientsTruncated + strconv.Itoa(n)
		if e.Detail != "" {
			flag = " " + flag
		}
		e.Detail += flag
	}
}

// mustEscape reports whether r is written as a \u escape: controls (C0,
// DEL, C1), line and paragraph separators, bidirectional formatting and the
// byte order mark. Such characters could rewrite what a terminal or a log
// viewer shows.
func mustEscape(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x200e, r == 0x200f, r == 0x2028, r == 0x2029,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendString appends s, which must be valid UTF-8, as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case mustEscape(rune(c)):
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if mustEscape(r) {
			b = append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// errNotCanonical is wrapped by every DecodeEntry failure.
var errNotCanonical = errors.New("ledger: entry is not in canonical form")

// DecodeEntry parses an encoded entry. It accepts exactly the outputs of
// [Entry.Encode], and the escaped control and formatting characters that
// entries written before Encode replaced them may hold: unknown or missing
// fields, duplicates, other key orders, whitespace, other escapes, other
// time forms, unsupported versions, a version 2 entry with an empty
// patients list, and patients unsorted, repeated or past their bounds are
// all rejected, so every accepted b is the one encoding of its entry, and
// Encode(DecodeEntry(b)) == b for every b that holds none of those
// characters.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes exceeds %d", errNotCanonical, len(b), MaxEntrySize)
	}
	d := decoder{in: b}
	e, err := d.entry()
	if err != nil {
		return Entry{}, err
	}
	if d.pos != len(b) {
		return Entry{}, fmt.Errorf("%w: trailing data at byte %d", errNotCanonical, d.pos)
	}
	// The parser above is permissive in details (escape forms, values past
	// their bounds); re-encoding and comparing makes acceptance exact.
	var buf [1024]byte
	again, err := e.appendEncoding(buf[:0])
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", errNotCanonical, err)
	}
	if !bytes.Equal(again, b) {
		return Entry{}, errNotCanonical
	}
	return e, nil
}

type decoder struct {
	in  []byte
	pos int
}

func (d *decoder) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errNotCanonical, what, d.pos)
}

// literal consumes s or fails.
func (d *decoder) literal(s string) error {
	if !bytes.HasPrefix(d.in[d.pos:], []byte(s)) {
		return d.fail("expected " + strconv.Quote(s))
	}
	d.pos += len(s)
	return nil
}

func (d *decoder) entry() (Entry, error) {
	var e Entry
	if err := d.literal(`{"v":`); err != nil {
		return Entry{}, err
	}
	var version int
	switch {
	case d.literal("1") == nil:
		version = formatV1
	case d.literal("2") == nil:
		version = formatV2
	case d.literal("3") == nil:
		version = formatV3
	default:
		return Entry{}, d.fail("unsupported version")
	}
	if err := d.literal(`,"time":`); err != nil {
		return Entry{}, err
	}
	ts, err := d.str()
	if err != nil {
		return Entry{}, err
	}
	if e.Time, err = time.Parse(timeLayout, ts); err != nil {
		return Entry{}, d.fail("bad time")
	}
	for i, p := range e.stringFields() {
		if err := d.literal(`,"` + stringKeys[i] + `":`); err != nil {
			return Entry{}, err
		}
		if *p, err = d.str(); err != nil {
			return Entry{}, err
		}
		if i == patientKey && version >= formatV2 {
			if e.Patients, err = d.list(`,"patients":[`, MaxPatients, "patients"); err != nil {
				return Entry{}, err
			}
			if version == formatV3 {
				if e.Asked, err = d.list(`,"asked":[`, MaxAsked, "asked ids"); err != nil {
					return Entry{}, err
				}
			}
		}
		if i == requestKey && version == formatV3 {
			if err := d.literal(`,"token":`); err != nil {
				return Entry{}, err
			}
			if e.Token, err = d.str(); err != nil {
				return Entry{}, err
			}
		}
	}
	if err := d.literal(`,"query":[`); err != nil {
		return Entry{}, err
	}
	if e.Query, err = d.strs(MaxQuery, "query names"); err != nil {
		return Entry{}, err
	}
	if err := d.literal(`],"detail":`); err != nil {
		return Entry{}, err
	}
	if e.Detail, err = d.str(); err != nil {
		return Entry{}, err
	}
	if err := d.literal("}"); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// list parses open, then at most max comma-separated strings, then ']'.
func (d *decoder) list(open string, max int, what string) ([]string, error) {
	if err := d.literal(open); err != nil {
		return nil, err
	}
	l, err := d.strs(max, what)
	if err != nil {
		return nil, err
	}
	return l, d.literal("]")
}

// strs parses comma-separated strings up to a ']', at most max of them.
func (d *decoder) strs(max int, what string) ([]string, error) {
	var out []string
	for i := 0; d.pos < len(d.in) && d.in[d.pos] != ']'; i++ {
		if i > 0 {
			if err := d.literal(","); err != nil {
				return nil, err
			}
		}
		if i >= max {
			return nil, d.fail("too many " + what)
		}
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// str parses a JSON string with the escapes appendString writes.
func (d *decoder) str() (string, error) {
	if err := d.literal(`"`); err != nil {
		return "", err
	}
	start := d.pos
	// Fast path: no escapes.
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		if c == '"' {
			s := string(d.in[start:d.pos])
			d.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.pos++
	}
	out := append([]byte(nil), d.in[start:d.pos]...)
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(out), nil
		case c < 0x20:
			return "", d.fail("raw control character")
		case c != '\\':
			out = append(out, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.in) {
			break
		}
		esc := d.in[d.pos+1]
		d.pos += 2
		switch esc {
		case '"', '\\':
			out = append(out, esc)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.pos+4 > len(d.in) {
				return "", d.fail("short \\u escape")
			}
			v, err := strconv.ParseUint(string(d.in[d.pos:d.pos+4]), 16, 32)
			if err != nil {
				return "", d.fail("bad \\u escape")
			}
			d.pos += 4
			out = utf8.AppendRune(out, rune(v)) // #nosec G115 -- v is four hex digits, at most 0xFFFF
		default:
			return "", d.fail("unknown escape")
		}
	}
	return "", d.fail("unterminated string")
}

// OutcomeOf is the outcome an entry records for an interaction answered
// with HTTP status code: success, denied (401, 403, or denied is set: an
// access outside the caller's reach answered as an unknown id), not-found
// (404, 410), invalid (any other 4xx) or error (5xx).
func OutcomeOf(code int, denied bool) string {
	switch {
	case denied:
		return "denied"
	case code < 400:
		return "success"
	case code == 401, code == 403:
		return "denied"
	case code == 404, code == 410:
		return "not-found"
	case code < 500:
		return "invalid"
	}
	return "error"
}
