package fhirpath

import (
	"fmt"
	"strings"
)

// Limits on what Compile accepts, so that a hostile expression costs
// bounded time and memory to parse.
const (
	MaxExpressionBytes = 16 << 10
	maxDepth           = 128
)

type nodeKind int

const (
	nLiteral nodeKind = iota // value in lit
	nEmpty                   // {}
	nIdent                   // name, evaluated on the focus
	nVar                     // %name
	nThis                    // $this
	nIndex                   // $index
	nTotal                   // $total
	nInvoke                  // left.name or left.fn(args); left may be nil
	nIndexer                 // left[args[0]]
	nBinary                  // left op args[0]
	nUnary                   // op left
	nType                    // left is/as typeName
)

// expr is a node of the compiled syntax tree.
type expr struct {
	kind     nodeKind
	name     string // identifier, variable, function, operator or type name
	left     *expr
	args     []*expr
	lit      *Node
	fn       *function // resolved function for a call
	call     bool      // name(...) rather than name
	custom   Function  // a caller-supplied function
	compiled any       // per-call precompiled data (regexp)
}

type parser struct {
	toks  []token
	pos   int
	depth int
	opts  *Options
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

func (p *parser) expect(s string) error {
	if !p.isOp(s) {
		return fmt.Errorf("fhirpath: expected %q at %d", s, p.peek().pos)
	}
	p.next()
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return fmt.Errorf("fhirpath: expression nested deeper than %d", maxDepth)
	}
	return nil
}

// binary operator precedence levels, lowest first.
var levels = [][]string{
	{"implies"},
	{"or", "xor"},
	{"and"},
	{"in", "contains"},
	{"=", "~", "!=", "!~"},
	{"<", ">", "<=", ">="},
	{"|"},
	{"is", "as"},
	{"+", "-", "&"},
	{"*", "/", "div", "mod"},
}

func (p *parser) matchLevel(level int) (string, bool) {
	t := p.peek()
	if t.quoted || (t.kind != tOp && t.kind != tIdent) {
		return "", false
	}
	for _, op := range levels[level] {
		if t.text == op {
			return op, true
		}
	}
	return "", false
}

func (p *parser) parseLevel(level int) (*expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if level == len(levels) {
		return p.parseUnary()
	}
	left, err := p.parseLevel(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.matchLevel(level)
		if !ok {
			return left, nil
		}
		p.next()
		if op == "is" || op == "as" {
			name, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &expr{kind: nType, name: op + " " + name, left: left}
			continue
		}
		right, err := p.parseLevel(level + 1)
		if err != nil {
			return nil, err
		}
		left = &expr{kind: nBinary, name: op, left: left, args: []*expr{right}}
	}
}

func (p *parser) typeSpecifier() (string, error) {
	t := p.next()
	if t.kind != tIdent {
		return "", fmt.Errorf("fhirpath: expected a type name at %d", t.pos)
	}
	name := t.text
	for p.isOp(".") {
		p.next()
		t = p.next()
		if t.kind != tIdent {
			return "", fmt.Errorf("fhirpath: expected a type name at %d", t.pos)
		}
		name += "." + t.text
	}
	return name, nil
}

func (p *parser) parseUnary() (*expr, error) {
	if p.isOp("+") || p.isOp("-") {
		op := p.next().text
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &expr{kind: nUnary, name: op, left: e}, nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (*expr, error) {
	e, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			inv, err := p.invocation(e)
			if err != nil {
				return nil, err
			}
			e = inv
		case p.isOp("["):
			p.next()
			if err := p.enter(); err != nil {
				return nil, err
			}
			idx, err := p.parseLevel(0)
			p.depth--
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			e = &expr{kind: nIndexer, left: e, args: []*expr{idx}}
		default:
			return e, nil
		}
	}
}

