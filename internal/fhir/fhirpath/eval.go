package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxSteps bounds the nodes one evaluation may visit or build.
const DefaultMaxSteps = 1 << 22

// ErrTooCostly is returned when an evaluation exceeds its step budget.
var ErrTooCostly = errors.New("fhirpath: evaluation exceeded its step budget")

// Function is a caller-supplied function (for example htmlChecks), called
// with the focus and its evaluated arguments.
type Function func(focus Collection, args []Collection) (Collection, error)

// Options adjust compilation.
type Options struct {
	// Functions adds or overrides functions by name.
	Functions map[string]Function
}

// Expression is a compiled FHIRPath expression. It is immutable and safe
// for concurrent use.
type Expression struct {
	src  string
	root *expr
}

// String returns the expression's source.
func (e *Expression) String() string { return e.src }

// Compile parses expr once into a tree that Evaluate runs. It fails on
// syntax errors, on functions the engine does not implement (an
// *UnsupportedError) and on expressions longer than MaxExpressionBytes or
// nested deeper than the parser allows.
func Compile(src string, opts *Options) (*Expression, error) {
	if len(src) > MaxExpressionBytes {
		return nil, fmt.Errorf("fhirpath: expression longer than %d bytes", MaxExpressionBytes)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, opts: opts}
	root, err := p.parseLevel(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, fmt.Errorf("fhirpath: unexpected token at %d", t.pos)
	}
	return &Expression{src: src, root: root}, nil
}

// Env is the environment of one evaluation.
type Env struct {
	// Model types the resource's elements; may be nil.
	Model Model
	// Resource is %resource, the resource that holds the focus; the focus
	// itself when nil.
	Resource *Node
	// RootResource is %rootResource, the container of a contained
	// resource; Resource when nil.
	RootResource *Node
	// Vars are further %variables.
	Vars map[string]Collection
	// Resolve, when set, resolves references resolve() cannot resolve
	// locally (contained resources); nil leaves them unresolved.
	Resolve func(ref string) *Node
	// Trace receives trace() output; nil discards it.
	Trace func(name string, c Collection)
	// MaxSteps bounds the work of one evaluation, or of all evaluations
	// sharing Spent; DefaultMaxSteps if zero.
	MaxSteps int
	// Spent, when set, accumulates the steps of every evaluation with
	// this Env, so that MaxSteps bounds their total.
	Spent *int
	// Now is the clock of now() and today(); time.Now if nil.
	Now func() time.Time
}

type evalCtx struct {
	env                      *Env
	steps                    *int
	max                      int
	focus, resource, rootRes *Node
	// descendants remembers descendants() of one node for the rest of
	// the evaluation: constraints such as dom-3 ask for
	// %resource.descendants() several times for every contained
	// resource, and each is a walk of the whole resource.
	descendants map[*Node]Collection
}

var (
	ucumNode  = strNode("http://unitsofmeasure.org")
	sctNode   = strNode("http://snomed.info/sct")
	loincNode = strNode("http://loinc.org")
)

// variable returns %name.
func (c *evalCtx) variable(name string) (Collection, bool) {
	switch name {
	case "resource":
		return Collection{c.resource}, true
	case "rootResource":
		return Collection{c.rootRes}, true
	case "context":
		return Collection{c.focus}, true
	case "ucum":
		return Collection{ucumNode}, true
	case "sct":
		return Collection{sctNode}, true
	case "loinc":
		return Collection{loincNode}, true
	}
	v, ok := c.env.Vars[name]
	return v, ok
}

type scope struct {
	this  *Node
	index int
	total Collection
}

// Evaluate runs the expression with focus as its context ($this,
// %context) and returns the resulting collection.
func (e *Expression) Evaluate(env *Env, focus *Node) (Collection, error) {
	if env == nil {
		env = &Env{}
	}
	c := evalCtx{env: env, max: env.MaxSteps, steps: env.Spent, focus: focus, resource: env.Resource, rootRes: env.RootResource}
	if c.steps == nil {
		c.steps = new(int)
	}
	if c.max <= 0 {
		c.max = DefaultMaxSteps
	}
	if c.resource == nil {
		c.resource = focus
	}
	if c.rootRes == nil {
		c.rootRes = c.resource
	}
	return c.eval(e.root, Collection{focus}, scope{this: focus})
}

