package fhir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const ssn = "http://hl7.org/fhir/sid/us-ssn"

func mustMask(t testing.TB, entries ...string) Mask {
	t.Helper()
	m, err := ParseMask(entries)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func canonical(t testing.TB, body string) []byte {
	t.Helper()
	r, err := Parse([]byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Marshal()
}

const redactedLabel = `{"code":"REDACTED","display":"redacted","system":"` + RedactedSystem + `"}`

func TestMaskApply(t *testing.T) {
	patient := `{"resourceType":"Patient","id":"p","active":true,"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"urn:x","valueString":"x"}]},` +
		`"identifier":[{"system":"urn:mrn","value":"MRN-1"},{"system":"` + ssn + `","value":"999-11-2222"}],` +
		`"maritalStatus":{"coding":[{"system":"urn:secret","code":"S"},{"system":"urn:open","code":"M"}],"text":"married"},` +
		`"contact":[{"telecom":[{"system":"phone","value":"555"}]},{"name":{"text":"kin"},"telecom":[{"system":"email","value":"a@b"}]}]}`
	for _, tc := range []struct {
		name string
		mask []string
		body string
		want string // "" when nothing is removed
	}{
		{"system item", []string{"Patient.identifier:" + ssn}, patient,
			`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"urn:x","valueString":"x"}]},"active":true,"birthDate":"1970-01-01",` +
				`"contact":[{"telecom":[{"system":"phone","value":"555"}]},{"name":{"text":"kin"},"telecom":[{"system":"email","value":"a@b"}]}],"id":"p",` +
				`"identifier":[{"system":"urn:mrn","value":"MRN-1"}],"maritalStatus":{"coding":[{"system":"urn:secret","code":"S"},{"system":"urn:open","code":"M"}],"text":"married"},` +
				`"meta":{"security":[` + redactedLabel + `]}}`},
		{"last item empties the element", []string{"Patient.identifier:urn:mrn", "Patient.identifier:" + ssn},
			`{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1"},{"system":"` + ssn + `","value":"2"}],"meta":{"versionId":"3"}}`,
			`{"resourceType":"Patient","meta":{"security":[` + redactedLabel + `],"versionId":"3"}}`},
		{"whole primitive and its extensions", []string{"Patient.birthDate"}, `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"id":"x"},"active":true}`,
			`{"resourceType":"Patient","active":true,"meta":{"security":[` + redactedLabel + `]}}`},
		{"coding of a concept", []string{"Patient.maritalStatus:urn:secret"},
			`{"resourceType":"Patient","maritalStatus":{"coding":[{"system":"urn:secret","code":"S"},{"system":"urn:open","code":"M"}],"text":"married"}}`,
			`{"resourceType":"Patient","maritalStatus":{"coding":[{"code":"M","system":"urn:open"}],"text":"married"},"meta":{"security":[` + redactedLabel + `]}}`},
		{"a concept left without codings goes, text and all", []string{"Patient.maritalStatus:urn:secret"},
			`{"resourceType":"Patient","maritalStatus":{"coding":[{"system":"urn:secret","code":"S"}],"text":"single"},"active":false}`,
			`{"resourceType":"Patient","active":false,"meta":{"security":[` + redactedLabel + `]}}`},
		{"nested through arrays", []string{"Patient.contact.telecom"},
			`{"resourceType":"Patient","contact":[{"telecom":[{"system":"phone","value":"555"}]},{"name":{"text":"kin"},"telecom":[{"system":"email","value":"a@b"}]}]}`,
			`{"resourceType":"Patient","contact":[{"name":{"text":"kin"}}],"meta":{"security":[` + redactedLabel + `]}}`},
		{"contained resource", []string{"Patient.identifier:" + ssn},
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},` +
				`"contained":[{"resourceType":"Patient","id":"p","identifier":[{"system":"` + ssn + `","value":"999-11-2222"}],"active":true}]}`,
			`{"resourceType":"Observation","code":{"text":"x"},"contained":[{"resourceType":"Patient","active":true,"id":"p"}],` +
				`"meta":{"security":[` + redactedLabel + `]},"status":"final","subject":{"reference":"#p"}}`},
		{"label kept once", []string{"Patient.active"},
			`{"resourceType":"Patient","active":true,"meta":{"security":[` + redactedLabel + `]}}`,
			`{"resourceType":"Patient","meta":{"security":[` + redactedLabel + `]}}`},
		{"nothing to remove", []string{"Patient.identifier:" + ssn}, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1"}]}`, ""},
		{"other type", []string{"Patient.identifier:" + ssn}, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p"}}`, ""},
		{"a reference naming the type", []string{"Patient.identifier"}, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p","type":"Patient"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustMask(t, tc.mask...)
			body := canonical(t, tc.body)
			got, changed, err := m.Apply(body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if changed || &got[0] != &body[0] {
					t.Fatalf("changed a body with nothing to hide: %s", got)
				}
				return
			}
			want := canonical(t, tc.want)
			if !changed || !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			// The tree form gives the same bytes.
			r, _ := Parse(body, Limits{})
			if !m.Redact(r) || !bytes.Equal(r.Marshal(), want) {
				t.Fatalf("Redact: %s", r.Marshal())
			}
			if !m.Hides(mustParse(t, body)) || m.Hides(mustParse(t, got)) {
				t.Fatal("Hides disagrees with Apply")
			}
		})
	}
}

