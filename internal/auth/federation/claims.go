package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of every JSON document the package reads.
const maxJSONDepth = 16

// checkJSON accepts b only if it is one JSON object in valid UTF-8, nested
// at most maxJSONDepth deep, with no duplicate key in any object. Go's
// decoder silently keeps the last of duplicate keys; another parser may
// keep the first, so a duplicate is refused rather than interpreted.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []jsonFrame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 || first {
				return errors.New("truncated JSON")
			}
			return nil
		}
		if err != nil {
			return errors.New("malformed JSON")
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("not a JSON object")
			}
			first = false
		} else if len(stack) == 0 {
			return errors.New("trailing data after JSON object")
		}
		if n := len(stack); n > 0 && stack[n-1].isObject && stack[n-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				markValue(stack)
				continue
			}
			key := tok.(string) // the decoder guarantees a string key here
			if stack[n-1].keys[key] {
				return errors.New("duplicate key") // not named: it is the sender's text
			}
			stack[n-1].keys[key] = true
			stack[n-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonFrame{keys: map[string]bool{}, isObject: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, jsonFrame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			markValue(stack)
		default:
			markValue(stack)
		}
		if len(stack) > maxJSONDepth {
			return errors.New("JSON nested too deep")
		}
	}
}

// jsonFrame is one open object or array in checkJSON.
type jsonFrame struct {
	keys     map[string]bool // an object's keys so far
	isObject bool
	wantKey  bool // an object expects a key (or its end) next
}

// markValue records that the innermost object got a member's value.
func markValue(stack []jsonFrame) {
	if n := len(stack); n > 0 && stack[n-1].isObject {
		stack[n-1].wantKey = true
	}
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// claimSet is a token's claims, each kept raw until it is asked for with
// the type it must have.
type claimSet map[string]json.RawMessage

// parseClaims decodes a JWT claims set strictly (see checkJSON).
func parseClaims(b []byte) (claimSet, error) {
	if err := checkJSON(b); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	var c claimSet
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, errors.New("claims: malformed JSON")
	}
	return c, nil
}

// lookup finds a claim by name or, for a name starting with '/', by JSON
// Pointer.
func (c claimSet) lookup(name string) (json.RawMessage, bool) {
	if !strings.HasPrefix(name, "/") {
		v, ok := c[name]
		return v, ok && !isNull(v)
	}
	segs, err := pointer(name)
	if err != nil {
		return nil, false
	}
	cur := map[string]json.RawMessage(c)
	for i, s := range segs {
		v, ok := cur[s]
		if !ok || isNull(v) {
			return nil, false
		}
		if i == len(segs)-1 {
			return v, true
		}
		cur = nil
		if err := json.Unmarshal(v, &cur); err != nil || cur == nil {
			return nil, false
		}
	}
	return nil, false
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// pointer splits an RFC 6901 JSON Pointer into its unescaped segments.
// Array indices are not supported: claims are navigated by member name.
func pointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("a JSON Pointer starts with '/'")
	}
	segs := strings.Split(p[1:], "/")
	if len(segs) > 8 {
		return nil, errors.New("JSON Pointer too deep")
	}
	for i, s := range segs {
		if s == "" {
			return nil, errors.New("empty JSON Pointer segment")
		}
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(s, "~0", ""), "~1", ""), "~") {
			return nil, errors.New("bad escape in JSON Pointer")
		}
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

// str returns a string claim; absent or null is "", another type an error.
func (c claimSet) str(name string) (string, error) {
	v, ok := c.lookup(name)
	if !ok {
		return "", nil
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", fmt.Errorf("claim %s is not a string", truncate(name))
	}
	return s, nil
}

// maxClaimValues bounds an array claim (groups, aud, amr).
const maxClaimValues = 1024

// strs returns a claim that is a string or an array of strings.
func (c claimSet) strs(name string) ([]string, error) {
	v, ok := c.lookup(name)
	if !ok {
		return nil, nil
	}
	if len(v) > 0 && v[0] == '"' {
		s, err := c.str(name)
		return []string{s}, err
	}
	var out []string
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &out) != nil {
		return nil, fmt.Errorf("claim %s is not a string or an array of strings", truncate(name))
	}
	if len(out) > maxClaimValues {
		return nil, fmt.Errorf("claim %s has too many values", truncate(name))
	}
	return out, nil
}

// arr returns a claim that must be an array of strings.
func (c claimSet) arr(name string) ([]string, error) {
	v, ok := c.lookup(name)
	if !ok {
		return nil, nil
	}
	if len(v) == 0 || v[0] != '[' {
		return nil, fmt.Errorf("claim %s is not an array", truncate(name))
	}
	return c.strs(name)
}

// latestDate bounds NumericDate claims: the year 10000.
const latestDate = 253402300800

// date returns a NumericDate claim (RFC 7519) in whole seconds, rounded
// down; absent is 0 with ok false.
func (c claimSet) date(name string) (sec int64, ok bool, err error) {
	v, present := c.lookup(name)
	if !present {
		return 0, false, nil
	}
	s := string(bytes.TrimSpace(v))
	if s == "" || !(s[0] >= '0' && s[0] <= '9') {
		return 0, false, fmt.Errorf("claim %s is not a non-negative number", name)
	}
	f, perr := strconv.ParseFloat(s, 64)
	if perr != nil || math.IsNaN(f) || f < 0 || f >= latestDate {
		return 0, false, fmt.Errorf("claim %s is out of range", name)
	}
	return int64(math.Floor(f)), true, nil
}