// EvaluateBool evaluates a constraint-style expression: true when the
// result is true, false when it is false, and ok false when it is empty.
func (e *Expression) EvaluateBool(env *Env, focus *Node) (value, ok bool, err error) {
	res, err := e.Evaluate(env, focus)
	if err != nil {
		return false, false, err
	}
	b, ok, err := singletonBool(res)
	return b, ok, err
}

func (c *evalCtx) step(n int) error {
	*c.steps += n
	if *c.steps > c.max {
		return ErrTooCostly
	}
	return nil
}

func (c *evalCtx) eval(e *expr, focus Collection, s scope) (Collection, error) {
	if err := c.step(1); err != nil {
		return nil, err
	}
	switch e.kind {
	case nLiteral:
		return Collection{e.lit}, nil
	case nEmpty:
		return nil, nil
	case nThis:
		if s.this == nil {
			return nil, nil
		}
		return Collection{s.this}, nil
	case nIndex:
		return Collection{intNode(s.index)}, nil
	case nTotal:
		return s.total, nil
	case nVar:
		v, ok := c.variable(e.name)
		if !ok {
			return nil, fmt.Errorf("fhirpath: unknown variable %%%s", e.name)
		}
		return v, nil
	case nInvoke:
		in := focus
		if e.left != nil {
			var err error
			if in, err = c.eval(e.left, focus, s); err != nil {
				return nil, err
			}
		}
		if e.call {
			if e.custom != nil {
				args, err := c.evalArgs(e.args, s)
				if err != nil {
					return nil, err
				}
				return e.custom(in, args)
			}
			return e.fn.eval(c, e, in, s)
		}
		return c.navigate(in, e.name, e.left == nil)
	case nIndexer:
		in, err := c.eval(e.left, focus, s)
		if err != nil {
			return nil, err
		}
		idx, err := c.eval(e.args[0], Collection{s.this}, s)
		if err != nil {
			return nil, err
		}
		i, ok, err := singletonInt(idx)
		if err != nil || !ok || i < 0 || i >= len(in) {
			return nil, err
		}
		return Collection{in[i]}, nil
	case nUnary:
		in, err := c.eval(e.left, focus, s)
		if err != nil {
			return nil, err
		}
		if e.name == "+" || len(in) == 0 {
			return in, nil
		}
		return arith("*", in, Collection{intNode(-1)})
	case nType:
		in, err := c.eval(e.left, focus, s)
		if err != nil {
			return nil, err
		}
		op, typ, _ := strings.Cut(e.name, " ")
		if op == "is" {
			if len(in) == 0 {
				return nil, nil
			}
			if len(in) > 1 {
				return nil, errors.New("fhirpath: 'is' on more than one item")
			}
			return Collection{boolNode(isType(in[0], typ))}, nil
		}
		return ofType(in, typ), nil
	case nBinary:
		return c.binary(e, focus, s)
	}
	return nil, fmt.Errorf("fhirpath: bad expression node")
}