// invocation parses name or name(args) applied to left (nil at a term).
func (p *parser) invocation(left *expr) (*expr, error) {
	t := p.next()
	if t.kind != tIdent {
		return nil, fmt.Errorf("fhirpath: expected a name at %d", t.pos)
	}
	e := &expr{kind: nInvoke, name: t.text, left: left}
	if !p.isOp("(") {
		return e, nil
	}
	p.next()
	e.call = true
	for !p.isOp(")") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		// A type name argument (ofType(Patient), is(FHIR.Quantity)) parses
		// as an ordinary expression and is read back by the function.
		a, err := p.parseLevel(0)
		p.depth--
		if err != nil {
			return nil, err
		}
		e.args = append(e.args, a)
		if p.isOp(",") {
			p.next()
			continue
		}
		if !p.isOp(")") {
			return nil, fmt.Errorf("fhirpath: expected ')' at %d", p.peek().pos)
		}
	}
	p.next()
	if err := p.bind(e); err != nil {
		return nil, err
	}
	return e, nil
}

func (p *parser) parseTerm() (*expr, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.next()
		return &expr{kind: nLiteral, lit: literal(t.text, typeString)}, nil
	case tNumber:
		p.next()
		// A quantity: a number and a unit string or calendar duration word.
		if u := p.peek(); u.kind == tString || (u.kind == tIdent && !u.quoted && calendarUnit(u.text)) {
			p.next()
			return &expr{kind: nLiteral, lit: literal(Quantity{Value: t.text, Unit: u.text}, typeQuantity)}, nil
		}
		typ := typeInteger
		if strings.Contains(t.text, ".") {
			typ = typeDecimal
		}
		return &expr{kind: nLiteral, lit: literal(numberValue(t.text), typ)}, nil
	case tDateTime:
		p.next()
		s := t.text
		switch {
		case strings.HasPrefix(s, "T"):
			return &expr{kind: nLiteral, lit: literal(s[1:], typeTime)}, nil
		case strings.Contains(s, "T"):
			return &expr{kind: nLiteral, lit: literal(s, typeDateTime)}, nil
		}
		return &expr{kind: nLiteral, lit: literal(s, typeDate)}, nil
	case tVar:
		p.next()
		return &expr{kind: nVar, name: t.text}, nil
	case tSpecial:
		p.next()
		switch t.text {
		case "$this":
			return &expr{kind: nThis}, nil
		case "$index":
			return &expr{kind: nIndex}, nil
		case "$total":
			return &expr{kind: nTotal}, nil
		}
		return nil, fmt.Errorf("fhirpath: unknown %s at %d", t.text, t.pos)
	case tIdent:
		if !t.quoted && (t.text == "true" || t.text == "false") {
			p.next()
			return &expr{kind: nLiteral, lit: literal(t.text == "true", typeBoolean)}, nil
		}
		return p.invocation(nil)
	case tOp:
		switch t.text {
		case "(":
			p.next()
			if err := p.enter(); err != nil {
				return nil, err
			}
			e, err := p.parseLevel(0)
			p.depth--
			if err != nil {
				return nil, err
			}
			return e, p.expect(")")
		case "{":
			p.next()
			return &expr{kind: nEmpty}, p.expect("}")
		}
	}
	return nil, fmt.Errorf("fhirpath: unexpected token at %d", t.pos)
}

func calendarUnit(s string) bool {
	switch strings.TrimSuffix(s, "s") {
	case "year", "month", "week", "day", "hour", "minute", "second", "millisecond":
		return true
	}
	return false
}

// bind resolves a function call to its implementation and checks its
// number of arguments.
func (p *parser) bind(e *expr) error {
	if p.opts != nil {
		if f, ok := p.opts.Functions[e.name]; ok {
			e.custom = f
			return nil
		}
	}
	f, ok := functions[e.name]
	if !ok {
		return &UnsupportedError{Function: e.name}
	}
	if len(e.args) < f.minArgs || len(e.args) > f.maxArgs {
		return fmt.Errorf("fhirpath: %s() takes %d to %d arguments, got %d", e.name, f.minArgs, f.maxArgs, len(e.args))
	}
	e.fn = f
	if f.prepare != nil {
		if err := f.prepare(e); err != nil {
			return err
		}
	}
	return nil
}

// UnsupportedError reports a function the engine does not implement.
type UnsupportedError struct {
	Function string
}

func (e *UnsupportedError) Error() string {
	return "fhirpath: function " + e.Function + "() is not supported"
}
