package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// function is a built-in function.
type function struct {
	minArgs, maxArgs int
	eval             func(c *evalCtx, e *expr, in Collection, s scope) (Collection, error)
	// prepare runs once at compile time (to check a type argument or
	// compile a literal regular expression).
	prepare func(e *expr) error
}

// functions are the built-in functions by name.
var functions = map[string]*function{
	"empty":       {0, 0, fnEmpty, nil},
	"exists":      {0, 1, fnExists, nil},
	"all":         {1, 1, fnAll, nil},
	"allTrue":     {0, 0, boolAgg(true, true), nil},
	"anyTrue":     {0, 0, boolAgg(false, true), nil},
	"allFalse":    {0, 0, boolAgg(true, false), nil},
	"anyFalse":    {0, 0, boolAgg(false, false), nil},
	"not":         {0, 0, fnNot, nil},
	"count":       {0, 0, fnCount, nil},
	"where":       {1, 1, fnWhere, nil},
	"select":      {1, 1, fnSelect, nil},
	"repeat":      {1, 1, fnRepeat, nil},
	"first":       {0, 0, slice(func(n int) (int, int) { return 0, min(n, 1) }), nil},
	"last":        {0, 0, slice(func(n int) (int, int) { return max(n-1, 0), n }), nil},
	"tail":        {0, 0, slice(func(n int) (int, int) { return min(n, 1), n }), nil},
	"skip":        {1, 1, fnSkipTake(true), nil},
	"take":        {1, 1, fnSkipTake(false), nil},
	"single":      {0, 0, fnSingle, nil},
	"distinct":    {0, 0, fnDistinct, nil},
	"isDistinct":  {0, 0, fnIsDistinct, nil},
	"hasValue":    {0, 0, fnHasValue, nil},
	"children":    {0, 0, fnChildren, nil},
	"descendants": {0, 0, fnDescendants, nil},
	"iif":         {2, 3, fnIif, nil},
	"ofType":      {1, 1, fnOfType, prepareType},
	"is":          {1, 1, fnIs, prepareType},
	"as":          {1, 1, fnOfType, prepareType},
	"trace":       {1, 2, fnTrace, nil},
	"startsWith":  {1, 1, strFn(func(s, a string) any { return strings.HasPrefix(s, a) }), nil},
	"endsWith":    {1, 1, strFn(func(s, a string) any { return strings.HasSuffix(s, a) }), nil},
	"contains":    {1, 1, strFn(func(s, a string) any { return strings.Contains(s, a) }), nil},
	"indexOf": {1, 1, strFn(func(s, a string) any {
		return utf8.RuneCountInString(s[:max(strings.Index(s, a), 0)]) - boolInt(!strings.Contains(s, a))
	}), nil},
	"matches":           {1, 1, fnMatches, prepareRegexp},
	"replaceMatches":    {2, 2, fnReplaceMatches, prepareRegexp},
	"replace":           {2, 2, fnReplace, nil},
	"length":            {0, 0, fnLength, nil},
	"substring":         {1, 2, fnSubstring, nil},
	"lower":             {0, 0, strMap(strings.ToLower), nil},
	"upper":             {0, 0, strMap(strings.ToUpper), nil},
	"trim":              {0, 0, strMap(strings.TrimSpace), nil},
	"toChars":           {0, 0, fnToChars, nil},
	"toString":          {0, 0, fnToString, nil},
	"toInteger":         {0, 0, fnToInteger, nil},
	"toDecimal":         {0, 0, fnToDecimal, nil},
	"convertsToInteger": {0, 0, converts(fnToInteger), nil},
	"convertsToDecimal": {0, 0, converts(fnToDecimal), nil},
	"convertsToString":  {0, 0, converts(fnToString), nil},
	"combine":           {1, 1, fnCombine, nil},
	"union":             {1, 1, fnUnion, nil},
	"intersect":         {1, 1, fnIntersect, nil},
	"exclude":           {1, 1, fnExclude, nil},
	"subsetOf":          {1, 1, fnSubset(false), nil},
	"supersetOf":        {1, 1, fnSubset(true), nil},
	"resolve":           {0, 0, fnResolve, nil},
	"extension":         {1, 1, fnExtension, nil},
	"getValue":          {0, 0, fnGetValue, nil},
	"today":             {0, 0, fnNow(typeDate, "2006-01-02"), nil},
	"now":               {0, 0, fnNow(typeDateTime, time.RFC3339), nil},
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fnEmpty(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	return Collection{boolNode(len(in) == 0)}, nil
}

func fnExists(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	if len(e.args) == 0 {
		return Collection{boolNode(len(in) > 0)}, nil
	}
	w, err := fnWhere(c, e, in, s)
	if err != nil {
		return nil, err
	}
	return Collection{boolNode(len(w) > 0)}, nil
}

// each evaluates arg with every item of in as $this.
func (c *evalCtx) each(arg *expr, in Collection, s scope, fn func(i int, n *Node, r Collection) (stop bool, err error)) error {
	for i, n := range in {
		r, err := c.eval(arg, Collection{n}, scope{this: n, index: i, total: s.total})
		if err != nil {
			return err
		}
		stop, err := fn(i, n, r)
		if err != nil || stop {
			return err
		}
	}
	return nil
}

func fnAll(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	all := true
	err := c.each(e.args[0], in, s, func(_ int, _ *Node, r Collection) (bool, error) {
		b, ok, err := singletonBool(r)
		if err != nil {
			return true, err
		}
		if !ok || !b {
			all = false
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return Collection{boolNode(all)}, nil
}

func boolAgg(all, want bool) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
		for _, n := range in {
			b, ok := n.Value.(bool)
			if !ok {
				return nil, errors.New("fhirpath: expected booleans")
			}
			if all && b != want {
				return Collection{boolNode(false)}, nil
			}
			if !all && b == want {
				return Collection{boolNode(true)}, nil
			}
		}
		return Collection{boolNode(all)}, nil
	}
}

func fnNot(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	b, ok, err := singletonBool(in)
	if err != nil || !ok {
		return nil, err
	}
	return Collection{boolNode(!b)}, nil
}

func fnCount(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	return Collection{intNode(len(in))}, nil
}

func fnWhere(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	var out Collection
	err := c.each(e.args[0], in, s, func(_ int, n *Node, r Collection) (bool, error) {
		b, ok, err := singletonBool(r)
		if err != nil {
			return true, err
		}
		if ok && b {
			out = append(out, n)
		}
		return false, nil
	})
	return out, err
}

func fnSelect(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	var out Collection
	err := c.each(e.args[0], in, s, func(_ int, _ *Node, r Collection) (bool, error) {
		out = append(out, r...)
		return false, c.step(len(r))
	})
	return out, err
}

func fnRepeat(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	var out Collection
	queue := in
	for len(queue) > 0 {
		var next Collection
		err := c.each(e.args[0], queue, s, func(_ int, _ *Node, r Collection) (bool, error) {
			for _, n := range r {
				dup := false
				for _, o := range out {
					if o == n || (o.up != nil && o.up == n.up && o.Key == n.Key && o.Index == n.Index) {
						dup = true
						break
					}
				}
				if !dup {
					out = append(out, n)
					next = append(next, n)
				}
			}
			return false, c.step(len(r))
		})
		if err != nil {
			return nil, err
		}
		queue = next
	}
	return out, nil
}

func slice(bounds func(n int) (int, int)) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
		lo, hi := bounds(len(in))
		return in[lo:hi], nil
	}
}