func (c *evalCtx) evalArgs(args []*expr, s scope) ([]Collection, error) {
	out := make([]Collection, len(args))
	for i, a := range args {
		v, err := c.eval(a, Collection{s.this}, s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// navigate returns the children called name of every node of in. At the
// start of a path, a type name matching the focus selects the focus.
func (c *evalCtx) navigate(in Collection, name string, atStart bool) (Collection, error) {
	var out Collection
	for _, n := range in {
		if atStart && name != "" && name[0] >= 'A' && name[0] <= 'Z' && isType(n, name) {
			out = append(out, n)
			continue
		}
		var err error
		if out, err = c.children(out, n, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// children appends n's children called name (every child when name is
// empty) to out.
func (c *evalCtx) children(out Collection, n *Node, name string) (Collection, error) {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		// A primitive's id and extensions live in its "_name" object.
		if n.Ext == nil {
			return out, nil
		}
		obj = n.Ext
		if name == "" {
			for _, k := range sortedKeys(obj) {
				var err error
				if out, err = c.member(out, n, obj, k, Member{Key: k, Type: extType(k), TypeKey: extType(k)}); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
		return c.member(out, n, obj, name, Member{Key: name, Type: extType(name), TypeKey: extType(name)})
	}
	m := c.env.Model
	if name == "" {
		for _, k := range sortedKeys(obj) {
			if k == "resourceType" || (k[0] == '_' && obj[k[1:]] != nil) {
				continue
			}
			key := strings.TrimPrefix(k, "_")
			mem := Member{Key: key}
			if m != nil {
				if _, mm, ok := m.Member(n.TypeKey, key); ok {
					mem = mm
				}
			}
			var err error
			if out, err = c.member(out, n, obj, key, mem); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if m != nil {
		if mems := m.Element(n.TypeKey, name); mems != nil {
			for _, mem := range mems {
				var err error
				if out, err = c.member(out, n, obj, mem.Key, mem); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	if _, ok := obj[name]; ok || obj["_"+name] != nil {
		return c.member(out, n, obj, name, Member{Key: name})
	}
	// Without a model, a choice element is any member name+Type.
	for _, k := range sortedKeys(obj) {
		if len(k) > len(name) && strings.HasPrefix(k, name) && k[len(name)] >= 'A' && k[len(name)] <= 'Z' {
			var err error
			if out, err = c.member(out, n, obj, k, Member{Key: k, Type: k[len(name):]}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func extType(k string) string {
	if k == "extension" {
		return "Extension"
	}
	return "string"
}

// member appends the values of member mem.Key of obj (and its "_key"
// extension objects) to out.
func (c *evalCtx) member(out Collection, parent *Node, obj map[string]any, key string, mem Member) (Collection, error) {
	v, hasV := obj[key]
	ek := mem.ExtKey
	if ek == "" {
		ek = "_" + key
	}
	ext, hasE := obj[ek]
	if !hasV && !hasE {
		return out, nil
	}
	mk := func(val any, e any, idx int) *Node {
		n := &Node{Value: val, Type: mem.Type, TypeKey: mem.TypeKey, Parent: obj, Key: key, Index: idx, up: parent}
		if em, ok := e.(map[string]any); ok {
			n.Ext = em
		}
		if m, ok := val.(map[string]any); ok {
			if rt, ok := m["resourceType"].(string); ok && (mem.Type == "Resource" || mem.Type == "") {
				n.Type, n.TypeKey = rt, rt
			}
		}
		if n.Type == "" {
			n.Type = inferType(val)
		}
		if n.TypeKey == "" {
			n.TypeKey = n.Type
		}
		return n
	}
	arr, isArr := v.([]any)
	earr, eIsArr := ext.([]any)
	if !isArr && !eIsArr {
		if err := c.step(1); err != nil {
			return nil, err
		}
		return append(out, mk(v, ext, -1)), nil
	}
	n := max(len(arr), len(earr))
	if err := c.step(n); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		var val, e any
		if i < len(arr) {
			val = arr[i]
		}
		if i < len(earr) {
			e = earr[i]
		}
		if val == nil && e == nil {
			continue
		}
		out = append(out, mk(val, e, i))
	}
	return out, nil
}

func inferType(v any) string {
	switch v := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return "decimal"
		}
		return "integer"
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isType reports whether node n is of type t (or a subtype of it).
func isType(n *Node, t string) bool {
	want := baseType(t)
	have := baseType(n.Type)
	if have == want || strings.EqualFold(have, want) && isPrimitiveName(want) {
		return true
	}
	switch want {
	case "Resource":
		_, ok := n.Value.(map[string]any)
		return ok && isResourceNode(n)
	case "DomainResource":
		return isResourceNode(n) && have != "Bundle" && have != "Binary" && have != "Parameters"
	case "Quantity":
		return isQuantitySubtype(have)
	case "string", "String":
		return have == "code" || have == "id" || have == "markdown"
	case "uri":
		return have == "url" || have == "canonical" || have == "oid" || have == "uuid"
	case "integer", "Integer":
		return have == "positiveInt" || have == "unsignedInt"
	case "Element":
		return true
	}
	return false
}

func isResourceNode(n *Node) bool {
	m, ok := n.Value.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m["resourceType"].(string)
	return ok
}

func isPrimitiveName(t string) bool {
	switch strings.ToLower(t) {
	case "boolean", "string", "integer", "decimal", "date", "datetime", "time", "quantity":
		return true
	}
	return false
}

func ofType(in Collection, t string) Collection {
	var out Collection
	for _, n := range in {
		if isType(n, t) {
			out = append(out, n)
		}
	}
	return out
}

// singletonBool applies FHIRPath's singleton evaluation for a Boolean.
func singletonBool(c Collection) (value, ok bool, err error) {
	switch len(c) {
	case 0:
		return false, false, nil
	case 1:
		if b, isB := c[0].Value.(bool); isB {
			return b, true, nil
		}
		return true, true, nil
	}
	return false, false, errors.New("fhirpath: expected one boolean, got a collection")
}

func singletonInt(c Collection) (int, bool, error) {
	switch len(c) {
	case 0:
		return 0, false, nil
	case 1:
		if n, ok := c[0].Value.(json.Number); ok {
			i, err := strconv.Atoi(string(n))
			if err == nil {
				return i, true, nil
			}
		}
		return 0, false, errors.New("fhirpath: expected an integer")
	}
	return 0, false, errors.New("fhirpath: expected one integer, got a collection")
}

func singletonString(c Collection) (string, bool, error) {
	switch len(c) {
	case 0:
		return "", false, nil
	case 1:
		if s, ok := c[0].asString(); ok {
			return s, true, nil
		}
		return "", false, errors.New("fhirpath: expected a string")
	}
	return "", false, errors.New("fhirpath: expected one string, got a collection")
}

func (c *evalCtx) binary(e *expr, focus Collection, s scope) (Collection, error) {
	left, err := c.eval(e.left, focus, s)
	if err != nil {
		return nil, err
	}
	// Short-circuit the Boolean operators where the left side decides.
	switch e.name {
	case "and", "or", "implies":
		lb, lok, err := singletonBool(left)
		if err != nil {
			return nil, err
		}
		if lok && ((e.name == "and" && !lb) || (e.name == "or" && lb)) {
			return Collection{boolNode(lb)}, nil
		}
		if lok && e.name == "implies" && !lb {
			return Collection{boolNode(true)}, nil
		}
		right, err := c.eval(e.args[0], focus, s)
		if err != nil {
			return nil, err
		}
		rb, rok, err := singletonBool(right)
		if err != nil {
			return nil, err
		}
		switch e.name {
		case "and":
			if rok && !rb {
				return Collection{boolNode(false)}, nil
			}
			if lok && rok {
				return Collection{boolNode(true)}, nil
			}
		case "or":
			if rok && rb {
				return Collection{boolNode(true)}, nil
			}
			if lok && rok {
				return Collection{boolNode(false)}, nil
			}
		case "implies":
			if lok { // left is true
				return right[:min(len(right), 1)], nil
			}
			if rok && rb {
				return Collection{boolNode(true)}, nil
			}
		}
		return nil, nil
	}
	right, err := c.eval(e.args[0], focus, s)
	if err != nil {
		return nil, err
	}
	switch e.name {
	case "xor":
		lb, lok, err := singletonBool(left)
		if err != nil {
			return nil, err
		}
		rb, rok, err := singletonBool(right)
		if err != nil || !lok || !rok {
			return nil, err
		}
		return Collection{boolNode(lb != rb)}, nil
	case "=", "!=":
		if len(left) == 0 || len(right) == 0 {
			return nil, nil
		}
		eq, ok := collectionsEqual(left, right)
		if !ok {
			return nil, nil
		}
		return Collection{boolNode(eq == (e.name == "="))}, nil
	case "~", "!~":
		eq := collectionsEquivalent(left, right)
		return Collection{boolNode(eq == (e.name == "~"))}, nil
	case "<", ">", "<=", ">=":
		if len(left) == 0 || len(right) == 0 {
			return nil, nil
		}
		if len(left) > 1 || len(right) > 1 {
			return nil, errors.New("fhirpath: comparison of collections")
		}
		cmp, ok, err := compare(left[0], right[0])
		if err != nil || !ok {
			return nil, err
		}
		var r bool
		switch e.name {
		case "<":
			r = cmp < 0
		case ">":
			r = cmp > 0
		case "<=":
			r = cmp <= 0
		case ">=":
			r = cmp >= 0
		}
		return Collection{boolNode(r)}, nil
	case "|":
		if err := c.step(len(left) + len(right)); err != nil {
			return nil, err
		}
		return union(left, right), nil
	case "in", "contains":
		item, coll := left, right
		if e.name == "contains" {
			item, coll = right, left
		}
		if len(item) == 0 {
			return nil, nil
		}
		if len(item) > 1 {
			return nil, errors.New("fhirpath: membership of a collection")
		}
		if err := c.step(len(coll)); err != nil {
			return nil, err
		}
		for _, n := range coll {
			if eq, ok := nodesEqual(item[0], n); ok && eq {
				return Collection{boolNode(true)}, nil
			}
		}
		return Collection{boolNode(false)}, nil
	case "&":
		ls, _, err := singletonString(left)
		if err != nil {
			return nil, err
		}
		rs, _, err := singletonString(right)
		if err != nil {
			return nil, err
		}
		return Collection{strNode(ls + rs)}, nil
	case "+", "-", "*", "/", "div", "mod":
		return arith(e.name, left, right)
	}
	return nil, fmt.Errorf("fhirpath: unknown operator %s", e.name)
}

func arith(op string, left, right Collection) (Collection, error) {
	if len(left) == 0 || len(right) == 0 {
		return nil, nil
	}
	if len(left) > 1 || len(right) > 1 {
		return nil, errors.New("fhirpath: arithmetic on collections")
	}
	l, r := left[0], right[0]
	if op == "+" {
		if ls, ok := l.asString(); ok && l.kind() == kString {
			rs, ok := r.asString()
			if !ok {
				return nil, errors.New("fhirpath: + of a string and a non-string")
			}
			return Collection{strNode(ls + rs)}, nil
		}
	}
	ln, lok := l.Value.(json.Number)
	rn, rok := r.Value.(json.Number)
	if !lok || !rok {
		return nil, fmt.Errorf("fhirpath: %s is supported on numbers and strings only", op)
	}
	lf, _ := parseNumber(string(ln))
	rf, _ := parseNumber(string(rn))
	ints := isIntegerNumber(ln) && isIntegerNumber(rn)
	var v float64
	switch op {
	case "+":
		v = lf + rf
	case "-":
		v = lf - rf
	case "*":
		v = lf * rf
	case "/":
		if rf == 0 {
			return nil, nil
		}
		return Collection{literal(json.Number(strconv.FormatFloat(lf/rf, 'f', -1, 64)), typeDecimal)}, nil
	case "div":
		if rf == 0 {
			return nil, nil
		}
		v = math.Trunc(lf / rf)
	case "mod":
		if rf == 0 {
			return nil, nil
		}
		v = math.Mod(lf, rf)
	}
	if ints {
		return Collection{literal(json.Number(strconv.FormatInt(int64(v), 10)), typeInteger)}, nil
	}
	return Collection{literal(json.Number(strconv.FormatFloat(v, 'f', -1, 64)), typeDecimal)}, nil
}

func isIntegerNumber(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }

// union concatenates a and b without duplicates (by FHIRPath equality).
// Primitive values are deduplicated through a map, so the cost is linear
// except for complex values, which are compared pairwise.
func union(a, b Collection) Collection {
	var out, objects Collection
	seen := make(map[string]bool, len(a)+len(b))
	for _, src := range [2]Collection{a, b} {
	next:
		for _, n := range src {
			if k, ok := hashKey(n); ok {
				if !seen[k] {
					seen[k] = true
					out = append(out, n)
				}
				continue
			}
			for _, o := range objects {
				if eq, ok := nodesEqual(n, o); ok && eq {
					continue next
				}
			}
			objects = append(objects, n)
			out = append(out, n)
		}
	}
	return out
}

// hashKey is a key equal for nodes that '=' finds equal, for the values
// where that is simple: strings (not dates), booleans and integers.
func hashKey(n *Node) (string, bool) {
	switch n.kind() {
	case kString:
		return "s" + n.Value.(string), true
	case kBool:
		if n.Value.(bool) {
			return "t", true
		}
		return "f", true
	case kNumber:
		if v := n.Value.(json.Number); isIntegerNumber(v) {
			if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return "n" + strconv.FormatInt(i, 10), true
			}
		}
	}
	return "", false
}

// collectionsEqual is FHIRPath '=': same length and pairwise equal. ok is
// false when the result is empty (a comparison of dates of different
// precision).
func collectionsEqual(a, b Collection) (eq, ok bool) {
	if len(a) != len(b) {
		return false, true
	}
	for i := range a {
		e, ok := nodesEqual(a[i], b[i])
		if !ok {
			return false, false
		}
		if !e {
			return false, true
		}
	}
	return true, true
}

func nodesEqual(a, b *Node) (eq, ok bool) {
	ka, kb := a.kind(), b.kind()
	switch {
	case ka == kNumber && kb == kNumber:
		x, _ := parseNumber(string(a.Value.(json.Number)))
		y, _ := parseNumber(string(b.Value.(json.Number)))
		return x == y, true
	case (ka == kDate || ka == kTime) && (kb == kDate || kb == kTime || kb == kString),
		ka == kString && (kb == kDate || kb == kTime):
		cmp, ok, _ := compare(a, b)
		return cmp == 0, ok
	case ka == kQuantity && kb == kQuantity:
		cmp, ok, _ := compare(a, b)
		return ok && cmp == 0, true
	case ka == kObject && kb == kObject:
		return reflect.DeepEqual(a.Value, b.Value), true
	case ka != kb:
		return false, true
	}
	return a.Value == b.Value, true
}

func collectionsEquivalent(a, b Collection) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		as, aok := a[i].asString()
		bs, bok := b[i].asString()
		if aok && bok && a[i].kind() == kString && b[i].kind() == kString {
			if !strings.EqualFold(strings.Join(strings.Fields(as), " "), strings.Join(strings.Fields(bs), " ")) {
				return false
			}
			continue
		}
		if eq, ok := nodesEqual(a[i], b[i]); !ok || !eq {
			return false
		}
	}
	return true
}

// compare orders two singletons; ok is false when they are incomparable
// (dates of different precision that agree as far as both go, quantities
// of different units).
func compare(a, b *Node) (int, bool, error) {
	ka, kb := a.kind(), b.kind()
	switch {
	case ka == kNumber && kb == kNumber:
		x, _ := parseNumber(string(a.Value.(json.Number)))
		y, _ := parseNumber(string(b.Value.(json.Number)))
		return cmpFloat(x, y), true, nil
	case ka == kQuantity && kb == kQuantity:
		qa, _ := a.quantity()
		qb, _ := b.quantity()
		if qa.Unit != qb.Unit {
			return 0, false, nil
		}
		x, _ := parseNumber(qa.Value)
		y, _ := parseNumber(qb.Value)
		return cmpFloat(x, y), true, nil
	case (ka == kDate || ka == kString) && (kb == kDate || kb == kString) && (ka == kDate || kb == kDate):
		return compareDateTime(a.Value.(string), b.Value.(string))
	case ka == kTime || kb == kTime:
		x, _ := a.asString()
		y, _ := b.asString()
		return compareDateTime("T"+x, "T"+y)
	case ka == kString && kb == kString:
		return strings.Compare(a.Value.(string), b.Value.(string)), true, nil
	}
	return 0, false, fmt.Errorf("fhirpath: cannot compare %s with %s", a.Type, b.Type)
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// compareDateTime compares two FHIR date/dateTime/instant (or "T"+time)
// strings. Values with a full time and zone compare as instants; otherwise
// fields compare in order, and values that agree up to the shorter
// precision are incomparable (ok false).
func compareDateTime(x, y string) (int, bool, error) {
	tx, px, okx := parseDateTime(x)
	ty, py, oky := parseDateTime(y)
	if !okx || !oky {
		return 0, false, fmt.Errorf("fhirpath: malformed date")
	}
	if px == precZoned && py == precZoned {
		return tx.Compare(ty), true, nil
	}
	fx, fy := dateFields(x), dateFields(y)
	n := min(len(fx), len(fy))
	for i := 0; i < n; i++ {
		if c := strings.Compare(fx[i], fy[i]); c != 0 {
			return c, true, nil
		}
	}
	if len(fx) != len(fy) {
		return 0, false, nil
	}
	return 0, true, nil
}

const precZoned = 100

// parseDateTime parses a full dateTime with seconds and zone as an
// instant (precision precZoned); other valid forms parse with a lower
// precision.
func parseDateTime(s string) (time.Time, int, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, precZoned, true
		}
	}
	if len(s) == 0 {
		return time.Time{}, 0, false
	}
	return time.Time{}, len(dateFields(s)), true
}

// dateFields splits a date/time into year, month, day, hour, minute,
// second fields (the zone is dropped).
func dateFields(s string) []string {
	if i := strings.IndexAny(s, "Z+"); i > 0 {
		s = s[:i]
	}
	if t := strings.IndexByte(s, 'T'); t >= 0 {
		if i := strings.LastIndexByte(s[t:], '-'); i > 0 {
			s = s[:t+i]
		}
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == 'T' || r == ':' })
	if len(f) > 0 && strings.HasPrefix(s, "T") {
		return append([]string{"", "", ""}, f...)
	}
	return f
}
