package fhir

import (
	"errors"
	"strings"
	"testing"
)

// fpPatch wraps operations (each the JSON of an operation's parts) in a
// FHIRPath Patch Parameters resource.
func fpPatch(ops ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Parameters","parameter":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"operation","part":[` + op + `]}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

const fpPatient = `{"resourceType":"Patient","id":"p1","active":true,` +
	`"identifier":[{"system":"urn:a","value":"1"},{"system":"urn:b","value":"2"}],` +
	`"name":[{"family":"Doe","given":["Jan","Piet"],"_given":[null,{"id":"g2"}]}],` +
	`"birthDate":"1970-01-01","deceasedBoolean":false}`

// TestFHIRPathPatchApply follows the operations of FHIR R4's FHIRPath
// Patch page on a Patient: each patch applied to the same resource gives
// the expected one, and the original is never changed.
func TestFHIRPathPatchApply(t *testing.T) {
	v := newValidator(t)
	const ids = `"identifier":[{"system":"urn:a","value":"1"},{"system":"urn:b","value":"2"}]`
	const name = `"name":[{"_given":[null,{"id":"g2"}],"family":"Doe","given":["Jan","Piet"]}]`
	tests := []struct {
		name string
		ops  []string
		want string
	}{
		{"add a primitive", []string{`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"female"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"gender":"female","id":"p1",` + ids + `,` + name + `}`},
		{"add to a list appends", []string{`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name[0]"},{"name":"name","valueString":"given"},{"name":"value","valueString":"Kees"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,"name":[{"_given":[null,{"id":"g2"},null],"family":"Doe","given":["Jan","Piet","Kees"]}]}`},
		{"add a data type", []string{`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"maritalStatus"},{"name":"value","valueCodeableConcept":{"text":"M"}}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,"maritalStatus":{"text":"M"},` + name + `}`},
		{"add a backbone element from parts", []string{`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"name","valueHumanName":{"text":"Ann"}},{"name":"relationship","valueCodeableConcept":{"text":"a"}},{"name":"relationship","valueCodeableConcept":{"text":"b"}}]}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","contact":[{"name":{"text":"Ann"},"relationship":[{"text":"a"},{"text":"b"}]}],"deceasedBoolean":false,"id":"p1",` + ids + `,` + name + `}`},
		{"insert", []string{`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":1},{"name":"value","valueIdentifier":{"value":"3"}}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1","identifier":[{"system":"urn:a","value":"1"},{"value":"3"},{"system":"urn:b","value":"2"}],` + name + `}`},
		{"insert into an empty list", []string{`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.telecom"},{"name":"index","valueInteger":0},{"name":"value","valueContactPoint":{"system":"phone","value":"1"}}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,` + name + `,"telecom":[{"system":"phone","value":"1"}]}`},
		{"delete a list element by criteria", []string{`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier.where(system='urn:a')"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1","identifier":[{"system":"urn:b","value":"2"}],` + name + `}`},
		{"delete a primitive list element with its extension", []string{`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given[1]"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,"name":[{"family":"Doe","given":["Jan"]}]}`},
		{"delete nothing", []string{`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,` + name + `}`},
		{"replace a primitive", []string{`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1971-02-03"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1971-02-03","deceasedBoolean":false,"id":"p1",` + ids + `,` + name + `}`},
		{"replace a choice with another type", []string{`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.deceased"},{"name":"value","valueDateTime":"2020-01-01"}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedDateTime":"2020-01-01","id":"p1",` + ids + `,` + name + `}`},
		{"replace a list element", []string{`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.identifier[1]"},{"name":"value","valueIdentifier":{"value":"9"}}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1","identifier":[{"system":"urn:a","value":"1"},{"value":"9"}],` + name + `}`},
		{"move", []string{`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.identifier"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":1}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1","identifier":[{"system":"urn:b","value":"2"},{"system":"urn:a","value":"1"}],` + name + `}`},
		{"move keeps extensions aligned", []string{`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name[0].given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`},
			`{"resourceType":"Patient","active":true,"birthDate":"1970-01-01","deceasedBoolean":false,"id":"p1",` + ids + `,"name":[{"_given":[{"id":"g2"},null],"family":"Doe","given":["Piet","Jan"]}]}`},
		{"operations apply in order", []string{
			`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"male"}`,
			`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"other"}`,
			`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active"}`},
			`{"resourceType":"Patient","birthDate":"1970-01-01","deceasedBoolean":false,"gender":"other","id":"p1",` + ids + `,` + name + `}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := basic(t, fpPatient)
			before := string(r.Marshal())
			p, err := v.ParseFHIRPathPatch([]byte(fpPatch(tc.ops...)), Limits{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Apply(r)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out.Marshal()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if string(r.Marshal()) != before {
				t.Error("Apply changed the original")
			}
			if out.Type != "Patient" || out.ID != "p1" {
				t.Errorf("type/id = %s/%s", out.Type, out.ID)
			}
		})
	}
}

// TestFHIRPathPatchApplyErrors: an operation that cannot be applied is an
// *Error naming it (by index, never by value), and the original is left
// alone.
func TestFHIRPathPatchApplyErrors(t *testing.T) {
	v := newValidator(t)
	ok := `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active"}`
	tests := []struct {
		name, op, diag string
	}{
		{"replace of nothing", `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male"}`, "selects no element"},
		{"replace of several", `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.identifier.value"},{"name":"value","valueString":"x"}`, "more than one"},
		{"delete of several", `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier"}`, "more than one"},
		{"delete of the resource", `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient"}`, "whole resource"},
		{"replace of the resource", `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"%resource"},{"name":"value","valueString":"x"}`, "whole resource"},
		{"a computed value", `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"'Doe'"},{"name":"value","valueString":"x"}`, "not an element"},
		{"add of an unknown element", `{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"colour"},{"name":"value","valueString":"x"}`, "no element"},
		{"add over a value", `{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueBoolean":true}`, "already has a value"},
		{"add to a primitive", `{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.birthDate"},{"name":"name","valueString":"id"},{"name":"value","valueString":"x"}`, "primitive"},
		{"a choice of a type it lacks", `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.deceased"},{"name":"value","valueQuantity":{"value":1}}`, "no value of type"},
		{"insert beyond the end", `{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":3},{"name":"value","valueIdentifier":{"value":"3"}}`, "beyond the end"},
		{"insert into a non-list", `{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.gender"},{"name":"index","valueInteger":0},{"name":"value","valueCode":"male"}`, "list element"},
		{"move beyond the end", `{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.identifier"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":2}`, "beyond the end"},
		{"parts for a primitive", `{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","part":[{"name":"x","valueString":"y"}]}`, "cannot be built from parts"},
		{"parts naming an unknown element", `{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"colour","valueString":"y"}]}`, "no element"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := basic(t, fpPatient)
			p, err := v.ParseFHIRPathPatch([]byte(fpPatch(ok, tc.op)), Limits{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Apply(r)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			is := fe.Issues[0]
			if len(is.Expression) != 1 || is.Expression[0] != "Parameters.parameter[1]" || !strings.Contains(is.Diagnostics, tc.diag) {
				t.Errorf("issue = %+v, want operation 1 and %q", is, tc.diag)
			}
			if strings.Contains(is.Diagnostics, "Doe") || strings.Contains(is.Diagnostics, "urn:") {
				t.Errorf("diagnostics carry a value: %q", is.Diagnostics)
			}
			if _, has := r.Object["active"]; !has {
				t.Error("the original was changed")
			}
		})
	}
}

// TestParseFHIRPathPatch: a document that is not a well-formed FHIRPath
// Patch is refused before anything is applied, naming the operation.
func TestParseFHIRPathPatch(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name, body, expr, diag string
	}{
		{"not Parameters", `{"resourceType":"Basic","code":{"text":"x"}}`, "resourceType", "Parameters"},
		{"no operations", `{"resourceType":"Parameters"}`, "Parameters.parameter", "at least one"},
		{"unknown member", `{"resourceType":"Parameters","text":{"status":"generated"},"parameter":[]}`, "Parameters", "no member"},
		{"another parameter", `{"resourceType":"Parameters","parameter":[{"name":"x","valueString":"y"}]}`, "Parameters.parameter[0]", `"operation"`},
		{"unknown type", fpPatch(`{"name":"type","valueCode":"copy"},{"name":"path","valueString":"Patient"}`), "Parameters.parameter[0]", "add, insert"},
		{"type as string", fpPatch(`{"name":"type","valueString":"add"},{"name":"path","valueString":"Patient"}`), "Parameters.parameter[0]", "takes only valueCode"},
		{"missing path", fpPatch(`{"name":"type","valueCode":"delete"}`), "Parameters.parameter[0]", `"path"`},
		{"bad path", fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.(("}`), "Parameters.parameter[0]", "FHIRPath"},
		{"unsupported function", fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.memberOf('x')"}`), "Parameters.parameter[0]", "FHIRPath"},
		{"missing value", fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"}`), "Parameters.parameter[0]", `"value"`},
		{"part not taken", fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"},{"name":"index","valueInteger":0}`), "Parameters.parameter[0]", `no part "index"`},
		{"unknown part", fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"},{"name":"vaule","valueCode":"x"}`), "Parameters.parameter[0]", "no part"},
		{"part twice", fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"},{"name":"path","valueString":"Patient.active"}`), "Parameters.parameter[0]", "twice"},
		{"negative index", fpPatch(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":-1},{"name":"value","valueIdentifier":{}}`), "Parameters.parameter[0]", "integer from 0"},
		{"insert path without element", fpPatch(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier.first()"},{"name":"index","valueInteger":0},{"name":"value","valueIdentifier":{}}`), "Parameters.parameter[0]", "end in an element name"},
		{"unknown value type", fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valuePatient":{}}`), "Parameters.parameter[0]", "data type"},
		{"two values", fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male","valueString":"x"}`), "Parameters.parameter[0]", "exactly one"},
		{"bad name", fpPatch(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"a.b"},{"name":"value","valueCode":"male"}`), "Parameters.parameter[0]", "element name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.ParseFHIRPathPatch([]byte(tc.body), Limits{}, 0)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			is := fe.Issues[0]
			if len(is.Expression) != 1 || is.Expression[0] != tc.expr || !strings.Contains(is.Diagnostics, tc.diag) {
				t.Errorf("issue = %+v, want %s and %q", is, tc.expr, tc.diag)
			}
		})
	}
	var many []string
	for range 3 {
		many = append(many, `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"}`)
	}
	if _, err := v.ParseFHIRPathPatch([]byte(fpPatch(many...)), Limits{}, 2); err == nil {
		t.Error("a patch over its operation bound was accepted")
	}
}

// FuzzFHIRPathPatch: any document either parses or is an *Error; a parsed
// one applies or fails with an *Error, never a panic, and never changes
// the resource it was applied to.
func FuzzFHIRPathPatch(f *testing.F) {
	for _, s := range []string{
		fpPatch(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"name","valueHumanName":{"text":"Ann"}}]}`),
		fpPatch(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":1},{"name":"value","valueIdentifier":{"value":"3"}}`),
		fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given[1]"}`),
		fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.deceased"},{"name":"value","valueDateTime":"2020"}`),
		fpPatch(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name[0].given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`),
	} {
		f.Add([]byte(s))
	}
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := v.ParseFHIRPathPatch(data, Limits{MaxBytes: 1 << 16}, 0)
		var fe *Error
		if err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("parse error %T is not *Error", err)
			}
			return
		}
		r := basic(t, fpPatient)
		out, err := p.Apply(r)
		if err == nil {
			_ = out.Marshal()
		} else if !errors.As(err, &fe) {
			t.Fatalf("apply error %T is not *Error", err)
		}
		if string(r.Marshal()) != string(basic(t, fpPatient).Marshal()) {
			t.Fatal("Apply changed the original")
		}
	})
}