func fnSkipTake(skip bool) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
		args, err := c.evalArgs(e.args, s)
		if err != nil {
			return nil, err
		}
		n, ok, err := singletonInt(args[0])
		if err != nil || !ok {
			return nil, err
		}
		n = max(0, min(n, len(in)))
		if skip {
			return in[n:], nil
		}
		return in[:n], nil
	}
}

func fnSingle(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) > 1 {
		return nil, errors.New("fhirpath: single() on more than one item")
	}
	return in, nil
}

func fnDistinct(c *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if err := c.step(len(in)); err != nil {
		return nil, err
	}
	return union(in, nil), nil
}

func fnIsDistinct(c *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if err := c.step(len(in)); err != nil {
		return nil, err
	}
	return Collection{boolNode(len(union(in, nil)) == len(in))}, nil
}

func fnHasValue(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	return Collection{boolNode(len(in) == 1 && in[0].isPrimitiveValue())}, nil
}

func fnGetValue(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) == 1 && in[0].isPrimitiveValue() {
		return in, nil
	}
	return nil, nil
}

func fnChildren(c *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	var out Collection
	for _, n := range in {
		var err error
		if out, err = c.children(out, n, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fnDescendants(c *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) == 1 {
		if out, ok := c.descendants[in[0]]; ok {
			return out, nil
		}
	}
	out, err := descendants(c, in)
	if err != nil || len(in) != 1 {
		return out, err
	}
	if c.descendants == nil {
		c.descendants = map[*Node]Collection{}
	}
	// Capacity capped at length: a caller that appends copies instead of
	// writing into the remembered collection.
	out = out[:len(out):len(out)]
	c.descendants[in[0]] = out
	return out, nil
}

// descendants walks every node below those of in, breadth first.
func descendants(c *evalCtx, in Collection) (Collection, error) {
	var out Collection
	queue := in
	for len(queue) > 0 {
		var next Collection
		for _, n := range queue {
			var err error
			if next, err = c.children(next, n, ""); err != nil {
				return nil, err
			}
		}
		out = append(out, next...)
		queue = next
	}
	return out, nil
}

func fnIif(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	this := s
	if len(in) == 1 {
		this.this = in[0]
	}
	cond, err := c.eval(e.args[0], in, this)
	if err != nil {
		return nil, err
	}
	b, ok, err := singletonBool(cond)
	if err != nil {
		return nil, err
	}
	if ok && b {
		return c.eval(e.args[1], in, this)
	}
	if len(e.args) == 3 {
		return c.eval(e.args[2], in, this)
	}
	return nil, nil
}

// typeName reads a type specifier argument (Patient, FHIR.Quantity).
func typeName(e *expr) (string, bool) {
	if e.kind != nInvoke || e.call {
		return "", false
	}
	if e.left == nil {
		return e.name, true
	}
	ns, ok := typeName(e.left)
	return ns + "." + e.name, ok
}

func prepareType(e *expr) error {
	if _, ok := typeName(e.args[0]); !ok {
		return fmt.Errorf("fhirpath: %s() needs a type name", e.name)
	}
	return nil
}

func fnOfType(_ *evalCtx, e *expr, in Collection, _ scope) (Collection, error) {
	t, _ := typeName(e.args[0])
	return ofType(in, t), nil
}

func fnIs(_ *evalCtx, e *expr, in Collection, _ scope) (Collection, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > 1 {
		return nil, errors.New("fhirpath: is() on more than one item")
	}
	t, _ := typeName(e.args[0])
	return Collection{boolNode(isType(in[0], t))}, nil
}

func fnTrace(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	if c.env.Trace == nil {
		return in, nil
	}
	name, err := c.eval(e.args[0], Collection{s.this}, s)
	if err != nil {
		return nil, err
	}
	label, _, _ := singletonString(name)
	shown := in
	if len(e.args) == 2 {
		shown = nil
		err := c.each(e.args[1], in, s, func(_ int, _ *Node, r Collection) (bool, error) {
			shown = append(shown, r...)
			return false, nil
		})
		if err != nil {
			return nil, err
		}
	}
	c.env.Trace(label, shown)
	return in, nil
}

// strFn applies f to a string focus and a string argument.
func strFn(f func(s, arg string) any) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
		str, ok, err := singletonString(in)
		if err != nil || !ok {
			return nil, err
		}
		args, err := c.evalArgs(e.args, s)
		if err != nil {
			return nil, err
		}
		a, ok, err := singletonString(args[0])
		if err != nil || !ok {
			return nil, err
		}
		switch v := f(str, a).(type) {
		case bool:
			return Collection{boolNode(v)}, nil
		case int:
			return Collection{intNode(v)}, nil
		}
		return nil, nil
	}
}

