package fhir

import (
	"bytes"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// This file holds Mask.Apply: masking a resource's encoded JSON without
// decoding what it does not change.

var backslashU = []byte(`\u`)

// Apply removes masked elements from a resource's JSON, as Redact does,
// and reports whether it removed anything. When it did not, it returns body
// itself, without copying or decoding it: a body that names none of the
// mask's types (a Patient mask on an Observation that embeds no Patient)
// costs a few substring searches. Otherwise only the members of the root
// that a mask entry reaches, or that embed a masked type, are decoded and
// re-encoded (as Marshal would), and of an array member only the items
// that name a masked system; the rest is copied as it is. On Ward's stored
// bodies, which Marshal wrote, the result is exactly Marshal's encoding of
// the redacted resource.
//
// body must be a resource's valid JSON, as stored bodies are: Apply does
// not validate what it copies. A body whose members are not in Marshal's
// order, or that escapes characters as \u or \/, is decoded whole (Parse)
// and encoded again.
func (m Mask) Apply(body []byte) ([]byte, bool, error) {
	if m.Empty() {
		return body, false, nil
	}
	if m.mentionsRefSystem(body) && objectIdentifier(body) {
		return m.viaTree(body)
	}
	if len(m.types) == 0 {
		return body, false, nil
	}
	// Without \u and \/ escapes, a string equal to a type's name or a
	// system is encoded only quoted as it is: its absence proves the type
	// or system is not in the body.
	if bytes.Contains(body, backslashU) || bytes.Contains(body, escapedSlash) {
		return m.viaTree(body)
	}
	found := false
	for i := 0; i < len(m.types) && !found; i++ {
		found = bytes.Contains(body, m.types[i].quoted)
	}
	if !found {
		return body, false, nil
	}
	return m.splice(body)
}

// member is one member of the root object as it is in the body (name
// without its quotes, raw its value); out replaces the value when set.
type member struct {
	name []byte
	raw  []byte
	out  []byte
	drop bool
}

var errMaskSyntax = issueError(CodeStructure, "", "malformed JSON")

func (m Mask) splice(body []byte) ([]byte, bool, error) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return nil, false, errMaskSyntax
	}
	i = skipSpace(body, i+1)
	var (
		members = make([]member, 0, 24)
		rules   []maskRule
		changed bool
	)
	for i < len(body) && body[i] != '}' {
		if len(members) > 0 {
			if body[i] != ',' {
				return nil, false, errMaskSyntax
			}
			i = skipSpace(body, i+1)
		}
		end, ok := skipString(body, i)
		if !ok {
			return nil, false, errMaskSyntax
		}
		mb := member{name: body[i+1 : end-1]}
		i = skipSpace(body, end)
		if i == len(body) || body[i] != ':' {
			return nil, false, errMaskSyntax
		}
		i = skipSpace(body, i+1)
		if end, ok = skipValue(body, i); !ok {
			return nil, false, errMaskSyntax
		}
		mb.raw = body[i:end]
		i = skipSpace(body, end)
		if len(members) == 0 {
			if string(mb.name) != "resourceType" || len(mb.raw) < 2 || mb.raw[0] != '"' {
				return m.viaTree(body) // not Marshal's order
			}
			if mt := m.lookup(string(mb.raw[1 : len(mb.raw)-1])); mt != nil {
				rules = mt.rules
			}
			members = append(members, mb)
			continue
		}
		ch, err := m.spliceMember(&mb, rules)
		if err != nil {
			return nil, false, err
		}
		changed = changed || ch
		members = append(members, mb)
	}
	if i == len(body) || skipSpace(body, i+1) != len(body) {
		return nil, false, errMaskSyntax
	}
	if !changed {
		return body, false, nil
	}
	if err := labelMembers(&members); err != nil {
		return nil, false, err
	}
	out := make([]byte, 0, len(body)+96)
	out = append(out, '{')
	first := true
	for _, mb := range members {
		if mb.drop {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, mb.name...)
		out = append(out, '"', ':')
		if mb.out != nil {
			out = append(out, mb.out...)
		} else {
			out = append(out, mb.raw...)
		}
	}
	return append(out, '}'), true, nil
}

// spliceMember redacts root member mb with the root type's rules and the
// embedded resources' ones.
func (m Mask) spliceMember(mb *member, rules []maskRule) (bool, error) {
	var systems []*maskRule // system entries on this member
	tree := false           // entries that need the member decoded
	for i := range rules {
		r := &rules[i]
		p := r.path[0]
		switch {
		case len(r.path) == 1 && r.system == "" && (string(mb.name) == p ||
			len(mb.name) == len(p)+1 && mb.name[0] == '_' && string(mb.name[1:]) == p):
			mb.drop = true
			return true, nil
		case string(mb.name) != p:
		case len(r.path) == 1:
			systems = append(systems, r)
		default:
			tree = true
		}
	}
	if len(systems) > 0 && !tree && mb.raw[0] == '[' {
		return m.spliceItems(mb, systems)
	}
	if !tree && !mentionsSystem(mb.raw, systems) && !m.mentionsType(mb.raw) {
		return false, nil
	}
	return m.redactMember(mb, rules)
}

