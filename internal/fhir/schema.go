package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// fhirSchemaGz is the HL7-generated FHIR R4 JSON schema (draft-06, CC0),
// gzipped.
//
//go:embed spec/fhir.schema.json.gz
var fhirSchemaGz []byte

// loadSchema decompresses the embedded schema and applies the corrections
// Ward relies on (see patchSchema).
func loadSchema() (map[string]any, error) {
	zr, err := gzip.NewReader(bytes.NewReader(fhirSchemaGz))
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	dec := json.NewDecoder(zr)
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	if _, ok := root["definitions"].(map[string]any); !ok {
		return nil, fmt.Errorf("fhir: embedded schema: no definitions")
	}
	patchSchema(root)
	return root, nil
}

// patchSchema adjusts the generated schema:
//   - every definition with properties gets "type": "object", so that a
//     string where a complex type is expected is rejected (the generated
//     schema omits it);
//   - primitive and Element definitions also admit null: Parse only lets
//     null through as an array element, where FHIR JSON uses it to align a
//     primitive array with its "_name" extension array;
//   - ResourceList (contained resources, Bundle entries, Parameters) accepts
//     any object: the Validator validates each nested resource against its
//     own type, which is far faster than the 146-way oneOf and gives
//     precise error paths;
//   - two known defects of the 4.0.0 build: "4.0.1" is added to the
//     fhirVersion enums, and ElementDefinition.type gains "_profile" and
//     "_targetProfile".
//   - the "id" and "$schema" keywords and the root "oneOf" are removed:
//     Ward reads the schema one definition at a time.
func patchSchema(root map[string]any) {
	delete(root, "id")
	delete(root, "$schema")
	delete(root, "oneOf")
	delete(root, "discriminator")
	defs := root["definitions"].(map[string]any)
	for name, d := range defs {
		def, ok := d.(map[string]any)
		if !ok {
			continue
		}
		props, hasProps := def["properties"].(map[string]any)
		switch {
		case name == "Element":
			def["type"] = []any{"object", "null"}
		case hasProps:
			if _, ok := def["type"]; !ok {
				def["type"] = "object"
			}
		default:
			if t, ok := def["type"].(string); ok {
				def["type"] = []any{t, "null"}
			}
		}
		for _, p := range props {
			prop, ok := p.(map[string]any)
			if !ok {
				continue
			}
			addEnum401(prop)
			if items, ok := prop["items"].(map[string]any); ok {
				addEnum401(items)
			}
		}
	}
	defs["ResourceList"] = map[string]any{"type": "object"}
	if et, ok := defs["ElementDefinition_Type"].(map[string]any); ok {
		if props, ok := et["properties"].(map[string]any); ok {
			for _, p := range []string{"_profile", "_targetProfile"} {
				props[p] = map[string]any{
					"type":  "array",
					"items": map[string]any{"$ref": "#/definitions/Element"},
				}
			}
		}
	}
}

func addEnum401(prop map[string]any) {
	enum, ok := prop["enum"].([]any)
	if !ok {
		return
	}
	for _, e := range enum {
		if e == "4.0.0" {
			prop["enum"] = append(enum, "4.0.1")
			return
		}
	}
}

// jsonTypes is a set of JSON value types, as the schema's "type" keyword
// names them.
type jsonTypes uint8

const (
	jsonNull jsonTypes = 1 << iota
	jsonBoolean
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// jsonTypeNames lists the type names in the order diagnostics give them.
var jsonTypeNames = [...]struct {
	t    jsonTypes
	name string
}{
	{jsonNull, "null"}, {jsonBoolean, "boolean"}, {jsonNumber, "number"},
	{jsonString, "string"}, {jsonArray, "array"}, {jsonObject, "object"},
}

func parseJSONTypes(v any) jsonTypes {
	var names []any
	switch v := v.(type) {
	case string:
		names = []any{v}
	case []any:
		names = v
	}
	var ts jsonTypes
	for _, n := range names {
		for _, tn := range jsonTypeNames {
			if n == tn.name {
				ts |= tn.t
			}
		}
	}
	return ts
}

// typeOfJSON returns the JSON type of a value of a resource tree: from
// Parse, or built in Go (Marshal also encodes Go integers and floats). It
// returns 0 for a value JSON cannot hold (NaN, or a Go type Marshal does
// not encode).
func typeOfJSON(v any) jsonTypes {
	switch v := v.(type) {
	case nil:
		return jsonNull
	case bool:
		return jsonBoolean
	case json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return jsonNumber
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		return jsonNumber
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0
		}
		return jsonNumber
	case string:
		return jsonString
	case []any:
		return jsonArray
	case map[string]any:
		return jsonObject
	}
	return 0
}

// typeMismatch is the diagnostic for a value of type got where want is
// expected: "wrong JSON type: expected null or string, got number".
func typeMismatch(want, got jsonTypes) string {
	var b strings.Builder
	b.WriteString("wrong JSON type: expected ")
	first := true
	for _, tn := range jsonTypeNames {
		if want&tn.t == 0 {
			continue
		}
		if !first {
			b.WriteString(" or ")
		}
		first = false
		b.WriteString(tn.name)
	}
	b.WriteString(", got ")
	name := "a value JSON cannot hold"
	for _, tn := range jsonTypeNames {
		if got == tn.t {
			name = tn.name
		}
	}
	b.WriteString(name)
	return b.String()
}

