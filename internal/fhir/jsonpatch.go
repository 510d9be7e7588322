package fhir

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// DefaultMaxPatchOps bounds the operations of one JSON Patch document when
// the caller gives no bound.
const DefaultMaxPatchOps = 100

// JSONPatch is a JSON Patch document (RFC 6902): operations applied in
// order to a resource, all or none. ParseJSONPatch reads one as strictly
// as Parse reads a resource; Apply applies it to a copy.
//
// What it does not do: decide whether the patched resource may be stored.
// The result is a resource like any sent to an update: the records
// service validates it, keeps its server-controlled elements and checks
// who may write it.
type JSONPatch struct {
	ops []patchOp
}

type patchOp struct {
	op       string
	path     []string // the pointer's reference tokens, unescaped
	from     []string // move and copy
	value    any      // add, replace and test
	hasValue bool
}

// patchOps are RFC 6902's operations, with the members each needs beyond
// "op" and "path".
var patchOps = map[string]string{
	"add": "value", "replace": "value", "test": "value",
	"remove": "", "move": "from", "copy": "from",
}

// ParseJSONPatch reads a JSON Patch document: an array of at most maxOps
// operations (DefaultMaxPatchOps when maxOps <= 0), each an object with
// "op", a JSON Pointer "path", and "value" or "from" as the operation
// needs. It is strict where RFC 6902 is lenient: a member an operation
// does not take is refused rather than ignored (a misspelt "vaule" would
// otherwise make a different patch), and so are duplicate members, null,
// and a pointer that is not RFC 6901 ("a/b", "/~2"). Values obey lim as
// a resource's do. Every error is an *Error naming the operation by its
// index, never its values.
func ParseJSONPatch(data []byte, lim Limits, maxOps int) (*JSONPatch, error) {
	lim = lim.withDefaults()
	if maxOps <= 0 {
		maxOps = DefaultMaxPatchOps
	}
	if len(data) > lim.MaxBytes {
		return nil, issueError(CodeTooLong, "", "patch exceeds "+strconv.Itoa(lim.MaxBytes)+" bytes")
	}
	d := &decoder{dec: jsontext.NewDecoder(bytes.NewReader(data)), lim: lim, rtype: "JSONPatch"}
	if k := d.dec.PeekKind(); k != '[' {
		if k == 0 {
			return nil, d.syntaxError(d.readErr())
		}
		return nil, issueError(CodeStructure, "JSONPatch", "a JSON Patch must be a JSON array of operations")
	}
	v, err := d.value(1, false)
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return nil, issueError(CodeStructure, "JSONPatch", "unexpected data after the patch")
	}
	list := v.([]any)
	if len(list) > maxOps {
		return nil, issueError(CodeTooCostly, "JSONPatch", "a patch may hold at most "+strconv.Itoa(maxOps)+" operations")
	}
	p := &JSONPatch{ops: make([]patchOp, 0, len(list))}
	for i, raw := range list {
		op, err := parsePatchOp(raw)
		if err != nil {
			return nil, issueError(CodeInvalid, "JSONPatch["+strconv.Itoa(i)+"]", err.Error())
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

type patchError string

func (e patchError) Error() string { return string(e) }

func parsePatchOp(raw any) (patchOp, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return patchOp{}, patchError("an operation must be a JSON object")
	}
	name, ok := m["op"].(string)
	if !ok {
		return patchOp{}, patchError(`"op" must be a string`)
	}
	needs, ok := patchOps[name]
	if !ok {
		return patchOp{}, patchError(`"op" must be add, remove, replace, move, copy or test`)
	}
	for k := range m {
		if k != "op" && k != "path" && k != needs {
			return patchOp{}, patchError(name + " takes no member " + strconv.Quote(safeKey(k)))
		}
	}
	op := patchOp{op: name}
	var err error
	if op.path, err = pointerMember(m, "path"); err != nil {
		return patchOp{}, err
	}
	switch needs {
	case "value":
		if op.value, op.hasValue = m["value"]; !op.hasValue {
			return patchOp{}, patchError(name + ` needs "value"`)
		}
	case "from":
		if op.from, err = pointerMember(m, "from"); err != nil {
			return patchOp{}, err
		}
		if name == "move" && len(op.from) < len(op.path) && prefixOf(op.from, op.path) {
			return patchOp{}, patchError(`move cannot move a value into itself ("from" is a prefix of "path")`)
		}
	}
	if len(op.path) == 0 && name != "test" {
		return patchOp{}, patchError(name + " cannot replace the whole resource (use an update)")
	}
	return op, nil
}

// pointerMember reads an RFC 6901 JSON Pointer member of an operation.
func pointerMember(m map[string]any, name string) ([]string, error) {
	s, ok := m[name].(string)
	if !ok {
		return nil, patchError(strconv.Quote(name) + " must be a JSON Pointer string")
	}
	tokens, ok := parsePointer(s)
	if !ok {
		return nil, patchError(strconv.Quote(name) + " is not a JSON Pointer (RFC 6901)")
	}
	return tokens, nil
}

// parsePointer splits an RFC 6901 pointer into its unescaped reference
// tokens: "" is the whole document, "/a~1b/0" is ["a/b", "0"]. A "~" not
// followed by 0 or 1 is malformed.
func parsePointer(s string) ([]string, bool) {
	if s == "" {
		return nil, true
	}
	if s[0] != '/' {
		return nil, false
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if !strings.Contains(p, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] != '~' {
				b.WriteByte(p[j])
				continue
			}
			if j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1') {
				return nil, false
			}
			if p[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		parts[i] = b.String()
	}
	return parts, true
}

func prefixOf(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// PatchTestFailed is the error of a test operation whose value is not
// the one at its path: the patch's own precondition.
type PatchTestFailed struct {
	Index int
}

func (e *PatchTestFailed) Error() string {
	return "fhir: JSON Patch operation " + strconv.Itoa(e.Index) + ": test failed"
}

// Apply applies the patch to a copy of r and returns the copy; r is not
// changed. An operation whose path does not exist (or, for add, whose
// parent does not) is an *Error naming it; a failed test is a
// *PatchTestFailed. The result's Type and ID are read from it again: the
// caller checks that they are the ones it expects.
func (p *JSONPatch) Apply(r *Resource) (*Resource, error) {
	var doc any = cloneMap(r.Object)
	for i, op := range p.ops {
		var err error
		doc, err = op.apply(doc)
		if err != nil {
			if _, ok := err.(*PatchTestFailed); ok {
				return nil, &PatchTestFailed{Index: i}
			}
			return nil, issueError(CodeInvalid, "JSONPatch["+strconv.Itoa(i)+"]", err.Error())
		}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, issueError(CodeStructure, "JSONPatch", "the patched resource is not a JSON object")
	}
	out := &Resource{Object: obj}
	out.Type, _ = obj["resourceType"].(string)
	out.ID, _ = obj["id"].(string)
	return out, nil
}

func (op patchOp) apply(doc any) (any, error) {
	switch op.op {
	case "add":
		return edit(doc, op.path, addAt(cloneValue(op.value)))
	case "remove":
		return edit(doc, op.path, removeAt)
	case "replace":
		return edit(doc, op.path, replaceAt(cloneValue(op.value)))
	case "move", "copy":
		v, err := get(doc, op.from)
		if err != nil {
			return nil, patchError(`"from": ` + err.Error())
		}
		v = cloneValue(v)
		if op.op == "move" {
			if doc, err = edit(doc, op.from, removeAt); err != nil {
				return nil, err
			}
		}
		return edit(doc, op.path, addAt(v))
	case "test":
		v, err := get(doc, op.path)
		if err != nil {
			return nil, err
		}
		if !jsonEqual(v, op.value) {
			return nil, &PatchTestFailed{}
		}
		return doc, nil
	}
	return nil, patchError("unknown operation")
}

// edit walks to the parent of path and lets f change it, returning the
// new parent (an array changes length, so its parent is updated too).
func edit(node any, path []string, f func(parent any, last string) (any, error)) (any, error) {
	if len(path) == 1 {
		return f(node, path[0])
	}
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[path[0]]
		if !ok {
			return nil, patchError("the path does not exist")
		}
		nc, err := edit(child, path[1:], f)
		if err != nil {
			return nil, err
		}
		n[path[0]] = nc
		return n, nil
	case []any:
		i, ok := arrayIndex(path[0], len(n)-1)
		if !ok {
			return nil, patchError("the path does not exist")
		}
		nc, err := edit(n[i], path[1:], f)
		if err != nil {
			return nil, err
		}
		n[i] = nc
		return n, nil
	}
	return nil, patchError("the path does not exist")
}

func get(node any, path []string) (any, error) {
	for _, tok := range path {
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, patchError("the path does not exist")
			}
			node = v
		case []any:
			i, ok := arrayIndex(tok, len(n)-1)
			if !ok {
				return nil, patchError("the path does not exist")
			}
			node = n[i]
		default:
			return nil, patchError("the path does not exist")
		}
	}
	return node, nil
}

