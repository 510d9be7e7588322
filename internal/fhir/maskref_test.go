package fhir

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestMaskReferenceIdentifier: a "Reference.identifier:system" entry hides
// the identifier of that system of every reference, in every resource type
// and every embedded resource, by Apply and by Redact alike, and nothing
// else.
func TestMaskReferenceIdentifier(t *testing.T) {
	for _, bad := range []string{"Reference.identifier:", "Reference.identifier", "Reference.display:x"} {
		if _, err := ParseMask([]string{bad}); err == nil {
			t.Errorf("ParseMask(%q) accepted", bad)
		}
	}
	m := mustMask(t, "Reference.identifier:"+ssn)
	if m.Empty() || !m.Covers("Observation") || !m.Covers("Device") {
		t.Fatal("a reference-identifier mask covers every type")
	}
	ssnID := `{"system":"` + ssn + `","value":"999-11-2222"}`
	hidden := []struct{ name, body, want string }{
		{"subject", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},` +
			`"subject":{"reference":"Patient/p","identifier":` + ssnID + `}}`,
			`"subject":{"reference":"Patient/p"}`},
		{"array item left empty goes", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},` +
			`"performer":[{"identifier":` + ssnID + `},{"reference":"Practitioner/d"}]}`,
			`"performer":[{"reference":"Practitioner/d"}]`},
		{"contained resource", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},` +
			`"contained":[{"resourceType":"Encounter","id":"e","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p","identifier":` + ssnID + `}}]}`,
			`"subject":{"reference":"Patient/p"}`},
		{"backbone element", `{"resourceType":"Claim","id":"c","status":"active","type":{"text":"x"},"use":"claim","patient":{"reference":"Patient/p"},` +
			`"created":"2020-01-01","provider":{"reference":"Organization/o"},"priority":{"text":"x"},` +
			`"insurance":[{"sequence":1,"focal":true,"identifier":` + ssnID + `,"coverage":{"reference":"Coverage/c"}}]}`,
			`"insurance":[{"coverage":{"reference":"Coverage/c"},"focal":true,"sequence":1}]`},
	}
	for _, tc := range hidden {
		t.Run(tc.name, func(t *testing.T) {
			body := canonical(t, tc.body)
			got, changed, err := m.Apply(body)
			if err != nil || !changed {
				t.Fatalf("Apply: changed %v, err %v", changed, err)
			}
			if bytes.Contains(got, []byte("999-11-2222")) || !bytes.Contains(got, []byte(tc.want)) || !bytes.Contains(got, []byte("REDACTED")) {
				t.Fatalf("Apply: %s", got)
			}
			r := mustParse(t, body)
			if !m.Hides(r) || !m.Redact(r) || !bytes.Equal(r.Marshal(), got) {
				t.Fatalf("Redact differs from Apply:\n%s\n%s", r.Marshal(), got)
			}
			// Spaces around the colon (not Marshal's form) do not hide it.
			spaced := bytes.ReplaceAll(body, []byte(`"identifier":{`), []byte(`"identifier" : {`))
			if got2, _, err := m.Apply(spaced); err != nil || bytes.Contains(got2, []byte("999-11-2222")) {
				t.Fatalf("Apply on a spaced body: %s, %v", got2, err)
			}
		})
	}
	kept := []string{
		// another system
		`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p","identifier":{"system":"urn:mrn","value":"1"}}}`,
		// a Patient's own identifiers (Patient.identifier entries mask those)
		`{"resourceType":"Patient","id":"p","identifier":[` + ssnID + `]}`,
		// a resource's own single identifier
		`{"resourceType":"Composition","id":"c","status":"final","type":{"text":"x"},"date":"2020-01-01","author":[{"reference":"Practitioner/d"}],"title":"t","identifier":` + ssnID + `}`,
	}
	for _, b := range kept {
		body := canonical(t, b)
		got, changed, err := m.Apply(body)
		if err != nil || changed || &got[0] != &body[0] {
			t.Errorf("Apply changed %s: %s (%v)", b, got, err)
		}
	}
}

// TestMaskReferenceIdentifierCarryOver: a masked writer's update keeps the
// reference identifiers it could not see, and may not set, change or
// remove them.
func TestMaskReferenceIdentifierCarryOver(t *testing.T) {
	m := mustMask(t, "Reference.identifier:"+ssn, "Patient.identifier:"+ssn)
	ssnID := map[string]any{"system": ssn, "value": "999-11-2222"}
	stored := `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},` +
		`"subject":{"reference":"Patient/p","identifier":{"system":"` + ssn + `","value":"999-11-2222"}},` +
		`"performer":[{"reference":"Practitioner/d"},{"identifier":{"system":"` + ssn + `","value":"999-33-4444"}}]}`
	src := mustParse(t, canonical(t, stored))
	seen, _, err := m.Apply(canonical(t, stored))
	if err != nil {
		t.Fatal(err)
	}

	dst := mustParse(t, seen)
	dst.Object["status"] = "amended"
	if err := m.CarryOver(dst, src); err != nil {
		t.Fatal(err)
	}
	got := string(dst.Marshal())
	for _, want := range []string{"999-11-2222", "999-33-4444", `"status":"amended"`, "Practitioner/d"} {
		if !strings.Contains(got, want) {
			t.Errorf("carried-over body lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "REDACTED") {
		t.Errorf("the REDACTED marker was stored: %s", got)
	}

	for name, edit := range map[string]func(o map[string]any){
		"writer sets a hidden reference identifier": func(o map[string]any) {
			o["focus"] = []any{map[string]any{"reference": "Device/x", "identifier": ssnID}}
		},
		"writer changes a reference with a hidden identifier": func(o map[string]any) {
			o["subject"] = map[string]any{"reference": "Patient/q"}
		},
		"writer removes a reference with a hidden identifier": func(o map[string]any) { delete(o, "subject") },
	} {
		dst := mustParse(t, seen)
		edit(dst.Object)
		if err := m.CarryOver(dst, src); !errors.Is(err, ErrMasked) {
			t.Errorf("%s: %v, want ErrMasked", name, err)
		}
	}
}

// TestMaskEscapedSystems: a body that spells a masked system with JSON
// escapes (\/ for /, \u) is redacted all the same, by either kind of entry.
// Stored bodies never do (Marshal escapes neither), but Apply must not
// depend on it.
func TestMaskEscapedSystems(t *testing.T) {
	m := mustMask(t, "Reference.identifier:"+ssn, "Patient.identifier:"+ssn)
	for _, sys := range []string{strings.ReplaceAll(ssn, "/", `\/`), strings.ReplaceAll(ssn, "h", `\u0068`)} {
		for _, body := range []string{
			`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},` +
				`"subject":{"reference":"Patient/p","identifier":{"system":"` + sys + `","value":"999-11-2222"}}}`,
			`{"resourceType":"Patient","id":"p","identifier":[{"system":"` + sys + `","value":"999-11-2222"}]}`,
		} {
			got, changed, err := m.Apply([]byte(body))
			if err != nil || !changed || bytes.Contains(got, []byte("999-11-2222")) {
				t.Errorf("%s: changed %v, err %v: %s", body, changed, err, got)
			}
		}
	}
}
