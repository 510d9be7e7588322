package ledger

import (
	"bytes"
	"errors"
	"fmt"
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
	// MaxEntrySize bounds an encoded entry; DecodeEntry rejects larger input
	// before parsing. Every escaped character takes at most 6 bytes.
	MaxEntrySize = 1 << 17
)

// TruncatedMarker ends a string value that Encode shortened to its bound.
const TruncatedMarker = "...[truncated]"

// formatVersion is the "v" field of every encoded entry.
const formatVersion = 1

// timeLayout is the only accepted time form: UTC, nanoseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Entry is one audit event. It carries opaque identifiers only, never PHI
// values: callers put ids, codes and parameter names in it.
type Entry struct {
	Time         time.Time // when the access was decided; stored as UTC
	Actor        string    // authenticated subject (user or service id)
	Client       string    // OAuth2 client id or certificate identity
	Source       string    // network address of the caller
	Action       string    // e.g. "read", "search", "create", "login"
	ResourceType string    // FHIR resource type, if any
	ResourceID   string    // resource id, if any
	Version      string    // resource version id, if any
	Patient      string    // patient compartment id, if any
	Outcome      string    // e.g. "allowed", "denied", "error"
	Purpose      string    // purpose of use
	RequestID    string    // request id, to join with operational logs
	Query        []string  // search parameter NAMES only, never values
	Detail       string    // short machine-readable code
}

// field names in their fixed order; the position in this list is the order
// in the encoding. query is handled separately between request and detail.
var stringKeys = [...]string{
	"actor", "client", "source", "action", "resourceType", "resourceId",
	"version", "patient", "outcome", "purpose", "requestId",
}

func (e *Entry) stringFields() [len(stringKeys)]*string {
	return [...]*string{
		&e.Actor, &e.Client, &e.Source, &e.Action, &e.ResourceType, &e.ResourceID,
		&e.Version, &e.Patient, &e.Outcome, &e.Purpose, &e.RequestID,
	}
}

// Encode returns the canonical encoding of e: one JSON object with the keys
// v, time, actor, client, source, action, resourceType, resourceId,
// version, patient, outcome, purpose, requestId, query, detail in that
// order, no insignificant whitespace, every key present. Strings are made
// valid UTF-8, bounded (see [MaxField]) and escaped so that no control,
// line-separator or bidirectional-formatting character appears raw.
// Encode fails only for a zero time or a year outside 1..9999.
func (e Entry) Encode() ([]byte, error) {
	return e.appendEncoding(make([]byte, 0, 512))
}

func (e Entry) appendEncoding(b []byte) ([]byte, error) {
	if e.Time.IsZero() {
		return nil, errors.New("ledger: entry has no time")
	}
	t := e.Time.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("ledger: entry time year %d out of range", y)
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, formatVersion, 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, timeLayout)
	b = append(b, '"')
	for i, p := range e.stringFields() {
		b = append(b, ',', '"')
		b = append(b, stringKeys[i]...)
		b = append(b, '"', ':')
		b = appendString(b, bound(*p, MaxField))
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
// [Entry.Encode]: unknown or missing fields, duplicates, other key orders,
// whitespace, other escapes, other time forms and unsupported versions are
// all rejected, so Encode(DecodeEntry(b)) == b for every accepted b.
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
	if err := d.literal(`{"v":1,"time":`); err != nil {
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
	}
	if err := d.literal(`,"query":[`); err != nil {
		return Entry{}, err
	}
	for i := 0; d.pos < len(d.in) && d.in[d.pos] != ']'; i++ {
		if i > 0 {
			if err := d.literal(","); err != nil {
				return Entry{}, err
			}
		}
		if i >= MaxQuery {
			return Entry{}, d.fail("too many query names")
		}
		q, err := d.str()
		if err != nil {
			return Entry{}, err
		}
		e.Query = append(e.Query, q)
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
			out = utf8.AppendRune(out, rune(v))
		default:
			return "", d.fail("unknown escape")
		}
	}
	return "", d.fail("unterminated string")
}
