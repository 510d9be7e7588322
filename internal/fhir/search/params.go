package search

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
)

// MaxParams bounds the name=value pairs of one query string or form body.
const MaxParams = 1000

// ParseParams decodes a URL query string (the raw query, without '?') or
// an application/x-www-form-urlencoded body strictly, where net/url's
// parser would silently drop what it cannot read and leave a search with a
// filter missing (catalogue C9). Every error is a *QueryError naming the
// parameter:
//   - a pair holding a ';' (net/url drops such pairs; FHIR does not use ';'
//     as a separator, and a literal one is sent escaped, %3B);
//   - a '%' not followed by two hexadecimal digits;
//   - an empty name, or a name outside [A-Za-z0-9_.:$-] (FHIR's names,
//     modifiers and chains use no other characters);
//   - a name or value that does not decode to text fhir.TextProblem
//     accepts (invalid UTF-8, control characters, bidi overrides);
//   - a repeated parameter that FHIR (or Ward) allows only once
//     (SingleValued);
//   - more than MaxParams pairs.
//
// '+' decodes to a space, as in every form encoding. Empty pairs ("a=1&&b=2",
// a trailing '&') are skipped. Values keep their order.
func ParseParams(raw string) (url.Values, error) {
	out := url.Values{}
	n := 0
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		if n++; n > MaxParams {
			return nil, qerr("", "more than "+strconv.Itoa(MaxParams)+" parameters")
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, nameOK := unescapeQuery(rawName)
		if !nameOK {
			return nil, qerr(rawName, "malformed % escape in the name")
		}
		if strings.IndexByte(pair, ';') >= 0 {
			return nil, qerr(name, "contains a ';': send a literal semicolon escaped, as %3B")
		}
		if reason := nameProblem(name); reason != "" {
			return nil, qerr(name, reason)
		}
		value, ok := unescapeQuery(rawValue)
		if !ok {
			return nil, qerr(name, "malformed % escape in the value")
		}
		if reason := fhir.TextProblem(value); reason != "" {
			return nil, qerr(name, "the value "+reason)
		}
		if base, _, _ := strings.Cut(name, ":"); SingleValued(base) && hasBase(out, base) {
			return nil, qerr(name, "may appear only once")
		}
		out[name] = append(out[name], value)
	}
	return out, nil
}

// hasBase reports whether v holds base with any modifier.
func hasBase(v url.Values, base string) bool {
	for k := range v {
		if b, _, _ := strings.Cut(k, ":"); b == base {
			return true
		}
	}
	return false
}

// SingleValued reports whether a parameter (without its modifier) may
// appear at most once in a query: FHIR's result parameters but _include
// and _revinclude, _format and _pretty, history's _since and _at, and
// Ward's own paging parameters.
func SingleValued(name string) bool {
	switch name {
	case "_count", "_offset", "_page", "_sort", "_total", "_summary", "_elements", "_contained", "_containedType",
		"_format", "_pretty", "_since", "_at":
		return true
	}
	return false
}

// nameProblem says why a decoded parameter name is refused, or "".
func nameProblem(name string) string {
	if name == "" {
		return "a parameter needs a name"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isLetter(c) || isDigit(c) || strings.IndexByte("_.:$-", c) >= 0) {
			return "malformed parameter name"
		}
	}
	return ""
}

// unescapeQuery decodes one name or value of a query: %XX escapes and '+'
// for a space. ok is false when a '%' is not followed by two hexadecimal
// digits. The result may be any bytes: callers check it is text.
func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
