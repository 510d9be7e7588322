package search

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds a compiler and evaluator for the subset of FHIRPath that the
// R4 SearchParameter expressions use: member paths (with choice-type [x]
// resolution from the JSON key suffix), "|" unions, "and", "=" and "!=",
// "is"/"as" type operators, indexers, and the functions where, exists, empty,
// not, resolve, as, is, ofType, first, extension. Anything else is a compile
// error, and the parameter is marked unsupported.

// node is one item of a FHIRPath collection.
type node struct {
	v    any    // decoded JSON value: map[string]any, string, json.Number, bool
	typ  string // FHIR type when known: from a choice suffix, resolve() or a literal
	name string // the element name the item was reached through
}

// expr is a compiled FHIRPath expression, evaluated against a focus collection.
type expr interface {
	eval(in []node) []node
}

// errUnsupported marks FHIRPath constructs outside the subset.
var errUnsupported = errors.New("unsupported fhirpath")

// choiceType maps a choice-element JSON suffix ("DateTime", "Quantity") to its
// FHIR type name ("dateTime", "Quantity").
func choiceType(suffix string) (string, bool) {
	switch suffix {
	case "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant", "Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid":
		return strings.ToLower(suffix[:1]) + suffix[1:], true
	case "Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding", "ContactDetail", "ContactPoint", "Contributor", "Count", "DataRequirement", "Distance", "Dosage", "Duration", "Expression", "HumanName", "Identifier", "Meta", "Money", "ParameterDefinition", "Period", "Quantity", "Range", "Ratio", "Reference", "RelatedArtifact", "SampledData", "Signature", "Timing", "TriggerDefinition", "UsageContext":
		return suffix, true
	}
	return "", false
}

// isChoiceName reports whether some R4 resource or data type has a choice
// element "name[x]" (the list is every [x] element name in the R4
// StructureDefinitions). Only these names are looked up by type suffix.
func isChoiceName(name string) bool {
	switch name {
	case "abatement", "additive", "age", "allowed", "amount", "answer", "asNeeded", "author", "born", "bounds", "characteristic", "chargeItem", "code", "collected", "content", "created", "date", "deceased", "defaultValue", "definingSubstance", "definition", "detail", "diagnosis", "dose", "doseNumber", "due", "effective", "entity", "event", "example", "fastingStatus", "fixed", "identified", "indication", "item", "legallyBinding", "location", "manufacturer", "maxValue", "medication", "minValue", "minimumVolume", "module", "multipleBirth", "name", "occurred", "occurrence", "offset", "onset", "participantEffective", "pattern", "performed", "probability", "procedure", "product", "quantity", "rate", "reported", "scheduled", "seriesDoses", "serviced", "source", "start", "statusReason", "studyEffective", "subject", "substance", "target", "time", "timing", "topic", "used", "value", "when":
		return true
	}
	return false
}

// ---- lexer ----

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tSym
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
				j++
			}
			toks = append(toks, token{tIdent, s[i:j], i})
			i = j
		case isDigit(c):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			toks = append(toks, token{tNumber, s[i:j], i})
			i = j
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string", errUnsupported)
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j + 1
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			toks = append(toks, token{tSym, "!=", i})
			i += 2
		case strings.IndexByte(".()[]|=,", c) >= 0:
			toks = append(toks, token{tSym, string(c), i})
			i++
		default:
			return nil, fmt.Errorf("%w: unexpected character %q", errUnsupported, c)
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ---- parser ----

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 { // never move past EOF
		p.i++
	}
	return t
}

func (p *parser) isSym(s string) bool {
	t := p.peek()
	return t.kind == tSym && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == s
}

func (p *parser) expect(s string) error {
	if !p.isSym(s) {
		return fmt.Errorf("%w: expected %q at offset %d", errUnsupported, s, p.peek().pos)
	}
	p.i++
	return nil
}

// branch is one top-level "|" operand with its source span.
type branch struct {
	x          expr
	start, end int
	root       string // leading type identifier, "" when the path is relative
}

