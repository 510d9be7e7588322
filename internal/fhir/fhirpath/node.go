package fhirpath

import (
	"encoding/json"
	"strconv"
	"strings"
)

// System types of literals and computed values.
const (
	typeBoolean  = "System.Boolean"
	typeString   = "System.String"
	typeInteger  = "System.Integer"
	typeDecimal  = "System.Decimal"
	typeDate     = "System.Date"
	typeDateTime = "System.DateTime"
	typeTime     = "System.Time"
	typeQuantity = "System.Quantity"
)

// Node is one item of a collection: an element of the resource (with its
// location) or a value the expression computed.
//
// For an element, Value is what the decoded JSON holds there:
// map[string]any for a complex element or resource, string, json.Number
// or bool for a primitive, or nil for a primitive given only by its "_name"
// extension object. Parent, Key and Index locate it (Index is -1 when the
// member is not an array), so a caller can change or remove it; Path
// renders where it is.
type Node struct {
	Value any
	// Ext is the "_name" object of a primitive (its id and extensions).
	Ext map[string]any
	// Type is the FHIR type ("Observation", "CodeableConcept", "code") or,
	// for computed values, a System type ("System.String").
	Type string
	// TypeKey names the definition of the node's children in the Model
	// (the type, or a backbone element's path "Observation.component").
	TypeKey string
	Parent  map[string]any
	Key     string
	Index   int

	up   *Node  // the node Parent belongs to
	path string // the location, when given rather than derived
}

// NewNode returns a node for a value of type typ, its children typed by
// type key tk, at path (which may be empty when no location is needed).
func NewNode(value any, typ, tk, path string) *Node {
	return &Node{Value: value, Type: typ, TypeKey: tk, Index: -1, path: path}
}

// Path is the node's location ("Observation.component[0].code"); empty
// for computed values.
func (n *Node) Path() string {
	if n.path != "" || n.up == nil {
		return n.path
	}
	p := n.up.Path() + "." + n.Key
	if n.Index >= 0 {
		p += "[" + strconv.Itoa(n.Index) + "]"
	}
	return p
}

// Owner is the node that holds n: the node whose object (or, for a
// primitive's id and extensions, whose "_name" object) is n.Parent. It is
// nil for the focus of an evaluation and for computed values.
func (n *Node) Owner() *Node { return n.up }

// Quantity is a computed quantity value (a literal such as 4 'mg').
type Quantity struct {
	Value string // decimal
	Unit  string
}

// Collection is the result of an expression: an ordered list of nodes.
type Collection []*Node

// NewResource returns the node of a decoded resource, the usual focus of
// an evaluation. path is its location ("Bundle.entry[0].resource"); the
// resource type when empty.
func NewResource(obj map[string]any, path string) *Node {
	typ, _ := obj["resourceType"].(string)
	if path == "" {
		path = typ
	}
	return &Node{Value: obj, Type: typ, TypeKey: typ, path: path, Index: -1}
}

func literal(v any, typ string) *Node { return &Node{Value: v, Type: typ, Index: -1} }

func numberValue(s string) json.Number { return json.Number(s) }

// Member describes how an element appears in JSON: its member name (the
// typed name for a choice: valueQuantity), its type and the type key of
// its children.
type Member struct {
	Key, Type, TypeKey string
	// ExtKey is "_" + Key; a Model may set it to spare the engine
	// building it on every lookup.
	ExtKey string
}

// Model gives the engine the types of elements, which it needs for choice
// elements (value[x]), for is/as/ofType and for children(). Without a
// Model the engine navigates JSON names only and infers primitive types
// from JSON values.
type Model interface {
	// Element returns the members under which element name of an object
	// of type key tk may appear; nil when tk has no such element.
	Element(tk, name string) []Member
	// Member resolves a JSON member name of an object of type key tk to
	// its element name and member.
	Member(tk, key string) (name string, m Member, ok bool)
}

// asString returns the node's value as a string when it is string-like.
func (n *Node) asString() (string, bool) {
	s, ok := n.Value.(string)
	return s, ok
}

// isPrimitiveValue reports whether the node holds a primitive value.
func (n *Node) isPrimitiveValue() bool {
	switch n.Value.(type) {
	case string, bool, json.Number, Quantity:
		return true
	}
	return false
}

// kind classifies a node's value for comparisons.
type kind int

const (
	kNone kind = iota
	kBool
	kString
	kNumber
	kDate // date, dateTime, instant
	kTime
	kQuantity
	kObject
)

func (n *Node) kind() kind {
	switch v := n.Value.(type) {
	case bool:
		return kBool
	case json.Number:
		return kNumber
	case Quantity:
		return kQuantity
	case map[string]any:
		if n.Type == "Quantity" || isQuantitySubtype(n.Type) {
			if _, ok := v["value"]; ok {
				return kQuantity
			}
		}
		return kObject
	case string:
		switch baseType(n.Type) {
		case "date", "dateTime", "instant", "Date", "DateTime":
			return kDate
		case "time", "Time":
			return kTime
		}
		return kString
	}
	return kNone
}

// baseType drops a "System." or "FHIR." namespace.
func baseType(t string) string {
	if i := strings.IndexByte(t, '.'); i >= 0 && (t[:i] == "System" || t[:i] == "FHIR") {
		return t[i+1:]
	}
	return t
}

func isQuantitySubtype(t string) bool {
	switch t {
	case "Age", "Distance", "Duration", "Count", "SimpleQuantity", "MoneyQuantity":
		return true
	}
	return false
}

// quantity returns a node's value as a quantity, when it is one.
func (n *Node) quantity() (Quantity, bool) {
	switch v := n.Value.(type) {
	case Quantity:
		return v, true
	case map[string]any:
		num, ok := v["value"].(json.Number)
		if !ok {
			return Quantity{}, false
		}
		unit, _ := v["code"].(string)
		if unit == "" {
			unit, _ = v["unit"].(string)
		}
		return Quantity{Value: string(num), Unit: unit}, true
	}
	return Quantity{}, false
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func boolNode(b bool) *Node  { return literal(b, typeBoolean) }
func intNode(i int) *Node    { return literal(json.Number(strconv.Itoa(i)), typeInteger) }
func strNode(s string) *Node { return literal(s, typeString) }