// spliceItems redacts an array member item by item: only items that name
// one of the systems, or a masked type, are decoded.
func (m Mask) spliceItems(mb *member, systems []*maskRule) (bool, error) {
	raw := mb.raw
	var (
		items   [][]byte
		changed bool
	)
	i := skipSpace(raw, 1)
	for n := 0; i < len(raw) && raw[i] != ']'; n++ {
		if n > 0 {
			if raw[i] != ',' {
				return false, errMaskSyntax
			}
			i = skipSpace(raw, i+1)
		}
		end, ok := skipValue(raw, i)
		if !ok {
			return false, errMaskSyntax
		}
		it := raw[i:end]
		i = skipSpace(raw, end)
		if !mentionsSystem(it, systems) && !m.mentionsType(it) {
			items = append(items, it)
			continue
		}
		item, err := decodeFragment(it)
		if err != nil {
			return false, err
		}
		ch := false
		for _, r := range systems {
			var c bool
			if item, c = redactItem(item, nil, r.system); item == nil {
				ch = true
				break
			}
			ch = ch || c
		}
		if item != nil {
			ch = m.walkEmbedded(item) || ch
		}
		switch {
		case !ch:
			items = append(items, it)
		case item != nil:
			items = append(items, appendValue(nil, item, false))
		}
		changed = changed || ch
	}
	if !changed {
		return false, nil
	}
	if len(items) == 0 {
		mb.drop = true
		return true, nil
	}
	out := make([]byte, 0, len(raw))
	out = append(out, '[')
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	mb.out = append(out, ']')
	return true, nil
}

// redactMember decodes a root member and redacts it.
func (m Mask) redactMember(mb *member, rules []maskRule) (bool, error) {
	v, err := decodeFragment(mb.raw)
	if err != nil {
		return false, err
	}
	name := string(mb.name)
	wrap := map[string]any{name: v}
	changed := applyRules(wrap, rules)
	nv, ok := wrap[name]
	if ok {
		changed = m.walkEmbedded(nv) || changed
	}
	switch {
	case !changed:
		return false, nil
	case !ok:
		mb.drop = true
	default:
		mb.out = appendValue(nil, nv, false)
	}
	return true, nil
}

// labelMembers adds the REDACTED label to the root's meta member, creating
// it in Marshal's place when there is none and replacing it when it is not
// an object, as Redact does.
func labelMembers(members *[]member) error {
	ms := *members
	for i := range ms {
		if string(ms[i].name) != "meta" {
			continue
		}
		v, err := decodeFragment(ms[i].raw)
		if err != nil {
			return err
		}
		meta, ok := v.(map[string]any)
		if !ok {
			meta = map[string]any{} // as Redact does: a meta that is not an object is replaced
		}
		label(meta)
		ms[i].out = appendValue(nil, meta, false)
		return nil
	}
	meta := map[string]any{}
	label(meta)
	at := len(ms)
	for i := 1; i < len(ms); i++ {
		if string(ms[i].name) > "meta" {
			at = i
			break
		}
	}
	*members = append(ms[:at], append([]member{{name: []byte("meta"), out: appendValue(nil, meta, false)}}, ms[at:]...)...)
	return nil
}

// viaTree is Apply on a body that is not as Marshal writes it.
func (m Mask) viaTree(body []byte) ([]byte, bool, error) {
	r, err := Parse(body, Limits{})
	if err != nil {
		return nil, false, err
	}
	if !m.Redact(r) {
		return body, false, nil
	}
	return r.Marshal(), true, nil
}

func (m Mask) mentionsType(raw []byte) bool {
	for i := range m.types {
		if bytes.Contains(raw, m.types[i].quoted) {
			return true
		}
	}
	return false
}

func mentionsSystem(raw []byte, systems []*maskRule) bool {
	for _, r := range systems {
		if bytes.Contains(raw, r.quotedSystem) {
			return true
		}
	}
	return false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	// Most strings are short: look at a few bytes before paying for a call.
	for j := i + 1; j < len(b) && j < i+24; j++ {
		switch b[j] {
		case '"':
			return j + 1, true
		case '\\':
			goto long
		}
	}
long:
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false
		}
		q := j + k
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
}

// skipValue returns the index just past the value starting at b[i]. It
// finds the value's end, matching brackets and skipping strings; it does
// not validate what is between.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var stack [DefaultMaxDepth + 2]byte
		depth := 0
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				if depth == len(stack) {
					return 0, false
				}
				stack[depth] = c + 2 // '{'+2 == '}', '['+2 == ']'
				depth++
			case '}', ']':
				if depth == 0 || stack[depth-1] != c { // #nosec G602 -- depth > 0 is checked first and depth never exceeds len(stack) (checked where it grows)
					return 0, false
				}
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	return j, j > i
}

// decodeFragment decodes one JSON value inside a resource.
func decodeFragment(raw []byte) (any, error) {
	sd := newStoredDecoder(raw)
	defer sd.release()
	d := &decoder{dec: sd.dec, lim: Limits{}.withDefaults()}
	v, err := d.value(2, true)
	if err != nil {
		return nil, err
	}
	if _, err := sd.dec.ReadToken(); err == nil {
		return nil, errMaskSyntax // trailing data
	}
	return v, nil
}

// storedDecoder reads a stored body, which Parse checked for duplicate
// names when it was written: that check is not repeated. A bytes.Buffer
// lets the decoder read body in place, without copying it. Decoders are
// pooled; release returns one.
type storedDecoder struct {
	dec *jsontext.Decoder
	buf bytes.Buffer
}

var storedDecoders = sync.Pool{New: func() any { return new(storedDecoder) }}

func newStoredDecoder(body []byte) *storedDecoder {
	sd := storedDecoders.Get().(*storedDecoder)
	sd.buf = *bytes.NewBuffer(body)
	if sd.dec == nil {
		sd.dec = jsontext.NewDecoder(&sd.buf, jsontext.AllowDuplicateNames(true))
	} else {
		sd.dec.Reset(&sd.buf, jsontext.AllowDuplicateNames(true))
	}
	return sd
}

func (sd *storedDecoder) release() {
	sd.buf = bytes.Buffer{}
	sd.dec.Reset(&sd.buf)
	storedDecoders.Put(sd)
}
