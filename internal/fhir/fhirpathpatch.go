package fhir

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir/fhirpath"
)

// fhirPathPatchSteps bounds the FHIRPath work of one patch: the steps of
// every path it evaluates, together.
const fhirPathPatchSteps = 1 << 20

// FHIRPathPatch is a FHIRPath Patch (FHIR R4, fhirpatch.html): a
// Parameters resource whose "operation" parameters are applied in order
// to a resource, all or none. Validator.ParseFHIRPathPatch reads one;
// Apply applies it to a copy.
//
// Each operation's path is a FHIRPath expression evaluated against the
// resource being patched, with the spec's element model (so value finds
// valueQuantity). It must select elements of that resource: a computed
// value, or a path that selects nothing (except for delete, where nothing
// is a no-op) or more than one element, fails the operation. resolve()
// reaches contained resources only.
//
// What it does not do, like JSONPatch: decide whether the patched resource
// may be stored. The records service validates the result, keeps its
// server-controlled elements and masked elements, and checks who may
// write it.
type FHIRPathPatch struct {
	model *specModel
	fp    *fhirpathModel
	ops   []fpOp
}

type fpOp struct {
	kind  string // add, insert, delete, replace, move
	path  *fhirpath.Expression
	owner *fhirpath.Expression // insert and move: the path without its last element
	last  string               // insert and move: that last element's name
	name  string               // add
	value *fpValue             // add, insert, replace
	index int                  // insert
	src   int                  // move
	dst   int                  // move
}

// fpValue is an operation's value: a value[x] of a FHIR type, a resource,
// or an element built from parts (for backbone elements, which have no
// value[x] type).
type fpValue struct {
	typ   string // "string", "CodeableConcept", "Resource"; "" for parts
	json  any
	parts []fpPart
}

type fpPart struct {
	name  string
	value *fpValue
}

// fpMembers are the members each operation type needs beyond type and
// path (required) and may have (optional).
var fpMembers = map[string]struct{ required, optional []string }{
	"add":     {required: []string{"name", "value"}},
	"insert":  {required: []string{"value", "index"}},
	"delete":  {},
	"replace": {required: []string{"value"}},
	"move":    {required: []string{"source", "destination"}},
}

