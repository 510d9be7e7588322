package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name, body, expr string
	}{
		{"unknown element", `{"resourceType":"Patient","nickname":"x"}`, "Patient.nickname"},
		{"unknown nested element", `{"resourceType":"Patient","name":[{"first":"x"}]}`, "Patient.name[0].first"},
		{"wrong type string for array", `{"resourceType":"Patient","name":"x"}`, "Patient.name"},
		{"wrong type string for object", `{"resourceType":"Observation","status":"final","code":"x"}`, "Observation.code"},
		{"wrong type number for boolean", `{"resourceType":"Patient","active":1}`, "Patient.active"},
		{"bad code", `{"resourceType":"Patient","gender":"robot"}`, "Patient.gender"},
		{"invalid id chars", `{"resourceType":"Patient","id":"bad_id"}`, "Patient.id"},
		{"invalid id length", `{"resourceType":"Patient","id":"` + string(make([]byte, 0)) + `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`, "Patient.id"},
		{"month 13", `{"resourceType":"Patient","birthDate":"2020-13-01"}`, "Patient.birthDate"},
		{"Feb 30", `{"resourceType":"Patient","birthDate":"2021-02-30"}`, "Patient.birthDate"},
		{"Feb 29 non-leap", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2023-02-29T10:00:00Z"}`, "Observation.effectiveDateTime"},
		{"dateTime without zone", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2023-02-01T10:00:00"}`, "Observation.effectiveDateTime"},
		{"bad instant", `{"resourceType":"Patient","meta":{"lastUpdated":"2023-04-31T00:00:00Z"}}`, "Patient.meta.lastUpdated"},
		{"malformed reference", `{"resourceType":"Patient","managingOrganization":{"reference":"Organization/"}}`, "Patient.managingOrganization.reference"},
		{"reference unknown type", `{"resourceType":"Patient","managingOrganization":{"reference":"Org/1"}}`, "Patient.managingOrganization.reference"},
		{"reference bad uuid", `{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:1234"}}`, "Patient.managingOrganization.reference"},
		{"dangling local reference", `{"resourceType":"Patient","managingOrganization":{"reference":"#org"}}`, "Patient.managingOrganization.reference"},
		{"empty array", `{"resourceType":"Patient","name":[]}`, "Patient.name"},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`, "Patient.name[0]"},
		{"invalid contained", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","bogus":1}],"managingOrganization":{"reference":"#o"}}`, "Patient.contained[0].bogus"},
		{"contained in contained", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","contained":[{"resourceType":"Organization","id":"p"}]}]}`, "Patient.contained[0].contained"},
		{"bundle entry invalid", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111","resource":{"resourceType":"Patient","birthDate":"2021-02-30"}}]}`, "Bundle.entry[0].resource.birthDate"},
		{"id of dots", `{"resourceType":"Patient","id":".."}`, "Patient.id"},
		{"id of one dot", `{"resourceType":"Patient","id":"."}`, "Patient.id"},
		{"contained id of dots", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"..."}]}`, "Patient.contained[0].id"},
		{"reference to an id of dots", `{"resourceType":"Patient","managingOrganization":{"reference":"Organization/.."}}`, "Patient.managingOrganization.reference"},
		{"NUL in a string", `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`, "Patient.name[0].family"},
		{"C0 control", `{"resourceType":"Patient","name":[{"given":["ok","a\u000bb"]}]}`, "Patient.name[0].given[1]"},
		{"DEL", `{"resourceType":"Patient","name":[{"family":"a\u007fb"}]}`, "Patient.name[0].family"},
		{"C1 control", `{"resourceType":"Patient","name":[{"family":"a\u009bb"}]}`, "Patient.name[0].family"},
		{"bidi override", `{"resourceType":"Patient","name":[{"family":"a\u202eb"}]}`, "Patient.name[0].family"},
		{"bidi isolate", `{"resourceType":"Patient","address":[{"city":"\u2066x\u2069"}]}`, "Patient.address[0].city"},
		{"noncharacter", `{"resourceType":"Patient","name":[{"text":"\uffff"}]}`, "Patient.name[0].text"},
		{"control in a code", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1\u0000"}]}}`, "Observation.code.coding[0].code"},
		{"control in narrative", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a\u202eb</div>"}}`, "Patient.text.div"},
		{"control in a contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"a\u0001"}]}`, "Patient.contained[0].name"},
		{"bundle relative fullUrl", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"Patient/1","resource":{"resourceType":"Patient"}}]}`, "Bundle.entry[0].fullUrl"},
	}
	v := newValidator(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), Limits{})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			wantError(t, v.Validate(r), c.expr)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	refs := []string{"Patient/1", "Patient/1/_history/2", "http://example.org/fhir/Patient/1",
		"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111", "urn:oid:1.2.3", "#o", "Organization?identifier=x|1"}
	v := newValidator(t)
	for _, ref := range refs {
		body := `{"resourceType":"Patient","birthDate":"2024-02-29","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"generalPractitioner":[{"reference":"#o"}],"managingOrganization":{"reference":"` + ref + `"}}`
		r, err := Parse([]byte(body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(r); err != nil {
			t.Errorf("%s: %s", ref, describe(err))
		}
	}
}

// Text that TextProblem must let through: whitespace FHIR allows, and
// right-to-left scripts with their marks.
func TestValidateAcceptsText(t *testing.T) {
	v := newValidator(t)
	for _, text := range []string{"line one\r\nline two\ttabbed", "שלום\u200f", "مرحبا\u061c", "Zoë Ångström", "😀", "\u00a0non-breaking"} {
		body, _ := json.Marshal(map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"text": text}}})
		r, err := Parse(body, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(r); err != nil {
			t.Errorf("%q: %s", text, describe(err))
		}
	}
}