func strMap(f func(string) string) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
		s, ok, err := singletonString(in)
		if err != nil || !ok {
			return nil, err
		}
		return Collection{strNode(f(s))}, nil
	}
}

// prepareRegexp compiles a literal pattern once. FHIRPath regular
// expressions are matched with Go's RE2 engine, in linear time.
func prepareRegexp(e *expr) error {
	if a := e.args[0]; a.kind == nLiteral {
		s, ok := a.lit.Value.(string)
		if !ok {
			return fmt.Errorf("fhirpath: %s() needs a string pattern", e.name)
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("fhirpath: %s(): %w", e.name, err)
		}
		e.compiled = re
	}
	return nil
}

func (c *evalCtx) regexpArg(e *expr, s scope) (*regexp.Regexp, bool, error) {
	if re, ok := e.compiled.(*regexp.Regexp); ok {
		return re, true, nil
	}
	v, err := c.eval(e.args[0], Collection{s.this}, s)
	if err != nil {
		return nil, false, err
	}
	p, ok, err := singletonString(v)
	if err != nil || !ok {
		return nil, false, err
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, false, fmt.Errorf("fhirpath: bad regular expression: %w", err)
	}
	return re, true, nil
}

func fnMatches(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	str, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	re, ok, err := c.regexpArg(e, s)
	if err != nil || !ok {
		return nil, err
	}
	return Collection{boolNode(re.MatchString(str))}, nil
}