func mustParse(t testing.TB, b []byte) *Resource {
	t.Helper()
	r, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMaskUnsortedAndEscaped: bodies not written by Marshal (members out
// of order, \u escapes hiding a name) are still masked.
func TestMaskUnsortedAndEscaped(t *testing.T) {
	m := mustMask(t, "Patient.identifier:"+ssn)
	for _, body := range []string{
		`{"identifier":[{"system":"` + ssn + `","value":"999"}],"resourceType":"Patient"}`,
		`{"resourceType":"Pati\u0065nt","identifier":[{"system":"` + ssn + `","value":"999"}]}`,
		`{"resourceType":"Patient","identifier":[{"system":"http://hl7.org/fhir/sid/us-ss\u006e","value":"999"}]}`,
		`{"resourceType":"Patient", "identifier" : [ {"system":"` + ssn + `","value":"999"} ] }`,
	} {
		got, changed, err := m.Apply([]byte(body))
		if err != nil || !changed || bytes.Contains(got, []byte("999")) {
			t.Errorf("%s: %s %v %v", body, got, changed, err)
		}
		if _, err := Parse(got, Limits{}); err != nil {
			t.Errorf("%s: masked body does not parse: %v", body, err)
		}
	}
	if _, _, err := m.Apply([]byte(`{"resourceType":"Patient","identifier":[`)); err == nil {
		t.Error("a truncated body was accepted")
	}
}

func TestParseMask(t *testing.T) {
	for _, bad := range []string{"", "Patient", "Patient.", "Nope.identifier", "Patient.identifier:", "Patient.id", "Patient.meta.security",
		"Patient.resourceType", "Patient.value[x]", "Patient..name", "Patient._birthDate"} {
		if _, err := ParseMask([]string{bad}); err == nil {
			t.Errorf("ParseMask(%q) accepted", bad)
		}
	}
	m := mustMask(t, "Patient.identifier:"+ssn, "Observation.note", "Patient.contact.telecom")
	if m.Empty() || !m.Covers("Patient") || !m.Covers("Observation") || m.Covers("Encounter") {
		t.Error("Covers")
	}
	if !(Mask{}).Empty() {
		t.Error("zero Mask is not empty")
	}
}

// TestMaskSynthea holds Apply to the tree form on every Synthea resource
// and every HL7 example, and the masked resources to the validator.
func TestMaskSynthea(t *testing.T) {
	v := newValidator(t)
	masks := [][]string{
		{"Patient.identifier:" + ssn},
		{"Patient.identifier:" + ssn, "Patient.telecom", "Patient.address.line", "Patient.name.given"},
		{"Observation.valueQuantity", "Encounter.type:http://snomed.info/sct", "Patient.extension"},
	}
	var bodies [][]byte
	for _, f := range synthea(t) {
		r, err := Parse(readFile(t, f), bigLimits)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseBundle(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			bodies = append(bodies, e.Resource.Marshal())
		}
	}
	files, _ := filepath.Glob(filepath.Join(dataDir(t, "examples"), "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := Parse(data, bigLimits); err == nil {
			bodies = append(bodies, r.Marshal())
		}
	}
	removed := 0
	for _, entries := range masks {
		m := mustMask(t, entries...)
		for _, body := range bodies {
			got, changed, err := m.Apply(body)
			if err != nil {
				t.Fatal(err)
			}
			r := mustParse(t, body)
			want := body
			if m.Redact(r) {
				want = r.Marshal()
			}
			if !bytes.Equal(got, want) || changed != !bytes.Equal(body, want) {
				t.Fatalf("Apply and Redact differ on a %s", r.Type)
			}
			if !changed {
				continue
			}
			removed++
			if m.Hides(r) {
				t.Fatalf("a masked %s still holds masked elements", r.Type)
			}
			if !bytes.Contains(got, []byte(`"code":"REDACTED"`)) {
				t.Fatalf("masked %s has no REDACTED label", r.Type)
			}
			if err := v.Validate(r); err != nil {
				before := mustParse(t, body)
				if v.Validate(before) == nil {
					t.Fatalf("masking made a valid %s invalid: %v", r.Type, err)
				}
			}
		}
	}
	if removed == 0 {
		t.Fatal("no resource had anything masked: the test checks nothing")
	}
	t.Logf("%d bodies, %d masked", len(bodies), removed)
}

func synthea(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(dataDir(t, "synthea"), "*.json"))
	if len(files) == 0 {
		t.Skip("no Synthea data")
	}
	if len(files) > 10 {
		files = files[:10]
	}
	return files
}

func TestMaskCarryOver(t *testing.T) {
	m := mustMask(t, "Patient.identifier:"+ssn, "Patient.birthDate", "Patient.contact.telecom", "Patient.maritalStatus:urn:secret")
	stored := `{"resourceType":"Patient","id":"p","birthDate":"1970-01-01","_birthDate":{"id":"b"},` +
		`"identifier":[{"system":"urn:mrn","value":"MRN-1"},{"system":"` + ssn + `","value":"999-11-2222"}],` +
		`"maritalStatus":{"coding":[{"system":"urn:secret","code":"S"},{"system":"urn:open","code":"M"}]},` +
		`"contact":[{"name":{"text":"kin"},"telecom":[{"system":"phone","value":"555"}]},{"telecom":[{"system":"email","value":"a@b"}]}],` +
		`"meta":{"versionId":"1"}}`
	seen, _, err := m.Apply(canonical(t, stored))
	if err != nil {
		t.Fatal(err)
	}
	src := mustParse(t, canonical(t, stored))

	// A read-modify-write of what the writer saw erases nothing.
	dst := mustParse(t, seen)
	dst.Object["active"] = true
	if err := m.CarryOver(dst, src); err != nil {
		t.Fatal(err)
	}
	got := string(dst.Marshal())
	for _, want := range []string{"999-11-2222", "1970-01-01", `"_birthDate":{"id":"b"}`, "555", "a@b", "urn:secret", "MRN-1", `"active":true`} {
		if !strings.Contains(got, want) {
			t.Errorf("carried-over body lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "REDACTED") {
		t.Errorf("the REDACTED marker was stored: %s", got)
	}
	if again, _, _ := m.Apply(dst.Marshal()); !bytes.Equal(stripLabel(t, again), stripLabel(t, seenWith(t, seen, "active", true))) {
		t.Errorf("the writer would now see\n%s\nnot\n%s", again, seenWith(t, seen, "active", true))
	}

	// Visible edits stand; hidden items follow the writer's.
	dst = mustParse(t, seen)
	dst.Object["identifier"] = []any{map[string]any{"system": "urn:mrn", "value": "MRN-2"}}
	if err := m.CarryOver(dst, src); err != nil {
		t.Fatal(err)
	}
	ids := string(appendValue(nil, dst.Object["identifier"], false))
	if ids != `[{"system":"urn:mrn","value":"MRN-2"},{"system":"`+ssn+`","value":"999-11-2222"}]` {
		t.Errorf("identifiers: %s", ids)
	}

	for name, edit := range map[string]func(o map[string]any){
		"writer sets a hidden identifier": func(o map[string]any) {
			o["identifier"] = append(o["identifier"].([]any), map[string]any{"system": ssn, "value": "1"})
		},
		"writer sets a hidden element": func(o map[string]any) { o["birthDate"] = "1999-01-01" },
		"writer removes an item with hidden parts": func(o map[string]any) {
			delete(o, "contact")
		},
		"writer changes an item with hidden parts": func(o map[string]any) {
			o["maritalStatus"] = map[string]any{"coding": []any{map[string]any{"system": "urn:open", "code": "D"}}}
		},
	} {
		dst := mustParse(t, seen)
		edit(dst.Object)
		if err := m.CarryOver(dst, src); !errors.Is(err, ErrMasked) {
			t.Errorf("%s: %v, want ErrMasked", name, err)
		}
	}

	// Nothing stored: the writer's label goes, nothing is added.
	dst = mustParse(t, seen)
	if err := m.CarryOver(dst, nil); err != nil || strings.Contains(string(dst.Marshal()), "REDACTED") {
		t.Errorf("create: %v %s", err, dst.Marshal())
	}
	// A label stored by someone else stays.
	src2 := mustParse(t, canonical(t, `{"resourceType":"Patient","active":true,"meta":{"security":[`+redactedLabel+`]}}`))
	dst = mustParse(t, canonical(t, `{"resourceType":"Patient","active":false}`))
	if err := m.CarryOver(dst, src2); err != nil || !strings.Contains(string(dst.Marshal()), "REDACTED") {
		t.Errorf("stored label: %v %s", err, dst.Marshal())
	}
	// Embedded resources with hidden parts cannot be carried.
	src3 := mustParse(t, canonical(t, `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"x","birthDate":"1970-01-01"}]}`))
	dst = mustParse(t, canonical(t, `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"x"}]}`))
	if err := m.CarryOver(dst, src3); !errors.Is(err, ErrMasked) {
		t.Errorf("embedded: %v", err)
	}
	// Other types are not touched.
	obs := mustParse(t, canonical(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"meta":{"security":[`+redactedLabel+`]}}`))
	if err := m.CarryOver(obs, nil); err != nil || !strings.Contains(string(obs.Marshal()), "REDACTED") {
		t.Errorf("Observation: %v", err)
	}
}

func seenWith(t *testing.T, seen []byte, k string, v any) []byte {
	r := mustParse(t, seen)
	r.Object[k] = v
	return r.Marshal()
}

func stripLabel(t *testing.T, b []byte) []byte {
	r := mustParse(t, b)
	unlabel(r.Object)
	return r.Marshal()
}

// FuzzMaskApply checks that Apply never panics and agrees with Redact on
// whatever Parse accepts, both as given and as Marshal encodes it (the
// form of stored bodies, which Apply splices without decoding).
func FuzzMaskApply(f *testing.F) {
	addExampleSeeds(f, "Patient-*.json")
	f.Add([]byte(`{"resourceType":"Patient","identifier":[{"system":"` + ssn + `","value":"1"}],"contained":[{"resourceType":"Patient","birthDate":"2000"}]}`))
	f.Add([]byte(`{"resourceType":"Patient","_birthDate":{"id":"x"},"name":[{"given":["a"],"_given":[{"id":"g"}]}],"maritalStatus":{"coding":[{"system":"urn:x","code":"M"}]}}`))
	f.Add([]byte(`{"resourceType":"Observation","subject":{"reference":"Patient/p","identifier":{"system":"` + ssn + `","value":"1"}},` +
		`"performer":[{"identifier":{"system":"` + ssn + `","value":"2"}}],"contained":[{"resourceType":"Patient","link":[{"other":{"identifier":{"system":"` + ssn + `"}}}]}]}`))
	m := mustMask(f, "Patient.identifier:"+ssn, "Patient.birthDate", "Patient.name.given", "Patient.maritalStatus:urn:x", "Reference.identifier:"+ssn)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, changed, err := m.Apply(data)
		r, perr := Parse(data, Limits{})
		if perr != nil {
			return // Apply takes stored bodies; it need only not panic here
		}
		canon := r.Marshal()
		if err != nil {
			t.Fatalf("Apply failed on a body Parse accepts: %v", err)
		}
		want := canon
		if m.Redact(r) {
			want = r.Marshal()
		}
		if changed != !bytes.Equal(want, canon) {
			t.Fatal("Apply and Redact disagree on whether anything was hidden")
		}
		if changed {
			g, err := Parse(got, Limits{})
			if err != nil {
				t.Fatalf("Apply's output does not parse: %v", err)
			}
			if !bytes.Equal(g.Marshal(), want) {
				t.Fatal("Apply and Redact differ")
			}
		}
		got, _, err = m.Apply(canon)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Apply on Marshal's encoding: %v\n%s\nwant\n%s", err, got, want)
		}
	})
}

// BenchmarkMask masks a Synthea Patient that holds a social security
// number (the practitioner role's mask), one without a match, and an
// Observation (the common case: a type the mask does not name), against
// decoding and encoding the whole Patient.
func BenchmarkMask(b *testing.B) {
	for _, mc := range []struct {
		name    string
		entries []string
	}{
		{"patient-ssn", []string{"Patient.identifier:" + ssn}},
		{"practitioner", []string{"Patient.identifier:" + ssn, "Reference.identifier:" + ssn}},
	} {
		b.Run(mc.name, func(b *testing.B) { benchmarkMask(b, mustMask(b, mc.entries...)) })
	}
}

func benchmarkMask(b *testing.B, m Mask) {
	patient := syntheaResource(b, "Patient")
	if !bytes.Contains(patient, []byte(ssn)) {
		b.Skip("the Synthea Patient has no SSN")
	}
	run := func(name string, body []byte, want bool) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, changed, err := m.Apply(body); err != nil || changed != want {
					b.Fatal(changed, err)
				}
			}
		})
	}
	run("Patient", patient, true)
	run("Patient-no-ssn", bytes.ReplaceAll(patient, []byte(ssn), []byte("urn:other-system")), false)
	run("Observation", syntheaResource(b, "Observation"), false)
	b.Run("Patient-tree", func(b *testing.B) {
		b.SetBytes(int64(len(patient)))
		b.ReportAllocs()
		for b.Loop() {
			r, err := Parse(patient, Limits{})
			if err != nil || !m.Redact(r) {
				b.Fatal(err)
			}
			_ = r.Marshal()
		}
	})
}

func TestMaskReaches(t *testing.T) {
	m := mustMask(t, "Patient.identifier:"+ssn, "Patient.identifier:urn:passport", "Patient.address.line", "Observation.valueQuantity")
	for _, tc := range []struct {
		typ     string
		path    string
		hidden  bool
		systems []string
	}{
		{"Patient", "identifier", true, []string{ssn, "urn:passport"}},
		{"Patient", "identifier.type", true, nil}, // inside the hidden items
		{"Patient", "address", true, nil},         // holds hidden lines
		{"Patient", "address.line", true, nil},
		{"Patient", "address.city", false, nil},
		{"Patient", "name", false, nil},
		{"Patient", "", true, nil}, // the whole resource
		{"Observation", "value", true, nil},
		{"Observation", "valueString", false, nil},
		{"Observation", "code", false, nil},
		{"Encounter", "identifier", false, nil},
	} {
		var path []string
		if tc.path != "" {
			path = strings.Split(tc.path, ".")
		}
		hidden, systems := m.Reaches(tc.typ, path)
		if hidden != tc.hidden || strings.Join(systems, " ") != strings.Join(tc.systems, " ") {
			t.Errorf("Reaches(%s, %s) = %v %v, want %v %v", tc.typ, tc.path, hidden, systems, tc.hidden, tc.systems)
		}
	}
}