// compile parses src and returns its top-level union branches.
func compile(src string) ([]branch, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var out []branch
	for {
		start := p.peek().pos
		first := p.i
		x, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		b := branch{x: x, start: start, end: p.peek().pos}
		for k := first; k < p.i; k++ { // leading identifier, skipping "("
			if t := p.toks[k]; t.kind == tIdent {
				if t.text[0] >= 'A' && t.text[0] <= 'Z' {
					b.root = t.text
				}
				break
			}
		}
		out = append(out, b)
		if p.isSym("|") {
			p.next()
			continue
		}
		if p.peek().kind != tEOF {
			return nil, fmt.Errorf("%w: unexpected %q at offset %d", errUnsupported, p.peek().text, p.peek().pos)
		}
		return out, nil
	}
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseEq()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.parseEq()
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	if p.isWord("or") || p.isWord("xor") || p.isWord("implies") {
		return nil, fmt.Errorf("%w: operator %q", errUnsupported, p.peek().text)
	}
	return l, nil
}

func (p *parser) parseEq() (expr, error) {
	l, err := p.parseUnion()
	if err != nil {
		return nil, err
	}
	if p.isSym("=") || p.isSym("!=") {
		neg := p.next().text == "!="
		r, err := p.parseUnion()
		if err != nil {
			return nil, err
		}
		return eqExpr{l, r, neg}, nil
	}
	return l, nil
}

// parseUnion handles "|" below the top level (inside parentheses or where()).
func (p *parser) parseUnion() (expr, error) {
	l, err := p.parseType()
	if err != nil {
		return nil, err
	}
	if !p.nested() {
		return l, nil
	}
	u := unionExpr{l}
	for p.isSym("|") {
		p.next()
		r, err := p.parseType()
		if err != nil {
			return nil, err
		}
		u = append(u, r)
	}
	if len(u) == 1 {
		return l, nil
	}
	return u, nil
}

// nested reports whether the parser is inside parentheses, where top-level
// branch splitting does not apply.
func (p *parser) nested() bool {
	depth := 0
	for k := 0; k < p.i; k++ {
		if t := p.toks[k]; t.kind == tSym {
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
			}
		}
	}
	return depth > 0
}

func (p *parser) parseType() (expr, error) {
	x, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for p.isWord("as") || p.isWord("is") {
		op := p.next().text
		t := p.next()
		if t.kind != tIdent {
			return nil, fmt.Errorf("%w: expected type name after %q", errUnsupported, op)
		}
		x = typeExpr{x, t.text, op == "is"}
	}
	return x, nil
}

func (p *parser) parseTerm() (expr, error) {
	var steps seqExpr
	first, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	steps = append(steps, first)
	for {
		switch {
		case p.isSym("."):
			p.next()
			t := p.next()
			if t.kind != tIdent {
				return nil, fmt.Errorf("%w: expected name after '.'", errUnsupported)
			}
			if p.isSym("(") {
				f, err := p.parseCall(t.text)
				if err != nil {
					return nil, err
				}
				steps = append(steps, f)
			} else {
				steps = append(steps, memberExpr(t.text))
			}
		case p.isSym("["):
			p.next()
			t := p.next()
			if t.kind != tNumber {
				return nil, fmt.Errorf("%w: indexer must be an integer", errUnsupported)
			}
			n, err := strconv.Atoi(t.text)
			if err != nil {
				return nil, fmt.Errorf("%w: indexer: %w", errUnsupported, err)
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			steps = append(steps, indexExpr(n))
		default:
			if len(steps) == 1 {
				return steps[0], nil
			}
			return steps, nil
		}
	}
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tSym:
		if t.text != "(" {
			return nil, fmt.Errorf("%w: unexpected %q", errUnsupported, t.text)
		}
		x, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		return x, p.expect(")")
	case tString:
		return litExpr{node{v: t.text, typ: "string"}}, nil
	case tIdent:
		switch t.text {
		case "true", "false":
			return litExpr{node{v: t.text == "true", typ: "boolean"}}, nil
		case "$this":
			return thisExpr{}, nil
		}
		if p.isSym("(") {
			return p.parseCall(t.text)
		}
		if t.text[0] >= 'A' && t.text[0] <= 'Z' {
			return typeRootExpr(t.text), nil
		}
		return memberExpr(t.text), nil
	}
	return nil, fmt.Errorf("%w: unexpected end of expression", errUnsupported)
}

