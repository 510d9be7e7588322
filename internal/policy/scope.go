package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupportedScope marks a scope string that is well formed but names
// something Ward does not grant yet: SMART v2 query-restricted scopes
// ("patient/Observation.rs?category=laboratory"). ParseScope still returns
// the parsed Scope alongside it so a caller may keep or report it; such a
// scope grants nothing in Decide.
var ErrUnsupportedScope = errors.New("policy: unsupported scope")

// Scope is one SMART App Launch resource scope, for example
// "system/Patient.rs". A Scope with a non-empty Query is a query-restricted
// v2 scope; it is parsed so it can be reported, but it grants nothing.
type Scope struct {
	Context                              string // "system", "user" or "patient"
	Type                                 string // a resource type name, or "*" for every type
	Create, Read, Update, Delete, Search bool
	Query                                string // the restriction after '?', without the '?'; "" when unrestricted
}

// maxScopeLen bounds a scope string: far above any real resource type, far
// below anything that costs work.
const maxScopeLen = 256

// ParseScope parses a SMART App Launch resource scope, v2 or v1:
//
//	v2: context "/" type "." letters ["?" query], letters a non-empty subset
//	    of "cruds" in that order, each at most once
//	v1: context "/" type "." ("read" | "write" | "*"), where read = rs,
//	    write = cud and * = cruds
//
// Context is system, user or patient; type is a resource type name or "*".
// Non-resource scopes (openid, launch, offline_access, ...) are not
// resource scopes and are rejected. A query-restricted scope is returned
// together with an error wrapping ErrUnsupportedScope.
func ParseScope(s string) (Scope, error) {
	if len(s) == 0 || len(s) > maxScopeLen {
		return Scope{}, fmt.Errorf("policy: scope length %d out of range", len(s))
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, errors.New("policy: scope lacks a context")
	}
	switch ctx {
	case "system", "user", "patient":
	default:
		return Scope{}, errors.New("policy: scope context is not system, user or patient")
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, errors.New("policy: scope lacks permissions")
	}
	if typ != "*" && !validType(typ) {
		return Scope{}, errors.New("policy: scope names an invalid resource type")
	}
	sc := Scope{Context: ctx, Type: typ}
	perms, query, restricted := strings.Cut(perms, "?")
	switch perms {
	case "read":
		sc.Read, sc.Search = true, true
	case "write":
		sc.Create, sc.Update, sc.Delete = true, true, true
	case "*":
		sc.Create, sc.Read, sc.Update, sc.Delete, sc.Search = true, true, true, true, true
	default:
		if err := sc.setLetters(perms); err != nil {
			return Scope{}, err
		}
		if restricted {
			if !validQuery(query) {
				return Scope{}, errors.New("policy: scope has a malformed query restriction")
			}
			sc.Query = query
			return sc, fmt.Errorf("policy: query-restricted scopes grant nothing yet: %w", ErrUnsupportedScope)
		}
		return sc, nil
	}
	if restricted {
		return Scope{}, errors.New("policy: v1 scopes cannot carry a query restriction")
	}
	return sc, nil
}

// setLetters applies v2 permission letters, which must appear in c,r,u,d,s
// order, each at most once.
func (s *Scope) setLetters(p string) error {
	if p == "" {
		return errors.New("policy: scope has no permissions")
	}
	const order = "cruds"
	next := 0
	for i := 0; i < len(p); i++ {
		j := strings.IndexByte(order[next:], p[i])
		if j < 0 {
			return errors.New("policy: scope permissions are not a subset of cruds in order")
		}
		next += j + 1
		switch p[i] {
		case 'c':
			s.Create = true
		case 'r':
			s.Read = true
		case 'u':
			s.Update = true
		case 'd':
			s.Delete = true
		case 's':
			s.Search = true
		}
	}
	return nil
}

// validQuery accepts a non-empty "name=value(&name=value)*" restriction of
// printable ASCII without spaces (scopes are space-separated on the wire).
func validQuery(q string) bool {
	if q == "" {
		return false
	}
	for _, pair := range strings.Split(q, "&") {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" || value == "" {
			return false
		}
	}
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] >= 0x7f || q[i] == '?' {
			return false
		}
	}
	return true
}

// validType reports whether t has the shape of a FHIR resource type name:
// an upper-case ASCII letter followed by up to 63 ASCII letters or digits. It
// does not check that the type exists in R4.
func validType(t string) bool {
	if len(t) == 0 || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// String returns the canonical SMART v2 form, e.g. "system/Patient.rs".
// v1 inputs come out in v2 form ("system/*.read" becomes "system/*.rs").
// The zero Scope, which grants nothing, prints as "".
func (s Scope) String() string {
	letters := s.letters()
	if s.Context == "" || s.Type == "" || letters == "" {
		return ""
	}
	out := s.Context + "/" + s.Type + "." + letters
	if s.Query != "" {
		out += "?" + s.Query
	}
	return out
}

func (s Scope) letters() string {
	var b [5]byte
	n := 0
	for _, f := range [...]struct {
		on bool
		c  byte
	}{{s.Create, 'c'}, {s.Read, 'r'}, {s.Update, 'u'}, {s.Delete, 'd'}, {s.Search, 's'}} {
		if f.on {
			b[n] = f.c
			n++
		}
	}
	return string(b[:n])
}

// AuditType is the resource type of audit data: the AuditEvent view of
// the ledger, and the ledger endpoints, which are decided as reads of it.
const AuditType = "AuditEvent"

// Covers reports whether s grants at least everything o grants: the same
// context (a system scope does not cover a patient scope: they are checked
// against different things), s's type is o's type or "*" (a wildcard
// covers every type but AuditType), s's permissions include o's, and s is
// unrestricted or carries exactly o's restriction. A zero o (no
// permissions) is covered by nothing, so an empty request never passes as
// covered.
//
// Audit data needs a scope that names it (separation of duties): a
// service given system/*.rs to do its clinical work does not read who
// accessed what, and a client registered with a wildcard cannot ask for
// system/AuditEvent.rs either.
func (s Scope) Covers(o Scope) bool {
	if o.letters() == "" || s.Context != o.Context {
		return false
	}
	if s.Type != o.Type && (s.Type != "*" || o.Type == AuditType) {
		return false
	}
	if s.Query != "" && s.Query != o.Query {
		return false
	}
	return (s.Create || !o.Create) && (s.Read || !o.Read) && (s.Update || !o.Update) &&
		(s.Delete || !o.Delete) && (s.Search || !o.Search)
}
