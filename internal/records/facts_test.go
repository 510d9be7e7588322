package records_test

import (
	"context"
	"testing"
)

// The detector's facts: a VIP's record (CEL or V labels), an employee's
// record (EMP), and patients who share the person's family name or
// address are told apart from everyone else, by blind index (catalogue
// G1: a colleague's, a namesake's or a VIP's record).
func TestDetectionFacts(t *testing.T) {
	f := newFixture(t)
	const actCode = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"`
	patient := func(id, meta, family, line, postal string) {
		body := `{"resourceType":"Patient","id":"` + id + `",` + meta + `"name":[{"family":"` + family + `","given":["Ann"]}],` +
			`"address":[{"line":["` + line + `"],"city":"Springfield","postalCode":"` + postal + `"}]}`
		f.put("Patient", id, body)
	}
	patient("celeb", `"meta":{"security":[`+actCode+`CEL"}]},`, "Star", "1 Hill Road", "90210")
	patient("secret", `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]},`, "Quiet", "2 Hill Road", "90210")
	patient("nurse", `"meta":{"security":[`+actCode+`EMP"}]},`, "Colleague", "3 Hill Road", "90210")
	patient("namesake", "", "Snowdon", "9 Far Lane", "11111")
	patient("neighbour", "", "Other", "12 Elm Street", "55555")
	patient("elm-elsewhere", "", "Other", "12 Elm Street", "99999")
	patient("stranger", "", "Unrelated", "7 Oak Avenue", "22222")
	f.put("Practitioner", "dr-snowdon", `{"resourceType":"Practitioner","id":"dr-snowdon","name":[{"family":"Snowdon","given":["Jon"]}],`+
		`"address":[{"line":["12 Elm Street"],"city":"Springfield","postalCode":"55555"}]}`)

	// A family name holding a comma is one name, not a list of two.
	f.put("Practitioner", "dr-comma", `{"resourceType":"Practitioner","id":"dr-comma","name":[{"family":"Smith,Unrelated"}]}`)
	users := map[string]string{"u-comma": "Practitioner/dr-comma", "u-doc": "Practitioner/dr-snowdon", "u-none": "", "u-stranger": "Patient/stranger"}
	facts := f.svc.DetectionFacts(func(_ context.Context, actor string) (string, error) { return users[actor], nil })
	for _, p := range []string{"celeb", "secret"} {
		if !facts.VIP(p) {
			t.Errorf("%s is not a VIP", p)
		}
	}
	for _, p := range []string{"nurse", "namesake", "neighbour", "stranger", "elm-elsewhere"} {
		if facts.VIP(p) {
			t.Errorf("%s is a VIP", p)
		}
	}
	for p, want := range map[string]bool{"nurse": true, "namesake": true, "neighbour": true, "elm-elsewhere": false, "stranger": false, "celeb": false} {
		if got := facts.Colleague("u-doc", p); got != want {
			t.Errorf("Colleague(u-doc, %s) = %v, want %v", p, got, want)
		}
	}
	if facts.Colleague("u-comma", "stranger") {
		t.Error("a family name with a comma matched a patient named by its second half")
	}
	if !facts.Self("u-stranger", "stranger") || facts.Self("u-doc", "stranger") || facts.Self("u-stranger", "namesake") {
		t.Error("Self: a patient user is their own record and nobody else's")
	}
	// A person without a FHIR record has colleagues only by label.
	if !facts.Colleague("u-none", "nurse") || facts.Colleague("u-none", "namesake") {
		t.Error("a person without a record: colleagues by label only")
	}
}