// ParseFHIRPathPatch reads a FHIRPath Patch: a Parameters resource of at
// most maxOps (DefaultMaxPatchOps when maxOps <= 0) parameters, each
// named "operation" with parts type (add, insert, delete, replace,
// move), path, and as the type needs name, value[x] (or a value whose
// parts build a backbone element), index, source and destination. It is
// strict where the spec is silent: a part the operation does not take, a
// part given twice, and a path that does not compile are refused, before
// anything is applied. Values obey lim as a resource's do. Every error
// is an *Error naming the operation by its index, never its values.
func (v *Validator) ParseFHIRPathPatch(data []byte, lim Limits, maxOps int) (*FHIRPathPatch, error) {
	if maxOps <= 0 {
		maxOps = DefaultMaxPatchOps
	}
	r, err := Parse(data, lim)
	if err != nil {
		return nil, err
	}
	if r.Type != "Parameters" {
		return nil, issueError(CodeStructure, "resourceType", "a FHIRPath Patch is a Parameters resource")
	}
	for k := range r.Object {
		switch k {
		case "resourceType", "id", "meta", "parameter":
		default:
			return nil, issueError(CodeStructure, "Parameters", "a FHIRPath Patch takes no member "+strconv.Quote(safeKey(k)))
		}
	}
	params, ok := r.Object["parameter"].([]any)
	if !ok || len(params) == 0 {
		return nil, issueError(CodeRequired, "Parameters.parameter", "a FHIRPath Patch needs at least one operation")
	}
	if len(params) > maxOps {
		return nil, issueError(CodeTooCostly, "Parameters.parameter", "a patch may hold at most "+strconv.Itoa(maxOps)+" operations")
	}
	p := &FHIRPathPatch{model: v.model, fp: v.fpModel, ops: make([]fpOp, 0, len(params))}
	for i, raw := range params {
		op, err := p.parseOp(raw)
		if err != nil {
			return nil, issueError(CodeInvalid, opWhere(i), err.Error())
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

func opWhere(i int) string { return "Parameters.parameter[" + strconv.Itoa(i) + "]" }

func (p *FHIRPathPatch) parseOp(raw any) (fpOp, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return fpOp{}, patchError("a parameter must be a JSON object")
	}
	if name, _ := m["name"].(string); name != "operation" {
		return fpOp{}, patchError(`a FHIRPath Patch parameter must be named "operation"`)
	}
	for k := range m {
		if k != "name" && k != "part" {
			return fpOp{}, patchError("an operation takes no member " + strconv.Quote(safeKey(k)))
		}
	}
	parts, ok := m["part"].([]any)
	if !ok {
		return fpOp{}, patchError(`an operation needs parts ("type", "path", ...)`)
	}
	byName := make(map[string]map[string]any, len(parts))
	for _, rp := range parts {
		pm, ok := rp.(map[string]any)
		if !ok {
			return fpOp{}, patchError("a part must be a JSON object")
		}
		n, _ := pm["name"].(string)
		switch n {
		case "type", "path", "name", "value", "index", "source", "destination":
		default:
			return fpOp{}, patchError("an operation takes no part " + strconv.Quote(safeKey(n)))
		}
		if _, dup := byName[n]; dup {
			return fpOp{}, patchError("the part " + strconv.Quote(n) + " is given twice")
		}
		byName[n] = pm
	}
	kind, err := primitivePart(byName, "type", "valueCode")
	if err != nil {
		return fpOp{}, err
	}
	want, ok := fpMembers[kind.(string)]
	if !ok {
		return fpOp{}, patchError(`"type" must be add, insert, delete, replace or move`)
	}
	op := fpOp{kind: kind.(string)}
	for n := range byName {
		if n != "type" && n != "path" && !contains(want.required, n) && !contains(want.optional, n) {
			return fpOp{}, patchError(op.kind + " takes no part " + strconv.Quote(n))
		}
	}
	for _, n := range want.required {
		if _, ok := byName[n]; !ok {
			return fpOp{}, patchError(op.kind + " needs the part " + strconv.Quote(n))
		}
	}
	src, err := primitivePart(byName, "path", "valueString")
	if err != nil {
		return fpOp{}, err
	}
	if op.path, err = fhirpath.Compile(src.(string), nil); err != nil {
		return fpOp{}, patchError(`"path" is not a FHIRPath expression Ward can evaluate`)
	}
	if op.kind == "insert" || op.kind == "move" {
		if op.owner, op.last, err = splitLast(src.(string)); err != nil {
			return fpOp{}, err
		}
	}
	if _, ok := byName["name"]; ok {
		n, err := primitivePart(byName, "name", "valueString")
		if err != nil {
			return fpOp{}, err
		}
		if op.name = n.(string); safeKey(op.name) != op.name || strings.HasPrefix(op.name, "_") {
			return fpOp{}, patchError(`"name" must be an element name`)
		}
	}
	for _, ip := range []struct {
		name string
		dst  *int
	}{{"index", &op.index}, {"source", &op.src}, {"destination", &op.dst}} {
		if _, ok := byName[ip.name]; !ok {
			continue
		}
		n, err := primitivePart(byName, ip.name, "valueInteger")
		if err != nil {
			return fpOp{}, err
		}
		i, err := strconv.Atoi(string(n.(json.Number)))
		if err != nil || i < 0 {
			return fpOp{}, patchError(strconv.Quote(ip.name) + " must be an integer from 0")
		}
		*ip.dst = i
	}
	if vp, ok := byName["value"]; ok {
		if op.value, err = p.parseValue(vp, 0); err != nil {
			return fpOp{}, err
		}
	}
	return op, nil
}

// primitivePart returns the value of part name, which must be given as
// key (valueString, valueCode, valueInteger) and nothing else.
func primitivePart(parts map[string]map[string]any, name, key string) (any, error) {
	pm, ok := parts[name]
	if !ok {
		return nil, patchError("an operation needs the part " + strconv.Quote(name))
	}
	for k := range pm {
		if k != "name" && k != key {
			return nil, patchError("the part " + strconv.Quote(name) + " takes only " + key)
		}
	}
	v, ok := pm[key]
	if !ok {
		return nil, patchError("the part " + strconv.Quote(name) + " needs " + key)
	}
	switch key {
	case "valueInteger":
		if n, ok := v.(json.Number); ok {
			return n, nil
		}
	default:
		if s, ok := v.(string); ok && s != "" {
			return s, nil
		}
	}
	return nil, patchError("the part " + strconv.Quote(name) + " has a " + key + " of the wrong type")
}

// splitLast splits a path that ends in an element name ("Patient.name")
// into the path of its owner and the name, as insert and move need: the
// list they change may be empty, so it is found from its owner.
func splitLast(src string) (*fhirpath.Expression, string, error) {
	src = strings.TrimSpace(src)
	i := strings.LastIndexByte(src, '.')
	name := src[i+1:]
	if i <= 0 || safeKey(name) != name || strings.HasPrefix(name, "_") {
		return nil, "", patchError(`the "path" of insert and move must end in an element name ("Patient.identifier")`)
	}
	owner, err := fhirpath.Compile(src[:i], nil)
	if err != nil {
		return nil, "", patchError(`"path" is not a FHIRPath expression Ward can evaluate`)
	}
	return owner, name, nil
}

// maxValueDepth bounds the nesting of parts within a value.
const maxValueDepth = 16

// parseValue reads the value part: one value[x], a resource, or parts.
func (p *FHIRPathPatch) parseValue(pm map[string]any, depth int) (*fpValue, error) {
	if depth > maxValueDepth {
		return nil, patchError("a value's parts are nested too deeply")
	}
	var out *fpValue
	for k, v := range pm {
		if k == "name" {
			continue
		}
		if out != nil {
			return nil, patchError("a value part holds exactly one value[x], resource or list of parts")
		}
		switch {
		case k == "resource":
			if _, ok := v.(map[string]any); !ok {
				return nil, patchError("a resource value must be a JSON object")
			}
			out = &fpValue{typ: "Resource", json: v}
		case k == "part":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return nil, patchError(`"part" must be a non-empty array`)
			}
			out = &fpValue{}
			for _, rp := range list {
				sub, ok := rp.(map[string]any)
				if !ok {
					return nil, patchError("a part must be a JSON object")
				}
				n, _ := sub["name"].(string)
				if safeKey(n) != n || strings.HasPrefix(n, "_") {
					return nil, patchError("a value's part must be named for an element")
				}
				sv, err := p.parseValue(sub, depth+1)
				if err != nil {
					return nil, err
				}
				out.parts = append(out.parts, fpPart{name: n, value: sv})
			}
		case strings.HasPrefix(k, "value") && len(k) > len("value"):
			typ, ok := p.valueType(k[len("value"):])
			if !ok {
				return nil, patchError(strconv.Quote(safeKey(k)) + " does not name a FHIR data type")
			}
			out = &fpValue{typ: typ, json: v}
		default:
			return nil, patchError("a value part takes no member " + strconv.Quote(safeKey(k)))
		}
	}
	if out == nil {
		return nil, patchError("a value part needs a value[x], a resource or parts")
	}
	return out, nil
}

// valueType is the FHIR type of a value[x] suffix: "String" is string,
// "CodeableConcept" is CodeableConcept.
func (p *FHIRPathPatch) valueType(suffix string) (string, bool) {
	lower := strings.ToLower(suffix[:1]) + suffix[1:]
	if t := p.model.Types[lower]; t != nil && t.Kind == "primitive-type" {
		return lower, true
	}
	if t := p.model.Types[suffix]; t != nil && t.Kind == "complex-type" {
		return suffix, true
	}
	return "", false
}

// Apply applies the patch to a copy of r and returns the copy; r is not
// changed. An operation that cannot be applied (its path selects nothing,
// several elements or a computed value; an element the resource type does
// not have; an index out of range) is an *Error naming it. The result's
// Type and ID are read from it again: the caller checks that they are the
// ones it expects.
func (p *FHIRPathPatch) Apply(r *Resource) (*Resource, error) {
	doc := cloneMap(r.Object)
	env := &fhirpath.Env{Model: p.fp, MaxSteps: fhirPathPatchSteps, Spent: new(int)}
	for i, op := range p.ops {
		root := fhirpath.NewResource(doc, "")
		env.Resource = root
		if err := p.apply(env, root, op); err != nil {
			return nil, issueError(CodeInvalid, opWhere(i), op.kind+": "+err.Error())
		}
	}
	out := &Resource{Object: doc}
	out.Type, _ = doc["resourceType"].(string)
	out.ID, _ = doc["id"].(string)
	return out, nil
}

func (p *FHIRPathPatch) apply(env *fhirpath.Env, root *fhirpath.Node, op fpOp) error {
	switch op.kind {
	case "add":
		n, err := selectOne(env, root, op.path)
		if err != nil {
			return err
		}
		return p.add(n, op.name, op.value)
	case "insert", "move":
		n, err := selectOne(env, root, op.owner)
		if err != nil {
			return err
		}
		return p.reorder(n, op)
	case "delete":
		got, err := selectElements(env, root, op.path)
		switch {
		case err != nil:
			return err
		case len(got) == 0:
			return nil // nothing to delete
		case len(got) > 1:
			return patchError("the path selects more than one element")
		case got[0].Parent == nil:
			return patchError("cannot delete the whole resource (use a delete)")
		}
		removeNode(got[0])
		return nil
	case "replace":
		n, err := selectOne(env, root, op.path)
		if err != nil {
			return err
		}
		if n.Parent == nil {
			return patchError("cannot replace the whole resource (use an update)")
		}
		return p.replace(n, op.value)
	}
	return patchError("unknown operation")
}

// selectElements evaluates path and checks that it selects only elements
// of the resource being patched.
func selectElements(env *fhirpath.Env, root *fhirpath.Node, path *fhirpath.Expression) (fhirpath.Collection, error) {
	got, err := path.Evaluate(env, root)
	if err != nil {
		return nil, patchError("the path could not be evaluated")
	}
	for _, n := range got {
		if n != root && (n.Parent == nil || n.Owner() == nil) {
			return nil, patchError("the path selects a value that is not an element of the resource")
		}
	}
	return got, nil
}

func selectOne(env *fhirpath.Env, root *fhirpath.Node, path *fhirpath.Expression) (*fhirpath.Node, error) {
	got, err := selectElements(env, root, path)
	switch {
	case err != nil:
		return nil, err
	case len(got) == 0:
		return nil, patchError("the path selects no element")
	case len(got) > 1:
		return nil, patchError("the path selects more than one element")
	}
	return got[0], nil
}

// element returns the element of type key tk whose JSON member is key
// (its choice typed name, valueQuantity, or its name).
func (p *FHIRPathPatch) element(tk, key string) (*specElement, bool) {
	ref, ok := p.model.member(tk, key)
	if !ok || strings.HasPrefix(key, "_") {
		return nil, false
	}
	return ref.el, true
}

// elementNamed returns the element name of type key tk.
func (p *FHIRPathPatch) elementNamed(tk, name string) (*specElement, bool) {
	t := p.model.Types[tk]
	if t == nil {
		return nil, false
	}
	for i := range t.Elements {
		if t.Elements[i].Name == name {
			return &t.Elements[i], true
		}
	}
	return nil, false
}

func repeats(el *specElement) bool { return el.Max != "0" && el.Max != "1" }

// add adds element name to the object n: appended when it repeats, set
// when it does not and has no value yet.
func (p *FHIRPathPatch) add(n *fhirpath.Node, name string, v *fpValue) error {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		return patchError("the path selects a primitive, which has no elements to add to")
	}
	el, ok := p.elementNamed(n.TypeKey, name)
	if !ok {
		return patchError("the element selected has no element " + strconv.Quote(name))
	}
	key, val, err := p.encode(el, v, 0)
	if err != nil {
		return err
	}
	if repeats(el) {
		list, _ := obj[key].([]any)
		obj[key] = append(list, val)
		if ext, ok := obj["_"+key].([]any); ok {
			obj["_"+key] = append(ext, nil)
		}
		return nil
	}
	for _, k := range el.keys {
		if _, has := obj[k]; has || obj["_"+k] != nil {
			return patchError(strconv.Quote(name) + " already has a value (use replace)")
		}
	}
	obj[key] = val
	return nil
}