func TestTextProblem(t *testing.T) {
	for s, bad := range map[string]bool{
		"": false, "plain": false, "tab\tlf\ncr\r": false, "é": false, "\u200e\u200f": false,
		"\x00": true, "\x1b[31m": true, "\x7f": true, "\u0085": true, "\u202a": true, "\u202e": true,
		"\u2066": true, "\u2069": true, "\ufffe": true, "\xff": true, "a\xc3": true,
	} {
		reason := TextProblem(s)
		if (reason != "") != bad {
			t.Errorf("TextProblem(%q) = %q", s, reason)
		}
		// The reason names a character by its code point, never as itself.
		for i := 0; i < len(reason); i++ {
			if reason[i] < 0x20 || reason[i] >= 0x7f {
				t.Errorf("TextProblem(%q) = %q: not plain ASCII", s, reason)
				break
			}
		}
	}
}

func TestParseReference(t *testing.T) {
	cases := []struct {
		in, typ, id, ver string
		ok               bool
	}{
		{"Patient/123", "Patient", "123", "", true},
		{"Observation/a.b-c/_history/7", "Observation", "a.b-c", "7", true},
		{"https://ehr.example/fhir/R4/Patient/9", "Patient", "9", "", true},
		{"http://x/Patient/9/_history/3", "Patient", "9", "3", true},
		{"Patient/", "", "", "", false},
		{"Patient/1/_history/", "", "", "", false},
		{"Patient/1/extra", "", "", "", false},
		{"patient/1", "", "", "", false},
		{"#p1", "", "", "", false},
		{"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111", "", "", "", false},
		{"Patient?identifier=1", "", "", "", false},
		{"http://x/Patient/1?x=y", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, c := range cases {
		typ, id, ver, ok := ParseReference(c.in)
		if typ != c.typ || id != c.id || ver != c.ver || ok != c.ok {
			t.Errorf("ParseReference(%q) = %q %q %q %v", c.in, typ, id, ver, ok)
		}
	}
}

func TestReferencesSetAndOrder(t *testing.T) {
	body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},
	"subject":{"reference":"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111"},
	"performer":[{"reference":"Practitioner/1"},{"display":"no ref"}],
	"contained":[{"resourceType":"Device","id":"d","owner":{"reference":"Organization/2"}}],
	"device":{"reference":"#d"}}`
	r, err := Parse([]byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ref := range r.References() {
		got = append(got, ref.Path()+"="+ref.Value())
	}
	want := []string{"Observation.contained[0].owner=Organization/2", "Observation.device=#d",
		"Observation.performer[0]=Practitioner/1", "Observation.subject=urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	r.References()[3].Set("Patient/p1")
	if PatientCompartment(r) != "p1" {
		t.Fatalf("Set did not rewrite the tree: %s", r.Marshal())
	}
}

// TestReferencesMatchSchemaTypes checks the structural rule of References
// against the R4 schema's types: on every example and the first Synthea
// bundles, the references found must be exactly the Reference.reference
// elements the type model finds.
func TestReferencesMatchSchemaTypes(t *testing.T) {
	v := newValidator(t)
	files, _ := filepath.Glob(filepath.Join(dataDir(t, "examples"), "*.json"))
	syn, _ := filepath.Glob(filepath.Join(dataDir(t, "synthea"), "*.json"))
	files = append(files, syn[:min(3, len(syn))]...)
	total := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(data, bigLimits)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ref := range r.References() {
			got = append(got, ref.Path())
		}
		var want []string
		typedRefs(v.types, r.Object, r.Type, r.Type, &want)
		sort.Strings(got)
		sort.Strings(want)
		total += len(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: References %q\nschema types %q", filepath.Base(f), got, want)
		}
	}
	if total == 0 {
		t.Fatal("no references found at all")
	}
}

// typedRefs lists the paths of Reference elements with a reference, using
// the schema type model.
func typedRefs(m typeModel, v any, def, path string, out *[]string) {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			typedRefs(m, e, def, path+"["+itoa(i)+"]", out)
		}
	case map[string]any:
		if def == "ResourceList" {
			def, _ = v["resourceType"].(string)
		}
		if _, ok := v["reference"].(string); ok && def == "Reference" {
			*out = append(*out, path)
		}
		for k, e := range v {
			if pt, ok := m[def][k]; ok {
				typedRefs(m, e, pt.def, path+"."+k, out)
			}
		}
	}
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

func TestPatientCompartment(t *testing.T) {
	cases := []struct {
		body, comp string
		refs       []string
	}{
		{`{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p2"},"type":"seealso"}]}`, "p1", []string{"p1", "p2"}},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}]}`, "p1", []string{"p1", "p2"}},
		{`{"resourceType":"Observation","subject":{"reference":"Group/g"},"performer":[{"reference":"Practitioner/x"},{"reference":"Patient/p3"}]}`, "p3", []string{"p3"}},
		{`{"resourceType":"Encounter","subject":{"reference":"Patient/p1/_history/4"}}`, "p1", []string{"p1"}},
		{`{"resourceType":"Appointment","participant":[{"actor":{"reference":"Practitioner/d"}},{"actor":{"reference":"Patient/p5"}}]}`, "p5", []string{"p5"}},
		{`{"resourceType":"Observation","subject":{"reference":"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111"}}`, "", nil},
		{`{"resourceType":"Observation","subject":{"reference":"http://x/Patient/p1"}}`, "", nil},
		{`{"resourceType":"Organization","id":"o"}`, "", nil},
		{`{"resourceType":"Coverage","subscriber":{"reference":"Patient/s"},"beneficiary":{"reference":"Patient/b"}}`, "s", []string{"s", "b"}},
	}
	for _, c := range cases {
		r, err := Parse([]byte(c.body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := PatientCompartment(r); got != c.comp {
			t.Errorf("%s: compartment %q, want %q", r.Type, got, c.comp)
		}
		if got := PatientReferences(r); !slices.Equal(got, c.refs) {
			t.Errorf("%s: refs %q, want %q", r.Type, got, c.refs)
		}
	}
}

func TestParseBundle(t *testing.T) {
	good := `{"resourceType":"Bundle","type":"transaction","entry":[
	{"fullUrl":"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111","resource":{"resourceType":"Patient","id":"x"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|1"}},
	{"request":{"method":"DELETE","url":"Observation/1","ifMatch":"W/\"2\""}}]}`
	r, err := Parse([]byte(good), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(r)
	if err != nil {
		t.Fatal(describe(err))
	}
	if b.Type != "transaction" || len(b.Entries) != 2 || b.Entries[0].Resource.Type != "Patient" ||
		b.Entries[0].Request.IfNoneExist != "identifier=a|1" || b.Entries[1].Request.IfMatch != `W/"2"` || b.Entries[1].Resource != nil {
		t.Fatalf("%+v", b)
	}
	b.Entries[0].Resource.SetID("new")
	if r.Object["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["id"] != "new" {
		t.Fatal("entry resource does not share the Bundle tree")
	}
	bad := []struct{ name, body, expr string }{
		{"missing request", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"}}]}`, "Bundle.entry[0].request"},
		{"bad method", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"FETCH","url":"Patient"}}]}`, "Bundle.entry[0].request.method"},
		{"missing url", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET"}}]}`, "Bundle.entry[0].request.url"},
		{"put without resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/1"}}]}`, "Bundle.entry[0].resource"},
		{"entry not object", `{"resourceType":"Bundle","type":"collection","entry":[1]}`, "Bundle.entry[0]"},
		{"resource without type", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"id":"1"}}]}`, "Bundle.entry[0].resource.resourceType"},
		{"duplicate link", `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://a"},{"relation":"self","url":"http://b"}]}`, "Bundle.link[1].relation"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseBundle(r)
			wantError(t, err, c.expr)
		})
	}
	if _, err := ParseBundle(&Resource{Type: "Patient", Object: map[string]any{"resourceType": "Patient"}}); !errors.As(err, new(*Error)) {
		t.Fatal("non-Bundle accepted")
	}
}
