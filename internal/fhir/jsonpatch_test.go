package fhir

import (
	"errors"
	"strings"
	"testing"
)

func basic(t testing.TB, body string) *Resource {
	t.Helper()
	r, err := Parse([]byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestJSONPatchApply follows RFC 6902's appendix A on FHIR-shaped
// documents: each patch applied to the same resource gives the expected
// one, and the original is never changed.
func TestJSONPatchApply(t *testing.T) {
	const doc = `{"resourceType":"Basic","id":"b1","code":{"text":"x"},"identifier":[{"value":"a"},{"value":"b"}],"a~b":{"c/d":"e"}}`
	tests := []struct {
		name, patch, want string
	}{
		{"add member", `[{"op":"add","path":"/language","value":"en"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}],"language":"en"}`},
		{"add replaces a member", `[{"op":"add","path":"/code","value":{"text":"y"}}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"y"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}]}`},
		{"insert into array", `[{"op":"add","path":"/identifier/1","value":{"value":"z"}}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"z"},{"value":"b"}]}`},
		{"append to array", `[{"op":"add","path":"/identifier/-","value":{"value":"z"}}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"},{"value":"z"}]}`},
		{"add at array end", `[{"op":"add","path":"/identifier/2","value":{"value":"z"}}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"},{"value":"z"}]}`},
		{"remove array element", `[{"op":"remove","path":"/identifier/0"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"b"}]}`},
		{"replace", `[{"op":"replace","path":"/code/text","value":"y"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"y"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}]}`},
		{"escaped tokens", `[{"op":"replace","path":"/a~0b/c~1d","value":"f"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"f"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}]}`},
		{"move", `[{"op":"move","from":"/identifier/0","path":"/identifier/1"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"b"},{"value":"a"}]}`},
		{"copy", `[{"op":"copy","from":"/identifier/0","path":"/identifier/-"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"},{"value":"a"}]}`},
		{"test then replace", `[{"op":"test","path":"/identifier/1","value":{"value":"b"}},{"op":"replace","path":"/identifier/1/value","value":"c"}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"c"}]}`},
		{"test whole document", `[{"op":"test","path":"","value":{"resourceType":"Basic","id":"b1","code":{"text":"x"},"identifier":[{"value":"a"},{"value":"b"}],"a~b":{"c/d":"e"}}}]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}]}`},
		{"empty patch", `[]`,
			`{"resourceType":"Basic","a~b":{"c/d":"e"},"code":{"text":"x"},"id":"b1","identifier":[{"value":"a"},{"value":"b"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := basic(t, doc)
			before := string(r.Marshal())
			p, err := ParseJSONPatch([]byte(tc.patch), Limits{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply(r)
			if err != nil {
				t.Fatal(err)
			}
			if s := string(got.Marshal()); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
			if string(r.Marshal()) != before {
				t.Error("Apply changed the original")
			}
			if got.Type != "Basic" || got.ID != "b1" {
				t.Errorf("Type %q ID %q", got.Type, got.ID)
			}
		})
	}
}

func TestJSONPatchTestNumbers(t *testing.T) {
	r := basic(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.0}}`)
	for patch, ok := range map[string]bool{
		`[{"op":"test","path":"/valueQuantity/value","value":1}]`:    true,
		`[{"op":"test","path":"/valueQuantity/value","value":1.00}]`: true,
		`[{"op":"test","path":"/valueQuantity/value","value":2}]`:    false,
		`[{"op":"test","path":"/valueQuantity/value","value":"1"}]`:  false,
		`[{"op":"test","path":"/status","value":"Final"}]`:           false,
		`[{"op":"test","path":"/code","value":{"text":"x"}}]`:        true,
	} {
		p, err := ParseJSONPatch([]byte(patch), Limits{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Apply(r)
		var tf *PatchTestFailed
		if ok != (err == nil) || (!ok && !errors.As(err, &tf)) {
			t.Errorf("%s: %v", patch, err)
		}
	}
}

// TestJSONPatchRefused: malformed documents and operations that cannot
// apply are *Errors naming the operation, and never echo a value.
func TestJSONPatchRefused(t *testing.T) {
	const doc = `{"resourceType":"Basic","code":{"text":"x"},"identifier":[{"value":"a"}]}`
	parse := []struct{ name, patch, where string }{
		{"not an array", `{"op":"add"}`, "JSONPatch"},
		{"not JSON", `[{"op":`, "JSONPatch[0].op"},
		{"trailing data", `[] []`, "JSONPatch"},
		{"operation not an object", `["add"]`, "JSONPatch[0]"},
		{"unknown op", `[{"op":"merge","path":"/a","value":1}]`, "JSONPatch[0]"},
		{"missing value", `[{"op":"add","path":"/a"}]`, "JSONPatch[0]"},
		{"null value", `[{"op":"add","path":"/a","value":null}]`, "JSONPatch[0].value"},
		{"missing from", `[{"op":"move","path":"/a"}]`, "JSONPatch[0]"},
		{"unknown member", `[{"op":"add","path":"/a","vaule":1,"value":2}]`, "JSONPatch[0]"},
		{"from on add", `[{"op":"add","path":"/a","from":"/b","value":2}]`, "JSONPatch[0]"},
		{"duplicate member", `[{"op":"add","op":"remove","path":"/a"}]`, "JSONPatch[0].op"},
		{"pointer without slash", `[{"op":"remove","path":"a"}]`, "JSONPatch[0]"},
		{"bad escape", `[{"op":"remove","path":"/a~2"}]`, "JSONPatch[0]"},
		{"dangling escape", `[{"op":"remove","path":"/a~"}]`, "JSONPatch[0]"},
		{"whole resource", `[{"op":"replace","path":"","value":{}}]`, "JSONPatch[0]"},
		{"move into itself", `[{"op":"move","from":"/code","path":"/code/text"}]`, "JSONPatch[0]"},
		{"second op bad", `[{"op":"test","path":"/code","value":1},{"op":"add"}]`, "JSONPatch[1]"},
		{"too many", `[` + strings.Repeat(`{"op":"remove","path":"/a"},`, 3) + `{"op":"remove","path":"/a"}]`, "JSONPatch"},
	}
	for _, tc := range parse {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJSONPatch([]byte(tc.patch), Limits{}, 3)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if got := fe.Issues[0].Expression; len(got) == 0 || got[0] != tc.where {
				t.Errorf("expression %v, want %s (%v)", got, tc.where, err)
			}
		})
	}
	apply := []struct{ name, patch string }{
		{"remove missing", `[{"op":"remove","path":"/language"}]`},
		{"replace missing", `[{"op":"replace","path":"/language","value":"en"}]`},
		{"add under missing parent", `[{"op":"add","path":"/meta/source","value":"x"}]`},
		{"index past end", `[{"op":"add","path":"/identifier/2","value":{"value":"b"}}]`},
		{"leading zero index", `[{"op":"replace","path":"/identifier/00","value":{"value":"b"}}]`},
		{"dash outside add", `[{"op":"remove","path":"/identifier/-"}]`},
		{"index into object", `[{"op":"remove","path":"/code/0"}]`},
		{"member of a string", `[{"op":"add","path":"/code/text/x","value":"y"}]`},
		{"copy from missing", `[{"op":"copy","from":"/nothing","path":"/language"}]`},
		{"test missing", `[{"op":"test","path":"/nothing","value":1}]`},
	}
	for _, tc := range apply {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseJSONPatch([]byte(tc.patch), Limits{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := basic(t, doc)
			_, err = p.Apply(r)
			var fe *Error
			if !errors.As(err, &fe) || fe.Issues[0].Expression[0] != "JSONPatch[0]" {
				t.Fatalf("err = %v, want an *Error at JSONPatch[0]", err)
			}
			if string(r.Marshal()) != doc {
				t.Error("a failed patch changed the original")
			}
		})
	}
}

// FuzzJSONPatch: any document either parses or is an *Error; a parsed one
// applies or fails with an error, never a panic, and never changes the
// resource it was applied to.
func FuzzJSONPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"add","path":"/identifier/-","value":{"value":"z"}}]`,
		`[{"op":"move","from":"/identifier/0","path":"/code/coding"}]`,
		`[{"op":"copy","from":"","path":"/contained/0"}]`,
		`[{"op":"test","path":"/a~1b","value":[1,2,{"x":true}]}]`,
		`[{"op":"remove","path":"/identifier/0/value"}]`,
	} {
		f.Add([]byte(s))
	}
	const doc = `{"resourceType":"Basic","code":{"text":"x"},"identifier":[{"value":"a"},{"value":"b"}],"a/b":[1,2]}`
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseJSONPatch(data, Limits{MaxBytes: 1 << 16}, 0)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("parse error %T is not *Error", err)
			}
			return
		}
		r := basic(t, doc)
		if out, err := p.Apply(r); err == nil {
			_ = out.Marshal()
		}
		if string(r.Marshal()) != string(basic(t, doc).Marshal()) {
			t.Fatal("Apply changed the original")
		}
	})
}