// reorder inserts into or moves within the list op.last of the object n.
func (p *FHIRPathPatch) reorder(n *fhirpath.Node, op fpOp) error {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		return patchError("the path's owner is a primitive, which has no lists")
	}
	el, ok := p.elementNamed(n.TypeKey, op.last)
	if !ok || el.Choice || !repeats(el) {
		return patchError("the path does not name a list element")
	}
	key := el.keys[0]
	list, _ := obj[key].([]any)
	ext, hasExt := obj["_"+key].([]any)
	if op.kind == "insert" {
		if op.index > len(list) {
			return patchError(`"index" is beyond the end of the list`)
		}
		_, val, err := p.encode(el, op.value, 0)
		if err != nil {
			return err
		}
		obj[key] = insertAt(list, op.index, val)
		if hasExt {
			obj["_"+key] = insertAt(ext, op.index, nil)
		}
		return nil
	}
	if op.src >= len(list) || op.dst >= len(list) {
		return patchError(`"source" or "destination" is beyond the end of the list`)
	}
	obj[key] = moveWithin(list, op.src, op.dst)
	if hasExt && len(ext) == len(list) {
		obj["_"+key] = moveWithin(ext, op.src, op.dst)
	}
	return nil
}

func insertAt(list []any, i int, v any) []any {
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = v
	return list
}