func addAt(v any) func(any, string) (any, error) {
	return func(parent any, last string) (any, error) {
		switch n := parent.(type) {
		case map[string]any:
			n[last] = v
			return n, nil
		case []any:
			i := len(n)
			if last != "-" {
				var ok bool
				if i, ok = arrayIndex(last, len(n)); !ok {
					return nil, patchError("the array index is out of range")
				}
			}
			n = append(n, nil)
			copy(n[i+1:], n[i:])
			n[i] = v
			return n, nil
		}
		return nil, patchError("the parent of the path is not an object or array")
	}
}

func removeAt(parent any, last string) (any, error) {
	switch n := parent.(type) {
	case map[string]any:
		if _, ok := n[last]; !ok {
			return nil, patchError("the path does not exist")
		}
		delete(n, last)
		return n, nil
	case []any:
		i, ok := arrayIndex(last, len(n)-1)
		if !ok {
			return nil, patchError("the path does not exist")
		}
		return append(n[:i], n[i+1:]...), nil
	}
	return nil, patchError("the path does not exist")
}

func replaceAt(v any) func(any, string) (any, error) {
	return func(parent any, last string) (any, error) {
		switch n := parent.(type) {
		case map[string]any:
			if _, ok := n[last]; !ok {
				return nil, patchError("the path does not exist")
			}
			n[last] = v
			return n, nil
		case []any:
			i, ok := arrayIndex(last, len(n)-1)
			if !ok {
				return nil, patchError("the path does not exist")
			}
			n[i] = v
			return n, nil
		}
		return nil, patchError("the path does not exist")
	}
}

// arrayIndex reads an RFC 6901 array index, at most limit: decimal digits
// without a leading zero.
func arrayIndex(tok string, limit int) (int, bool) {
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i := 0
	for j := 0; j < len(tok); j++ {
		if tok[j] < '0' || tok[j] > '9' {
			return 0, false
		}
		i = i*10 + int(tok[j]-'0')
	}
	return i, i <= limit
}

// jsonEqual is RFC 6902's equality for test: same type, numbers equal as
// numbers, strings by their characters, objects by members regardless of
// order, arrays element by element.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		// As numbers: 1.0 is 1. (Not big.Rat: "1e999999999" would
		// allocate without bound.)
		fa, erra := strconv.ParseFloat(string(x), 64)
		fb, errb := strconv.ParseFloat(string(y), 64)
		return erra == nil && errb == nil && fa == fb
	}
	return a == b
}