func (p *parser) parseCall(name string) (expr, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var args []expr
	var typeArg string
	for !p.isSym(")") {
		if len(args) > 0 || typeArg != "" {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		if name == "as" || name == "is" || name == "ofType" {
			t := p.next()
			if t.kind != tIdent {
				return nil, fmt.Errorf("%w: %s() needs a type name", errUnsupported, name)
			}
			typeArg = t.text
			continue
		}
		a, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next()
	want := map[string]int{"where": 1, "exists": 0, "empty": 0, "not": 0, "resolve": 0, "first": 0, "extension": 1, "as": 0, "is": 0, "ofType": 0}
	n, ok := want[name]
	if !ok {
		return nil, fmt.Errorf("%w: function %s()", errUnsupported, name)
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s() takes %d arguments", errUnsupported, name, n)
	}
	switch name {
	case "where":
		return whereExpr{args[0]}, nil
	case "extension":
		l, ok := args[0].(litExpr)
		s, isStr := l.n.v.(string)
		if !ok || !isStr {
			return nil, fmt.Errorf("%w: extension() needs a string literal", errUnsupported)
		}
		return extensionExpr(s), nil
	case "as", "ofType", "is":
		if typeArg == "" {
			return nil, fmt.Errorf("%w: %s() needs a type name", errUnsupported, name)
		}
		return typeExpr{thisExpr{}, typeArg, name == "is"}, nil
	}
	return funcExpr(name), nil
}

// ---- evaluation ----

type seqExpr []expr

func (s seqExpr) eval(in []node) []node {
	for _, x := range s {
		if len(in) == 0 {
			return nil
		}
		in = x.eval(in)
	}
	return in
}

type unionExpr []expr

func (u unionExpr) eval(in []node) []node {
	var out []node
	for _, x := range u {
		out = append(out, x.eval(in)...)
	}
	return out
}

type thisExpr struct{}

func (thisExpr) eval(in []node) []node { return in }

type litExpr struct{ n node }

func (l litExpr) eval([]node) []node { return []node{l.n} }

// typeRootExpr is a leading type name: it keeps the focus items that are
// resources of that type (Resource and DomainResource match every resource).
type typeRootExpr string

func (t typeRootExpr) eval(in []node) []node {
	var out []node
	for _, n := range in {
		m, ok := n.v.(map[string]any)
		if !ok {
			continue
		}
		rt, _ := m["resourceType"].(string)
		if rt != "" && (string(t) == rt || t == "Resource" || t == "DomainResource") {
			out = append(out, n)
		}
	}
	return out
}

// memberExpr selects a child element. When the element is absent it looks for
// a choice element "name" + TypeSuffix and records the type.
type memberExpr string

func (name memberExpr) eval(in []node) []node {
	var out []node
	for _, n := range in {
		m, ok := n.v.(map[string]any)
		if !ok {
			continue
		}
		if v, ok := m[string(name)]; ok {
			out = appendValue(out, v, "", string(name))
			continue
		}
		if !isChoiceName(string(name)) {
			continue
		}
		for k, v := range m {
			if len(k) > len(name) && strings.HasPrefix(k, string(name)) {
				if typ, ok := choiceType(k[len(name):]); ok {
					out = appendValue(out, v, typ, string(name))
				}
			}
		}
	}
	return out
}

func appendValue(out []node, v any, typ, name string) []node {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if e != nil {
				out = append(out, node{v: e, typ: typ, name: name})
			}
		}
		return out
	}
	if v == nil {
		return out
	}
	return append(out, node{v: v, typ: typ, name: name})
}

