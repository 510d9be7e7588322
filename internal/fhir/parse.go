package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// Default limits, used for zero fields of Limits.
const (
	DefaultMaxBytes       = 4 << 20 // 4 MiB per resource
	DefaultMaxDepth       = 48
	DefaultMaxArrayLen    = 10000
	DefaultMaxStringBytes = 1 << 20
)

// Limits bound the work Parse does on one body. Zero fields take the defaults.
type Limits struct {
	MaxBytes       int // size of the whole body; default 4 MiB
	MaxDepth       int // nesting of objects and arrays; default 48
	MaxArrayLen    int // elements in one array; default 10,000
	MaxStringBytes int // bytes in one (unescaped) string; default 1 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxArrayLen <= 0 {
		l.MaxArrayLen = DefaultMaxArrayLen
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = DefaultMaxStringBytes
	}
	return l
}

// Resource is a decoded resource: a generic JSON tree. Objects are
// map[string]any, arrays []any, strings string, numbers json.Number (verbatim),
// booleans bool. null appears only as an element of an array (FHIR JSON uses it
// to align primitive arrays with their "_name" extension arrays).
//
// Type and ID mirror Object["resourceType"] and Object["id"]; use SetID to
// change the id so the two stay in step.
type Resource struct {
	Type   string
	ID     string
	Object map[string]any
}

// Parse decodes one resource strictly. It rejects bodies over lim.MaxBytes
// before reading them, nesting beyond lim.MaxDepth as soon as it is reached,
// duplicate member names, invalid UTF-8, trailing data, null members, and a
// missing, non-string or unknown resourceType. Every error is an *Error.
func Parse(data []byte, lim Limits) (*Resource, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, issueError(CodeTooLong, "", "body exceeds "+strconv.Itoa(lim.MaxBytes)+" bytes")
	}
	d := &decoder{
		dec: jsontext.NewDecoder(bytes.NewReader(data)),
		lim: lim,
	}
	if k := d.dec.PeekKind(); k != '{' {
		if k == 0 {
			return nil, d.syntaxError(d.readErr())
		}
		return nil, issueError(CodeStructure, "", "a resource must be a JSON object")
	}
	v, err := d.value(1, false)
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return nil, issueError(CodeStructure, "", "unexpected data after the resource")
	}
	obj := v.(map[string]any)
	rt, ok := obj["resourceType"]
	if !ok {
		return nil, issueError(CodeRequired, "resourceType", "resourceType is missing")
	}
	typ, ok := rt.(string)
	if !ok {
		return nil, issueError(CodeStructure, "resourceType", "resourceType must be a string")
	}
	if !IsResourceType(typ) {
		return nil, issueError(CodeNotSupp, "resourceType", "unknown resource type")
	}
	r := &Resource{Type: typ, Object: obj}
	if id, ok := obj["id"].(string); ok {
		r.ID = id
	}
	return r, nil
}

// decoder walks the token stream, building the tree and enforcing limits.
type decoder struct {
	dec   *jsontext.Decoder
	lim   Limits
	path  []pathSeg
	rtype string // resourceType of the root, once seen
}

func (d *decoder) where() string {
	root := d.rtype
	if root == "" {
		root = "Resource"
	}
	return pathString(root, d.path)
}

func (d *decoder) fail(code, diag string) *Error {
	return issueError(code, d.where(), diag)
}

func (d *decoder) readErr() error {
	_, err := d.dec.ReadToken()
	return err
}

// syntaxError maps a tokenizer error to an *Error without echoing input.
func (d *decoder) syntaxError(err error) *Error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			where := d.where() + "." + safeKey(se.JSONPointer.LastToken())
			return issueError(CodeStructure, where, "duplicate member name")
		}
		return issueError(CodeStructure, d.where(), "malformed JSON at byte offset "+strconv.FormatInt(se.ByteOffset, 10))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return issueError(CodeStructure, d.where(), "unexpected end of JSON")
	}
	return issueError(CodeStructure, d.where(), "malformed JSON")
}

// value reads one JSON value at the given depth (the root object is depth 1).
func (d *decoder) value(depth int, inArray bool) (any, error) {
	tok, err := d.dec.ReadToken()
	if err != nil {
		return nil, d.syntaxError(err)
	}
	switch tok.Kind() {
	case '{':
		if depth > d.lim.MaxDepth {
			return nil, d.fail(CodeTooCostly, "nesting deeper than "+strconv.Itoa(d.lim.MaxDepth))
		}
		obj := make(map[string]any)
		for {
			if d.dec.PeekKind() == '}' {
				if _, err := d.dec.ReadToken(); err != nil {
					return nil, d.syntaxError(err)
				}
				return obj, nil
			}
			kt, err := d.dec.ReadToken()
			if err != nil {
				return nil, d.syntaxError(err)
			}
			key := kt.String()
			d.path = append(d.path, pathSeg{key: key})
			v, err := d.value(depth+1, false)
			if err != nil {
				return nil, err
			}
			d.path = d.path[:len(d.path)-1]
			obj[key] = v
			if depth == 1 && key == "resourceType" {
				if s, ok := v.(string); ok && IsResourceType(s) {
					d.rtype = s
				}
			}
		}
	case '[':
		if depth > d.lim.MaxDepth {
			return nil, d.fail(CodeTooCostly, "nesting deeper than "+strconv.Itoa(d.lim.MaxDepth))
		}
		arr := make([]any, 0, 1)
		for i := 0; ; i++ {
			if d.dec.PeekKind() == ']' {
				if _, err := d.dec.ReadToken(); err != nil {
					return nil, d.syntaxError(err)
				}
				return arr, nil
			}
			if i >= d.lim.MaxArrayLen {
				return nil, d.fail(CodeTooCostly, "array longer than "+strconv.Itoa(d.lim.MaxArrayLen))
			}
			d.path = append(d.path, pathSeg{idx: i})
			v, err := d.value(depth+1, true)
			if err != nil {
				return nil, err
			}
			d.path = d.path[:len(d.path)-1]
			arr = append(arr, v)
		}
	case 'n':
		if !inArray {
			return nil, d.fail(CodeStructure, "null is not allowed here")
		}
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		s := tok.String()
		if len(s) > d.lim.MaxStringBytes {
			return nil, d.fail(CodeTooLong, "string longer than "+strconv.Itoa(d.lim.MaxStringBytes)+" bytes")
		}
		return s, nil
	case '0':
		return json.Number(tok.String()), nil
	}
	return nil, d.fail(CodeStructure, "malformed JSON")
}