func moveWithin(list []any, src, dst int) []any {
	v := list[src]
	list = append(list[:src], list[src+1:]...)
	return insertAt(list, dst, v)
}

// replace puts v in place of the element n.
func (p *FHIRPathPatch) replace(n *fhirpath.Node, v *fpValue) error {
	el, ok := p.element(n.Owner().TypeKey, n.Key)
	if !ok {
		return patchError("the path selects an element that cannot be replaced")
	}
	key, val, err := p.encode(el, v, 0)
	if err != nil {
		return err
	}
	if n.Index >= 0 {
		list, ok := n.Parent[n.Key].([]any)
		if !ok || key != n.Key || n.Index >= len(list) {
			return patchError("the path selects an element that cannot be replaced")
		}
		list[n.Index] = val
		return nil
	}
	delete(n.Parent, n.Key)
	delete(n.Parent, "_"+n.Key) // the old value's id and extensions go with it
	n.Parent[key] = val
	return nil
}

// removeNode removes the element n from its owner, and the "_name"
// extension entry that goes with it.
func removeNode(n *fhirpath.Node) {
	if n.Index < 0 {
		delete(n.Parent, n.Key)
		delete(n.Parent, "_"+n.Key)
		return
	}
	for _, k := range []string{n.Key, "_" + n.Key} {
		list, ok := n.Parent[k].([]any)
		if !ok || n.Index >= len(list) {
			continue
		}
		list = append(list[:n.Index], list[n.Index+1:]...)
		if len(list) == 0 || allNil(list) {
			delete(n.Parent, k)
		} else {
			n.Parent[k] = list
		}
	}
}