type indexExpr int

func (i indexExpr) eval(in []node) []node {
	if int(i) < len(in) {
		return in[i : i+1]
	}
	return nil
}

type andExpr struct{ l, r expr }

func (a andExpr) eval(in []node) []node {
	l, r := truth(a.l.eval(in)), truth(a.r.eval(in))
	return []node{{v: l && r, typ: "boolean"}}
}

// truth is FHIRPath singleton evaluation of a collection as a boolean.
func truth(c []node) bool {
	if len(c) != 1 {
		return false
	}
	b, ok := c[0].v.(bool)
	return !ok || b
}

type eqExpr struct {
	l, r expr
	neg  bool
}

func (e eqExpr) eval(in []node) []node {
	l, r := e.l.eval(in), e.r.eval(in)
	if len(l) == 0 || len(r) == 0 {
		return nil
	}
	eq := len(l) == len(r)
	for i := 0; eq && i < len(l); i++ {
		eq = equalValue(l[i].v, r[i].v)
	}
	return []node{{v: eq != e.neg, typ: "boolean"}}
}

func equalValue(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	}
	return false
}

type whereExpr struct{ cond expr }

func (w whereExpr) eval(in []node) []node {
	var out []node
	for _, n := range in {
		if truth(w.cond.eval([]node{n})) {
			out = append(out, n)
		}
	}
	return out
}

type extensionExpr string

func (url extensionExpr) eval(in []node) []node {
	var out []node
	for _, n := range memberExpr("extension").eval(in) {
		if m, ok := n.v.(map[string]any); ok && m["url"] == string(url) {
			out = append(out, node{v: m, typ: "Extension", name: "extension"})
		}
	}
	return out
}

// typeExpr is "x is T", "x as T", x.is(T), x.as(T) and x.ofType(T).
type typeExpr struct {
	x   expr
	typ string
	is  bool
}

func (t typeExpr) eval(in []node) []node {
	c := t.x.eval(in)
	if t.is {
		if len(c) != 1 {
			return nil
		}
		return []node{{v: hasType(c[0], t.typ), typ: "boolean"}}
	}
	var out []node
	for _, n := range c {
		if n.typ == "" || hasType(n, t.typ) {
			if n.typ == "" {
				n.typ = t.typ
			}
			out = append(out, n)
		}
	}
	return out
}

func hasType(n node, typ string) bool {
	if n.typ != "" {
		return strings.EqualFold(n.typ, typ)
	}
	if m, ok := n.v.(map[string]any); ok {
		rt, _ := m["resourceType"].(string)
		return rt != "" && (rt == typ || typ == "Resource" || typ == "DomainResource")
	}
	return false
}

type funcExpr string

func (f funcExpr) eval(in []node) []node {
	switch f {
	case "exists":
		return []node{{v: len(in) > 0, typ: "boolean"}}
	case "empty":
		return []node{{v: len(in) == 0, typ: "boolean"}}
	case "not":
		if len(in) != 1 {
			return nil
		}
		b, ok := in[0].v.(bool)
		if !ok {
			return nil
		}
		return []node{{v: !b, typ: "boolean"}}
	case "first":
		if len(in) > 0 {
			return in[:1]
		}
		return nil
	case "resolve":
		// Resolution is local: a reference resolves to a typed placeholder
		// carrying the type named by the reference, so "resolve() is T" works
		// without loading the target.
		var out []node
		for _, n := range in {
			if m, ok := n.v.(map[string]any); ok {
				if rt, _ := m["resourceType"].(string); rt != "" {
					out = append(out, node{v: m, typ: rt})
					continue
				}
				if rt := refTypeOf(m); rt != "" {
					out = append(out, node{v: m, typ: rt})
				}
			}
		}
		return out
	}
	return nil
}
