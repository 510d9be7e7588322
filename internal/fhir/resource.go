package fhir

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Marshal returns the resource as compact JSON: "resourceType" first, then
// members in byte order of their names, numbers verbatim. The output is
// deterministic.
func (r *Resource) Marshal() []byte {
	b := make([]byte, 0, 1024)
	return appendValue(b, r.Object, true)
}

func appendValue(b []byte, v any, top bool) []byte {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		first := true
		if rt, ok := v["resourceType"]; ok {
			b = appendString(b, "resourceType")
			b = append(b, ':')
			b = appendValue(b, rt, false)
			first = false
		}
		for _, k := range keys {
			if k == "resourceType" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, v[k], false)
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e, false)
		}
		return append(b, ']')
	case string:
		return appendString(b, v)
	case json.Number:
		return append(b, v...)
	case bool:
		return strconv.AppendBool(b, v)
	case nil:
		return append(b, "null"...)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	// Trees come from Parse or from this package; any other Go type is a
	// programming error, encoded as null rather than panicking.
	return append(b, "null"...)
}

func appendString(b []byte, s string) []byte {
	// Invalid UTF-8 cannot come from Parse; for other trees AppendQuote
	// substitutes replacement characters and reports an error we can ignore.
	out, _ := jsontext.AppendQuote(b, s)
	return out
}

// SetID sets the logical id (Object["id"] and ID).
func (r *Resource) SetID(id string) {
	r.ID = id
	r.Object["id"] = id
}

// SetMeta sets the server-controlled meta.versionId and meta.lastUpdated
// (UTC, RFC 3339 with milliseconds), keeping the other meta elements
// (security labels, tags, profiles, source).
func (r *Resource) SetMeta(versionID string, lastUpdated time.Time) {
	meta, ok := r.Object["meta"].(map[string]any)
	if !ok {
		meta = make(map[string]any)
	} else {
		meta = cloneMap(meta)
	}
	meta["versionId"] = versionID
	meta["lastUpdated"] = lastUpdated.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	r.Object["meta"] = meta
}

// Clone returns a deep copy of the resource.
func (r *Resource) Clone() *Resource {
	return &Resource{Type: r.Type, ID: r.ID, Object: cloneMap(r.Object)}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// ValidID reports whether id is a valid FHIR id: 1 to 64 characters from
// [A-Za-z0-9-.] (R4's regex), not made of dots alone. "." and ".." match
// the regex but are path segments, not names: in a URL they address
// another resource than the one they seem to, so Ward refuses them, and
// "..." with them.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	dots := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
		if c == '.' {
			dots++
		}
	}
	return dots < len(id)
}