func allNil(list []any) bool {
	for _, v := range list {
		if v != nil {
			return false
		}
	}
	return true
}

// encode turns v into the JSON member of element el: its member name (a
// choice element's typed name) and value.
func (p *FHIRPathPatch) encode(el *specElement, v *fpValue, depth int) (string, any, error) {
	if v.parts == nil {
		if !el.Choice {
			return el.keys[0], cloneValue(v.json), nil
		}
		for i, t := range el.Types {
			if t == v.typ {
				return el.keys[i], cloneValue(v.json), nil
			}
		}
		return "", nil, patchError(strconv.Quote(el.Name) + " takes no value of type " + strconv.Quote(v.typ))
	}
	if depth > maxValueDepth || el.Choice || len(el.Types) != 1 {
		return "", nil, patchError(strconv.Quote(el.Name) + " cannot be built from parts")
	}
	tk := el.Types[0]
	if el.Ref != "" {
		tk = el.Ref
	}
	if t := p.model.Types[tk]; t == nil || t.Kind == "primitive-type" {
		return "", nil, patchError(strconv.Quote(el.Name) + " cannot be built from parts")
	}
	obj := make(map[string]any, len(v.parts))
	for _, part := range v.parts {
		child, ok := p.elementNamed(tk, part.name)
		if !ok {
			return "", nil, patchError(strconv.Quote(el.Name) + " has no element " + strconv.Quote(part.name))
		}
		k, cv, err := p.encode(child, part.value, depth+1)
		if err != nil {
			return "", nil, err
		}
		if repeats(child) {
			list, _ := obj[k].([]any)
			obj[k] = append(list, cv)
			continue
		}
		if _, dup := obj[k]; dup {
			return "", nil, patchError(strconv.Quote(part.name) + " is given twice but does not repeat")
		}
		obj[k] = cv
	}
	return el.keys[0], obj, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