func fnReplaceMatches(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	str, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	re, ok, err := c.regexpArg(e, s)
	if err != nil || !ok {
		return nil, err
	}
	sub, err := c.eval(e.args[1], Collection{s.this}, s)
	if err != nil {
		return nil, err
	}
	r, ok, err := singletonString(sub)
	if err != nil || !ok {
		return nil, err
	}
	return Collection{strNode(re.ReplaceAllString(str, r))}, nil
}

func fnReplace(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	str, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	args, err := c.evalArgs(e.args, s)
	if err != nil {
		return nil, err
	}
	a, ok1, err1 := singletonString(args[0])
	b, ok2, err2 := singletonString(args[1])
	if err := errors.Join(err1, err2); err != nil || !ok1 || !ok2 {
		return nil, err
	}
	return Collection{strNode(strings.ReplaceAll(str, a, b))}, nil
}

func fnLength(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	s, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	return Collection{intNode(utf8.RuneCountInString(s))}, nil
}

func fnSubstring(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	str, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	args, err := c.evalArgs(e.args, s)
	if err != nil {
		return nil, err
	}
	r := []rune(str)
	start, ok, err := singletonInt(args[0])
	if err != nil || !ok || start < 0 || start >= len(r) {
		return nil, err
	}
	end := len(r)
	if len(args) == 2 {
		n, ok, err := singletonInt(args[1])
		if err != nil {
			return nil, err
		}
		if ok {
			end = min(len(r), start+max(n, 0))
		}
	}
	return Collection{strNode(string(r[start:end]))}, nil
}

func fnToChars(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	s, ok, err := singletonString(in)
	if err != nil || !ok {
		return nil, err
	}
	var out Collection
	for _, r := range s {
		out = append(out, strNode(string(r)))
	}
	return out, nil
}

func fnToString(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) != 1 {
		return nil, nil
	}
	switch v := in[0].Value.(type) {
	case string:
		return Collection{strNode(v)}, nil
	case json.Number:
		return Collection{strNode(string(v))}, nil
	case bool:
		return Collection{strNode(strconv.FormatBool(v))}, nil
	case Quantity:
		return Collection{strNode(v.Value + " '" + v.Unit + "'")}, nil
	}
	return nil, nil
}

func fnToInteger(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) != 1 {
		return nil, nil
	}
	switch v := in[0].Value.(type) {
	case string:
		if i, err := strconv.ParseInt(v, 10, 32); err == nil {
			return Collection{intNode(int(i))}, nil
		}
	case json.Number:
		if isIntegerNumber(v) {
			return Collection{literal(v, typeInteger)}, nil
		}
	case bool:
		return Collection{intNode(boolInt(v))}, nil
	}
	return nil, nil
}

func fnToDecimal(_ *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	if len(in) != 1 {
		return nil, nil
	}
	switch v := in[0].Value.(type) {
	case string:
		if _, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "eEinIN") {
			return Collection{literal(json.Number(v), typeDecimal)}, nil
		}
	case json.Number:
		return Collection{literal(v, typeDecimal)}, nil
	case bool:
		return Collection{literal(json.Number(strconv.Itoa(boolInt(v))), typeDecimal)}, nil
	}
	return nil, nil
}

