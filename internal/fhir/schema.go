package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fhirSchemaGz is the HL7-generated FHIR R4 JSON schema (draft-06, CC0),
// gzipped.
//
//go:embed spec/fhir.schema.json.gz
var fhirSchemaGz []byte

const schemaURL = "urn:ward:fhir:r4:schema"

// loadSchema decompresses the embedded schema and applies the corrections
// Ward relies on (see patchSchema).
func loadSchema() (map[string]any, error) {
	zr, err := gzip.NewReader(bytes.NewReader(fhirSchemaGz))
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(zr)
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("fhir: embedded schema: not an object")
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
//   - the "id" and "$schema" keywords are removed so the schema lives at
//     schemaURL.
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

// propType is the declared type of one element: the definition it refers
// to and whether it repeats.
type propType struct {
	def   string
	array bool
	enum  []string // the codes of a code element with an inline value set
}

// typeModel maps definition name -> element name -> type. It drives the
// checks the schema cannot express (dates, references, nested resources).
type typeModel map[string]map[string]propType

func buildTypeModel(root map[string]any) typeModel {
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
			var pt propType
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
			if ref, ok := prop["$ref"].(string); ok {
				pt.def = strings.TrimPrefix(ref, "#/definitions/")
			} else if p, ok := prop["pattern"].(string); ok {
				pt.def = byPattern[p]
			}
			pm[pname] = pt
		}
		m[name] = pm
	}
	return m
}