// defType is what the schema demands of a value of one definition, beyond
// its elements' types (typeModel).
type defType struct {
	types    jsonTypes         // JSON types allowed; 0 allows any (xhtml)
	pattern  func(string) bool // whether a string value matches; nil for none
	required []string          // elements that must be present
}

// propType is the declared type of one element: the definition it refers
// to and whether it repeats, and what the schema demands of the value (of
// each item, for a repeating element) beyond that definition.
type propType struct {
	def   string
	array bool
	enum  []string // the codes of a code element with an inline value set

	// ref is definition def when the value must match it. Otherwise the
	// element inlines its constraints: an enum, a constant (resourceType),
	// or a primitive's JSON type and pattern (choice elements such as
	// valueDateTime), whose violations are named after owner, the
	// definition holding the element.
	ref      *defType
	types    jsonTypes
	pattern  func(string) bool
	konst    string
	hasConst bool
	owner    string
}

// typeModel maps definition name -> element name -> type. With the
// definitions' defType it drives every check Validate makes from the
// schema (elements, JSON types, required elements, patterns, codes) and
// the checks the schema cannot express (dates, references, nested
// resources).
type typeModel map[string]map[string]propType

func buildTypeModel(root map[string]any) (typeModel, map[string]*defType, error) {
	defs := root["definitions"].(map[string]any)
	// Choice elements (valueDateTime, effectiveInstant, ...) inline their
	// primitive's pattern instead of referring to it: recognise them by it.
	byPattern := make(map[string]string)
	for _, name := range []string{"date", "dateTime", "instant"} {
		if def, ok := defs[name].(map[string]any); ok {
			if p, ok := def["pattern"].(string); ok {
				byPattern[p] = name
			}
		}
	}
	patterns := make(map[string]func(string) bool)
	compile := func(d map[string]any) (func(string) bool, error) {
		p, ok := d["pattern"].(string)
		if !ok {
			return nil, nil
		}
		if match, ok := patterns[p]; ok {
			return match, nil
		}
		match := fastPatterns[p]
		if match == nil {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("fhir: embedded schema: pattern: %w", err)
			}
			match = re.MatchString
		}
		patterns[p] = match
		return match, nil
	}
	dts := make(map[string]*defType, len(defs))
	for name, d := range defs {
		def, _ := d.(map[string]any)
		dt := &defType{types: parseJSONTypes(def["type"])}
		var err error
		if dt.pattern, err = compile(def); err != nil {
			return nil, nil, err
		}
		for _, r := range asSlice(def["required"]) {
			if s, ok := r.(string); ok {
				dt.required = append(dt.required, s)
			}
		}
		dts[name] = dt
	}
	m := make(typeModel, len(defs))
	for name, d := range defs {
		def, _ := d.(map[string]any)
		props, _ := def["properties"].(map[string]any)
		if len(props) == 0 {
			continue
		}
		pm := make(map[string]propType, len(props))
		for pname, p := range props {
			prop, _ := p.(map[string]any)
			pt := propType{owner: name}
			if items, ok := prop["items"].(map[string]any); ok {
				pt.array = true
				prop = items
			}
			if enum, ok := prop["enum"].([]any); ok {
				for _, e := range enum {
					if s, ok := e.(string); ok {
						pt.enum = append(pt.enum, s)
					}
				}
			}
			if c, ok := prop["const"].(string); ok {
				pt.konst, pt.hasConst = c, true
			}
			if ref, ok := prop["$ref"].(string); ok {
				pt.def = strings.TrimPrefix(ref, "#/definitions/")
				if pt.ref = dts[pt.def]; pt.ref == nil {
					return nil, nil, fmt.Errorf("fhir: embedded schema: %s.%s refers to an unknown definition", name, pname)
				}
			} else {
				var err error
				pt.types = parseJSONTypes(prop["type"])
				if pt.pattern, err = compile(prop); err != nil {
					return nil, nil, err
				}
				if p, ok := prop["pattern"].(string); ok {
					pt.def = byPattern[p]
				}
			}
			pm[pname] = pt
		}
		m[name] = pm
	}
	return m, dts, nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// fastPatterns match as the schema's most used patterns do, compiled as Go
// regular expressions, at a fraction of the cost. Go's \s is [\t\n\f\r ]
// and \S any other character, invalid UTF-8 included.
// TestFastPatternsMatchRegexp holds them to the regular expressions.
var fastPatterns = map[string]func(string) bool{
	// string, markdown: one or more characters, none of them a form feed.
	`^[ \r\n\t\S]+$`: func(s string) bool {
		return s != "" && strings.IndexByte(s, '\f') < 0
	},
	// uri, url, canonical: no whitespace.
	`^\S*$`: func(s string) bool {
		return !strings.ContainsAny(s, " \t\n\f\r")
	},
	// code: words separated by single whitespace characters.
	`^[^\s]+(\s[^\s]+)*$`: func(s string) bool {
		if s == "" {
			return false
		}
		prevSpace := true // no leading whitespace
		for i := 0; i < len(s); i++ {
			space := isRegexpSpace(s[i])
			if space && prevSpace {
				return false
			}
			prevSpace = space
		}
		return !prevSpace
	},
	// id: 1 to 64 letters, digits, '-' and '.'.
	`^[A-Za-z0-9\-\.]{1,64}$`: func(s string) bool {
		if len(s) == 0 || len(s) > 64 {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
		return true
	},
}

// isRegexpSpace reports whether c is in Go's \s class.
func isRegexpSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}