func converts(f func(*evalCtx, *expr, Collection, scope) (Collection, error)) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
		if len(in) == 0 {
			return nil, nil
		}
		r, err := f(c, e, in, s)
		if err != nil {
			return nil, err
		}
		return Collection{boolNode(len(r) == 1)}, nil
	}
}

func (c *evalCtx) otherArg(e *expr, s scope) (Collection, error) {
	return c.eval(e.args[0], Collection{s.this}, s)
}

func fnCombine(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	other, err := c.otherArg(e, s)
	if err != nil {
		return nil, err
	}
	return append(append(Collection{}, in...), other...), c.step(len(in) + len(other))
}

func fnUnion(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	other, err := c.otherArg(e, s)
	if err != nil {
		return nil, err
	}
	if err := c.step(len(in) + len(other)); err != nil {
		return nil, err
	}
	return union(in, other), nil
}

func contains(coll Collection, n *Node) bool {
	for _, o := range coll {
		if eq, ok := nodesEqual(n, o); ok && eq {
			return true
		}
	}
	return false
}

func fnIntersect(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	other, err := c.otherArg(e, s)
	if err != nil {
		return nil, err
	}
	if err := c.step(len(in) * len(other)); err != nil {
		return nil, err
	}
	var out Collection
	for _, n := range in {
		if contains(other, n) && !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func fnExclude(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	other, err := c.otherArg(e, s)
	if err != nil {
		return nil, err
	}
	if err := c.step(len(in) * len(other)); err != nil {
		return nil, err
	}
	var out Collection
	for _, n := range in {
		if !contains(other, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func fnSubset(super bool) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
		other, err := c.otherArg(e, s)
		if err != nil {
			return nil, err
		}
		if err := c.step(len(in) * len(other)); err != nil {
			return nil, err
		}
		a, b := in, other
		if super {
			a, b = other, in
		}
		for _, n := range a {
			if !contains(b, n) {
				return Collection{boolNode(false)}, nil
			}
		}
		return Collection{boolNode(true)}, nil
	}
}

// fnResolve resolves references: "#id" to a contained resource of
// %rootResource, anything else through Env.Resolve when it is set.
func fnResolve(c *evalCtx, _ *expr, in Collection, _ scope) (Collection, error) {
	var out Collection
	for _, n := range in {
		ref, ok := n.Value.(string)
		if m, isObj := n.Value.(map[string]any); isObj {
			ref, ok = m["reference"].(string)
		}
		if !ok {
			continue
		}
		if id, local := strings.CutPrefix(ref, "#"); local {
			root := c.rootRes
			cont, err := c.children(nil, root, "contained")
			if err != nil {
				return nil, err
			}
			for _, r := range cont {
				if m, ok := r.Value.(map[string]any); ok && m["id"] == id {
					out = append(out, r)
				}
			}
			if id == "" {
				out = append(out, root)
			}
			continue
		}
		if c.env.Resolve != nil {
			if r := c.env.Resolve(ref); r != nil {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func fnExtension(c *evalCtx, e *expr, in Collection, s scope) (Collection, error) {
	args, err := c.evalArgs(e.args, s)
	if err != nil {
		return nil, err
	}
	url, ok, err := singletonString(args[0])
	if err != nil || !ok {
		return nil, err
	}
	var out Collection
	for _, n := range in {
		exts, err := c.children(nil, n, "extension")
		if err != nil {
			return nil, err
		}
		for _, x := range exts {
			if m, ok := x.Value.(map[string]any); ok && m["url"] == url {
				out = append(out, x)
			}
		}
	}
	return out, nil
}

func fnNow(typ, layout string) func(*evalCtx, *expr, Collection, scope) (Collection, error) {
	return func(c *evalCtx, _ *expr, _ Collection, _ scope) (Collection, error) {
		now := time.Now
		if c.env.Now != nil {
			now = c.env.Now
		}
		return Collection{literal(now().UTC().Format(layout), typ)}, nil
	}
}
